#!/usr/bin/env bash
# The server's reply parsers as a client meets them, each over a tiny model whose greedy reply is
# fixed (make_scripted_model.py) and driven by the official openai npm client:
#   --enable-auto-tool-choice --tool-call-parser hermes: a reply holding a hermes call (tool_calls.mjs)
#   --reasoning-parser qwen3 with hermes calls: a reply that thinks, then calls (reasoning.mjs)
# A parser name the server does not know is refused by name before it starts.
# Usage: test_reply_parsers.sh SHARDLM_BINARY
set -euo pipefail
bin=$1
here=$(cd "$(dirname "$0")" && pwd)
if [ ! -d "$here/node_modules/openai" ]; then
  echo "tests/serve/node_modules is missing: run npm ci --prefix tests/serve" >&2
  exit 1
fi
work=$(mktemp -d)
pid=
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
make_model() {  # make_model NAME PIECE...
  local name=$1
  shift
  python3 "$here/make_scripted_model.py" "$here/../../models/kjv-llama" "$work/$name" "$@"
}
refused() {  # refused EXPECTED_MESSAGE ARGS...: the server must exit non-zero naming the option
  local message=$1
  shift
  if "$bin" serve --model "$work/calls" "$@" >"$work/refused.log" 2>&1; then
    echo "FAILED: serve $* was accepted"; exit 1
  fi
  grep -qF -- "$message" "$work/refused.log" || { echo "FAILED: serve $* did not say [$message]:"; cat "$work/refused.log"; exit 1; }
}
serve_and_run() {  # serve_and_run MODEL CLIENT_SCRIPT SERVE_ARGS...
  local model=$1 client=$2
  shift 2
  "$bin" serve --model "$work/$model" --port 0 --served-model-name "$model" "$@" >"$work/serve.log" 2>&1 &
  pid=$!
  for _ in $(seq 300); do grep -q "serving $model at" "$work/serve.log" && break; sleep 0.1; done
  local port
  port=$(sed -n "s/.*serving $model at http:\/\/127.0.0.1:\([0-9]*\).*/\1/p" "$work/serve.log")
  [ -n "$port" ] || { echo "the server did not start:"; cat "$work/serve.log"; exit 1; }
  node "$here/$client" "http://127.0.0.1:$port/v1" "$model"
  kill -TERM "$pid"
  wait "$pid"
}

make_model calls "I will check." "<tool_call>" \
  $'\n{"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}\n' "</tool_call>"
make_model thinks "<think>" "The user asks about Paris." "</think>" $'\n\n' "I will check." "<tool_call>" \
  $'\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n' "</tool_call>"
refused '--tool-call-parser: no parser "mistral"' --enable-auto-tool-choice --tool-call-parser mistral
refused '--reasoning-parser: no parser "granite"' --reasoning-parser granite
serve_and_run calls tool_calls.mjs --enable-auto-tool-choice --tool-call-parser hermes
serve_and_run thinks reasoning.mjs --reasoning-parser qwen3 --enable-auto-tool-choice --tool-call-parser hermes
