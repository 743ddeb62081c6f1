#!/usr/bin/env bash
# The chat page `shardlm serve` answers GET /, driven in headless Chromium by chat_page.mjs against
# the bundled model on a free loopback port, with an API key so that the page's key field is used.
# The page's Stop button must have cancelled its request on the server (logged as 499). Then the
# page against `serve --reasoning-parser qwen3` over a scripted model that thinks, then answers
# (chat_page_reasoning.mjs): the thinking shows apart from the answer.
# Usage: test_chat_page.sh SHARDLM_BINARY SCREENSHOT_PATH
set -euo pipefail
bin=$1
screenshot=$2
here=$(cd "$(dirname "$0")" && pwd)
chromium=/usr/bin/chromium
# CI installs Chromium (scripts/setup.sh test), so a missing one fails rather than skips.
if [ ! -x "$chromium" ]; then
  echo "FAILED: no Chromium at $chromium: apt-get install chromium" >&2
  exit 1
fi
source "$here/server_startup.sh"
require_node_package puppeteer-core
log=$(mktemp)
work=$(mktemp -d)
"$bin" serve --port 0 --max-num-seqs 2 --api-key test-key >"$log" 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$log" "$work"' EXIT
port=$(served_port "$log" kjv-llama)
[ -n "$port" ] || { echo "the server did not start:"; cat "$log"; exit 1; }

node "$here/chat_page.mjs" "http://127.0.0.1:$port" kjv-llama test-key "$screenshot" "$chromium" ||
  { echo "server log:"; cat "$log"; exit 1; }

kill -TERM "$pid"
status=0
wait "$pid" || status=$?
[ "$status" -eq 0 ] || { echo "FAILED: exit status $status after SIGTERM"; cat "$log"; exit 1; }
grep -q "POST /v1/chat/completions 499" "$log" || { echo "FAILED: Stop did not cancel the request"; cat "$log"; exit 1; }
echo "chat page, server side: 2 passed, 0 failed"

thinking="The user asks about Paris."
answer=$'\n\nIt is warm.'
python3 "$here/make_scripted_model.py" "$here/../../models/kjv-llama" "$work/thinks" -- \
  "<think>" "$thinking" "</think>" $'\n\n' "It is warm."
"$bin" serve --model "$work/thinks" --port 0 --served-model-name thinks --reasoning-parser qwen3 >"$log" 2>&1 &
pid=$!
port=$(served_port "$log" thinks)
[ -n "$port" ] || { echo "the reasoning server did not start:"; cat "$log"; exit 1; }
node "$here/chat_page_reasoning.mjs" "http://127.0.0.1:$port" "$chromium" "$thinking" "$answer" ||
  { echo "server log:"; cat "$log"; exit 1; }
kill -TERM "$pid"
wait "$pid"
