#!/usr/bin/env python3
"""Writes the small hand-made tokenizer.json files under tests/fixtures/tokenizers/handmade/.

Each one mirrors the pipeline of a real model family (GPT-2, Llama-3, Qwen2, Llama-2, Mistral) with a
vocabulary trained here by plain BPE on a short multilingual corpus, so the files are small, can be
regenerated without any hub access, and still exercise every component our loader supports. The
expected ids come from the npm oracle (see oracle_encode.mjs), not from this script. Added tokens are
ASCII and NFC-stable, and no token uses single_word, because tokenizers.js departs from the Rust
library there (it decodes added tokens verbatim and ignores single_word); unit tests cover those.

Usage: python3 tests/oracle/make_handmade_tokenizers.py
"""
import collections
import json
import pathlib
import re

OUT_DIR = pathlib.Path(__file__).resolve().parent.parent / "fixtures" / "tokenizers" / "handmade"

CORPUS = """
The quick brown fox jumps over the lazy dog. It's a dog's life, isn't it? They're here; we've won.
I'll say it again: the tokenizer must match Hugging Face, byte for byte, id for id.
def encode(text: str) -> list[int]:
    return [ord(c) for c in text]  # 42 tabs\tand newlines\n
for (int i = 0; i < 1000; ++i) { total += values[i] * 3.14159; }
Café, naïve, résumé, Ångström, São Paulo, Zürich, façade. Ελληνικά κείμενα. Русский текст тоже.
日本語のテキストと中文文本，还有한국어 문장。 emoji: 😀🎉👍🏽 and ✓ ✗ → ←
Numbers: 1234567890, 3.5%, $19.99, 2024-06-01, 1st 2nd 3rd.
   leading spaces, trailing spaces   , double  spaces, and\r\nwindows line ends.
""" * 3

GPT2_PATTERN = r"""'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"""
LLAMA3_PATTERN = r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""
QWEN2_PATTERN = r"""(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"""

# Python's re has no \p{..}; for training purposes a rough word split is enough.
ROUGH_WORDS = re.compile(r" ?[^\W\d_]+| ?\d+| ?[^\s\w]+|\s+")


def bytes_to_unicode():
    printable = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    mapping, extra = {}, 0
    for b in range(256):
        if b in printable:
            mapping[b] = chr(b)
        else:
            mapping[b] = chr(256 + extra)
            extra += 1
    return mapping


def train_bpe(words, n_merges):
    """Greedy BPE over a Counter of words given as tuples of symbols. Returns the merge list."""
    words = collections.Counter(words)
    merges = []
    for _ in range(n_merges):
        pairs = collections.Counter()
        for word, count in words.items():
            for pair in zip(word, word[1:]):
                pairs[pair] += count
        if not pairs:
            break
        best = max(pairs.items(), key=lambda item: (item[1], item[0]))[0]
        merges.append(best)
        merged = collections.Counter()
        for word, count in words.items():
            out, i = [], 0
            while i < len(word):
                if i + 1 < len(word) and (word[i], word[i + 1]) == best:
                    out.append(word[i] + word[i + 1])
                    i += 2
                else:
                    out.append(word[i])
                    i += 1
            merged[tuple(out)] += count
        words = merged
    return merges


def added(id_, content, special=True, normalized=None, lstrip=False, rstrip=False, single_word=False):
    return {"id": id_, "content": content, "single_word": single_word, "lstrip": lstrip, "rstrip": rstrip,
            "normalized": (not special) if normalized is None else normalized, "special": special}


def byte_level_model(n_merges, merges_as_pairs, ignore_merges, extra_words=()):
    table = bytes_to_unicode()
    words = ["".join(table[b] for b in w.encode()) for w in ROUGH_WORDS.findall(CORPUS)]
    merges = train_bpe((tuple(w) for w in words), n_merges)
    vocab = {table[b]: i for i, b in enumerate(sorted(table, key=lambda b: ord(table[b])))}
    for a, b in merges:
        vocab.setdefault(a + b, len(vocab))
    # Whole words no merge sequence produces: only ignore_merges can emit them.
    for word in extra_words:
        vocab.setdefault("".join(table[b] for b in word.encode()), len(vocab))
    return {
        "type": "BPE", "dropout": None, "unk_token": None, "continuing_subword_prefix": None,
        "end_of_word_suffix": None, "fuse_unk": False, "byte_fallback": False, "ignore_merges": ignore_merges,
        "vocab": vocab,
        "merges": [[a, b] for a, b in merges] if merges_as_pairs else [f"{a} {b}" for a, b in merges],
    }


def sentencepiece_model(n_merges):
    words = ["\u2581" + w for w in CORPUS.replace("\n", " ").split(" ") if w]
    merges = train_bpe((tuple(w) for w in words), n_merges)
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    for b in range(256):
        vocab[f"<0x{b:02X}>"] = len(vocab)
    # Leave some corpus characters out of the base alphabet so byte fallback and unk are exercised.
    alphabet = sorted({c for w in words for c in w} - set("😀🎉👍🏽日本語한국어→"))
    for c in alphabet:
        vocab.setdefault(c, len(vocab))
    kept_merges = []
    for a, b in merges:
        if a in vocab and b in vocab:
            vocab.setdefault(a + b, len(vocab))
            kept_merges.append((a, b))
    return {
        "type": "BPE", "dropout": None, "unk_token": "<unk>", "continuing_subword_prefix": None,
        "end_of_word_suffix": None, "fuse_unk": True, "byte_fallback": True, "ignore_merges": False,
        "vocab": vocab, "merges": [f"{a} {b}" for a, b in kept_merges],
    }


def tokenizer(model, added_tokens, normalizer, pre_tokenizer, post_processor, decoder):
    return {"version": "1.0", "truncation": None, "padding": None, "added_tokens": added_tokens,
            "normalizer": normalizer, "pre_tokenizer": pre_tokenizer, "post_processor": post_processor,
            "decoder": decoder, "model": model}


def template(token, id_):
    return {"type": "TemplateProcessing",
            "single": [{"SpecialToken": {"id": token, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}}],
            "pair": [{"SpecialToken": {"id": token, "type_id": 0}}, {"Sequence": {"id": "A", "type_id": 0}},
                     {"SpecialToken": {"id": token, "type_id": 1}}, {"Sequence": {"id": "B", "type_id": 1}}],
            "special_tokens": {token: {"id": token, "ids": [id_], "tokens": [token]}}}


def byte_level(add_prefix_space=False, use_regex=True):
    return {"type": "ByteLevel", "add_prefix_space": add_prefix_space, "trim_offsets": True, "use_regex": use_regex}


def split(pattern):
    return {"type": "Split", "pattern": {"Regex": pattern}, "behavior": "Isolated", "invert": False}


def sentencepiece_decoder(strip=True):
    steps = [{"type": "Replace", "pattern": {"String": "\u2581"}, "content": " "},
             {"type": "ByteFallback"}, {"type": "Fuse"}]
    if strip:
        steps.append({"type": "Strip", "content": " ", "start": 1, "stop": 0})
    return {"type": "Sequence", "decoders": steps}


def build():
    files = {}

    model = byte_level_model(400, merges_as_pairs=False, ignore_merges=False)
    eot = len(model["vocab"])
    files["gpt2-bytelevel"] = tokenizer(model, [added(eot, "<|endoftext|>")], None, byte_level(),
                                        byte_level(), byte_level())

    model = byte_level_model(500, merges_as_pairs=True, ignore_merges=True, extra_words=[" tokenizer's", " Zürich"])
    n = len(model["vocab"])
    specials = ["<|begin_of_text|>", "<|end_of_text|>", "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"]
    added_tokens = [added(n + i, t) for i, t in enumerate(specials)]
    files["llama3-bytelevel"] = tokenizer(
        model, added_tokens, None,
        {"type": "Sequence", "pretokenizers": [split(LLAMA3_PATTERN), byte_level(use_regex=False)]},
        {"type": "Sequence", "processors": [byte_level(), template("<|begin_of_text|>", n)]}, byte_level())

    model = byte_level_model(450, merges_as_pairs=True, ignore_merges=False)
    n = len(model["vocab"])
    added_tokens = [added(n, "<|endoftext|>"), added(n + 1, "<|im_start|>"), added(n + 2, "<|im_end|>"),
                    added(n + 3, "<tool_call>", special=False), added(n + 4, "<tool_response>", special=False)]
    files["qwen2-bytelevel-nfc"] = tokenizer(
        model, added_tokens, {"type": "NFC"},
        {"type": "Sequence", "pretokenizers": [split(QWEN2_PATTERN), byte_level(use_regex=False)]},
        byte_level(), byte_level())

    model = sentencepiece_model(400)
    added_tokens = [added(0, "<unk>"), added(1, "<s>"), added(2, "</s>")]
    files["llama2-sentencepiece"] = tokenizer(
        model, added_tokens,
        {"type": "Sequence", "normalizers": [{"type": "Prepend", "prepend": "\u2581"},
                                             {"type": "Replace", "pattern": {"String": " "}, "content": "\u2581"}]},
        None, template("<s>", 1), sentencepiece_decoder())

    model = sentencepiece_model(350)
    n = len(model["vocab"])
    added_tokens = [added(0, "<unk>"), added(1, "<s>"), added(2, "</s>"),
                    added(n, "[INST]", lstrip=True, rstrip=True), added(n + 1, "[/INST]", rstrip=True),
                    added(n + 2, "word", special=False)]
    files["mistral-metaspace"] = tokenizer(
        model, added_tokens, None,
        {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "first", "split": False},
        template("<s>", 1),
        {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "first", "split": False})

    model = sentencepiece_model(300)
    files["metaspace-split-always"] = tokenizer(
        model, [added(0, "<unk>"), added(1, "<s>"), added(2, "</s>")], {"type": "NFKC"},
        {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "always", "split": True},
        None, {"type": "Metaspace", "replacement": "\u2581", "prepend_scheme": "always", "split": True})
    return files


def main():
    for name, content in build().items():
        directory = OUT_DIR / name
        directory.mkdir(parents=True, exist_ok=True)
        with open(directory / "tokenizer.json", "w", encoding="utf-8") as f:
            json.dump(content, f, ensure_ascii=False, indent=1)
            f.write("\n")
        print(f"wrote {directory / 'tokenizer.json'}: {len(content['model']['vocab'])} vocab, "
              f"{len(content['model']['merges'])} merges")


if __name__ == "__main__":
    main()
