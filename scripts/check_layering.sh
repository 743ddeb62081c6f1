#!/usr/bin/env bash
# Fails when a source file includes a header of a higher layer, so the layering drawn in
# docs/ARCHITECTURE.md stays true. Layers, bottom up (a file may include its own layer and any below):
#   0 core        types, errors, collective interfaces, CUDA runtime basics (core/cuda)
#   1 io          safetensors, config.json        1 tokenizer
#   2 plan        tensor-parallel plans and device maps: data computed from config and headers
#   2 chat        chat templates: a Jinja subset and the model's template over it
#   3 ops         one header per operation; CPU (ops/cpu) and CUDA (ops/cuda) kernels behind them
#   4 model       weights bound by name, the forward pass over ops, KV caches
#   5 backend     what runs a model on a device: the CUDA context, offload streaming
#   6 parallel    communicators and the ranks of a tensor-parallel group
#   7 runtime     sequences, sampling loops, generation     7 engine: the library's Engine API
#   8 serve       the HTTP server over the Engine and scheduler
#   9 tools       the command line
# Usage: check_layering.sh [ROOT] (default: this repository), ROOT holding src/ and tools/.
set -euo pipefail
cd "${1:-$(dirname "$0")/..}"

layer_of() {
  case "$1" in
    core/*) echo 0 ;;
    io/* | tokenizer/*) echo 1 ;;
    plan/* | chat/*) echo 2 ;;
    ops/*) echo 3 ;;
    model/*) echo 4 ;;
    backend/*) echo 5 ;;
    parallel/*) echo 6 ;;
    runtime/* | engine/*) echo 7 ;;
    serve/*) echo 8 ;;
    tools/*) echo 9 ;;
    *) echo "" ;;
  esac
}

violations=0
checked=0
while IFS= read -r file; do
  relative=${file#src/}
  own=$(layer_of "$relative")
  if [ -z "$own" ]; then
    echo "unlayered source file: $file (add its folder to scripts/check_layering.sh)"
    violations=$((violations + 1))
    continue
  fi
  while IFS= read -r included; do
    [ -e "src/$included" ] || continue  # a header beside the file, or a system header
    target=$(layer_of "$included")
    if [ -n "$target" ] && [ "$target" -gt "$own" ]; then
      echo "$file includes $included: layer $target above its own layer $own"
      violations=$((violations + 1))
    fi
  done < <(sed -n 's/^[[:space:]]*#[[:space:]]*include[[:space:]]*"\([^"]*\)".*/\1/p' "$file")
  checked=$((checked + 1))
done < <(find src tools -type f \( -name '*.h' -o -name '*.cuh' -o -name '*.cpp' -o -name '*.cu' \) | sort)

if [ "$checked" -eq 0 ]; then
  echo "no source files found"
  exit 1
fi
if [ "$violations" -gt 0 ]; then
  echo "$violations include(s) run back up a layer"
  exit 1
fi
echo "layering: $checked files, no include runs back up a layer"
