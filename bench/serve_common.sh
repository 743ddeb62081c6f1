# Sourced by the serving scripts (gpu_serve_bench.sh, gpu_profile_serve.sh) after
# device_session_env.sh: the random-weight Llama-3-8B-shape checkpoint (bf16) that the server and
# Transformers' peer both read, saved once per machine with a 128,256-id tokenizer, and the server's
# start with the options those scripts share, and the client's call.
checkpoint=/tmp/llama3-8b
[ -f "$checkpoint/config.json" ] ||
  python3 bench/transformers_peer.py --shape bench/shapes/llama3-8b.json --save "$checkpoint" --skip-timing
python3 bench/make_bench_tokenizer.py "$checkpoint"
max_num_seqs=${MAX_NUM_SEQS:-256}
batched_tokens=${MAX_NUM_BATCHED_TOKENS:-8192}
max_model_len=${MAX_MODEL_LEN:-4096}
gpu_memory_utilization=${GPU_MEMORY_UTILIZATION:-0.9}  # the KV cache takes what the weights leave of it

# start_server LOG [WRAPPER...]: shardlm serve in the background (under WRAPPER, say a profiler),
# its output in LOG; sets server_pid, and port once it is ready, or exits.
start_server() {
  local log=$1
  shift
  "$@" "$bin/shardlm" serve --model "$checkpoint" --device cuda:0 --port 0 --served-model-name llama3-8b \
    --max-num-seqs "$max_num_seqs" --max-num-batched-tokens "$batched_tokens" --max-model-len "$max_model_len" \
    --gpu-memory-utilization "$gpu_memory_utilization" >"$log" 2>&1 &
  server_pid=$!
  for _ in $(seq 600); do grep -q "serving llama3-8b at" "$log" && break; sleep 0.2; done
  port=$(sed -n 's/.*serving llama3-8b at http:\/\/127.0.0.1:\([0-9]*\).*/\1/p' "$log")
  [ -n "$port" ] || { echo "the server did not start"; cat "$log"; exit 1; }
}

# bench_serve ARGS...: bench/bench_serve.py against the started server, with ARGS (the load).
bench_serve() {
  python3 bench/bench_serve.py --url "http://127.0.0.1:$port" --model llama3-8b --vocab-size 128000 "$@"
}
