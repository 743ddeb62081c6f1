"""The peer for `shardlm bench`: Hugging Face Transformers on the same shape, prompt length and
new-token count, timed the same way (prefill once, then each decode step until its token is known).

Writes the random-weight checkpoint it benchmarks with save_pretrained, so shardlm can then load
the very same files (and be timed loading them).

  python3 bench/transformers_peer.py --shape bench/shapes/llama3-8b.json --save /tmp/llama3-8b \
      --prompt-len 512 --new-tokens 128 --batch 1

With --load DIR it times a saved checkpoint placed by Accelerate instead (what shardlm's
--device-map and --max-memory do):

  python3 bench/transformers_peer.py --load /tmp/llama3-8b --device-map auto \
      --max-memory '{"0": "8GiB", "cpu": "100GiB"}' --prompt-len 512 --new-tokens 8

or split by Transformers' tensor parallelism under torchrun (what shardlm's --tp does); rank 0
prints:

  torchrun --nproc-per-node 2 bench/transformers_peer.py --load /tmp/llama3-8b --tp-plan auto

By default the model runs eagerly, step by step. --compiled times Transformers' fast path instead:
generate() with a static cache, which compiles the decode step with torch.compile (the first,
untimed call compiles); a streamer notes when each token reaches the host.
"""
import argparse
import json
import os
import statistics
import time

import torch
import transformers


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--shape", help="config.json of the shape (bench/shapes/*.json)")
    parser.add_argument("--load", help="a saved checkpoint to time instead of a random one")
    parser.add_argument("--device-map", help="with --load: Accelerate's device_map (auto, sequential, ...)")
    parser.add_argument("--max-memory", help="with --load: max_memory as JSON, e.g. '{\"0\": \"8GiB\", \"cpu\": \"100GiB\"}'")
    parser.add_argument("--tp-plan", help="with --load under torchrun: Transformers' tp_plan (auto)")
    parser.add_argument("--save", help="directory to save_pretrained the random checkpoint into")
    parser.add_argument("--prompt-len", type=int, default=512)
    parser.add_argument("--new-tokens", type=int, default=128)
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--skip-timing", action="store_true", help="only write the checkpoint")
    parser.add_argument("--compiled", action="store_true",
                        help="generate(cache_implementation='static'), which torch.compiles the decode step")
    args = parser.parse_args()

    if args.load and args.tp_plan:
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
        model = transformers.AutoModelForCausalLM.from_pretrained(args.load, dtype=torch.bfloat16, tp_plan=args.tp_plan)
        config = model.config
    elif args.load:
        max_memory = {int(k) if k.isdigit() else k: v for k, v in json.loads(args.max_memory).items()} \
            if args.max_memory else None
        model = transformers.AutoModelForCausalLM.from_pretrained(
            args.load, dtype=torch.bfloat16, device_map=args.device_map or "cuda:0", max_memory=max_memory)
        config = model.config
    else:
        with open(args.shape) as f:
            config = transformers.AutoConfig.for_model(**{k: v for k, v in json.load(f).items() if k != "architectures"})
        torch.manual_seed(0)
        with torch.device("cuda"):
            model = transformers.AutoModelForCausalLM.from_config(config, dtype=torch.bfloat16)
    model.eval()
    if args.save:
        start = time.perf_counter()
        model.save_pretrained(args.save, safe_serialization=True)
        print(f"saved {args.save} in {time.perf_counter() - start:.1f} s", flush=True)
    if args.skip_timing:
        return

    generator = torch.Generator(device="cuda").manual_seed(1234)
    prompt = torch.randint(0, config.vocab_size, (args.batch, args.prompt_len), device="cuda", generator=generator)

    def run_once():
        torch.cuda.synchronize()
        start = time.perf_counter()
        with torch.no_grad():
            out = model(prompt, use_cache=True)
        token = out.logits[:, -1].argmax(-1, keepdim=True)
        torch.cuda.synchronize()
        prefill_ms = (time.perf_counter() - start) * 1e3
        cache = out.past_key_values
        steps = []
        for _ in range(args.new_tokens):
            start = time.perf_counter()
            with torch.no_grad():
                out = model(token, past_key_values=cache, use_cache=True)
            token = out.logits[:, -1].argmax(-1, keepdim=True)
            token.cpu()  # the token id reaching the host ends the step, as in shardlm bench
            steps.append((time.perf_counter() - start) * 1e3)
            cache = out.past_key_values
        return prefill_ms, steps

    class TokenTimes(transformers.generation.streamers.BaseStreamer):
        """generate() hands the streamer the prompt, then each step's tokens: when each reached the host."""

        def __init__(self):
            self.times = []

        def put(self, value):
            value.cpu()
            self.times.append(time.perf_counter())

        def end(self):
            pass

    def run_compiled():
        timer = TokenTimes()
        with torch.no_grad():
            model.generate(prompt, attention_mask=torch.ones_like(prompt), max_new_tokens=args.new_tokens + 1,
                           min_new_tokens=args.new_tokens + 1, do_sample=False, cache_implementation="static",
                           streamer=timer)
        # The prompt's put, the prefill's token, then one per decode step.
        return (timer.times[1] - timer.times[0]) * 1e3, [(b - a) * 1e3 for a, b in zip(timer.times[1:], timer.times[2:])]

    run = run_compiled if args.compiled else run_once
    run()  # warm-up (and, compiled, the compilation)
    prefill_ms, steps = run()
    if int(os.environ.get("RANK", 0)) != 0:
        return  # under torchrun only rank 0 reports
    steps_sorted = sorted(steps)
    print(json.dumps({
        "peer": f"transformers {transformers.__version__}, torch {torch.__version__}",
        "mode": "static cache + torch.compile (generate)" if args.compiled else "eager",
        "device_map": args.device_map,
        "tp_plan": args.tp_plan,
        "world_size": int(os.environ.get("WORLD_SIZE", 1)),
        "max_memory": args.max_memory,
        "batch": args.batch,
        "prompt_len": args.prompt_len,
        "new_tokens": args.new_tokens,
        "prefill_ms": prefill_ms,
        "time_per_output_token_ms_median": statistics.median(steps),
        "time_per_output_token_ms_p90": steps_sorted[min(len(steps) - 1, int(0.9 * len(steps)))],
        "decode_tokens_per_s": args.batch * len(steps) / (sum(steps) / 1e3),
        "device_memory_peak_bytes": torch.cuda.max_memory_allocated(),
    }, indent=2))


if __name__ == "__main__":
    main()
