#!/usr/bin/env bash
# `shardlm serve` on the GPU machine (which has curl but no node): the bundled model on cuda:0,
# greedy completions against `shardlm generate --device cuda:0` for four prompts, then 16 requests
# at once that mix greedy and seeded sampling (per-row sampling on the device): the greedy ones must
# still equal generate; a chat completion equals the completion of its rendered prompt. Ends with
# SIGTERM and the server's exit status. Then all of it again with two tensor-parallel ranks on the
# one GPU (`--tp 2 --cuda-devices 0,0`, both serve and generate). Output under $OUT.
set -u
mkdir -p /work && ln -sfn "$(pwd)" /work/main
export NCCL_NVLS_ENABLE=0 LD_LIBRARY_PATH=$(pwd)/.device-carry/lib
bin=.device-carry/bin/shardlm

# smoke NAME [OPTIONS...]: the checks above, with OPTIONS given to both serve and generate.
smoke() {
  local name=$1; shift
  echo "== $name: $*"
  local log=$OUT/serve-$name.log
  $bin serve --device cuda:0 "$@" --port 0 --max-num-seqs 8 --max-num-batched-tokens 64 > $log 2>&1 &
  local pid=$!
  for i in $(seq 200); do grep -q "serving" $log && break; sleep 0.2; done
  port=$(sed -n 's/.*http:\/\/127.0.0.1:\([0-9]*\).*/\1/p' $log)
  echo "port $port"
  for p in "In the beginning" "And God said" "The LORD is my shepherd" "Behold"; do
    gen=$($bin generate --device cuda:0 "$@" --json -p "$p" -n 24 --temperature 0 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["text"])')
    srv=$(curl -s localhost:$port/v1/completions -d "{\"model\":\"kjv-llama\",\"prompt\":\"$p\",\"max_tokens\":24,\"temperature\":0}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["choices"][0]["text"])')
    [ "$gen" = "$srv" ] && echo "same: $p" || echo "DIFF: $p | $gen | $srv"
  done
  local requests=()
  for i in $(seq 16); do
    if [ $((i % 2)) = 0 ]; then body="{\"model\":\"kjv-llama\",\"prompt\":\"And God said\",\"max_tokens\":24,\"temperature\":0}";
    else body="{\"model\":\"kjv-llama\",\"prompt\":\"And God said\",\"max_tokens\":24,\"temperature\":0.9,\"top_p\":0.9,\"seed\":$i}"; fi
    curl -s localhost:$port/v1/completions -d "$body" > $OUT/mixed-$name-$i.json &
    requests+=($!)
  done
  wait "${requests[@]}"
  sleep 1
  gen=$($bin generate --device cuda:0 "$@" --json -p "And God said" -n 24 --temperature 0 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["text"])')
  for i in $(seq 2 2 16); do python3 -c 'import json,sys; print(json.load(open(sys.argv[1]))["choices"][0]["text"] == sys.argv[2])' $OUT/mixed-$name-$i.json "$gen"; done | sort | uniq -c
  for i in 1 3; do python3 -c 'import json,sys; print(repr(json.load(open(sys.argv[1]))["choices"][0]["text"]))' $OUT/mixed-$name-$i.json; done
  # A chat completion on the GPU with the bundled model's template equals the completion of the same
  # rendered prompt, sent as the ids /tokenize gives for it without added special tokens.
  chat=$(curl -s localhost:$port/v1/chat/completions -d '{"model":"kjv-llama","messages":[{"role":"user","content":"In the beginning"}],"max_tokens":16,"temperature":0}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["choices"][0]["message"]["content"])')
  ids=$(curl -s localhost:$port/tokenize -d '{"prompt":"<|begin_of_text|>User: In the beginning\nAssistant:","add_special_tokens":false}' | python3 -c 'import json,sys; print(json.load(sys.stdin)["tokens"])')
  completion=$(curl -s localhost:$port/v1/completions -d "{\"model\":\"kjv-llama\",\"prompt\":$ids,\"max_tokens\":16,\"temperature\":0}" | python3 -c 'import json,sys; print(json.load(sys.stdin)["choices"][0]["text"])')
  [ "$chat" = "$completion" ] && echo "chat same: $chat" || echo "CHAT DIFF: $chat | $completion"
  kill -TERM $pid; wait $pid; echo "serve exit $?"
  tail -5 $log
}

smoke one-gpu
smoke tp2-one-gpu --tp 2 --cuda-devices 0,0
