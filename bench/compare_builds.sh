#!/usr/bin/env bash
# Speed of two builds in one GPU call (a change must not slow decode, or must show what it gains):
# the carried binary (after) against .device-carry-before/shardlm-before (before, kept by
# bench/save_before_build.sh), run alternately, REPEATS times each: every shape of SHAPES (default
# llama3-8b; e.g. "llama3-8b qwen3-30b-a3b") with random weights at each batch of BATCHES (default
# "1 16"), and, when CHECKPOINT holds a saved checkpoint, the 8 GiB device map with
# --offload-exec auto. Prints one line per run (median time per output token, prefill, tokens/s,
# offload ratio) to $OUT/compare.txt.
source "$(dirname "$0")/device_session_env.sh"
after=$bin/shardlm
before=$root/.device-carry-before/shardlm-before
[ -x "$before" ] || { gunzip -c "$before.gz" >"$before" && chmod +x "$before"; } || exit 1
repeats=${REPEATS:-2}
shapes=${SHAPES:-llama3-8b}
batches=${BATCHES:-1 16}
checkpoint=${CHECKPOINT:-}
summary() {
  python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); o=d.get("offload",{}); print(sys.argv[2], "tpot %.3f ms" % d["time_per_output_token_ms_median"], "prefill %.2f ms" % d["prefill_ms"], "tok/s %.0f" % d["decode_tokens_per_s"], ("offload/floor %.3f" % o["median_over_better_floor"]) if o else "")' "$1" "$2"
}
for i in $(seq "$repeats"); do
  for build in before after; do
    binary=$([ $build = before ] && echo "$before" || echo "$after")
    for shape in $shapes; do
      for batch in $batches; do
        result="$out/$build-$shape-b$batch-$i.json"
        "$binary" bench --device cuda:0 --random "$shape" --prompt-len 512 --new-tokens 128 --batch "$batch" \
          >"$result" 2>/dev/null && summary "$result" "$build $shape b$batch #$i" | tee -a "$out/compare.txt"
      done
    done
    if [ -n "$checkpoint" ]; then
      "$binary" bench --device cuda:0 --model "$checkpoint" --prompt-len 512 --new-tokens 128 --device-map auto \
        --max-memory 0=8GiB,cpu=100GiB --offload-exec auto >"$out/$build-offload-$i.json" 2>/dev/null &&
        summary "$out/$build-offload-$i.json" "$build offload auto #$i" | tee -a "$out/compare.txt"
    fi
  done
done
