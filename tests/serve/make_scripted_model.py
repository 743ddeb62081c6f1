"""Writes a tiny Llama checkpoint whose greedy chat reply is fixed: the PIECEs given, in order, then
end-of-text. The server's reply parsers (tool calls, reasoning) can then be driven by a real client
through a real model, e.g. with the pieces

    "I will check." "<tool_call>" '\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n' "</tool_call>"

The tokenizer is the bundled model's, with the tokens a prompt may end with (--prompt-end, once for
each; <|assistant|> by default) and each piece added as a token (pieces must differ; --special marks one as a special
token, as Mistral's [TOOL_CALLS] is). The chat template (--chat-template FILE, else one that lists
the messages) must end every prompt with one of them. Every layer's attention and MLP weights are
zero, so each position's hidden state is its token's embedding, and the head maps each token's
embedding (a distinct unit vector) to the token that follows it.

    python3 make_scripted_model.py [--chat-template FILE --prompt-end TOKEN] [--special PIECE]...
        TOKENIZER_MODEL_DIR OUT_DIR PIECE...
"""
import argparse
import json
import pathlib
import struct
import sys

parser = argparse.ArgumentParser()
parser.add_argument("--chat-template", type=pathlib.Path)
parser.add_argument("--prompt-end", action="append")
parser.add_argument("--special", action="append", default=[])
parser.add_argument("source", type=pathlib.Path)
parser.add_argument("out", type=pathlib.Path)
parser.add_argument("reply", nargs="+")
args = parser.parse_args()
source, out, reply = args.source, args.out, args.reply
prompt_ends = args.prompt_end or ["<|assistant|>"]
if len(set(reply)) != len(reply) or set(prompt_ends) & set(reply):
    sys.exit(f"make_scripted_model.py: give the reply as distinct pieces, other than {prompt_ends}")
out.mkdir(parents=True, exist_ok=True)
tokenizer = json.loads((source / "tokenizer.json").read_text())
eos = next(t["id"] for t in tokenizer["added_tokens"] if t["content"] == "<|end_of_text|>")
first_new = 1 + max(t["id"] for t in tokenizer["added_tokens"])
pieces = prompt_ends + reply
special = {*prompt_ends, *args.special}
ids = [first_new + i for i in range(len(pieces))]
end_ids, reply_ids = ids[:len(prompt_ends)], ids[len(prompt_ends):]
for id_, piece in zip(ids, pieces):
    tokenizer["added_tokens"].append({"id": id_, "content": piece, "single_word": False, "lstrip": False,
                                      "rstrip": False, "normalized": False, "special": piece in special})
(out / "tokenizer.json").write_text(json.dumps(tokenizer))
template = args.chat_template.read_text() if args.chat_template else (
    "{%- for message in messages %}{{- message.role ~ ': ' ~ (message.content or '') ~ '\\n' }}{%- endfor %}"
    "{%- if tools %}{{- 'Tools: ' ~ (tools | length) ~ '\\n' }}{%- endif %}"
    "{%- if add_generation_prompt %}{{- '<|assistant|>' }}{%- endif %}")
(out / "tokenizer_config.json").write_text(json.dumps({
    "bos_token": "<|begin_of_text|>", "eos_token": "<|end_of_text|>", "chat_template": template,
    "tokenizer_class": "PreTrainedTokenizerFast"}))
vocab, hidden = first_new + len(pieces), 8 * ((len(reply) + 8) // 8)  # a unit vector each; even for rope
(out / "config.json").write_text(json.dumps({
    "architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_size": hidden, "intermediate_size": hidden,
    "num_hidden_layers": 1, "num_attention_heads": 1, "num_key_value_heads": 1, "head_dim": hidden,
    "vocab_size": vocab, "max_position_embeddings": 4096, "rms_norm_eps": 1e-5, "rope_theta": 10000.0,
    "tie_word_embeddings": False, "bos_token_id": eos - 1, "eos_token_id": eos, "torch_dtype": "float32"}))
(out / "generation_config.json").write_text(json.dumps({"bos_token_id": eos - 1, "eos_token_id": eos}))


def matrix(rows, cols, entries=()):
    values = [0.0] * (rows * cols)
    for row, col, value in entries:
        values[row * cols + col] = value
    return values


# The prompt's ends embed as unit vector 0 and reply piece i as unit vector i + 1; the head's row for
# what follows unit vector i is 10 times it.
embedded = [(id_, 0, 1.0) for id_ in end_ids] + [(id_, i + 1, 1.0) for i, id_ in enumerate(reply_ids)]
follows = reply_ids + [eos]
tensors = {
    "model.embed_tokens.weight": ([vocab, hidden], matrix(vocab, hidden, embedded)),
    "lm_head.weight": ([vocab, hidden], matrix(vocab, hidden, [(id_, i, 10.0) for i, id_ in enumerate(follows)])),
    "model.norm.weight": ([hidden], [1.0] * hidden),
    "model.layers.0.input_layernorm.weight": ([hidden], [1.0] * hidden),
    "model.layers.0.post_attention_layernorm.weight": ([hidden], [1.0] * hidden),
}
for name in ["self_attn.q_proj", "self_attn.k_proj", "self_attn.v_proj", "self_attn.o_proj",
             "mlp.gate_proj", "mlp.up_proj", "mlp.down_proj"]:
    tensors[f"model.layers.0.{name}.weight"] = ([hidden, hidden], matrix(hidden, hidden))
header, data, offset = {}, bytearray(), 0
for name, (shape, values) in tensors.items():
    header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + 4 * len(values)]}
    data += struct.pack(f"<{len(values)}f", *values)
    offset += 4 * len(values)
text = json.dumps(header).encode()
text += b" " * (-len(text) % 8)
(out / "model.safetensors").write_bytes(struct.pack("<Q", len(text)) + text + bytes(data))
