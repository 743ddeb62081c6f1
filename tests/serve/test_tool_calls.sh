#!/usr/bin/env bash
# Tool calls as a client meets them: `shardlm serve --enable-auto-tool-choice --tool-call-parser
# hermes` over a tiny model whose reply is a fixed hermes tool call (make_scripted_model.py),
# driven by the official openai npm client (tool_calls.mjs); a --tool-call-parser it does not know
# is refused by name before the server starts.
# Usage: test_tool_calls.sh SHARDLM_BINARY
set -euo pipefail
bin=$1
here=$(cd "$(dirname "$0")" && pwd)
if [ ! -d "$here/node_modules/openai" ]; then
  echo "tests/serve/node_modules is missing: run npm ci --prefix tests/serve" >&2
  exit 1
fi
work=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$work"' EXIT
pid=
python3 "$here/make_scripted_model.py" "$here/../../models/kjv-llama" "$work/model" "I will check." "<tool_call>" \
  $'\n{"name": "get_weather", "arguments": {"city": "Paris", "unit": "celsius"}}\n' "</tool_call>"
if "$bin" serve --model "$work/model" --enable-auto-tool-choice --tool-call-parser mistral >"$work/refused.log" 2>&1; then
  echo "FAILED: an unknown --tool-call-parser was accepted"; exit 1
fi
grep -q -- '--tool-call-parser: no parser "mistral"' "$work/refused.log" ||
  { echo "FAILED: the refusal does not name --tool-call-parser:"; cat "$work/refused.log"; exit 1; }
"$bin" serve --model "$work/model" --port 0 --served-model-name weather --enable-auto-tool-choice \
  --tool-call-parser hermes >"$work/serve.log" 2>&1 &
pid=$!
for _ in $(seq 300); do grep -q "serving weather at" "$work/serve.log" && break; sleep 0.1; done
port=$(sed -n 's/.*serving weather at http:\/\/127.0.0.1:\([0-9]*\).*/\1/p' "$work/serve.log")
[ -n "$port" ] || { echo "the server did not start:"; cat "$work/serve.log"; exit 1; }
node "$here/tool_calls.mjs" "http://127.0.0.1:$port/v1" weather
kill -TERM "$pid"
wait "$pid"
