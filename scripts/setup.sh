#!/usr/bin/env bash
# Installs what is missing on a Debian bookworm machine, builds shardlm in Release, then
#   run   generates text with the default model (the main job), or
#   test  runs every test suite (unit, reference fixtures, tokenizer oracle, sanitizers, fuzzing).
set -euo pipefail
mode=${1:-run}
cd "$(dirname "$0")/.."

packages=(build-essential cmake ninja-build pkg-config nlohmann-json3-dev libcli11-dev libfmt-dev
          libpcre2-dev libutf8proc-dev libgtest-dev libgmock-dev libboost-dev)
# Chromium runs the chat page's test headless (tests/serve/test_chat_page.sh); without its
# recommended packages it still does.
if [ "$mode" = test ]; then packages+=(clang-14 libclang-rt-14-dev chromium); fi

missing=()
for package in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed" || missing+=("$package")
done
# Node.js runs the tokenizer oracle. A machine may already have node and npm from elsewhere (whose
# nodejs package then conflicts with Debian's npm), so look for the commands, not the packages.
if [ "$mode" = test ]; then
  command -v node >/dev/null || missing+=(nodejs)
  command -v npm >/dev/null || missing+=(npm)
fi
if [ ${#missing[@]} -gt 0 ]; then
  sudo=""; [ "$(id -u)" -eq 0 ] || sudo=sudo
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi

# The CUDA toolkit is optional; when it is installed (as on our machines), the CUDA backend and
# its GPU tests are compiled too, even without a GPU to run them on.
if [ -x /usr/local/cuda/bin/nvcc ]; then export PATH=/usr/local/cuda/bin:$PATH; fi

jobs=$(nproc)
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release
cmake --build build -j "$jobs"

case "$mode" in
  run)
    ./build/tools/cli/shardlm generate --prompt "In the beginning" --max-new-tokens 48 --temperature 0
    ;;
  test)
    exec bash scripts/run_tests.sh
    ;;
  *)
    echo "usage: scripts/setup.sh [run|test]" >&2
    exit 2
    ;;
esac
