"""Gives a random-weight checkpoint (bench/transformers_peer.py --save) a tokenizer of its
vocabulary size, so that `shardlm serve` can load it: the bundled model's byte-level pipeline with
a vocabulary of the 256 byte symbols, filler words up to the first special id, and Llama-3's
<|begin_of_text|> / <|end_of_text|> and reserved specials after it. Benchmarks send token ids and
ignore EOS, so only decoding needs to work; every id decodes to some text.

  python3 bench/make_bench_tokenizer.py /tmp/llama3-8b
"""
import json
import pathlib
import sys


def byte_symbols():
    """GPT-2's byte-to-unicode table: the ByteLevel alphabet."""
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    symbols, extra = [], 0
    for byte in range(256):
        if byte in printable:
            symbols.append(chr(byte))
        else:
            symbols.append(chr(256 + extra))
            extra += 1
    return symbols


def main():
    directory = pathlib.Path(sys.argv[1])
    config = json.loads((directory / "config.json").read_text())
    vocab_size, bos = config["vocab_size"], config["bos_token_id"]
    eos = config["eos_token_id"] if isinstance(config["eos_token_id"], int) else config["eos_token_id"][0]
    base = json.loads((pathlib.Path(__file__).parent.parent / "models/kjv-llama/tokenizer.json").read_text())
    vocab = {symbol: i for i, symbol in enumerate(byte_symbols())}
    first_special = min(bos, eos)
    for i in range(len(vocab), first_special):
        vocab[f"\u0120w{i}"] = i  # " w1234": a space (Ġ) and a word
    specials = {bos: "<|begin_of_text|>", eos: "<|end_of_text|>"}
    added = []
    for i in range(first_special, vocab_size):
        content = specials.get(i, f"<|reserved_special_token_{i - first_special}|>")
        vocab[content] = i
        added.append({"id": i, "content": content, "single_word": False, "lstrip": False, "rstrip": False,
                      "normalized": False, "special": True})
    base["model"]["vocab"] = vocab
    base["model"]["merges"] = []
    base["added_tokens"] = added
    for processor in base["post_processor"]["processors"]:
        if processor["type"] == "TemplateProcessing":
            processor["special_tokens"]["<|begin_of_text|>"]["ids"] = [bos]
    (directory / "tokenizer.json").write_text(json.dumps(base, ensure_ascii=False))
    (directory / "tokenizer_config.json").write_text(json.dumps(
        {"bos_token": "<|begin_of_text|>", "eos_token": "<|end_of_text|>", "model_max_length": config["max_position_embeddings"],
         "tokenizer_class": "PreTrainedTokenizerFast"}, indent=1))
    print(f"tokenizer of {vocab_size} ids written to {directory}")


if __name__ == "__main__":
    main()
