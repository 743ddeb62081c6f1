#!/usr/bin/env bash
# Speed of two builds in one GPU call (a refactor must not slow decode): the binary in
# .device-carry/bin (after) against .device-carry-before/bin/shardlm-before (before), run
# alternately, REPEATS times each: Llama-3-8B shape with random weights at batch 1 and 16, and,
# when CHECKPOINT holds a saved checkpoint, the 8 GiB device map with --offload-exec auto.
# Prints one line per run (median time per output token, prefill, offload ratio) to $OUT/compare.txt.
set -uo pipefail
export NCCL_NVLS_ENABLE=0
root=$(pwd)
out=${OUT:-/tmp/out}
mkdir -p "$out"
export LD_LIBRARY_PATH=$root/.device-carry/lib:${LD_LIBRARY_PATH:-}
after=$root/.device-carry/bin/shardlm
before=$root/.device-carry-before/bin/shardlm-before
repeats=${REPEATS:-2}
checkpoint=${CHECKPOINT:-}
summary() {
  python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); o=d.get("offload",{}); print(sys.argv[2], "tpot %.3f ms" % d["time_per_output_token_ms_median"], "prefill %.2f ms" % d["prefill_ms"], "tok/s %.0f" % d["decode_tokens_per_s"], ("offload/floor %.3f" % o["median_over_better_floor"]) if o else "")' "$1" "$2"
}
for i in $(seq "$repeats"); do
  for build in before after; do
    bin=$([ $build = before ] && echo "$before" || echo "$after")
    "$bin" bench --device cuda:0 --random llama3-8b --prompt-len 512 --new-tokens 128 >"$out/$build-b1-$i.json" 2>/dev/null &&
      summary "$out/$build-b1-$i.json" "$build b1 #$i" | tee -a "$out/compare.txt"
    "$bin" bench --device cuda:0 --random llama3-8b --prompt-len 512 --new-tokens 128 --batch 16 \
      >"$out/$build-b16-$i.json" 2>/dev/null && summary "$out/$build-b16-$i.json" "$build b16 #$i" | tee -a "$out/compare.txt"
    if [ -n "$checkpoint" ]; then
      "$bin" bench --device cuda:0 --model "$checkpoint" --prompt-len 512 --new-tokens 128 --device-map auto \
        --max-memory 0=8GiB,cpu=100GiB --offload-exec auto >"$out/$build-offload-$i.json" 2>/dev/null &&
        summary "$out/$build-offload-$i.json" "$build offload auto #$i" | tee -a "$out/compare.txt"
    fi
  done
done
