#!/usr/bin/env bash
# One call on the GPU machine: `shardlm serve` under bench/bench_serve.py against Transformers'
# continuous batching (generate_batch), on one saved random-weight Llama-3-8B-shape checkpoint
# (bf16) that both read. Runs: one stream alone (against `shardlm bench` time per output token),
# 500 requests at once of 202/179 and of 462/256 tokens, Poisson arrivals at 16 requests/s of
# 202/179, and a 2,000-token shared prefix; then the Transformers peer on 500 x 202/179. Expects
# bench/prepare_device_carry.sh's .device-carry. JSON results and logs go to $OUT.
# SECTIONS picks what runs (default: alone burst long poisson prefix peer); MAX_NUM_SEQS,
# MAX_NUM_BATCHED_TOKENS, MAX_MODEL_LEN and GPU_MEMORY_UTILIZATION set the server's options of those
# names.
source "$(dirname "$0")/device_session_env.sh"
sections=${SECTIONS:-alone burst long poisson prefix peer}

nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv,noheader | tee "$out/gpu.txt"
cp "$root/.device-carry/commit.txt" "$out/commit.txt" 2>/dev/null && echo "built from $(cat "$out/commit.txt")"
source "$(dirname "$0")/serve_common.sh"

if wants alone; then
  "$bin/shardlm" bench --model "$checkpoint" --device cuda:0 --prompt-len 512 --new-tokens 128 2>&1 | tee "$out/bench-b1.txt" | tail -n 4
fi

start_server "$out/serve.log"
load() {  # load NAME ARGS...: one bench_serve run, its JSON kept, its headline printed
  local name=$1
  shift
  bench_serve --output "$out/$name.json" "$@" >/dev/null 2>"$out/$name.err"
  # The server's step series before and after the run tell where its steps' time went.
  cp "$out/metrics-last.txt" "$out/$name-metrics-before.txt" 2>/dev/null || : >"$out/$name-metrics-before.txt"
  curl -s "http://127.0.0.1:$port/metrics" >"$out/metrics-last.txt"
  python3 - "$out/$name.json" "$name" "$out/$name-metrics-before.txt" "$out/metrics-last.txt" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print(f"{sys.argv[2]:>14}: {r['completed']}/{r['num_requests']} ok, {r['requests_per_s']:.2f} req/s, "
      f"{r['output_tokens_per_s']:.0f} out tok/s, TTFT p50 {r['ttft_ms']['p50']:.1f} p99 {r['ttft_ms']['p99']:.1f} ms, "
      f"ITL p50 {r['itl_ms']['p50']:.2f} p99 {r['itl_ms']['p99']:.2f} ms, TPOT p50 {r['tpot_ms']['p50']:.2f} ms")
def series(path):
    values = {}
    for line in open(path):
        if line.startswith("shardlm:") and " " in line:
            name, value = line.rsplit(" ", 1)
            values[name] = float(value)
    return values
before, after = series(sys.argv[3]), series(sys.argv[4])
delta = lambda name: after.get(name, 0) - before.get(name, 0)
steps = delta("shardlm:engine_step_seconds_count")
if steps:
    print(f"{'':>14}  {steps:.0f} steps of {delta('shardlm:iteration_tokens_total_sum') / steps:.0f} tokens: "
          f"engine {delta('shardlm:engine_step_seconds_sum'):.2f} s, around the steps {delta('shardlm:step_host_seconds_total'):.2f} s "
          f"of {r['duration_s']:.2f} s")
PY
}
# Each run draws its own prompts (--seed), so no run hits the prefix cache with another's.
load warmup --num-requests 16 --input-len 64 --output-len 16
wants alone && load alone --num-requests 1 --input-len 512 --output-len 128 && load alone2 --num-requests 1 --input-len 512 --output-len 128
wants burst && load burst-202-179 --num-requests 500 --input-len 202 --output-len 179 --seed 1
wants long && load burst-462-256 --num-requests 500 --input-len 462 --output-len 256 --seed 2
wants poisson && load poisson16 --num-requests 480 --request-rate 16 --input-len 202 --output-len 179 --seed 3
if wants prefix; then
  # A 2,000-token system prompt first seen (a miss), then with another user message after it (a hit
  # of its 125 full blocks), then a different system prompt (a miss with the server warm).
  load prefix-miss --num-requests 1 --input-len 64 --output-len 8 --shared-prefix-len 2000 --prefix-seed 7 --seed 5
  load prefix-hit --num-requests 1 --input-len 64 --output-len 8 --shared-prefix-len 2000 --prefix-seed 7 --seed 6
  load prefix-miss2 --num-requests 1 --input-len 64 --output-len 8 --shared-prefix-len 2000 --prefix-seed 8 --seed 6
  load prefix-hit2 --num-requests 1 --input-len 64 --output-len 8 --shared-prefix-len 2000 --prefix-seed 8 --seed 9
fi
curl -s "http://127.0.0.1:$port/metrics" >"$out/metrics.txt"
grep -E "^shardlm:(prefix_cache|num_preemptions|kv_cache_blocks)" "$out/metrics.txt"
grep "KV cache:" "$out/serve.log"
kill -TERM "$server_pid"
wait "$server_pid"
echo "serve exit $?"

if wants peer; then
  python3 bench/transformers_generate_batch.py --load "$checkpoint" --num-requests 500 --input-len 202 --output-len 179 \
    --output "$out/peer-202-179.json" >"$out/peer.log" 2>&1 || { echo "peer failed:"; tail -n 20 "$out/peer.log"; }
  [ -f "$out/peer-202-179.json" ] && python3 - "$out/peer-202-179.json" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
print(f"transformers generate_batch: {r['completed']}/{r['num_requests']} ok, {r['requests_per_s']:.2f} req/s, "
      f"{r['output_tokens_per_s']:.0f} out tok/s ({r['attn_implementation']}, transformers {r['transformers']})")
PY
fi
