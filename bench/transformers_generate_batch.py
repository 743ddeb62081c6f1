"""The same-call Transformers peer of bench/bench_serve.py: continuous batching through
`model.generate_batch` (paged attention) on the same saved checkpoint, the same number of random
prompts of the same lengths, greedy; reports requests/s and output tokens/s as JSON. (`transformers
serve` needs FastAPI/Uvicorn, which the GPU machine lacks; generate_batch is the engine under it.)

  python3 bench/transformers_generate_batch.py --load /tmp/llama3-8b --num-requests 500 \
      --input-len 202 --output-len 179
"""
import argparse
import json
import random
import time

import torch
import transformers
from transformers.generation import GenerationConfig


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--load", required=True)
    parser.add_argument("--num-requests", type=int, default=500)
    parser.add_argument("--input-len", type=int, default=202)
    parser.add_argument("--output-len", type=int, default=179)
    parser.add_argument("--first-id", type=int, default=1000)
    parser.add_argument("--attn-implementation", default="paged|sdpa")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--output")
    args = parser.parse_args()

    model = transformers.AutoModelForCausalLM.from_pretrained(
        args.load, dtype=torch.bfloat16, device_map="cuda:0", attn_implementation=args.attn_implementation)
    rng = random.Random(args.seed)
    vocab = model.config.vocab_size
    eos = model.config.eos_token_id
    lowest_special = min(eos) if isinstance(eos, list) else eos
    prompts = [[rng.randrange(args.first_id, lowest_special) for _ in range(args.input_len)]
               for _ in range(args.num_requests)]
    config = GenerationConfig(max_new_tokens=args.output_len, do_sample=False, eos_token_id=eos,
                              pad_token_id=0)
    # A short warm-up run compiles and captures what the timed run reuses.
    model.generate_batch(inputs=prompts[:8], generation_config=config, progress_bar=False)
    torch.cuda.synchronize()
    start = time.perf_counter()
    outputs = model.generate_batch(inputs=prompts, generation_config=config, progress_bar=False)
    torch.cuda.synchronize()
    duration = time.perf_counter() - start
    output_tokens = sum(len(output.generated_tokens) for output in outputs.values())
    result = {"peer": "transformers generate_batch", "attn_implementation": args.attn_implementation,
              "transformers": transformers.__version__, "torch": torch.__version__,
              "num_requests": args.num_requests, "completed": len(outputs), "input_len": args.input_len,
              "output_len": args.output_len, "duration_s": duration, "requests_per_s": len(outputs) / duration,
              "output_tokens": output_tokens, "output_tokens_per_s": output_tokens / duration, "vocab_size": vocab}
    text = json.dumps(result, indent=2)
    print(text)
    if args.output:
        with open(args.output, "w") as f:
            f.write(text + "\n")


if __name__ == "__main__":
    main()
