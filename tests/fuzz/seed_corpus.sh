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
    printf '{"layers.*.mlp.experts.gate_up_proj": "packed_colwise", "layers.*.mlp.experts.down_proj": "rowwise", "layers.*.mlp.experts": "moe_tp_experts"}' >"$corpus/seed-moe-plan"
    printf '{"layers.*.mlp.gate": "ep_router", "layers.*.block_sparse_moe.experts.*.w1": "grouped_gemm", "layers.*.mlp.experts.down_proj": "grouped_gemm"}' >"$corpus/seed-ep-plan"
    exit 0 ;;
  fuzz_completion_request)
    printf '{"model": "kjv", "prompt": "In the beginning", "max_tokens": 16, "temperature": 0}' >"$corpus/seed-text"
    printf '{"model": "kjv", "prompt": [[1, 2, 3], "x"], "stop": ["a", "b"], "seed": -5, "top_k": -1}' >"$corpus/seed-lists"
    printf '{"model": "kjv", "prompt": "a", "stream": true, "stream_options": {"include_usage": true}, "top_p": 0.5}' >"$corpus/seed-stream"
    printf '{"model": "kjv", "prompt": "a", "n": 2, "echo": true, "logprobs": 3, "presence_penalty": 1}' >"$corpus/seed-refused"
    printf '{"model": "kjv", "messages": [{"role": "user", "content": [{"type": "text", "text": "a"}]}], "max_completion_tokens": 3}' >"$corpus/seed-chat"
    printf 'I will check.<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call>' >"$corpus/seed-hermes-call"
    printf '<|python_tag|>{"name": "a", "parameters": {"q": "x; y"}}; {"name": "b", "arguments": {}}' >"$corpus/seed-llama3-calls"
    printf '<think>\nParis?</think>\n\nSure.<tool_call>{"name": "f", "arguments": {}}</tool_call>' >"$corpus/seed-reasoning-call"
    printf 'Sure. [TOOL_CALLS] [{"name": "f", "arguments": {}}][TOOL_CALLS]g[ARGS]{"a": 1}' >"$corpus/seed-mistral-calls"
    printf '%s' '{"model": "kjv", "messages": [{"role": "assistant", "content": null, "tool_calls": [{"id": "x", "function": {"name": "f", "arguments": "{\"a\": 1}"}}]}], "tools": [{"type": "function", "function": {"name": "f"}}], "chat_template_kwargs": {"enable_thinking": false}}' >"$corpus/seed-chat-tools"
    exit 0 ;;
  *) pattern='' ;;
esac
[ -n "$pattern" ] || exit 0
if [ "$target" = fuzz_safetensors ]; then
  # Experts fused as Transformers 5 holds them, and one under Mixtral's name.
  header='{"model.layers.0.mlp.experts.gate_up_proj":{"dtype":"F32","shape":[2,4,2],"data_offsets":[0,64]},"model.layers.0.block_sparse_moe.experts.0.w2.weight":{"dtype":"F32","shape":[1,2],"data_offsets":[64,72]}}'
  {
    for shift in 0 8 16 24 32 40 48 56; do printf "\\$(printf '%03o' $(((${#header} >> shift) & 255)))"; done
    printf '%s' "$header"
    head -c 72 /dev/zero
  } >"$corpus/seed-experts"
fi
index=0
while IFS= read -r -d '' file; do
  # Large shards only slow libFuzzer down; their headers are what matters.
  if [ "$target" = fuzz_safetensors ]; then head -c 65536 "$file"; else cat "$file"; fi >"$corpus/seed-$index"
  index=$((index + 1))
done < <(find "$root" -name "$pattern" -print0)
