#!/usr/bin/env bash
# The server's reply parsers as a client meets them, each over a tiny model whose greedy reply is
# fixed (make_scripted_model.py) and driven by the official openai npm client:
#   --enable-auto-tool-choice --tool-call-parser hermes: a reply holding a hermes call (tool_calls.mjs)
#   --tool-call-parser mistral: a Mistral call after the special token [TOOL_CALLS], under Mistral
#     7B v0.3's own chat template, which takes the call back only with a 9-character id
#   --reasoning-parser qwen3 with hermes calls: a reply that thinks, then calls (reasoning.mjs)
# A parser name the server does not know is refused by name before it starts.
# Usage: test_reply_parsers.sh SHARDLM_BINARY
set -euo pipefail
bin=$1
here=$(cd "$(dirname "$0")" && pwd)
source "$here/server_startup.sh"
require_node_package openai
work=$(mktemp -d)
pid=
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
make_model() {  # make_model NAME [--chat-template FILE] [--prompt-end TOKEN]... -- PIECE...
  local name=$1 options=()
  shift
  while [ "$1" != -- ]; do options+=("$1"); shift; done
  shift
  python3 "$here/make_scripted_model.py" --special "[TOOL_CALLS]" "${options[@]}" "$here/../../models/kjv-llama" \
    "$work/$name" -- "$@"
}
refused() {  # refused EXPECTED_MESSAGE ARGS...: the server must exit non-zero naming the option
  local message=$1
  shift
  if "$bin" serve --model "$work/calls" "$@" >"$work/refused.log" 2>&1; then
    echo "FAILED: serve $* was accepted"; exit 1
  fi
  grep -qF -- "$message" "$work/refused.log" || { echo "FAILED: serve $* did not say [$message]:"; cat "$work/refused.log"; exit 1; }
}
serve_and_run() {  # serve_and_run MODEL CLIENT_SCRIPT SERVE_ARGS... -- CLIENT_ARGS...
  local model=$1 client=$2 serve_args=()
  shift 2
  while [ "$1" != -- ]; do serve_args+=("$1"); shift; done
  shift
  "$bin" serve --model "$work/$model" --port 0 --served-model-name "$model" "${serve_args[@]}" >"$work/serve.log" 2>&1 &
  pid=$!
  local port
  port=$(served_port "$work/serve.log" "$model")
  [ -n "$port" ] || { echo "the server did not start:"; cat "$work/serve.log"; exit 1; }
  node "$here/$client" "http://127.0.0.1:$port/v1" "$model" "$@"
  kill -TERM "$pid"
  wait "$pid"
}

hermes_call=$'\n{"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}\n'
make_model calls -- "I will check." "<tool_call>" "$hermes_call" "</tool_call>"
mistral_call='[{"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}]'
make_model mistral --chat-template "$here/../fixtures/chat_templates/mistral-7b-instruct-v0.3.jinja" \
  --prompt-end "[/INST]" --prompt-end "[/TOOL_RESULTS]" -- "I will check." "[TOOL_CALLS]" "$mistral_call"
make_model thinks -- "<think>" "The user asks about Paris." "</think>" $'\n\n' "I will check." "<tool_call>" \
  $'\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n' "</tool_call>"
refused '--tool-call-parser: no parser "pythonic"' --enable-auto-tool-choice --tool-call-parser pythonic
refused '--reasoning-parser: no parser "granite"' --reasoning-parser granite
serve_and_run calls tool_calls.mjs --enable-auto-tool-choice --tool-call-parser hermes -- \
  '^call_[0-9a-f]{16}$' "I will check.<tool_call>$hermes_call</tool_call>"
# Without the parser the special [TOOL_CALLS] is skipped from the text, as vLLM skips it.
serve_and_run mistral tool_calls.mjs --enable-auto-tool-choice --tool-call-parser mistral -- \
  '^[0-9A-Za-z]{9}$' "I will check.$mistral_call"
serve_and_run thinks reasoning.mjs --reasoning-parser qwen3 --enable-auto-tool-choice --tool-call-parser hermes --
