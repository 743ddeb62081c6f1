#!/usr/bin/env python3
"""Reference fixtures for shardlm: tiny tokenizers and tiny random-weight checkpoints,
with the outputs Hugging Face Transformers produces for them.

    python3 scripts/reference/make_fixtures.py [--kjv .device-carry/kjv.txt] [--out tests/fixtures]
    python3 scripts/reference/make_fixtures.py --only-models mixtral-moe-f32,mixtral-moe-bf16 [--out tests/fixtures]
        (builds only the named models with the tokenizers already in <out>/tokenizers; the other
         models, the tokenizer fixtures and the README's other rows stay as they are)

Writes
  <out>/tokenizers/<name>/{tokenizer.json, tokenizer_config.json, expected.json}
  <out>/models/<name>/{config.json, *.safetensors, generation_config.json,
                       tokenizer.json, tokenizer_config.json, reference.json}
  <out>/models/<name>-fused/ (MoE models: the same weights with the experts stored the other way,
                       or <name>-per-expert/ if save_pretrained already wrote them fused)
  <out>/README.md
Runs on CPU (a minute or so); needs torch, transformers, tokenizers. Formats: see the README it writes.
"""
from __future__ import annotations

import argparse
import copy
import inspect
import json
import os
import re
import shutil
import sys
import time
import unicodedata
from pathlib import Path

import torch
from safetensors import safe_open
from safetensors.torch import save_file

import tokenizers
import transformers
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, normalizers, pre_tokenizers, processors, trainers
from transformers import AutoConfig, AutoModelForCausalLM, AutoTokenizer, GenerationConfig, PreTrainedTokenizerFast

LLAMA3_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
                  r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
QWEN2_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}"
                 r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
SP = "\u2581"  # ▁
NOTES: list[str] = []  # surprises worth reporting, collected while running


def log(*a):
    print(*a, flush=True)


def note(msg):
    NOTES.append(msg)
    log("NOTE:", msg)


# =========================================================================== corpus
EXTRA_LINES = [
    "The quick brown fox jumps over the lazy dog. Don't panic; we'll see, they're sure it's fine.",
    "I'LL BE THERE AT 10:30, WON'T I? We've got 3 apples, 12 pears and 1234 grapes (3.14159 kg).",
    "Le café est très bon; naïve façade, résumé, déjà vu, Noël, garçon, où, forêt, élève.",
    "Le cafe\u0301 est tre\u0300s bon (NFD forms): re\u0301sume\u0301, na\u0131\u0308ve.",
    "Straße, Grüße, Äpfel, Öl, Übermut — Ångström, Øre, Æsir, señor, mañana, ¿qué tal? ¡olé!",
    "Ελληνικά: Καλημέρα κόσμε. Русский: Привет, мир! Как дела? Українська: Добрий день.",
    "中文：你好，世界。我们今天学习自然语言处理。日本語：こんにちは、世界。東京は大きい都市です。",
    "한국어: 안녕하세요 세계. 우리는 오늘 공부합니다. 中文字符测试，汉字和标点符号。",
    "Emoji: 😀 😃 😄 🎉 🍕 👍 👍🏽 ❤️ 👨‍👩‍👧‍👦 🇫🇷 🇯🇵 🇺🇸 🙂 🚀 ✨",
    "हिन्दी: नमस्ते दुनिया। العربية: مرحبا بالعالم. עברית: שלום עולם. ไทย: สวัสดีครับ",
    "def fib(n):\n    if n < 2:\n        return n\n    return fib(n - 1) + fib(n - 2)\n",
    "for (int i = 0; i < n; ++i) {\n\tsum += v[i] * 2;\n}\nreturn sum > 0 ? sum : -1;",
    "#include <vector>\nint main() {\n    std::vector<int> v{1, 2, 3};\n    return 0;\n}",
    "x = [1, 2, 3]  # list\ny = {'a': 1, \"b\": 2}\nprint(f\"{x} and {y}\")\n",
    "Numbers: 0 1 2 3 4 5 6 7 8 9 10 42 100 2024 65536 3.14159 2.71828 1e-5 0x1F 1,000,000",
    "Tabs\tand\ttabs\t\tdouble tab, spaces   triple, newline\n\nand CRLF\r\nlines.",
    "   indented line with leading spaces and trailing spaces   ",
    "URL: https://example.com/path?q=1&r=two#frag, email: someone@example.org",
]


def build_corpus(kjv_path: Path | None):
    lines = []
    if kjv_path and kjv_path.exists():
        kjv = kjv_path.read_text(encoding="utf-8").splitlines()
        lines += kjv[::8]  # ~4000 lines from every book
        log(f"corpus: {len(lines)} KJV lines from {kjv_path}")
    else:
        log("corpus: KJV text not found, using the built-in lines only")
    lines += EXTRA_LINES * 30
    # groups of 4 lines joined by newlines, so newline / indentation merges are learned too
    return ["\n".join(lines[i:i + 4]) + "\n" for i in range(0, len(lines), 4)]


# =========================================================================== tokenizers
EXTRA_SPECIAL = [
    AddedToken("<|im_start|>", special=True, normalized=False),
    AddedToken("<|im_end|>", special=True, normalized=False),
    AddedToken("<mask>", special=True, normalized=False, lstrip=True),
]
EXTRA_PLAIN = [
    AddedToken("<think>", special=False, normalized=False),
    AddedToken("</think>", special=False, normalized=False, rstrip=True),
    AddedToken("shardlm", special=False, normalized=True),
]


def add_extra_tokens(tok: Tokenizer):
    tok.add_special_tokens([copy.deepcopy(t) for t in EXTRA_SPECIAL])
    tok.add_tokens([copy.deepcopy(t) for t in EXTRA_PLAIN])


def train_bytelevel(corpus, vocab_size, pattern=None, normalizer=None, ignore_merges=False, unreachable=()):
    tok = Tokenizer(models.BPE())
    if normalizer is not None:
        tok.normalizer = normalizer
    if pattern is None:  # GPT-2: ByteLevel does the regex split itself
        tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=True)
    else:
        tok.pre_tokenizer = pre_tokenizers.Sequence([
            pre_tokenizers.Split(Regex(pattern), behavior="isolated", invert=False),
            pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False)])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size, min_frequency=2, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), special_tokens=[])
    tok.train_from_iterator(corpus, trainer=trainer)
    j = json.loads(tok.to_str())
    j["model"]["ignore_merges"] = ignore_merges
    added = []
    for w in unreachable:  # vocab entries no merge produces: only ignore_merges reaches them
        if w not in j["model"]["vocab"]:
            j["model"]["vocab"][w] = len(j["model"]["vocab"])
            added.append(w)
    if unreachable:
        log(f"  vocab entries without merges (reachable only through ignore_merges): {added}")
    return Tokenizer.from_str(json.dumps(j))


def train_sentencepiece_style(corpus, learned_size, limit_alphabet=110):
    """BPE over '▁'-prefixed words, then laid out like a Llama/Mistral sentencepiece conversion:
    <unk>=0 <s>=1 </s>=2, <0x00>..<0xFF> = 3..258, then the learned pieces; byte_fallback on."""
    tmp = Tokenizer(models.BPE(unk_token="<unk>"))
    tmp.pre_tokenizer = pre_tokenizers.Metaspace(replacement=SP, prepend_scheme="always", split=True)
    trainer = trainers.BpeTrainer(vocab_size=learned_size, min_frequency=2, show_progress=False,
                                  limit_alphabet=limit_alphabet, special_tokens=[])
    tmp.train_from_iterator(corpus, trainer=trainer)
    j = json.loads(tmp.to_str())
    learned, merges = j["model"]["vocab"], j["model"]["merges"]
    vocab = {"<unk>": 0, "<s>": 1, "</s>": 2}
    for b in range(256):
        vocab[f"<0x{b:02X}>"] = len(vocab)
    for t in sorted(learned, key=learned.get):
        vocab.setdefault(t, len(vocab))
    full = {
        "version": "1.0", "truncation": None, "padding": None,
        "added_tokens": [{"id": i, "content": c, "single_word": False, "lstrip": False, "rstrip": False,
                          "normalized": False, "special": True} for c, i in (("<unk>", 0), ("<s>", 1), ("</s>", 2))],
        "normalizer": None, "pre_tokenizer": None, "post_processor": None, "decoder": None,
        "model": {"type": "BPE", "dropout": None, "unk_token": "<unk>", "continuing_subword_prefix": None,
                  "end_of_word_suffix": None, "fuse_unk": True, "byte_fallback": True, "ignore_merges": False,
                  "vocab": vocab, "merges": merges},
    }
    return Tokenizer.from_str(json.dumps(full))


def make_gpt2(corpus):
    tok = train_bytelevel(corpus, 400)
    tok.add_special_tokens([AddedToken("<|endoftext|>", special=True, normalized=False)])
    add_extra_tokens(tok)
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    cfg = {"bos_token": "<|endoftext|>", "eos_token": "<|endoftext|>", "unk_token": "<|endoftext|>",
           "add_prefix_space": False, "clean_up_tokenization_spaces": True, "model_max_length": 1024}
    return tok, cfg, "GPT-2 style: bare ByteLevel pre-tokenizer (its own regex), no BOS; "\
                     "clean_up_tokenization_spaces=true as in gpt2's own config"


def make_llama3(corpus):
    tok = train_bytelevel(corpus, 600, pattern=LLAMA3_PATTERN, ignore_merges=True,
                          unreachable=("\u0120shepherd", "\u0120wilderness", "\u0120Jerusalem"))
    tok.add_special_tokens([AddedToken(t, special=True, normalized=False)
                            for t in ("<|begin_of_text|>", "<|end_of_text|>", "<|eot_id|>")])
    add_extra_tokens(tok)
    bos = "<|begin_of_text|>"
    tok.post_processor = processors.Sequence([
        processors.ByteLevel(trim_offsets=False),
        processors.TemplateProcessing(single=f"{bos} $A", pair=f"{bos} $A {bos}:1 $B:1",
                                      special_tokens=[(bos, tok.token_to_id(bos))])])
    cfg = {"bos_token": bos, "eos_token": "<|end_of_text|>", "clean_up_tokenization_spaces": False,
           "model_input_names": ["input_ids", "attention_mask"], "model_max_length": 131072}
    return tok, cfg, "Llama-3 style: Split(Llama-3 regex) + ByteLevel(use_regex=false), ignore_merges=true "\
                     "(3 vocab words have no merges), BOS via TemplateProcessing"


def make_qwen2(corpus):
    tok = train_bytelevel(corpus, 500, pattern=QWEN2_PATTERN, normalizer=normalizers.NFC())
    tok.add_special_tokens([AddedToken("<|endoftext|>", special=True, normalized=False)])
    add_extra_tokens(tok)
    tok.post_processor = processors.ByteLevel(trim_offsets=False)
    cfg = {"bos_token": None, "eos_token": "<|im_end|>", "pad_token": "<|endoftext|>", "unk_token": None,
           "clean_up_tokenization_spaces": False, "errors": "replace", "split_special_tokens": False,
           "model_max_length": 32768}
    return tok, cfg, "Qwen2 style: NFC normalizer, Split(Qwen2 regex, single digits) + ByteLevel, no BOS"


def make_llama2(corpus):
    tok = train_sentencepiece_style(corpus, 450)
    tok.normalizer = normalizers.Sequence([normalizers.Prepend(SP), normalizers.Replace(" ", SP)])
    tok.pre_tokenizer = None
    tok.decoder = decoders.Sequence([decoders.Replace(SP, " "), decoders.ByteFallback(), decoders.Fuse(),
                                     decoders.Strip(content=" ", left=1, right=0)])
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s>:1 $B:1",
                                                       special_tokens=[("<s>", 1)])
    add_extra_tokens(tok)
    cfg = {"add_bos_token": True, "add_eos_token": False, "bos_token": "<s>", "eos_token": "</s>",
           "unk_token": "<unk>", "pad_token": None, "legacy": False, "clean_up_tokenization_spaces": False,
           "model_max_length": 2048}
    return tok, cfg, "Llama-2/TinyLlama style sentencepiece conversion: Prepend+Replace normalizer, no "\
                     "pre-tokenizer, BPE byte_fallback, Replace/ByteFallback/Fuse/Strip decoder, add_bos_token=true"


def make_mistral(corpus):
    tok = train_sentencepiece_style(corpus, 450, limit_alphabet=100)
    tok.normalizer = None
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement=SP, prepend_scheme="first", split=False)
    tok.decoder = decoders.Sequence([decoders.ByteFallback(),
                                     decoders.Metaspace(replacement=SP, prepend_scheme="first", split=False)])
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A <s>:1 $B:1",
                                                       special_tokens=[("<s>", 1)])
    add_extra_tokens(tok)
    cfg = {"add_bos_token": True, "add_eos_token": False, "bos_token": "<s>", "eos_token": "</s>",
           "unk_token": "<unk>", "pad_token": None, "legacy": False, "clean_up_tokenization_spaces": False,
           "model_max_length": 32768}
    return tok, cfg, "Mistral style: Metaspace pre-tokenizer (prepend_scheme first, split false), BPE "\
                     "byte_fallback, decoder Sequence[ByteFallback, Metaspace], add_bos_token=true"


TOKENIZER_CASES = [
    "", " ", "   ", "Hello world", "Hello  world", "Hello   world    again", " leading space",
    "trailing space ", "  both  ", "   multiple leading spaces", "tab\tseparated\tvalues",
    "\t\tindented with tabs", "line one\nline two", "para one\n\n\npara two", "windows\r\nline endings\r\n",
    "\n", "\n\n\n", " \n \n", "trailing newline\n", "   \t\n  mixed whitespace \t ",
    "caf\u00e9", "cafe\u0301", "na\u00efve fa\u00e7ade r\u00e9sum\u00e9", "\u00c5ngstr\u00f6m, \u00d8re, \u00c6sir, stra\u00dfe",
    "\u212b vs \u00c5 (angstrom sign vs A-ring)", "\u0301start with a combining mark", "end with combining e\u0301",
    "\ufb01 ligature and \uff26\uff35\uff2c\uff2c\uff37\uff29\uff24\uff34\uff28 text",
    "\u0395\u03bb\u03bb\u03b7\u03bd\u03b9\u03ba\u03ac \u03b3\u03c1\u03ac\u03bc\u03bc\u03b1\u03c4\u03b1", "Привет, мир!",
    "日本語のテキストです。", "中文字符测试", "한국어 텍스트", "😀", "I love 🍕 and 🎉!", "👨‍👩‍👧‍👦 family",
    "🇫🇷🇯🇵 flags", "👍🏽 skin tone", "emoji at end 🙂", "𝔘𝔫𝔦𝔠𝔬𝔡𝔢 math letters",
    "1", "12", "123", "1234", "12345678901234567890", "3.14159", "Call 555-0123 or +1 (800) 555-0199.",
    "In 1611, the King James Version was published.", "don't", "I'LL", "we've",
    "She's here, they're there, I'm done, he'd go, it'll rain.", "DON'T SHOUT",
    "def fib(n):\n    if n < 2:\n        return n\n    return fib(n - 1) + fib(n - 2)\n",
    "#include <vector>\nint main() {\n\tstd::vector<int> v{1, 2, 3};\n\treturn v.size() > 2 ? 0 : 1;\n}\n",
    "x=y+z;a[i]->b&&c||d!=e",
    "<|im_start|>user\nHello!<|im_end|>\n<|im_start|>assistant\n", "text before<|im_end|>text after",
    "<|im_start|><|im_end|>", "partial <|im_start and <|im_end| tokens", "<s>Hello</s> and <unk>",
    "<|begin_of_text|>Hi<|end_of_text|>", "<|endoftext|>", "a <mask> b", "a<mask>b", "a   <mask>   b",
    "<think>reasoning</think>\n\nanswer", "Hello , world . Is n't it ? Yes ! I 'm sure .", "use shardlm here", "shardlmshardlm", " shardlm",
    "The shepherd in the wilderness of Jerusalem.", "shepherd", "нमस्ते", "नमस्ते दुनिया", "مرحبا بالعالم",
    "שלום עולם", "สวัสดีครับ", "Mixed: English, français, 日本語, العربية, and emoji 🎉.",
    "\u00a0non-breaking\u00a0space", "zero\u200bwidth space", "null\u0000byte", "\u2028 line separator",
    "<0x41> literal byte token text", "\u2581 already has metaspace \u2581\u2581 chars", "\u0120 and \u010a byte-level chars",
    "And God said, Let there be light: and there was light. " * 20,
]


def write_json_lines(path: Path, meta: dict, key: str, items: list):
    body = ",\n".join(json.dumps(c, ensure_ascii=True) for c in items)
    head = json.dumps(meta, ensure_ascii=True, indent=1)[:-2]  # drop the closing "\n}"
    path.write_text(f"{head},\n \"{key}\": [\n{body}\n]}}\n", encoding="utf-8")


def save_tokenizer_fixture(name, tok: Tokenizer, cfg_over: dict, desc: str, root: Path, reuse_json: Path | None = None):
    d = root / "tokenizers" / name
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    named = {k: v for k, v in cfg_over.items() if k.endswith("_token") and v is not None}
    hf = PreTrainedTokenizerFast(tokenizer_object=tok, **named)
    hf.save_pretrained(str(d))
    saved_cfg = json.loads((d / "tokenizer_config.json").read_text(encoding="utf-8"))
    log(f"  [{name}] tokenizer_config.json as saved: {json.dumps(saved_cfg, ensure_ascii=False)[:400]}")
    cfg = dict(saved_cfg)
    cfg.update(cfg_over)
    cfg["tokenizer_class"] = "PreTrainedTokenizerFast"
    (d / "tokenizer_config.json").write_text(json.dumps(cfg, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    for extra in ("special_tokens_map.json", "added_tokens.json"):  # keep the fixture to the two files
        if (d / extra).exists():
            (d / extra).unlink()
    if reuse_json is not None:  # variants share the same tokenizer.json byte for byte
        shutil.copyfile(reuse_json, d / "tokenizer.json")
    return d, desc


def expected_for(d: Path, name: str, desc: str):
    hf = AutoTokenizer.from_pretrained(str(d))
    raw = Tokenizer.from_file(str(d / "tokenizer.json"))
    cases, mismatches = [], []
    for i, text in enumerate(TOKENIZER_CASES):
        ids = hf(text)["input_ids"]
        ids_ns = hf(text, add_special_tokens=False)["input_ids"]
        dec = hf.decode(ids_ns)
        dec_skip = hf.decode(ids, skip_special_tokens=True)
        raw_ids = raw.encode(text).ids
        raw_ids_ns = raw.encode(text, add_special_tokens=False).ids
        raw_dec = raw.decode(ids_ns, skip_special_tokens=False)
        raw_dec_skip = raw.decode(ids, skip_special_tokens=True)
        for field, a, b in (("ids", ids, raw_ids), ("ids_no_special", ids_ns, raw_ids_ns),
                            ("decoded", dec, raw_dec), ("decoded_skip_special", dec_skip, raw_dec_skip)):
            if a != b:
                mismatches.append({"case": i, "field": field, "transformers": a, "tokenizers": b})
        cases.append({"text": text, "ids": ids, "ids_no_special": ids_ns, "decoded": dec,
                      "decoded_skip_special": dec_skip, "raw_ids": raw_ids,
                      "tokens": hf.convert_ids_to_tokens(ids), "roundtrip": dec == text})
    meta = {
        "tokenizer": name, "description": desc,
        "transformers_version": transformers.__version__, "tokenizers_version": tokenizers.__version__,
        "tokenizer_class_loaded": type(hf).__name__, "vocab_size": len(hf),
        "bos_token_id": hf.bos_token_id, "eos_token_id": hf.eos_token_id, "unk_token_id": hf.unk_token_id,
        "pad_token_id": hf.pad_token_id,
        "all_special_ids": sorted(hf.all_special_ids),
        "added_tokens": {str(k): {"content": v.content, "special": v.special, "lstrip": v.lstrip, "rstrip": v.rstrip,
                                  "normalized": v.normalized, "single_word": v.single_word}
                         for k, v in sorted(hf.added_tokens_decoder.items())},
        "fields": {"ids": "tokenizer(text)['input_ids']",
                   "ids_no_special": "tokenizer(text, add_special_tokens=False)['input_ids']",
                   "decoded": "tokenizer.decode(ids_no_special)",
                   "decoded_skip_special": "tokenizer.decode(ids, skip_special_tokens=True)",
                   "raw_ids": "tokenizers.Tokenizer.from_file('tokenizer.json').encode(text).ids",
                   "tokens": "tokenizer.convert_ids_to_tokens(ids)",
                   "roundtrip": "decoded == text"},
        "raw_tokenizers_mismatches": mismatches,
    }
    write_json_lines(d / "expected.json", meta, "cases", cases)
    cfg = json.loads((d / "tokenizer_config.json").read_text(encoding="utf-8"))
    if cfg.get("clean_up_tokenization_spaces"):
        probe = "Hello , world . Is n't it ? Yes ! I 'm sure ."
        dec = hf.decode(hf(probe, add_special_tokens=False)["input_ids"])
        note(f"{name}: clean_up_tokenization_spaces=true in tokenizer_config.json; decode gives {dec!r} "
             f"({'cleanup NOT applied' if dec == probe else 'cleanup applied'}; model type "
             f"{type(hf.backend_tokenizer.model).__name__})")
    if mismatches:
        fields = sorted({m["field"] for m in mismatches})
        note(f"{name}: Transformers and raw tokenizers differ in {len(mismatches)} field(s) ({', '.join(fields)}); "
             f"first: {json.dumps(mismatches[0], ensure_ascii=True)[:300]}")
    n_rt = sum(c["roundtrip"] for c in cases)
    log(f"  [{name}] class {type(hf).__name__}, vocab {len(hf)}, {len(cases)} cases, "
        f"{n_rt} round-trip exactly, {len(mismatches)} raw mismatches; "
        f"'Hello world' -> {hf('Hello world')['input_ids']}")
    return hf


def build_tokenizers(root: Path, kjv: Path | None):
    corpus = build_corpus(kjv)
    out = {}
    for name, fn in (("gpt2-bytelevel", make_gpt2), ("llama3-bytelevel", make_llama3),
                     ("qwen2-bytelevel-nfc", make_qwen2), ("llama2-sentencepiece", make_llama2),
                     ("mistral-metaspace", make_mistral)):
        t0 = time.time()
        tok, cfg, desc = fn(corpus)
        d, desc = save_tokenizer_fixture(name, tok, cfg, desc, root)
        out[name] = expected_for(d, name, desc)
        log(f"  [{name}] done in {time.time() - t0:.1f}s")
    # add_bos_token / add_eos_token variants: same tokenizer.json (with its BOS template), other config.
    base = root / "tokenizers" / "llama2-sentencepiece"
    base_cfg = json.loads((base / "tokenizer_config.json").read_text(encoding="utf-8"))
    for name, over, desc in (
            ("llama2-sentencepiece-nobos", {"add_bos_token": False},
             "llama2-sentencepiece's tokenizer.json (TemplateProcessing adds <s>) with add_bos_token=false in "
             "tokenizer_config.json: shows which one Transformers follows"),
            ("llama2-sentencepiece-eos", {"add_bos_token": True, "add_eos_token": True},
             "llama2-sentencepiece with add_eos_token=true in tokenizer_config.json"),
            ("llama2-sentencepiece-nopp", {"add_bos_token": True, "add_eos_token": True},
             "llama2-sentencepiece with post_processor null in tokenizer.json and add_bos_token=true, "
             "add_eos_token=true in tokenizer_config.json")):
        d = root / "tokenizers" / name
        if d.exists():
            shutil.rmtree(d)
        d.mkdir(parents=True)
        shutil.copyfile(base / "tokenizer.json", d / "tokenizer.json")
        if name.endswith("-nopp"):
            tj = json.loads((d / "tokenizer.json").read_text(encoding="utf-8"))
            tj["post_processor"] = None
            (d / "tokenizer.json").write_text(json.dumps(tj, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
        cfg = dict(base_cfg)
        cfg.update(over)
        (d / "tokenizer_config.json").write_text(json.dumps(cfg, indent=2, ensure_ascii=False) + "\n",
                                                 encoding="utf-8")
        out[name] = expected_for(d, name, desc)
        probe = "Hello world"
        base_ids = out["llama2-sentencepiece"](probe)["input_ids"]
        ids = out[name](probe)["input_ids"]
        note(f"{name}: {json.dumps(over)} -> {probe!r} encodes to {ids} (llama2-sentencepiece: {base_ids}); "
             f"BOS {'added' if ids[:1] == [1] else 'NOT added'}, EOS {'added' if ids[-1:] == [2] else 'NOT added'}")
    return out


# =========================================================================== models
def config_class(arch):
    return {"llama": transformers.LlamaConfig, "mistral": transformers.MistralConfig,
            "qwen2": transformers.Qwen2Config, "qwen3": transformers.Qwen3Config,
            "mixtral": transformers.MixtralConfig, "qwen2_moe": transformers.Qwen2MoeConfig,
            "qwen3_moe": transformers.Qwen3MoeConfig}[arch]


def model_class(arch):
    return {"llama": transformers.LlamaForCausalLM, "mistral": transformers.MistralForCausalLM,
            "qwen2": transformers.Qwen2ForCausalLM, "qwen3": transformers.Qwen3ForCausalLM,
            "mixtral": transformers.MixtralForCausalLM, "qwen2_moe": transformers.Qwen2MoeForCausalLM,
            "qwen3_moe": transformers.Qwen3MoeForCausalLM}[arch]


MOE_ARCHS = ("mixtral", "qwen2_moe", "qwen3_moe")


def is_moe(spec):
    return spec["arch"] in MOE_ARCHS


def rope_kwargs(cls, theta, scaling):
    if "rope_parameters" in inspect.signature(cls.__init__).parameters:
        params = {"rope_type": "default", "rope_theta": theta}
        params.update(scaling or {})
        return {"rope_parameters": params}
    return {"rope_theta": theta, "rope_scaling": scaling}


# The mixture-of-experts fixtures' shapes, each in f32 and bf16 (MODELS below).
MIXTRAL_MOE_CFG = dict(hidden_size=64, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4,
                       num_key_value_heads=2, max_position_embeddings=512, rms_norm_eps=1e-5,
                       tie_word_embeddings=False, num_local_experts=4, num_experts_per_tok=2)
QWEN2_MOE_CFG = dict(hidden_size=64, intermediate_size=96, num_hidden_layers=2, num_attention_heads=4,
                     num_key_value_heads=2, max_position_embeddings=512, rms_norm_eps=1e-6,
                     tie_word_embeddings=False, use_sliding_window=False, qkv_bias=True,
                     num_experts=8, num_experts_per_tok=2, moe_intermediate_size=32,
                     shared_expert_intermediate_size=96, norm_topk_prob=False, decoder_sparse_step=1)
QWEN3_MOE_CFG = dict(hidden_size=64, intermediate_size=96, num_hidden_layers=3, num_attention_heads=4,
                     num_key_value_heads=2, max_position_embeddings=512, rms_norm_eps=1e-6,
                     tie_word_embeddings=False, use_sliding_window=False,
                     num_experts=8, num_experts_per_tok=2, moe_intermediate_size=32, norm_topk_prob=True,
                     decoder_sparse_step=1, mlp_only_layers=[1])

MODELS = [
    dict(name="llama-gqa-llama3rope-f32", arch="llama", tokenizer="llama3-bytelevel", dtype="float32", seed=11,
         cfg=dict(hidden_size=64, intermediate_size=176, num_hidden_layers=2, num_attention_heads=8,
                  num_key_value_heads=2, head_dim=8, max_position_embeddings=512, rms_norm_eps=1e-5,
                  tie_word_embeddings=False),
         theta=10000.0, rope=dict(rope_type="llama3", factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0,
                                  original_max_position_embeddings=64),
         legacy_config=True),
    dict(name="llama-tied-linear-bf16", arch="llama", tokenizer="llama2-sentencepiece", dtype="bfloat16", seed=12,
         cfg=dict(hidden_size=64, intermediate_size=160, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, head_dim=16, max_position_embeddings=256, rms_norm_eps=1e-6,
                  tie_word_embeddings=True),
         theta=10000.0, rope=dict(rope_type="linear", factor=2.0), legacy_config=True),
    dict(name="mistral-f16", arch="mistral", tokenizer="mistral-metaspace", dtype="float16", seed=13,
         cfg=dict(hidden_size=64, intermediate_size=160, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, head_dim=16, max_position_embeddings=512, rms_norm_eps=1e-5,
                  sliding_window=32, tie_word_embeddings=False),
         theta=10000.0, rope=None, legacy_config=False),
    dict(name="qwen2-bias-yarn-f32", arch="qwen2", tokenizer="qwen2-bytelevel-nfc", dtype="float32", seed=14,
         cfg=dict(hidden_size=64, intermediate_size=160, num_hidden_layers=3, num_attention_heads=4,
                  num_key_value_heads=2, max_position_embeddings=128, rms_norm_eps=1e-6,
                  tie_word_embeddings=True, use_sliding_window=False),
         theta=10000.0, rope=dict(rope_type="yarn", factor=4.0, original_max_position_embeddings=32),
         legacy_config=True),
    dict(name="qwen3-qknorm-f32", arch="qwen3", tokenizer="llama3-bytelevel", dtype="float32", seed=15,
         cfg=dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                  num_key_value_heads=2, head_dim=32, max_position_embeddings=512, rms_norm_eps=1e-6,
                  tie_word_embeddings=False, use_sliding_window=False),
         theta=1000000.0, rope=None, legacy_config=False),
    dict(name="llama-sharded-f32", arch="llama", tokenizer="llama3-bytelevel", dtype="float32", seed=11,
         cfg=dict(hidden_size=64, intermediate_size=176, num_hidden_layers=2, num_attention_heads=8,
                  num_key_value_heads=2, head_dim=8, max_position_embeddings=512, rms_norm_eps=1e-5,
                  tie_word_embeddings=False),
         theta=10000.0, rope=dict(rope_type="llama3", factor=8.0, low_freq_factor=1.0, high_freq_factor=4.0,
                                  original_max_position_embeddings=64),
         legacy_config=True, max_shard_size="100KB", same_seed_as="llama-gqa-llama3rope-f32"),
    # Mixture of experts. Config kwargs are those of the Transformers 5 config classes (MixtralConfig:
    # num_local_experts, num_experts_per_tok, intermediate_size = each expert's size; Qwen2MoeConfig /
    # Qwen3MoeConfig: num_experts, num_experts_per_tok, moe_intermediate_size, intermediate_size = the
    # dense layers' MLP, shared_expert_intermediate_size (Qwen2-MoE), norm_topk_prob, decoder_sparse_step,
    # mlp_only_layers). head_dim is left to its default (hidden_size / heads): Qwen2MoeConfig has no field.
    dict(name="mixtral-moe-f32", arch="mixtral", tokenizer="llama3-bytelevel", dtype="float32", seed=21,
         cfg=dict(MIXTRAL_MOE_CFG), theta=1000000.0, rope=None, legacy_config=False),
    dict(name="mixtral-moe-bf16", arch="mixtral", tokenizer="mistral-metaspace", dtype="bfloat16", seed=22,
         cfg=dict(MIXTRAL_MOE_CFG), theta=1000000.0, rope=None, legacy_config=False),
    dict(name="qwen2-moe-shared-f32", arch="qwen2_moe", tokenizer="qwen2-bytelevel-nfc", dtype="float32", seed=23,
         cfg=dict(QWEN2_MOE_CFG), theta=1000000.0, rope=None, legacy_config=False),
    dict(name="qwen2-moe-shared-bf16", arch="qwen2_moe", tokenizer="qwen2-bytelevel-nfc", dtype="bfloat16", seed=24,
         cfg=dict(QWEN2_MOE_CFG), theta=1000000.0, rope=None, legacy_config=False),
    dict(name="qwen3-moe-dense-layer-f32", arch="qwen3_moe", tokenizer="llama3-bytelevel", dtype="float32", seed=25,
         cfg=dict(QWEN3_MOE_CFG), theta=1000000.0, rope=None, legacy_config=False),
    dict(name="qwen3-moe-dense-layer-bf16", arch="qwen3_moe", tokenizer="llama3-bytelevel", dtype="bfloat16", seed=26,
         cfg=dict(QWEN3_MOE_CFG), theta=1000000.0, rope=None, legacy_config=False),
]
DTYPES = {"float32": torch.float32, "bfloat16": torch.bfloat16, "float16": torch.float16}
NEW_TOKENS = 24
WEIGHT_STD, EMBED_STD, TIED_EMBED_STD, BIAS_STD = 0.1, 0.25, 0.04, 0.1
# MoE routers (mlp.gate.weight, [num_experts, hidden]) get a larger scale so that the router logits
# (std ~ 0.5 * sqrt(hidden) ~ 4) pick different experts for different tokens, with clear gaps.
ROUTER_STD = 0.5

P2_SOURCE = ("And God said, Let there be light: and there was light. And God saw the light, that it was good: "
             "and God divided the light from the darkness. And God called the light Day.")
P3_SOURCE = ("The LORD is my shepherd; I shall not want. He maketh me to lie down in green pastures: he leadeth "
             "me beside the still waters. D\u00e9j\u00e0 vu, na\u00efve caf\u00e9, 東京 and Z\u00fcrich: 12345 + 678 = 13023. "
             "def f(x):\n    return x * 2  # \U0001f642\nHe restoreth my soul: he leadeth me in the paths of "
             "righteousness for his name's sake. Yea, though I walk through the valley of the shadow of death, "
             "I will fear no evil: for thou art with me; thy rod and thy staff they comfort me.")


def prompt_texts(tok):
    p1 = next((t for t in ["", "The", "And", "the", "a", "I", "A"] if len(tok(t)["input_ids"]) == 1), None)
    if p1 is None:
        p1 = tok.decode(tok("The", add_special_tokens=False)["input_ids"][:1])

    def grow(src, n):
        words = src.split(" ")
        for k in range(1, len(words) + 1):
            t = " ".join(words[:k])
            if len(tok(t)["input_ids"]) >= n:
                return t
        return src
    return [p1, grow(P2_SOURCE, 20), grow(P3_SOURCE, 60)]


def randomize(model, seed, embed_std):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in sorted(model.named_parameters()):
            owner = name.rsplit(".", 2)[-2] if name.count(".") >= 1 else name
            if "norm" in owner:
                v = 1.0 + 0.1 * torch.randn(p.shape, generator=g)
            elif name.endswith(".bias"):
                v = BIAS_STD * torch.randn(p.shape, generator=g)
            elif "embed" in name or "lm_head" in name:
                v = embed_std * torch.randn(p.shape, generator=g)
            elif owner == "gate" and p.dim() == 2:  # MoE router: <layer>.mlp.gate.weight [experts, hidden]
                v = ROUTER_STD * torch.randn(p.shape, generator=g)
            else:  # linear weights, the 3-D expert tensors (mlp.experts.gate_up_proj / down_proj,
                # [experts, out, in]) and Qwen2-MoE's mlp.shared_expert_gate.weight [1, hidden]
                v = WEIGHT_STD * torch.randn(p.shape, generator=g)
            p.copy_(v.to(p.dtype))


CHOSEN_SEEDS: dict[str, int] = {}
MIN_UNIQUE, MIN_MARGIN, SEED_TRIES = 8, 2e-3, 24


def make_model(spec, cfg, seed):
    torch.manual_seed(seed)
    model = model_class(spec["arch"])(cfg)
    randomize(model, seed, embed_std_for(spec))
    return model.eval()


def embed_std_for(spec):
    # With tied embeddings a large embedding scale makes each token vote for itself (e.x . e_x is
    # large), and random models then repeat one token forever; tied models get a smaller scale.
    return TIED_EMBED_STD if spec["cfg"].get("tie_word_embeddings") else EMBED_STD


@torch.no_grad()
def choose_seed(spec, cfg, dtype, ids_list, pad_id):
    """Random models often fall into repeating one token, or have near-ties that make greedy
    comparisons fragile. Try seeds from spec['seed'] on and keep the first whose f32 greedy
    continuations (weights rounded to the checkpoint dtype) all have >= MIN_UNIQUE distinct tokens,
    top1-top2 margins >= MIN_MARGIN and never EOS as the raw argmax (min_new_tokens masks it, which
    shardlm's plain greedy decoding does not); else the best seen."""
    best = None
    tried = []
    for seed in range(spec["seed"], spec["seed"] + SEED_TRIES):
        m = make_model(spec, cfg, seed).to(dtype).to(torch.float32)
        uniq, marg, eos_free = [], [], []
        for ids in ids_list:
            inp = torch.tensor([ids])
            out = m.generate(input_ids=inp, attention_mask=torch.ones_like(inp), max_new_tokens=NEW_TOKENS,
                             min_new_tokens=NEW_TOKENS, do_sample=False, num_beams=1, pad_token_id=pad_id,
                             return_dict_in_generate=True, output_logits=True)
            new_ids = out.sequences[0, len(ids):].tolist()
            uniq.append(len(set(new_ids)))
            marg.append(min(float(torch.topk(lg[0].float(), 2).values.diff().abs()) for lg in out.logits))
            eos_free.append(all(int(lg[0].argmax()) == token for lg, token in zip(out.logits, new_ids)))
        score = (min(u >= MIN_UNIQUE for u in uniq) and min(marg) >= MIN_MARGIN and all(eos_free), min(uniq), min(marg))
        tried.append({"seed": seed, "min_unique": min(uniq), "min_margin": round(min(marg), 6),
                      "eos_free": all(eos_free)})
        if best is None or score > best[0]:
            best = (score, seed)
        if score[0]:
            break
    log(f"  [{spec['name']}] seed search: {tried} -> {best[1]}")
    return best[1], {"criteria": f"every prompt's 24 greedy tokens (f32) have >= {MIN_UNIQUE} distinct ids, "
                                 f"top1-top2 margins >= {MIN_MARGIN} and are the raw argmax (never a masked EOS)",
                     "tried": tried}


def load(path, dtype, **kw):
    return AutoModelForCausalLM.from_pretrained(str(path), dtype=dtype, attn_implementation="eager", **kw).eval()


@torch.no_grad()
def run_prompt(model, ids, pad_id):
    inp = torch.tensor([ids])
    out = model.generate(input_ids=inp, attention_mask=torch.ones_like(inp), max_new_tokens=NEW_TOKENS,
                         min_new_tokens=NEW_TOKENS, do_sample=False, num_beams=1, pad_token_id=pad_id,
                         return_dict_in_generate=True, output_logits=True)
    new = out.sequences[0, len(ids):].tolist()
    margins = []
    for lg in out.logits:
        top = torch.topk(lg[0].float(), 2).values
        margins.append(float(top[0] - top[1]))
    seq = list(ids)  # the same greedy decode without the KV cache and without generate()
    for _ in range(NEW_TOKENS):
        seq.append(int(model(torch.tensor([seq]), use_cache=False).logits[0, -1].argmax()))
    last = model(inp).logits[0, -1].float()
    return new, margins, seq[len(ids):], [float(v) for v in last.tolist()]


@torch.no_grad()
def run_batch(model, prompts_ids, pad_id):
    L = max(len(p) for p in prompts_ids)
    ids = [[pad_id] * (L - len(p)) + p for p in prompts_ids]
    mask = [[0] * (L - len(p)) + [1] * len(p) for p in prompts_ids]
    out = model.generate(input_ids=torch.tensor(ids), attention_mask=torch.tensor(mask), max_new_tokens=NEW_TOKENS,
                         min_new_tokens=NEW_TOKENS, do_sample=False, num_beams=1, pad_token_id=pad_id)
    seqs = out.sequences if hasattr(out, "sequences") else out
    return {"padding_side": "left", "pad_token_id": pad_id, "input_ids": ids, "attention_mask": mask,
            "greedy_ids": [r[L:] for r in seqs.tolist()]}


def to_legacy_config(path: Path, spec):
    """Rewrite config.json the way pre-v5 checkpoints on the Hub spell it (rope_theta + rope_scaling,
    torch_dtype), which is what most real checkpoints have."""
    cfg = json.loads((path / "config.json").read_text())
    cfg.pop("rope_parameters", None)
    cfg["rope_theta"] = spec["theta"]
    cfg["rope_scaling"] = dict(spec["rope"]) if spec["rope"] else None
    if "dtype" in cfg:
        cfg["torch_dtype"] = cfg.pop("dtype")
    (path / "config.json").write_text(json.dumps(cfg, indent=2, sort_keys=True) + "\n")


def rope_view(cfg):
    return {k: getattr(cfg, k, None) for k in ("rope_parameters", "rope_scaling", "rope_theta")
            if getattr(cfg, k, None) is not None}


# --------------------------------------------------------------------------- MoE expert layouts
# Transformers 5 holds the experts of a layer fused: <layer>.mlp.experts.gate_up_proj [E, 2I, H] (rows
# 0..I-1 the gate projection, I..2I-1 the up projection) and <layer>.mlp.experts.down_proj [E, H, I],
# router <layer>.mlp.gate.weight [E, H]. Checkpoints on the Hub name every expert separately; the
# loader fuses them (conversion_mapping.py) and save_pretrained splits them again by default
# (save_original_format=True).
PER_EXPERT_NAMES = {  # arch -> (MoE module name on disk, gate, up, down)
    "mixtral": ("block_sparse_moe", "w1", "w3", "w2"),
    "qwen2_moe": ("mlp", "gate_proj", "up_proj", "down_proj"),
    "qwen3_moe": ("mlp", "gate_proj", "up_proj", "down_proj"),
}
FUSED_EXPERT_RE = re.compile(r"^(.*)\.mlp\.experts\.(gate_up_proj|down_proj)$")


def safetensors_keys(d: Path):
    keys = []
    for f in sorted(d.glob("*.safetensors")):
        with safe_open(str(f), framework="pt") as fh:
            keys += list(fh.keys())
    return sorted(keys)


def experts_layout(keys):
    if any(k.endswith(".experts.gate_up_proj") or k.endswith(".experts.down_proj") for k in keys):
        return "fused"
    if any(re.search(r"\.experts\.\d+\.", k) for k in keys):
        return "per_expert"
    return "unknown"


def fused_state_dict(model):
    """The in-memory state dict (Transformers 5 names, experts fused), as plain contiguous tensors."""
    sd = {k: v.detach().contiguous().clone() for k, v in model.state_dict().items()}
    if getattr(model.config, "tie_word_embeddings", False):
        sd.pop("lm_head.weight", None)  # tied: save_pretrained keeps only the embedding too
    return sd


def per_expert_state_dict(sd, arch):
    """Split the fused experts of `sd` into the per-expert names of the original checkpoints."""
    module, gate, up, down = PER_EXPERT_NAMES[arch]
    out = {}
    for k, v in sd.items():
        m = FUSED_EXPERT_RE.match(k)
        if m:
            prefix, which = m.groups()
            assert v.dim() == 3, f"{k}: expected [experts, out, in], got {tuple(v.shape)}"
            base = f"{prefix}.{module}.experts"
            for e in range(v.shape[0]):
                if which == "gate_up_proj":
                    inter = v.shape[1] // 2
                    out[f"{base}.{e}.{gate}.weight"] = v[e, :inter].contiguous().clone()
                    out[f"{base}.{e}.{up}.weight"] = v[e, inter:].contiguous().clone()
                else:
                    out[f"{base}.{e}.{down}.weight"] = v[e].contiguous().clone()
        elif module != "mlp" and k.endswith(".mlp.gate.weight"):  # Mixtral router: block_sparse_moe.gate
            out[k[:-len(".mlp.gate.weight")] + f".{module}.gate.weight"] = v
        else:
            out[k] = v
    return out


def write_experts_copy(spec, model, d: Path, main_layout: str):
    """models/<name>-fused/ (or -per-expert/): the checkpoint's config, generation config and tokenizer
    files, and one model.safetensors holding the same weights with the experts in the other layout."""
    if main_layout == "per_expert":
        layout, suffix = "fused", "-fused"
        sd = fused_state_dict(model)
    elif main_layout == "fused":
        layout, suffix = "per_expert", "-per-expert"
        sd = per_expert_state_dict(fused_state_dict(model), spec["arch"])
    else:
        raise RuntimeError(f"{spec['name']}: cannot tell how save_pretrained stored the experts")
    d2 = d.parent / (spec["name"] + suffix)
    if d2.exists():
        shutil.rmtree(d2)
    d2.mkdir(parents=True)
    for f in ("config.json", "generation_config.json", "tokenizer.json", "tokenizer_config.json"):
        if (d / f).exists():
            shutil.copyfile(d / f, d2 / f)
    save_file(sd, str(d2 / "model.safetensors"), metadata={"format": "pt"})
    got = experts_layout(safetensors_keys(d2))
    assert got == layout, f"{d2.name}: wrote the experts as {got}, meant {layout}"
    return d2, layout


@torch.no_grad()
def last_logits_list(model, ids_list):
    return [model(torch.tensor([ids])).logits[0, -1] for ids in ids_list]


@torch.no_grad()
def expert_usage(model, ids, top_k):
    """How many tokens of `ids` each expert receives, per MoE layer (from output_router_logits:
    Mixtral returns logits, Qwen the softmax of them; top-k picks the same experts from either)."""
    out = model(torch.tensor([ids]), output_router_logits=True, use_cache=False)
    usage = []
    for lg in getattr(out, "router_logits", None) or ():
        lg = lg.float().reshape(-1, lg.shape[-1])
        idx = torch.topk(lg, top_k, dim=-1).indices.reshape(-1)
        usage.append(torch.bincount(idx, minlength=lg.shape[-1]).tolist())
    return usage


def seed_of(name, root: Path):
    if name in CHOSEN_SEEDS:
        return CHOSEN_SEEDS[name]
    ref = root / "models" / name / "reference.json"  # --only-models: the model was built by an earlier run
    if ref.exists():
        return json.loads(ref.read_text())["seed"]
    raise KeyError(f"no seed known for {name}: build it first (or in the same run)")


def build_model(spec, root: Path, toks):
    name = spec["name"]
    d = root / "models" / name
    if d.exists():
        shutil.rmtree(d)
    for other in (root / "models" / (name + "-fused"), root / "models" / (name + "-per-expert")):
        if other.exists():  # the MoE copy of an earlier run
            shutil.rmtree(other)
    d.mkdir(parents=True)
    tdir = root / "tokenizers" / spec["tokenizer"]
    for f in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copyfile(tdir / f, d / f)
    tok = AutoTokenizer.from_pretrained(str(d))
    bos = tok.bos_token_id
    eos = tok.eos_token_id
    ccls = config_class(spec["arch"])
    cfg = ccls(vocab_size=len(tok), bos_token_id=bos, eos_token_id=eos, hidden_act="silu",
               initializer_range=WEIGHT_STD, **spec["cfg"], **rope_kwargs(ccls, spec["theta"], spec["rope"]))
    dtype = DTYPES[spec["dtype"]]
    prompts = prompt_texts(tok)
    ids_list = [tok(t)["input_ids"] for t in prompts]
    pad_id = tok.pad_token_id if tok.pad_token_id is not None else eos
    if "same_seed_as" in spec:
        seed, search = seed_of(spec["same_seed_as"], root), None
    else:
        seed, search = choose_seed(spec, cfg, dtype, ids_list, pad_id)
    CHOSEN_SEEDS[name] = seed
    model = make_model(spec, cfg, seed).to(dtype)
    try:
        model.config.dtype = dtype
    except Exception:
        model.config.torch_dtype = dtype
    model.generation_config = GenerationConfig(bos_token_id=bos, eos_token_id=eos,
                                               pad_token_id=tok.pad_token_id)
    kw = {"max_shard_size": spec["max_shard_size"]} if "max_shard_size" in spec else {}
    model.save_pretrained(str(d), **kw)
    native_rope = rope_view(AutoConfig.from_pretrained(str(d)))

    if spec["legacy_config"]:
        m = load(d, torch.float32)
        with torch.no_grad():
            before = [m(torch.tensor([ids])).logits[0, -1] for ids in ids_list]
        to_legacy_config(d, spec)
        legacy_rope = rope_view(AutoConfig.from_pretrained(str(d)))
        m = load(d, torch.float32)
        with torch.no_grad():
            after = [m(torch.tensor([ids])).logits[0, -1] for ids in ids_list]
        diff = max(float((x - y).abs().max()) for x, y in zip(before, after))
        log(f"  [{name}] config.json rewritten to rope_theta/rope_scaling: loaded rope {legacy_rope} "
            f"(native save: {native_rope}); max logit change {diff}")
        if diff != 0.0:
            note(f"{name}: the legacy rope_scaling config.json gives different logits ({diff}) than the v5 one")

    runs = [("", dtype)] + ([("_f32", torch.float32)] if dtype != torch.float32 else [])
    moe = {}
    if is_moe(spec):
        keys = safetensors_keys(d)
        layout = experts_layout(keys)
        log(f"  [{name}] save_pretrained stored the experts {layout}: "
            f"{[k for k in keys if k.startswith('model.layers.0.') and 'experts' in k][:8]} ...")
        d2, layout2 = write_experts_copy(spec, model, d, layout)
        for suffix, rdtype in runs:  # the copy must load to the very same model
            a = last_logits_list(load(d, rdtype), ids_list)
            b = last_logits_list(load(d2, rdtype), ids_list)
            same = [bool(torch.equal(x, y)) for x, y in zip(a, b)]
            worst = max(float((x.float() - y.float()).abs().max()) for x, y in zip(a, b))
            log(f"  [{name}{suffix}] {d2.name} ({layout2}) gives bit-identical last logits: {same} (max |diff| {worst})")
            assert all(same), f"{name}: {d2.name} loads to different last logits ({rdtype}): max |diff| {worst}"
        moe = {"experts_on_disk": layout,
               "expert_keys_layer0": [k for k in keys if k.startswith("model.layers.0.")
                                      and ("experts" in k or k.endswith(".gate.weight") or "shared_expert" in k)],
               "experts_copy": {"dir": d2.name, "experts_on_disk": layout2, "last_logits_identical": True,
                                "compared_dtypes": [str(r).replace("torch.", "") for _, r in runs]}}

    ref = {"model": name, "model_class": model_class(spec["arch"]).__name__, "tokenizer": spec["tokenizer"],
           "dtype": spec["dtype"], "device": "cpu", "attn_implementation": "eager", "max_new_tokens": NEW_TOKENS,
           "seed": seed, "seed_search": search, "init": f"normal std {WEIGHT_STD} (linear), {embed_std_for(spec)} (embeddings/lm_head), "
                                         f"{BIAS_STD} (biases); norm weights 1 + 0.1*N(0,1)"
                                         + (f"; MoE routers (mlp.gate.weight) {ROUTER_STD}, experts (3-D gate_up_proj/"
                                            f"down_proj) and shared_expert_gate {WEIGHT_STD}" if is_moe(spec) else ""),
           "transformers_version": transformers.__version__, "torch_version": torch.__version__,
           "rope_as_loaded": json.loads(json.dumps(rope_view(AutoConfig.from_pretrained(str(d))), default=str)),
           "prompts": []}
    ref.update(moe)
    for suffix, rdtype in runs:
        m = load(d, rdtype)
        if is_moe(spec):
            ref["experts_implementation" + suffix] = getattr(m.config, "_experts_implementation", None)
        for i, (text, ids) in enumerate(zip(prompts, ids_list)):
            new, margins, nocache, last = run_prompt(m, ids, pad_id)
            if suffix == "":
                ref["prompts"].append({"text": text, "add_special_tokens": True, "prompt_ids": ids})
            p = ref["prompts"][i]
            p["greedy_ids" + suffix] = new
            p["greedy_margins" + suffix] = [round(x, 6) for x in margins]
            p["last_logits" + suffix] = last
            if nocache != new:
                p["greedy_ids_nocache" + suffix] = nocache
                note(f"{name} prompt {i} ({rdtype}): generate() and a plain argmax loop without cache differ")
            log(f"  [{name}{suffix}] prompt {i}: {len(ids)} tokens -> {new} "
                f"(unique {len(set(new))}, min margin {min(margins):.4f})")
        try:
            b = run_batch(m, ids_list, pad_id)
            b["matches_unbatched"] = [b["greedy_ids"][i] == ref["prompts"][i]["greedy_ids" + suffix]
                                      for i in range(len(ids_list))]
            ref["batch" + suffix] = b
            log(f"  [{name}{suffix}] left-padded batch matches single runs: {b['matches_unbatched']}")
        except Exception as e:  # pragma: no cover - recorded, not hidden
            note(f"{name}: batched generate failed: {e!r}")
        if is_moe(spec):
            try:
                ref["expert_usage" + suffix] = expert_usage(m, ids_list[-1], spec["cfg"]["num_experts_per_tok"])
                log(f"  [{name}{suffix}] tokens per expert, longest prompt, per MoE layer: {ref['expert_usage' + suffix]}")
            except Exception as e:  # pragma: no cover - recorded, not hidden
                note(f"{name}: output_router_logits failed: {e!r}")
            try:  # how far the default experts implementation is from the plain per-expert loop
                me = load(d, rdtype, experts_implementation="eager")
                x, y = last_logits_list(m, ids_list), last_logits_list(me, ids_list)
                chk = {"experts_implementation": getattr(me.config, "_experts_implementation", None),
                       "identical": [bool(torch.equal(a, b)) for a, b in zip(x, y)],
                       "max_abs_diff": max(float((a.float() - b.float()).abs().max()) for a, b in zip(x, y))}
                ref["experts_eager_check" + suffix] = chk
                log(f"  [{name}{suffix}] last logits, {ref['experts_implementation' + suffix]} vs eager experts: {chk}")
            except Exception as e:  # pragma: no cover - recorded, not hidden
                note(f"{name}: loading with experts_implementation='eager' failed: {e!r}")
    (d / "reference.json").write_text(json.dumps(ref) + "\n")
    files = sorted(f.name for f in d.iterdir())
    shards = [f for f in files if f.endswith(".safetensors")]
    if "max_shard_size" in spec:
        assert "model.safetensors.index.json" in files and len(shards) >= 3, f"{name}: shards {files}"
    size = sum(f.stat().st_size for f in d.iterdir())
    log(f"  [{name}] {len(tok)} vocab, {sum(p.numel() for p in model.parameters())} params, files {files}, {size} bytes")
    return ref


# =========================================================================== README
README = """# Reference fixtures

Made by `scripts/reference/make_fixtures.py` with Hugging Face Transformers; do not edit by hand.
Regenerate (on a machine with torch, transformers and tokenizers; CPU is enough):

```sh
scripts/reference/export_kjv.sh            # KJV lines for the tokenizer corpus (optional)
python3 scripts/reference/make_fixtures.py --kjv .device-carry/kjv.txt --out tests/fixtures
```

(`scripts/reference/run_on_device.sh` runs this together with the default model's training.)
`--only-models NAME[,NAME...]` rebuilds just those models with the tokenizers already here (the
tokenizer fixtures, the other models and their rows below stay as they are).

Versions used: {versions}.

## tokenizers/<name>/

`tokenizer.json`, `tokenizer_config.json` (always `"tokenizer_class": "PreTrainedTokenizerFast"`, so
Transformers 5 uses tokenizer.json as it is) and `expected.json`:

```
{{"tokenizer", "description", "transformers_version", "tokenizers_version", "tokenizer_class_loaded",
 "vocab_size", "bos_token_id", "eos_token_id", "unk_token_id", "pad_token_id", "all_special_ids",
 "added_tokens": {{id: {{content, special, lstrip, rstrip, normalized, single_word}}}},
 "raw_tokenizers_mismatches": [{{case, field, transformers, tokenizers}}],   // where Transformers != tokenizers
 "cases": [{{"text",
            "ids",                  // tokenizer(text)["input_ids"]
            "ids_no_special",       // tokenizer(text, add_special_tokens=False)["input_ids"]
            "decoded",              // tokenizer.decode(ids_no_special)
            "decoded_skip_special", // tokenizer.decode(ids, skip_special_tokens=True)
            "raw_ids",              // tokenizers.Tokenizer.from_file("tokenizer.json").encode(text).ids
            "tokens",               // tokenizer.convert_ids_to_tokens(ids)
            "roundtrip"}}]}}         // decoded == text
```

Strings are JSON with `\\u` escapes only (ASCII files), so NFC/NFD forms survive editors.
The `tokenizers` BPE trainer is not bit-for-bit deterministic (ties between equally frequent
pairs), so a rerun can produce slightly different vocabularies: regenerate tokenizers, models and
expectations together, never one without the others.
Every tokenizer is a tiny BPE trained with `tokenizers` on KJV lines plus multilingual lines
written in the script, and has these added tokens after its own specials: `<|im_start|>`,
`<|im_end|>` (special), `<mask>` (special, lstrip), `<think>` (not special), `</think>`
(not special, rstrip), `shardlm` (not special, normalized).

{tokenizer_table}

## models/<name>/

Random-weight checkpoints (config.json, safetensors, generation_config.json, the tokenizer files of
the tokenizer named below, whose vocabulary size equals the model's) and `reference.json`:

```
{{"model", "model_class", "tokenizer", "dtype", "device": "cpu", "attn_implementation": "eager",
 "max_new_tokens": 24, "seed", "seed_search", "init", "transformers_version", "torch_version",
 "rope_as_loaded",                  // rope settings as Transformers parsed config.json
 "prompts": [{{"text", "add_special_tokens": true,
              "prompt_ids",          // tokenizer(text)["input_ids"]
              "greedy_ids",          // 24 new tokens: generate(do_sample=False, min_new_tokens=24, max_new_tokens=24)
              "greedy_margins",      // top1 - top2 logit at each generated step (near 0 = near tie)
              "last_logits",         // f32 list, full vocab: logits at the last prompt position
              "greedy_ids_f32", "greedy_margins_f32", "last_logits_f32"   // bf16/f16 checkpoints only:
                                     // the same weights upcast to float32 (model.float()) and run in f32
              "greedy_ids_nocache"   // only if an argmax loop without KV cache disagreed with generate()
            }}],
 "batch": {{"padding_side": "left", "pad_token_id", "input_ids", "attention_mask",
           "greedy_ids",             // the 3 prompts as one left-padded batch, 24 new tokens each
           "matches_unbatched"}},
 "batch_f32": ...}}                  // bf16/f16 checkpoints only
```

Mixture-of-experts models (Mixtral, Qwen2-MoE, Qwen3-MoE) have these fields too:

```
{{"experts_on_disk": "per_expert" | "fused",  // how this directory's safetensors store the experts
 "expert_keys_layer0",              // the layer-0 router/expert/shared-expert tensor names in it
 "experts_copy": {{"dir", "experts_on_disk", "last_logits_identical": true, "compared_dtypes"}},
                                    // models/<dir>/: the same weights, experts stored the other way
 "experts_implementation",          // config._experts_implementation of the runs (Transformers' default)
 "experts_eager_check": {{"experts_implementation": "eager", "identical", "max_abs_diff"}},
                                    // last logits of each prompt, default experts code vs eager loop
 "expert_usage",                    // tokens per expert in each MoE layer for the longest prompt
 "experts_implementation_f32", "experts_eager_check_f32", "expert_usage_f32"}}   // bf16 only
```

Transformers 5 holds the experts of a layer fused: `model.layers.N.mlp.experts.gate_up_proj`
[experts, 2·I, hidden] (rows 0..I-1 the gate projection, I..2I-1 the up projection),
`model.layers.N.mlp.experts.down_proj` [experts, hidden, I] and the router
`model.layers.N.mlp.gate.weight` [experts, hidden]; an expert computes
`down_proj[e] · (silu(gate_up_proj[e][:I] · x) * (gate_up_proj[e][I:] · x))`. Checkpoints on the
Hub name every expert: Mixtral `model.layers.N.block_sparse_moe.gate.weight` and
`block_sparse_moe.experts.K.{{w1,w3,w2}}.weight` (gate, up, down), Qwen `mlp.gate.weight` and
`mlp.experts.K.{{gate_proj,up_proj,down_proj}}.weight`. Qwen2-MoE adds a shared expert
(`mlp.shared_expert.{{gate,up,down}}_proj.weight`) scaled by `sigmoid(mlp.shared_expert_gate.weight · x)`
([1, hidden]); a Qwen layer listed in `mlp_only_layers` (or off the `decoder_sparse_step`) has a
plain MLP of `intermediate_size`. `save_pretrained` writes one layout (`experts_on_disk`), and the
script writes the other with `safetensors.torch.save_file` into `models/<name>-fused/` (Transformers
5's in-memory names) or `models/<name>-per-expert/`. That directory has config.json,
generation_config.json, the tokenizer files and one model.safetensors, and no reference.json: its
outputs are those of `<name>`. The script asserts that both load to bit-identical last logits.
Router weights are initialised with std 0.5 so that tokens choose different experts.

Prompts: one single-token prompt (just BOS where the tokenizer adds one), one of about 20 and one
of about 60 tokens. min_new_tokens=24 only masks EOS; `greedy_ids_nocache` would show if that changed
anything. All runs on CPU with eager attention; f32 checkpoints in f32, bf16/f16 ones natively and in f32.
Init: normal, std 0.1 for linear weights, 0.25 for embeddings/lm_head (0.04 when tied: a large
tied embedding makes every token predict itself), 0.1 for biases; norm weights are 1 + 0.1·N(0,1)
and q/k/v biases random so that mistakes show. Random models
easily fall into repeating one token or have near-ties, so each model's seed is the first (from a
fixed start) whose f32 greedy continuations have at least 8 distinct tokens per prompt and top-2
margins of at least 2e-3 (`seed_search` in reference.json records the tries); `greedy_margins`
tells how safe each step of a comparison is.

{model_table}

## Behaviour seen with transformers 5.17.0 / tokenizers 0.23.2

- `"tokenizer_class": "PreTrainedTokenizerFast"` loads as `TokenizersBackend`; saving writes
  `"tokenizer_class": "TokenizersBackend"` and `"backend": "tokenizers"` (and no
  `added_tokens_decoder`); the script rewrites the class name to `PreTrainedTokenizerFast`.
- For this class `add_bos_token` / `add_eos_token` in tokenizer_config.json change nothing:
  tokenizer.json's post_processor alone decides. `llama2-sentencepiece-nobos` still adds `<s>`,
  `-eos` adds no `</s>`, and `-nopp` (post_processor null, both flags true) adds neither.
  (Model-specific classes such as `LlamaTokenizer` are not covered here.)
- `clean_up_tokenization_spaces: true` is ignored for BPE models (a warning says so): decode
  equals the raw `tokenizers` decode for `gpt2-bytelevel` too.
- Transformers and raw `tokenizers` agree on every case (`raw_tokenizers_mismatches` is empty).
- Normalizers run on each piece between added tokens separately: with Llama-2's
  Prepend("▁") every such piece gets its own "▁" (`"a <mask> b"` → `▁a <mask> ▁ ▁b`,
  `"<|im_end|>\\n"` → `<|im_end|> ▁ \\n`), whereas Metaspace `prepend_scheme: first` only
  prefixes the piece at the start of the text.
- A non-special added token with `normalized: true` is itself normalized: in the Llama-2 style
  tokenizer `shardlm` becomes `▁shardlm` (that is what `convert_ids_to_tokens` returns) and only
  matches after a space or at the start of the text (`"shardlmshardlm"` → `▁shardlm s ha r d l m`).
- lstrip/rstrip eat all whitespace next to the token, newlines included (`</think>\\n\\nanswer`
  decodes to `</think>answer`).
- The legacy config.json layout (`rope_theta` + `rope_scaling`, `torch_dtype`) and the v5 one
  (`rope_parameters`, `dtype`) load to the same rope settings and bit-identical logits.
- Left-padded batched greedy decoding matched the single-prompt runs for every model.

## Notes from the last run

{notes}
"""


def current_versions():
    return (f"torch {torch.__version__}, transformers {transformers.__version__}, "
            f"tokenizers {tokenizers.__version__}, python {sys.version.split()[0]}")


def write_readme(root: Path, tok_desc: dict, model_rows: list, versions=None, tok_rows=None, notes=None):
    if versions is None:
        versions = current_versions()
    if tok_rows is None:
        tok_rows = [f"| `{n}` | {v} | {d} |" for n, (v, d) in tok_desc.items()]
    tt = "| tokenizer | vocab | what |\n| --- | --- | --- |\n" + "\n".join(tok_rows)
    mt = "| model | class | dtype | tokenizer | config |\n| --- | --- | --- | --- | --- |\n" + "\n".join(model_rows)
    notes = "\n".join(f"- {n}" for n in (NOTES if notes is None else notes)) or "- none"
    (root / "README.md").write_text(README.format(versions=versions, tokenizer_table=tt, model_table=mt,
                                                  notes=notes), encoding="utf-8")


def parse_readme(path: Path):
    """The generated parts of an existing README.md: versions line, table rows, notes (for --only-models)."""
    if not path.exists():
        return None
    out = {"versions": None, "tok_rows": [], "model_rows": {}, "notes": []}
    section = None
    for line in path.read_text(encoding="utf-8").splitlines():
        if line.startswith("Versions used: "):
            out["versions"] = line[len("Versions used: "):].rstrip().rstrip(".")
        elif line.startswith("| tokenizer | vocab | what |"):
            section = "tok"
        elif line.startswith("| model | class | dtype | tokenizer | config |"):
            section = "model"
        elif line.startswith("## Notes from the last run"):
            section = "notes"
        elif section in ("tok", "model"):
            if line.startswith("| `"):
                if section == "tok":
                    out["tok_rows"].append(line)
                else:
                    out["model_rows"][line.split("`")[1]] = line
            elif not line.startswith("| ---"):
                section = None
        elif section == "notes" and line.startswith("- ") and line != "- none":
            out["notes"].append(line[2:])
    return out


MOE_SUMMARY_KEYS = ("intermediate_size", "num_local_experts", "num_experts", "num_experts_per_tok",
                    "moe_intermediate_size", "shared_expert_intermediate_size", "norm_topk_prob",
                    "decoder_sparse_step", "mlp_only_layers", "qkv_bias", "attention_bias")


def model_row(spec, root: Path, ref: dict):
    c = json.loads((root / "models" / spec["name"] / "config.json").read_text())
    keys = ("hidden_size", "num_hidden_layers", "num_attention_heads", "num_key_value_heads", "head_dim",
            "tie_word_embeddings", "sliding_window", "rope_theta", "rope_scaling", "rope_parameters")
    if is_moe(spec):
        keys += MOE_SUMMARY_KEYS
    summary = ", ".join(f"{k}={json.dumps(c[k])}" for k in keys if k in c and c[k] is not None)
    layout = "legacy rope_theta/rope_scaling config.json" if spec["legacy_config"] else "config.json as Transformers 5 saves it"
    extra = ""
    if "max_shard_size" in spec:
        extra += "; sharded (model.safetensors.index.json), same weights as llama-gqa-llama3rope-f32"
    if is_moe(spec) and "experts_copy" in ref:
        extra += (f"; experts on disk {ref['experts_on_disk'].replace('_', '-')}, the same weights with the experts "
                  f"{ref['experts_copy']['experts_on_disk'].replace('_', '-')} in `{ref['experts_copy']['dir']}`")
    return (f"| `{spec['name']}` | {model_class(spec['arch']).__name__} | {spec['dtype']} | "
            f"`{spec['tokenizer']}` | {summary}; {layout}{extra} |")


TOKENIZER_ORDER = ("gpt2-bytelevel", "llama3-bytelevel", "qwen2-bytelevel-nfc", "llama2-sentencepiece",
                   "mistral-metaspace", "llama2-sentencepiece-nobos", "llama2-sentencepiece-eos",
                   "llama2-sentencepiece-nopp")  # build_tokenizers' order


def existing_tokenizers(root: Path):
    have = {p.name for p in (root / "tokenizers").iterdir()
            if (p / "tokenizer.json").exists() and (p / "expected.json").exists()}
    return [n for n in TOKENIZER_ORDER if n in have] + sorted(have - set(TOKENIZER_ORDER))


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--kjv", default=".device-carry/kjv.txt")
    ap.add_argument("--out", default="tests/fixtures")
    ap.add_argument("--threads", type=int, default=4)
    ap.add_argument("--only", default="", help="comma-separated subset: tokenizers,models")
    ap.add_argument("--only-models", default="", metavar="NAME[,NAME...]",
                    help="build only these models, with the tokenizers already in <out>/tokenizers (no tokenizer "
                         "training, tokenizer fixtures untouched); other models and README rows are kept")
    args = ap.parse_args()
    only_models = [n.strip() for n in args.only_models.split(",") if n.strip()]
    known = [spec["name"] for spec in MODELS]
    unknown = [n for n in only_models if n not in known]
    if unknown:
        ap.error(f"--only-models: unknown model(s) {unknown}; known: {known}")
    torch.set_num_threads(args.threads)
    root = Path(args.out)
    (root / "tokenizers").mkdir(parents=True, exist_ok=True)
    (root / "models").mkdir(parents=True, exist_ok=True)
    log(f"torch {torch.__version__}, transformers {transformers.__version__}, tokenizers {tokenizers.__version__}")
    t0 = time.time()
    if only_models:
        specs = [spec for spec in MODELS if spec["name"] in only_models]
        have = existing_tokenizers(root)
        missing = sorted({spec["tokenizer"] for spec in specs} - set(have))
        if missing:
            ap.error(f"--only-models: tokenizer fixture(s) {missing} not in {root / 'tokenizers'}; "
                     "run once without --only-models first")
        toks = {}
        tok_names = have
        log(f"--only-models {only_models}: reusing the tokenizers in {root / 'tokenizers'}")
    else:
        specs = MODELS
        toks = build_tokenizers(root, Path(args.kjv))
        tok_names = list(toks)
    tok_desc = {}
    for n in tok_names:
        e = json.loads((root / "tokenizers" / n / "expected.json").read_text())
        tok_desc[n] = (e["vocab_size"], e["description"])
    log(f"tokenizers done in {time.time() - t0:.1f}s")
    rows = {}
    for spec in specs:
        t1 = time.time()
        try:
            ref = build_model(spec, root, toks)
        except Exception as e:
            import traceback
            traceback.print_exc()
            note(f"{spec['name']}: FAILED: {e!r}")
            continue
        rows[spec["name"]] = model_row(spec, root, ref)
        log(f"  [{spec['name']}] done in {time.time() - t1:.1f}s")
    if not only_models:
        write_readme(root, tok_desc, list(rows.values()))
    else:  # keep everything of the last README but the rows and notes of the models rebuilt now
        old = parse_readme(root / "README.md") or {}
        old_rows = old.get("model_rows", {})
        merged = [rows[n] if n in rows else old_rows[n] for n in known
                  if n in rows or (n in old_rows and n not in only_models)]  # a failed rebuild has no row
        merged += [r for n, r in old_rows.items() if n not in known]
        notes = [x for x in old.get("notes", [])
                 if not any(x.startswith(n + ":") or x.startswith(n + " ") for n in only_models)] + NOTES
        versions = old.get("versions")
        if versions:
            base = versions.split("; models ")[0]
            if base != current_versions():
                versions = f"{base}; models {', '.join(only_models)} built with {current_versions()}"
            else:
                versions = base
        write_readme(root, tok_desc, merged, versions=versions, tok_rows=old.get("tok_rows") or None, notes=notes)
    total = sum(f.stat().st_size for f in root.rglob("*") if f.is_file())
    log(f"fixtures written to {root}: {total} bytes in total, {time.time() - t0:.0f}s")
    log("NOTES:\n" + "\n".join(NOTES))


if __name__ == "__main__":
    main()
