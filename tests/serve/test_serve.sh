#!/usr/bin/env bash
# `shardlm serve` as users reach it: started on a free loopback port with the bundled model, probed
# with curl (health, models, routes, limits, a completion equal to `shardlm generate`, /metrics
# against the usage the completions reported), driven by the official openai npm client
# (openai_client.mjs), then stopped with SIGTERM, which must exit 0.
# Usage: test_serve.sh SHARDLM_BINARY
set -euo pipefail
bin=$1
here=$(cd "$(dirname "$0")" && pwd)
source "$here/server_startup.sh"
require_node_package openai
log=$(mktemp)
"$bin" serve --port 0 --max-num-seqs 8 --max-num-batched-tokens 48 --max-model-len 512 --api-key test-key \
  --served-model-name kjv >"$log" 2>&1 &
pid=$!
trap 'kill "$pid" 2>/dev/null || true; rm -f "$log"' EXIT
port=$(served_port "$log" kjv)
[ -n "$port" ] || { echo "the server did not start:"; cat "$log"; exit 1; }
url=http://127.0.0.1:$port
passed=0
expect() {  # expect NAME EXPECTED ACTUAL
  if [ "$2" != "$3" ]; then
    echo "FAILED: $1: expected [$2], got [$3]"
    exit 1
  fi
  passed=$((passed + 1))
}
auth=(-H "Authorization: Bearer test-key")
expect "GET /health" 200 "$(curl -s -o /dev/null -w '%{http_code}' "$url/health")"
expect "GET /v1/models without a key" 401 "$(curl -s -o /dev/null -w '%{http_code}' "$url/v1/models")"
expect "GET /v1/models" kjv "$(curl -s "${auth[@]}" "$url/v1/models" | python3 -c 'import json,sys; print(json.load(sys.stdin)["data"][0]["id"])')"
expect "unknown route" 404 "$(curl -s -o /dev/null -w '%{http_code}' "${auth[@]}" "$url/v1/nothing")"
head -c 2000000 /dev/zero | tr '\0' a >"$log.big"
expect "a body over the limit" 413 "$(curl -s -o /dev/null -w '%{http_code}' "${auth[@]}" --data-binary @"$log.big" "$url/v1/completions")"
rm -f "$log.big"
expect "malformed JSON" 400 "$(curl -s -o /dev/null -w '%{http_code}' "${auth[@]}" -d '{"model":' "$url/v1/completions")"
expect "invalid UTF-8" 400 "$(printf '{"model":"kjv","prompt":"\xff"}' | curl -s -o /dev/null -w '%{http_code}' "${auth[@]}" --data-binary @- "$url/v1/completions")"
expected=$("$bin" generate --json -p "In the beginning" -n 16 --temperature 0 | python3 -c 'import json,sys; print(json.load(sys.stdin)["text"])')
first=$(curl -s "${auth[@]}" -d '{"model":"kjv","prompt":"In the beginning","max_tokens":16,"temperature":0}' \
  "$url/v1/completions")
actual=$(python3 -c 'import json,sys; print(json.loads(sys.argv[1])["choices"][0]["text"])' "$first")
expect "curl completion equals shardlm generate" "$expected" "$actual"
expect "tokenize" 4 "$(curl -s -d '{"prompt":"In the beginning"}' "$url/tokenize" | python3 -c 'import json,sys; print(json.load(sys.stdin)["count"])')"
# Chat with the bundled model's own template (models/kjv-llama/chat_template.jinja).
chat=$(curl -s "${auth[@]}" -d '{"model":"kjv","messages":[{"role":"user","content":"In the beginning"}],"max_tokens":6,"temperature":0}' "$url/v1/chat/completions")
expect "chat completion" "chat.completion assistant 6" "$(python3 -c 'import json,sys; b=json.loads(sys.argv[1]); print(b["object"], b["choices"][0]["message"]["role"], b["usage"]["completion_tokens"])' "$chat")"
expect "a role the template refuses" "400 messages" "$(curl -s -w ' %{http_code}' "${auth[@]}" -d '{"model":"kjv","messages":[{"role":"tool","content":"x"}]}' "$url/v1/chat/completions" | python3 -c 'import json,sys; body, code = sys.stdin.read().rsplit(" ", 1); print(code, json.loads(body)["error"]["param"])')"

# GET /metrics after the completion and chat above, a batch of two prompts and a stream with usage
# (five requests to the engine): open without the API key (as vLLM's), Prometheus' content type, and
# counters equal to the usage and finish reasons the responses reported.
batch=$(curl -s "${auth[@]}" -d '{"model":"kjv","prompt":["And God said","Behold"],"max_tokens":5}' "$url/v1/completions")
stream=$(curl -s -N "${auth[@]}" \
  -d '{"model":"kjv","prompt":"Let there be","max_tokens":7,"stream":true,"stream_options":{"include_usage":true}}' \
  "$url/v1/completions")
reported=$(python3 - "$first" "$batch" "$stream" "$chat" <<'PY'
import json, sys
bodies = [json.loads(sys.argv[1]), json.loads(sys.argv[2]), json.loads(sys.argv[4])]
events = [json.loads(line[len("data: "):]) for line in sys.argv[3].splitlines()
          if line.startswith("data: ") and line != "data: [DONE]"]
usages = [body["usage"] for body in bodies] + [event["usage"] for event in events if event.get("usage")]
reasons = [choice["finish_reason"] for body in bodies for choice in body["choices"]] + \
          [choice["finish_reason"] for event in events for choice in event["choices"] if choice["finish_reason"]]
print(sum(u["prompt_tokens"] for u in usages), sum(u["completion_tokens"] for u in usages), len(reasons),
      reasons.count("length"), reasons.count("stop"))
PY
)
read -r prompt_tokens completion_tokens requests lengths stops <<<"$reported"
expect "requests the engine served" 5 "$requests"
scrape=$(curl -s -w '\n%{http_code} %{content_type}' "$url/metrics")
metrics=${scrape%$'\n'*}
expect "GET /metrics without a key" "200 text/plain; version=0.0.4; charset=utf-8" "${scrape##*$'\n'}"
metric() { awk -v series="$1" '$1 == series { print $2 }' <<<"$metrics"; }
expect "metric families, each with # TYPE" 16 "$(grep -c '^# TYPE shardlm:' <<<"$metrics")"
expect "prompt tokens counted" "$prompt_tokens" "$(metric shardlm:prompt_tokens_total)"
expect "every prompt token looked up in the prefix cache" "$prompt_tokens" "$(metric shardlm:prefix_cache_queries_total)"
expect "generation tokens counted" "$completion_tokens" "$(metric shardlm:generation_tokens_total)"
expect "requests finished by length" "$lengths" "$(metric 'shardlm:request_success_total{finished_reason="length"}')"
expect "requests finished by stop" "$stops" "$(metric 'shardlm:request_success_total{finished_reason="stop"}')"
expect "a first token per request" "$requests" "$(metric shardlm:time_to_first_token_seconds_count)"
expect "TTFT +Inf bucket holds them all" "$requests" "$(metric 'shardlm:time_to_first_token_seconds_bucket{le="+Inf"}')"
expect "an inter-token latency per later token" $((completion_tokens - requests)) \
  "$(metric shardlm:inter_token_latency_seconds_count)"
expect "an e2e latency per request" "$requests" "$(metric shardlm:e2e_request_latency_seconds_count)"
# The steps ran every prompt token the prefix cache did not hold, then a row per later token.
expect "tokens through the model" \
  $((prompt_tokens - $(metric shardlm:prefix_cache_hits_total) + completion_tokens - requests)) \
  "$(metric shardlm:iteration_tokens_total_sum | awk '{ printf "%d", $1 }')"
expect "a step time per step" "$(metric shardlm:iteration_tokens_total_count)" "$(metric shardlm:engine_step_seconds_count)"
echo "curl: $passed passed, 0 failed"

node "$here/openai_client.mjs" "$url/v1" kjv test-key "$bin"

# 1,024 streams at once: every one completes, and the server's threads stay bounded meanwhile (one
# io thread, the engine thread and its compute threads: none per connection).
node "$here/many_streams.mjs" "$url/v1" kjv test-key 1024 &
client=$!
most_threads=0
while kill -0 "$client" 2>/dev/null; do
  threads=$(sed -n 's/^Threads:[[:space:]]*//p' "/proc/$pid/status")
  [ "$threads" -gt "$most_threads" ] && most_threads=$threads
  sleep 0.05
done
wait "$client"
limit=$(( $(nproc) + 8 ))
[ "$most_threads" -le "$limit" ] || { echo "FAILED: $most_threads server threads with 1024 streams (limit $limit)"; exit 1; }
echo "server threads with 1024 streams open: at most $most_threads"
passed=$((passed + 1))

kill -TERM "$pid"
status=0
wait "$pid" || status=$?
expect "exit status after SIGTERM" 0 "$status"
grep -q "POST /v1/completions 200" "$log" || { echo "FAILED: no request log line"; exit 1; }
# The aborted stream was noticed and cancelled (logged as 499, client closed request).
grep -q "POST /v1/completions 499" "$log" || { echo "FAILED: the aborted stream was not cancelled"; cat "$log"; exit 1; }

# --generation-config: the model's generation_config.json gives the sampling of fields a request
# leaves out (auto, the default), another directory's does, or none does (vllm). The model's copy
# here asks for greedy decoding and 5 new tokens, the other directory's for greedy and 3: a limit
# from the file applies only to a chat reply that gives none (a completion's is OpenAI's 16).
model=$(mktemp -d)
trap 'kill "$pid" 2>/dev/null || true; rm -rf "$log" "$model"' EXIT
ln -s "$here/../../models/kjv-llama/"* "$model/"
rm "$model/generation_config.json"
echo '{"bos_token_id": 4094, "eos_token_id": 4095, "temperature": 0, "max_new_tokens": 5}' >"$model/generation_config.json"
mkdir "$model/other" && echo '{"temperature": 0, "max_new_tokens": 3}' >"$model/other/generation_config.json"
greedy=$("$bin" generate --model "$model" --json -p "And God said" -n 12 --temperature 0 | python3 -c 'import json,sys; print(json.load(sys.stdin)["text"])')
for choice in auto "$model/other" vllm; do
  "$bin" serve --model "$model" --port 0 --served-model-name kjv --generation-config "$choice" >"$log" 2>&1 &
  pid=$!
  port=$(served_port "$log" kjv)
  [ -n "$port" ] || { echo "the server did not start:"; cat "$log"; exit 1; }
  completion=$(curl -s -d '{"model":"kjv","prompt":"And God said","max_tokens":12,"ignore_eos":true,"seed":3}' \
    "http://127.0.0.1:$port/v1/completions" | python3 -c 'import json,sys; b=json.load(sys.stdin); print(b["usage"]["completion_tokens"], b["choices"][0]["text"])')
  # (Under vllm a chat reply without max_tokens would run to the end of the context.)
  [ "$choice" = vllm ] || chat_tokens=$(curl -s -d '{"model":"kjv","messages":[{"role":"user","content":"And God said"}],"ignore_eos":true}' \
    "http://127.0.0.1:$port/v1/chat/completions" | python3 -c 'import json,sys; print(json.load(sys.stdin)["usage"]["completion_tokens"])')
  case $choice in
    auto)
      expect "--generation-config auto: greedy, the request's max_tokens" "12 $greedy" "$completion"
      expect "--generation-config auto: a chat reply without max_tokens" 5 "$chat_tokens"
      expect "--generation-config auto says so" 1 "$(grep -c 'default sampling from the model.s generation_config.json: temperature 0, max_tokens 5 for chat without one' "$log")" ;;
    vllm)
      expect "--generation-config vllm: the request's max_tokens" 12 "${completion%% *}"
      expect "--generation-config vllm takes no defaults" 0 "$(grep -c 'default sampling' "$log" || true)" ;;
    *)
      expect "--generation-config DIR: greedy" "12 $greedy" "$completion"
      expect "--generation-config DIR: a chat reply without max_tokens" 3 "$chat_tokens" ;;
  esac
  kill -TERM "$pid"
  wait "$pid"
done
# A directory without the file, and a file whose top_p would keep no token, are refused by name.
refusal=$("$bin" serve --model "$model" --port 0 --generation-config "$model/none" 2>&1 || true)
expect "--generation-config DIR without the file" 1 "$(grep -c -- "--generation-config $model/none: no generation_config.json there" <<<"$refusal")"
mkdir "$model/zero" && echo '{"top_p": 0}' >"$model/zero/generation_config.json"
refusal=$("$bin" serve --model "$model" --port 0 --generation-config "$model/zero" 2>&1 || true)
expect "a generation_config.json with top_p 0" 1 "$(grep -c 'zero/generation_config.json: "top_p" 0 would keep no token' <<<"$refusal")"
echo "serve: $passed passed, 0 failed"
