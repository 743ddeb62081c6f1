#!/usr/bin/env python3
"""Train shardlm's default model: a small LlamaForCausalLM on the King James Bible.

Input : the clean KJV text written by scripts/reference/export_kjv.sh
        (one chapter heading or verse per line; public domain).
Output: a Hugging Face checkpoint directory (default models/kjv-llama/) with
        config.json, model.safetensors (bf16), generation_config.json,
        tokenizer.json, tokenizer_config.json, reference.json (greedy outputs
        and last-position logits computed by Transformers on CPU),
        training.json (hyper-parameters, loss curve) and README.md.

Runs on one CUDA GPU (a few minutes on an H100); `--smoke` runs a tiny
configuration for a few steps to check that everything works.

    python3 scripts/reference/train_default_model.py --data .device-carry/kjv.txt --out models/kjv-llama
"""
from __future__ import annotations

import argparse
import json
import math
import os
import random
import re
import sys
import time
from pathlib import Path

import torch
import torch.nn.functional as F

import tokenizers
import transformers
from tokenizers import AddedToken, Regex, Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import (AutoModelForCausalLM, AutoTokenizer, GenerationConfig, LlamaConfig,
                          LlamaForCausalLM, PreTrainedTokenizerFast)

# The Llama-3 pre-tokenizer regex (as found in Meta-Llama-3 tokenizer.json).
LLAMA3_PATTERN = (r"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}"
                  r"| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+")
BOS = "<|begin_of_text|>"
EOS = "<|end_of_text|>"
HEADING = re.compile(r"^(?:[1-3] )?[A-Z][A-Za-z]+(?: [A-Za-z]+)* \d+$")
PROMPTS = ["In the beginning", "And Jesus said unto them", "The LORD is my shepherd"]
SAMPLE_NEW_TOKENS = 48


def log(*a):
    print(*a, flush=True)


def parse_args():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=".device-carry/kjv.txt")
    p.add_argument("--out", default="models/kjv-llama")
    p.add_argument("--vocab-size", type=int, default=4096, help="total vocabulary incl. the 2 special tokens")
    p.add_argument("--hidden", type=int, default=384)
    p.add_argument("--layers", type=int, default=6)
    p.add_argument("--heads", type=int, default=6)
    p.add_argument("--kv-heads", type=int, default=2)
    p.add_argument("--intermediate", type=int, default=896)
    p.add_argument("--max-pos", type=int, default=1024)
    p.add_argument("--seq-len", type=int, default=512, help="training window incl. the BOS token")
    p.add_argument("--batch", type=int, default=32)
    p.add_argument("--lr", type=float, default=1.5e-3)
    p.add_argument("--min-lr-frac", type=float, default=0.1)
    p.add_argument("--warmup", type=int, default=200)
    p.add_argument("--max-steps", type=int, default=800)
    p.add_argument("--max-seconds", type=float, default=150.0, help="wall-clock budget of each training run")
    p.add_argument("--eval-every", type=int, default=100)
    p.add_argument("--dropout", type=float, default=0.15, help="residual/embedding dropout while training")
    p.add_argument("--weight-decay", type=float, default=0.1)
    p.add_argument("--seed", type=int, default=1234)
    p.add_argument("--no-sweep", dest="sweep", action="store_false",
                   help="train only the configuration given by the flags (default: also try 3 others, keep the best)")
    p.add_argument("--smoke", action="store_true", help="tiny model, few steps: checks the pipeline")
    a = p.parse_args()
    if a.smoke:
        a.vocab_size, a.hidden, a.layers, a.heads, a.kv_heads, a.intermediate = 1024, 64, 2, 4, 2, 128
        a.max_steps, a.max_seconds, a.eval_every, a.warmup, a.batch, a.seq_len = 40, 30, 20, 5, 8, 128
    return a


# --------------------------------------------------------------------------- data
def read_chapters(path: Path):
    chapters = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if HEADING.match(line):
            chapters.append([line])
        elif line:
            if not chapters:
                chapters.append([])
            chapters[-1].append(line)
    return chapters


# --------------------------------------------------------------------------- tokenizer
def train_tokenizer(lines, vocab_size):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.Split(Regex(LLAMA3_PATTERN), behavior="isolated", invert=False),
        pre_tokenizers.ByteLevel(add_prefix_space=False, trim_offsets=True, use_regex=False),
    ])
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=vocab_size - 2, min_frequency=2, show_progress=False,
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), special_tokens=[])
    tok.train_from_iterator(lines, trainer=trainer)
    # Llama-3 tokenizers set ignore_merges (a pre-token that is a whole vocab entry maps to it directly).
    j = json.loads(tok.to_str())
    j["model"]["ignore_merges"] = True
    tok = Tokenizer.from_str(json.dumps(j))
    # Special tokens at the end of the vocabulary, as in Llama 3.
    tok.add_special_tokens([AddedToken(BOS, special=True, normalized=False),
                            AddedToken(EOS, special=True, normalized=False)])
    bos_id, eos_id = tok.token_to_id(BOS), tok.token_to_id(EOS)
    tok.post_processor = processors.Sequence([
        processors.ByteLevel(trim_offsets=False),
        processors.TemplateProcessing(single=f"{BOS} $A", pair=f"{BOS} $A {BOS}:1 $B:1",
                                      special_tokens=[(BOS, bos_id)]),
    ])
    return tok


def save_tokenizer(tok: Tokenizer, out: Path, max_len: int):
    hf = PreTrainedTokenizerFast(tokenizer_object=tok, bos_token=BOS, eos_token=EOS,
                                 clean_up_tokenization_spaces=False, model_max_length=max_len)
    hf.save_pretrained(str(out))
    for extra in ("special_tokens_map.json", "added_tokens.json"):
        if (out / extra).exists():
            (out / extra).unlink()
    cfg_path = out / "tokenizer_config.json"
    cfg = json.loads(cfg_path.read_text(encoding="utf-8"))
    log("tokenizer_config.json as saved by transformers:", json.dumps(cfg, ensure_ascii=False)[:600])
    cfg["tokenizer_class"] = "PreTrainedTokenizerFast"
    cfg["clean_up_tokenization_spaces"] = False
    cfg_path.write_text(json.dumps(cfg, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    # Check that Transformers, loading the files as they are, encodes exactly like the raw tokenizers
    # library (a saved add_bos_token key would make TokenizersBackend rebuild the template).
    probes = ["In the beginning", "And God said, Let there be light.\n", " two  spaces", "", "12345 don't"]
    for attempt in range(2):
        loaded = AutoTokenizer.from_pretrained(str(out))
        raw = Tokenizer.from_file(str(out / "tokenizer.json"))
        bad = [(s, loaded(s)["input_ids"], raw.encode(s).ids) for s in probes
               if loaded(s)["input_ids"] != raw.encode(s).ids]
        if not bad:
            break
        log("WARNING: Transformers and tokenizers disagree:", bad)
        if attempt == 0 and "add_bos_token" in cfg:
            log("  removing add_bos_token from tokenizer_config.json and retrying")
            cfg.pop("add_bos_token")
            cfg_path.write_text(json.dumps(cfg, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")
    log(f"tokenizer class on reload: {type(loaded).__name__}; len={len(loaded)}; "
        f"'In the beginning' -> {loaded('In the beginning')['input_ids']}")
    assert loaded("In the beginning")["input_ids"][0] == loaded.bos_token_id, "BOS is not prepended"
    return loaded


# --------------------------------------------------------------------------- model
def rope_kwargs(theta):
    import inspect
    if "rope_parameters" in inspect.signature(LlamaConfig.__init__).parameters:
        return {"rope_parameters": {"rope_type": "default", "rope_theta": theta}}
    return {"rope_theta": theta}


def add_dropout_hooks(model, p):
    def hook(_mod, _inp, out):
        if isinstance(out, tuple):
            return (F.dropout(out[0], p, training=_mod.training),) + tuple(out[1:])
        return F.dropout(out, p, training=_mod.training)
    handles = [model.model.embed_tokens.register_forward_hook(hook)]
    for layer in model.model.layers:
        handles.append(layer.self_attn.register_forward_hook(hook))
        handles.append(layer.mlp.register_forward_hook(hook))
    return handles


@torch.no_grad()
def evaluate(model, windows, bos_id, batch, device, autocast_dtype):
    """Mean next-token cross-entropy over `windows` (each a 1-D LongTensor, BOS prepended here)."""
    model.eval()
    total, count = 0.0, 0
    for i in range(0, len(windows), batch):
        chunk = windows[i:i + batch]
        L = max(len(w) for w in chunk) + 1
        x = torch.full((len(chunk), L), -100, dtype=torch.long)
        for r, w in enumerate(chunk):
            x[r, 0] = bos_id
            x[r, 1:len(w) + 1] = w
        x = x.to(device)
        inp = x[:, :-1].clamp(min=0)
        with torch.autocast(device_type=device.type, dtype=autocast_dtype, enabled=autocast_dtype is not None):
            logits = model(input_ids=inp).logits
        loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1),
                               ignore_index=-100, reduction="sum")
        total += loss.item()
        count += int((x[:, 1:] != -100).sum())
    model.train()
    return total / max(count, 1)


def make_windows(stream, L):
    return [stream[i:i + L] for i in range(0, len(stream) - 1, L) if len(stream[i:i + L]) > 1]


def greedy(model, ids, n, pad_id):
    inp = torch.tensor([ids])
    out = model.generate(input_ids=inp, attention_mask=torch.ones_like(inp), max_new_tokens=n,
                         min_new_tokens=n, do_sample=False, num_beams=1, pad_token_id=pad_id,
                         return_dict_in_generate=True, output_logits=True)
    return out.sequences[0, len(ids):].tolist()


# --------------------------------------------------------------------------- main
def main():
    a = parse_args()
    random.seed(a.seed)
    torch.manual_seed(a.seed)
    out = Path(a.out)
    out.mkdir(parents=True, exist_ok=True)
    for f in out.iterdir():
        if f.is_file():
            f.unlink()
    device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
    amp = torch.bfloat16 if device.type == "cuda" else None
    log(f"torch {torch.__version__}, transformers {transformers.__version__}, tokenizers {tokenizers.__version__}, "
        f"device {torch.cuda.get_device_name() if device.type == 'cuda' else 'cpu'}")

    chapters = read_chapters(Path(a.data))
    n_lines = sum(len(c) for c in chapters)
    log(f"corpus: {len(chapters)} chapters, {n_lines} lines")
    val_idx = {i for i in range(len(chapters)) if i % 100 == 50}
    log("held-out chapters:", ", ".join(chapters[i][0] for i in sorted(val_idx)))

    t0 = time.time()
    all_lines = [l + "\n" for c in chapters for l in c]
    tok = train_tokenizer(all_lines, a.vocab_size)
    hf_tok = save_tokenizer(tok, out, a.max_pos)
    bos_id, eos_id = hf_tok.bos_token_id, hf_tok.eos_token_id
    log(f"tokenizer trained in {time.time() - t0:.1f}s: vocab {len(hf_tok)}, bos {bos_id}, eos {eos_id}")

    def encode_chapters(idx):
        ids, starts = [], []
        for i in idx:
            enc = tok.encode_batch([l + "\n" for l in chapters[i]], add_special_tokens=False)
            for e in enc:
                starts.append(len(ids))
                ids.extend(e.ids)
        return torch.tensor(ids, dtype=torch.long), torch.tensor(starts, dtype=torch.long)

    train_ids, train_starts = encode_chapters([i for i in range(len(chapters)) if i not in val_idx])
    val_ids, _ = encode_chapters(sorted(val_idx))
    n_bytes = sum(len(l.encode()) for l in all_lines)
    log(f"tokens: train {len(train_ids)}, val {len(val_ids)} ({len(val_ids) / (len(train_ids) + len(val_ids)):.2%}); "
        f"{n_bytes / (len(train_ids) + len(val_ids)):.2f} bytes/token")

    cfg = LlamaConfig(vocab_size=len(hf_tok), hidden_size=a.hidden, intermediate_size=a.intermediate,
                      num_hidden_layers=a.layers, num_attention_heads=a.heads, num_key_value_heads=a.kv_heads,
                      head_dim=a.hidden // a.heads, max_position_embeddings=a.max_pos, rms_norm_eps=1e-5,
                      hidden_act="silu", tie_word_embeddings=False, attention_bias=False, mlp_bias=False,
                      bos_token_id=bos_id, eos_token_id=eos_id, initializer_range=0.02, **rope_kwargs(10000.0))

    T = a.seq_len - 1  # text tokens per window; BOS is prepended
    valid_starts = train_starts[train_starts + T <= len(train_ids)].to(device)
    train_gpu = train_ids.to(device)
    ar = torch.arange(T, device=device)
    bos_col = torch.full((a.batch, 1), bos_id, dtype=torch.long, device=device)
    val_windows = make_windows(val_ids, T)
    g = torch.Generator().manual_seed(a.seed + 1)
    probe = torch.randint(0, len(valid_starts), (len(val_windows),), generator=g)
    train_windows = [train_ids[int(s):int(s) + T] for s in valid_starts.cpu()[probe]]

    def get_batch():
        s = valid_starts[torch.randint(0, len(valid_starts), (a.batch,), device=device)]
        return torch.cat([bos_col, train_gpu[s[:, None] + ar]], dim=1)

    def train_run(h):
        """One training run with hyper-parameters h; returns its best (held-out) weights and curve."""
        torch.manual_seed(a.seed)
        model = LlamaForCausalLM(cfg).to(device)
        hooks = add_dropout_hooks(model, h["dropout"]) if h["dropout"] > 0 else []
        decay = [p for n, p in model.named_parameters() if p.dim() >= 2 and "embed" not in n]
        no_decay = [p for n, p in model.named_parameters() if not (p.dim() >= 2 and "embed" not in n)]
        opt = torch.optim.AdamW([{"params": decay, "weight_decay": h["weight_decay"]},
                                 {"params": no_decay, "weight_decay": 0.0}],
                                lr=h["lr"], betas=(0.9, 0.95), eps=1e-8, fused=device.type == "cuda")

        def lr_at(step, progress):
            if step < a.warmup:
                return h["lr"] * (step + 1) / a.warmup
            return h["lr"] * (a.min_lr_frac + (1 - a.min_lr_frac) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0))))

        curve, best = [], (float("inf"), -1, None)
        t_train = time.time()
        step, tokens_seen = 0, 0
        model.train()
        log(f"--- run {h}")
        while True:
            elapsed = time.time() - t_train
            progress = max(step / h["max_steps"], elapsed / a.max_seconds)
            last = progress >= 1.0
            if step % a.eval_every == 0 or last:
                vl = evaluate(model, val_windows, bos_id, 64, device, amp)
                tl = evaluate(model, train_windows, bos_id, 64, device, amp)
                curve.append({"step": step, "seconds": round(elapsed, 1), "tokens": tokens_seen,
                              "train_loss": round(tl, 4), "val_loss": round(vl, 4)})
                mark = ""
                if vl < best[0]:
                    best = (vl, step, {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()})
                    mark = " *"
                log(f"eval step {step:5d} {elapsed:6.1f}s  train {tl:.4f}  val {vl:.4f} (ppl {math.exp(vl):.2f}){mark}")
            if last:
                break
            lr = lr_at(step, progress)
            for grp in opt.param_groups:
                grp["lr"] = lr
            x = get_batch()
            with torch.autocast(device_type=device.type, dtype=amp, enabled=amp is not None):
                logits = model(input_ids=x[:, :-1]).logits
            loss = F.cross_entropy(logits.float().reshape(-1, logits.shape[-1]), x[:, 1:].reshape(-1))
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            opt.step()
            opt.zero_grad(set_to_none=True)
            step += 1
            tokens_seen += x[:, 1:].numel()
            if step % 200 == 0:
                log(f"step {step:5d} {time.time() - t_train:6.1f}s lr {lr:.2e} loss {loss.item():.4f}")
        secs = time.time() - t_train
        for hk in hooks:
            hk.remove()
        log(f"run done: {step} steps, {tokens_seen / 1e6:.1f}M tokens ({tokens_seen / len(train_ids):.1f} epochs) "
            f"in {secs:.0f}s; best val loss {best[0]:.4f} at step {best[1]}")
        del model, opt
        torch.cuda.empty_cache()
        return {"hparams": h, "best_val_loss": best[0], "best_step": best[1], "state": best[2], "curve": curve,
                "steps": step, "tokens_seen": tokens_seen, "epochs": round(tokens_seen / len(train_ids), 2),
                "seconds": round(secs, 1)}

    base = {"dropout": a.dropout, "weight_decay": a.weight_decay, "lr": a.lr, "max_steps": a.max_steps}
    candidates = [base] + ([] if a.smoke or not a.sweep else [
        {"dropout": 0.2, "weight_decay": 0.1, "lr": 1.5e-3, "max_steps": 1200},
        {"dropout": 0.3, "weight_decay": 0.1, "lr": 1.5e-3, "max_steps": 2000},
        {"dropout": 0.2, "weight_decay": 0.2, "lr": 1.0e-3, "max_steps": 2000},
    ])
    t_all = time.time()
    runs = []
    best_run = None
    for h in candidates:
        r = train_run(h)
        if best_run is None or r["best_val_loss"] < best_run["best_val_loss"]:
            best_run = r
        runs.append({k: v for k, v in r.items() if k != "state"})
    train_seconds_all = time.time() - t_all
    log(f"sweep: " + "; ".join(f"{r['hparams']} -> {r['best_val_loss']:.4f} @ {r['best_step']}" for r in runs))
    log(f"chosen: {best_run['hparams']} val {best_run['best_val_loss']:.4f}")

    # ---- save the best weights in bf16
    model = LlamaForCausalLM(cfg)
    model.load_state_dict(best_run["state"])
    n_params = sum(p.numel() for p in model.parameters())
    log(f"model: {n_params / 1e6:.2f}M parameters; config: {cfg.to_json_string(use_diff=True)}")
    model = model.to(torch.bfloat16)
    try:
        model.config.dtype = torch.bfloat16
    except Exception:
        model.config.torch_dtype = torch.bfloat16
    model.generation_config = GenerationConfig(bos_token_id=bos_id, eos_token_id=eos_id)
    try:
        model.save_pretrained(str(out), safe_serialization=True)
    except TypeError:
        model.save_pretrained(str(out))
    del model
    torch.cuda.empty_cache()

    # ---- load it back exactly as a user would, check the val loss of the shipped weights
    tk = AutoTokenizer.from_pretrained(str(out))
    m32 = AutoModelForCausalLM.from_pretrained(str(out), dtype=torch.float32).to(device)
    shipped_val = evaluate(m32, val_windows, bos_id, 64, device, None)
    log(f"val loss of the saved bf16 weights computed in f32: {shipped_val:.4f} (ppl {math.exp(shipped_val):.2f})")
    del m32

    ref = {"description": "Greedy outputs of this checkpoint computed by Hugging Face Transformers on CPU, "
                          "eager attention; 'greedy_ids' and 'last_logits' with the bf16 weights upcast to f32 "
                          "(f32 compute), 'greedy_ids_bf16' with bf16 compute.",
           "dtype": "bfloat16", "compute_dtype": "float32", "device": "cpu", "attn_implementation": "eager",
           "max_new_tokens": SAMPLE_NEW_TOKENS, "transformers_version": transformers.__version__,
           "torch_version": torch.__version__, "prompts": []}
    torch.set_num_threads(min(8, os.cpu_count() or 1))
    cpu32 = AutoModelForCausalLM.from_pretrained(str(out), dtype=torch.float32, attn_implementation="eager").eval()
    cpu16 = AutoModelForCausalLM.from_pretrained(str(out), dtype=torch.bfloat16, attn_implementation="eager").eval()
    samples = []
    with torch.no_grad():
        for text in PROMPTS:
            ids = tk(text)["input_ids"]
            new32 = greedy(cpu32, ids, SAMPLE_NEW_TOKENS, eos_id)
            new16 = greedy(cpu16, ids, SAMPLE_NEW_TOKENS, eos_id)
            logits = cpu32(torch.tensor([ids])).logits[0, -1].float()
            out_text = tk.decode(new32)
            ref["prompts"].append({"text": text, "prompt_ids": ids, "greedy_ids": new32,
                                   "output_text": out_text, "full_text": tk.decode(ids + new32, skip_special_tokens=True),
                                   "greedy_ids_bf16": new16, "greedy_bf16_matches_f32": new16 == new32,
                                   "last_logits": [float(v) for v in logits.tolist()]})
            samples.append((text, out_text))
            log(f"\n=== {text!r} ->\n{text}{out_text}\n   (bf16 compute {'same' if new16 == new32 else 'DIFFERS: ' + repr(tk.decode(new16))})")
    (out / "reference.json").write_text(json.dumps(ref) + "\n", encoding="utf-8")

    training = {"command": "scripts/reference/export_kjv.sh && python3 scripts/reference/train_default_model.py",
                "args": vars(a), "parameters": n_params, "train_tokens": len(train_ids), "val_tokens": len(val_ids),
                "held_out_chapters": [chapters[i][0] for i in sorted(val_idx)],
                "chosen_hparams": best_run["hparams"], "best_step": best_run["best_step"],
                "steps": best_run["steps"], "tokens_seen": best_run["tokens_seen"], "epochs": best_run["epochs"],
                "train_seconds": best_run["seconds"], "sweep_seconds": round(train_seconds_all, 1),
                "best_val_loss": round(best_run["best_val_loss"], 4),
                "saved_bf16_val_loss_f32": round(shipped_val, 4), "curve": best_run["curve"],
                "sweep": [{k: v for k, v in r.items() if k != "curve"} for r in runs],
                "device": torch.cuda.get_device_name() if device.type == "cuda" else "cpu",
                "versions": {"torch": torch.__version__, "transformers": transformers.__version__,
                             "tokenizers": tokenizers.__version__}}
    (out / "training.json").write_text(json.dumps(training, indent=1) + "\n", encoding="utf-8")
    write_readme(out, a, cfg, n_params, training, samples)
    sizes = {f.name: f.stat().st_size for f in sorted(out.iterdir())}
    log("output files:", sizes, "total", sum(sizes.values()))


def write_readme(out, a, cfg, n_params, t, samples):
    h = t["chosen_hparams"]
    sweep_md = "| dropout | weight decay | peak lr | steps | best val loss | at step |\n| --- | --- | --- | --- | --- | --- |\n" + \
        "\n".join(f"| {r['hparams']['dropout']} | {r['hparams']['weight_decay']} | {r['hparams']['lr']} | "
                  f"{r['hparams']['max_steps']} | {r['best_val_loss']:.4f} | {r['best_step']} |" for r in t["sweep"])
    sample_md = "\n".join(f"- **{p}**{s.rstrip()}".replace("\n", " / ") for p, s in samples)
    text = f"""# kjv-llama — shardlm's default model

A small **LlamaForCausalLM** trained from scratch on the King James Bible. It is
what `shardlm` loads when no `--model` is given: small enough to ship in the
repository ({n_params / 1e6:.1f}M parameters, bf16 safetensors), big enough to
write recognisable KJV-style English. It knows nothing but the KJV text.

## Files

| file | what |
| --- | --- |
| `config.json`, `model.safetensors` | LlamaForCausalLM, weights in bfloat16 |
| `generation_config.json` | bos `{BOS}`, eos `{EOS}` |
| `tokenizer.json`, `tokenizer_config.json` | byte-level BPE, Llama-3 style (see below), `PreTrainedTokenizerFast` |
| `reference.json` | Transformers' greedy outputs ({SAMPLE_NEW_TOKENS} new tokens) and f32 last-position logits for 3 prompts, CPU, eager attention |
| `training.json` | hyper-parameters, held-out chapters, loss curve |

## Shape

vocab {cfg.vocab_size}, hidden {cfg.hidden_size}, {cfg.num_hidden_layers} layers,
{cfg.num_attention_heads} attention heads / {cfg.num_key_value_heads} KV heads (GQA), head_dim {cfg.hidden_size // cfg.num_attention_heads},
SwiGLU MLP {cfg.intermediate_size}, RMSNorm eps 1e-5, RoPE theta 10000,
max_position_embeddings {cfg.max_position_embeddings}, untied embeddings.
`config.json` is as Transformers 5 writes it: RoPE settings under
`rope_parameters` (`{{"rope_type": "default", "rope_theta": 10000.0}}`, no
top-level `rope_theta`) and `"dtype": "bfloat16"` (not `torch_dtype`).

Tokenizer: byte-level BPE trained with `tokenizers` on the same text:
`Split` with the Llama-3 regex then `ByteLevel(add_prefix_space=false, use_regex=false)`,
`ignore_merges: true`, ByteLevel decoder, post-processor prepending `{BOS}`
(id {cfg.bos_token_id}); `{EOS}` is id {cfg.eos_token_id}. The model never saw
`{EOS}` in training, so it does not stop by itself: cap the length.

## Training

- Data: the KJV from Debian's `bible-kjv` package (`bible "gen1:1-rev22:21"`),
  exported by `scripts/reference/export_kjv.sh`: verse numbers dropped, one verse
  per line, chapter headings ("Genesis 1") kept as lines. {t['train_tokens'] + t['val_tokens']:,} tokens.
- Held out: 1 % of the text, every chapter whose index is 50 mod 100
  ({len(t['held_out_chapters'])} chapters, {t['val_tokens']:,} tokens): {", ".join(t['held_out_chapters'])}.
- Windows of {a.seq_len} tokens (BOS + text starting at a verse), batch {a.batch},
  AdamW (betas 0.9/0.95), {a.warmup} warm-up steps then cosine decay to {a.min_lr_frac}× of the peak lr,
  bf16 autocast, dropout on embeddings and on each attention/MLP output (training only; the model
  has no dropout at inference), gradient clipping 1.0; held-out loss every {a.eval_every} steps and
  the best weights kept. The corpus is small (the model overfits after a few epochs), so the script
  trains {len(t['sweep'])} regularisation settings and keeps the best:

{sweep_md}

- Chosen: dropout {h['dropout']}, weight decay {h['weight_decay']}, peak lr {h['lr']}, {h['max_steps']} steps;
  best at step {t['best_step']} of {t['steps']} ({t['tokens_seen'] / 1e6:.1f}M tokens, {t['epochs']} epochs seen by
  the end of the run, {t['train_seconds']:.0f} s); the whole sweep took {t['sweep_seconds']:.0f} s on one {t['device']}.
- **Validation loss {t['best_val_loss']:.3f}** nats/token (perplexity {math.exp(t['best_val_loss']):.1f});
  the saved bf16 weights give {t['saved_bf16_val_loss_f32']:.3f} computed in f32.
- Versions: torch {t['versions']['torch']}, transformers {t['versions']['transformers']}, tokenizers {t['versions']['tokenizers']}.

## Greedy samples (Transformers, CPU, f32 compute from the bf16 weights)

{sample_md}

## Reproduce

On a machine with a CUDA GPU and torch, transformers, tokenizers:

```sh
sudo apt-get install bible-kjv          # on the machine that exports the text
scripts/reference/export_kjv.sh         # -> .device-carry/kjv.txt
python3 scripts/reference/train_default_model.py --data .device-carry/kjv.txt --out models/kjv-llama
```

Training is not bit-for-bit reproducible (GPU kernels), but reruns land at a
similar loss; `reference.json` always describes the weights in this directory.

## Licence

The King James Version text is in the public domain (outside the United
Kingdom, where Crown letters patent govern printing it); Debian ships it in
`bible-kjv` as public domain. The weights and the tokenizer are derived only
from that text by this repository's scripts, carry no third-party rights, and
are distributed on the same terms as the rest of this repository.
"""
    (out / "README.md").write_text(text, encoding="utf-8")


if __name__ == "__main__":
    main()
