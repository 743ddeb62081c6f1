#!/usr/bin/env bash
# Seeds a fuzz target's corpus with the real inputs it parses, taken from the fixtures.
set -euo pipefail
target=$1
corpus=$2
root="$(dirname "$0")/../fixtures"
case "$target" in
  fuzz_safetensors) pattern='*.safetensors' ;;
  fuzz_model_config) pattern='config.json' ;;
  fuzz_tokenizer) pattern='tokenizer.json' ;;
  fuzz_chat_template) pattern='*.jinja' ;;
  fuzz_parallel_plans)
    # Hand-written seeds: the forms each parser accepts.
    printf '0=20GiB,1=40GiB,cpu=64GiB,disk' >"$corpus/seed-memory"
    printf '{"0": "20GiB", "cpu": 10000000}' >"$corpus/seed-memory-json"
    printf '{"model.embed_tokens": 0, "model.layers.0-3": "cuda:1", "model.norm": "cpu", "lm_head": "disk"}' >"$corpus/seed-map"
    printf '{"model.layers.*.self_attn.q_proj": "colwise", "layers.*.mlp.down_proj": "rowwise", "lm_head": "colwise_rep"}' >"$corpus/seed-plan"
    exit 0 ;;
  fuzz_completion_request)
    printf '{"model": "kjv", "prompt": "In the beginning", "max_tokens": 16, "temperature": 0}' >"$corpus/seed-text"
    printf '{"model": "kjv", "prompt": [[1, 2, 3], "x"], "stop": ["a", "b"], "seed": -5, "top_k": -1}' >"$corpus/seed-lists"
    printf '{"model": "kjv", "prompt": "a", "stream": true, "stream_options": {"include_usage": true}, "top_p": 0.5}' >"$corpus/seed-stream"
    printf '{"model": "kjv", "prompt": "a", "n": 2, "echo": true, "logprobs": 3, "presence_penalty": 1}' >"$corpus/seed-refused"
    printf '{"model": "kjv", "messages": [{"role": "user", "content": [{"type": "text", "text": "a"}]}], "max_completion_tokens": 3}' >"$corpus/seed-chat"
    printf '%s' '{"model": "kjv", "messages": [{"role": "assistant", "content": null, "tool_calls": [{"id": "x", "function": {"name": "f", "arguments": "{\"a\": 1}"}}]}], "tools": [{"type": "function", "function": {"name": "f"}}], "chat_template_kwargs": {"enable_thinking": false}}' >"$corpus/seed-chat-tools"
    exit 0 ;;
  *) pattern='' ;;
esac
[ -n "$pattern" ] || exit 0
index=0
while IFS= read -r -d '' file; do
  # Large shards only slow libFuzzer down; their headers are what matters.
  if [ "$target" = fuzz_safetensors ]; then head -c 65536 "$file"; else cat "$file"; fi >"$corpus/seed-$index"
  index=$((index + 1))
done < <(find "$root" -name "$pattern" -print0)
