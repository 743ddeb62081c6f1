#!/usr/bin/env bash
# `shardlm serve` over the layouts the Engine runs besides one device: tensor parallelism (--tp 2,
# rank threads on the CPU, and two processes started by `shardlm launch`, rank 0 serving) and a
# device map (layers in RAM and on disk). In each, eight concurrent greedy requests of different
# prompts must return what `shardlm generate` returns alone, and SIGTERM stops it with exit 0.
# Usage: test_serve_layouts.sh SHARDLM_BINARY
set -euo pipefail
bin=$1
source "$(cd "$(dirname "$0")" && pwd)/server_startup.sh"
work=$(mktemp -d)
pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null; rm -rf "$work"' EXIT
prompts=("In the beginning" "And God said" "The LORD is my shepherd" "Blessed are the meek"
         "And it came to pass" "For God so loved" "Let there be light" "Behold, I stand at the door")
generate_args=()
for prompt in "${prompts[@]}"; do generate_args+=(-p "$prompt"); done
"$bin" generate --json -n 12 --temperature 0 "${generate_args[@]}" 2>/dev/null |
  python3 -c 'import json,sys; [print(json.dumps(json.loads(line)["text"])) for line in sys.stdin]' >"$work/expected"
[ "$(wc -l <"$work/expected")" -eq ${#prompts[@]} ] || { echo "FAILED: generate gave no reference"; exit 1; }

passed=0
serve_layout() {  # serve_layout NAME COMMAND...: a command line that ends in `serve` and its options
  local name=$1
  shift
  "$@" --port 0 --max-num-seqs 4 --max-num-batched-tokens 24 >"$work/log" 2>&1 &
  pid=$!
  local port
  port=$(served_port "$work/log" kjv-llama)
  [ -n "$port" ] || { echo "FAILED: $name: the server did not start:"; cat "$work/log"; exit 1; }
  local i=0
  for prompt in "${prompts[@]}"; do
    python3 -c 'import json,sys; print(json.dumps({"model": "kjv-llama", "prompt": sys.argv[1], "max_tokens": 12, "temperature": 0}))' \
      "$prompt" | curl -s --data-binary @- "http://127.0.0.1:$port/v1/completions" >"$work/answer-$i" &
    i=$((i + 1))
  done
  wait $(jobs -p | grep -v "^$pid$")
  for i in $(seq 0 $((${#prompts[@]} - 1))); do
    python3 -c 'import json,sys; print(json.dumps(json.load(open(sys.argv[1]))["choices"][0]["text"]))' "$work/answer-$i"
  done >"$work/actual"
  if ! diff "$work/expected" "$work/actual"; then
    echo "FAILED: $name: served text differs from shardlm generate"
    exit 1
  fi
  kill -TERM "$pid"
  wait "$pid" || { echo "FAILED: $name: the server did not exit 0"; exit 1; }
  pid=
  passed=$((passed + 1))
  echo "ok - $name: 8 concurrent greedy requests equal shardlm generate"
}
serve_layout "--tp 2 (rank threads)" "$bin" serve --tp 2
master_port=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
serve_layout "2 launched ranks (shardlm launch)" "$bin" launch --nproc-per-node 2 --master-port "$master_port" -- "$bin" serve
serve_layout "a device map over RAM and disk" "$bin" serve --device-map auto --max-memory cpu=30MiB,disk
echo "serve layouts: $passed passed, 0 failed"
