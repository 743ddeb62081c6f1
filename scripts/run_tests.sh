#!/usr/bin/env bash
# Runs every test suite; scripts/setup.sh test calls this after the Release build in build/.
#  1. the parsers' and the CPU model's tests under AddressSanitizer + UBSan (build-asan/)
#  2. libFuzzer targets for the safetensors, config, tokenizer, plan and request parsers and the chat
#     template engine, a short run each (build-fuzz/)
#  3. the whole CTest suite on the Release build, including the npm tokenizer and chat-template
#     oracles and the server driven by curl and the openai npm client (last, so its summary line
#     closes the log)
set -euo pipefail
cd "$(dirname "$0")/.."
jobs=$(nproc)
fuzz_seconds=${SHARDLM_FUZZ_SECONDS:-30}

echo "== npm packages (the tokenizer and chat-template oracles, the openai client)"
npm ci --prefix tests/oracle --no-audit --no-fund --loglevel=error
npm ci --prefix tests/chat --no-audit --no-fund --loglevel=error
npm ci --prefix tests/serve --no-audit --no-fund --loglevel=error

echo "== parsers and the CPU model under ASan/UBSan"
cmake -S . -B build-asan -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DSHARDLM_SANITIZE=ON -DSHARDLM_CUDA=OFF >/dev/null
sanitized_tests=(test_safetensors test_model_config test_model_config_published test_generation_config test_tokenizer test_tokenizer_fixtures
                 test_cpu_kernels test_model_fixtures test_tensor_parallel_cpu test_host_comm_threads test_engine
                 test_scheduler test_kv_block_pool test_completion_request test_chat_request test_chat_template
                 test_jinja_limits test_moe)
cmake --build build-asan -j "$jobs" --target "${sanitized_tests[@]}"
for target in "${sanitized_tests[@]}"; do
  echo "-- $target"
  ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 "build-asan/tests/$target" --gtest_brief=1
done

echo "== fuzzing (${fuzz_seconds}s per target)"
CC=clang-14 CXX=clang++-14 cmake -S . -B build-fuzz -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DSHARDLM_FUZZ=ON -DSHARDLM_SANITIZE=ON -DSHARDLM_BUILD_TESTS=OFF -DSHARDLM_CUDA=OFF >/dev/null
fuzz_targets=()
for source in tests/fuzz/fuzz_*.cpp; do fuzz_targets+=("$(basename "$source" .cpp)"); done
cmake --build build-fuzz -j "$jobs" --target "${fuzz_targets[@]}"
for target in "${fuzz_targets[@]}"; do
  corpus=build-fuzz/corpus/$target
  mkdir -p "$corpus"
  bash tests/fuzz/seed_corpus.sh "$target" "$corpus"
  echo "-- $target"
  "build-fuzz/tests/fuzz/$target" -max_total_time="$fuzz_seconds" -timeout=10 -rss_limit_mb=2048 \
    -print_final_stats=0 "$corpus" 2>&1 | tail -n 2
done

echo "== unit, reference-fixture, CLI and oracle tests (Release)"
if ! nvidia-smi -L >/dev/null 2>&1; then
  echo "GPU tests (ctest label gpu): skipped: no CUDA device; each reports Skipped below"
fi
ctest --test-dir build -j "$jobs" --output-on-failure
