#!/usr/bin/env python3
"""Greedy decoding under Transformers' repetition_penalty, the reference for shardlm's: for each
prompt of a model fixture's reference.json, max_new_tokens tokens with generate(repetition_penalty=R)
(its RepetitionPenaltyLogitsProcessor, over the prompt and the output alike) and the top1 - top2
margin of the penalised scores at each step. Writes repetition_penalty.json beside reference.json.
Run where Transformers is installed (the GPU machine; the model runs on its CPU, in f32):

  python3 scripts/reference/penalty_reference.py tests/fixtures/models/llama-gqa-llama3rope-f32 [--penalty 1.3]
"""
import argparse
import json
from pathlib import Path

import torch
import transformers
from transformers import AutoModelForCausalLM


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("fixture", type=Path)
    parser.add_argument("--penalty", type=float, default=1.3)
    args = parser.parse_args()
    reference = json.loads((args.fixture / "reference.json").read_text())
    if reference["dtype"] != "float32":
        raise SystemExit(f"{args.fixture}: an f32 fixture is needed (the CPU path computes in f32)")
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(str(args.fixture), dtype=torch.float32,
                                                 attn_implementation="eager").eval()
    new_tokens = reference["max_new_tokens"]
    pad_id = reference["batch"]["pad_token_id"]
    prompts = []
    with torch.no_grad():
        for prompt in reference["prompts"]:
            ids = torch.tensor([prompt["prompt_ids"]])
            out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=new_tokens,
                                 min_new_tokens=new_tokens, do_sample=False, num_beams=1, pad_token_id=pad_id,
                                 repetition_penalty=args.penalty, return_dict_in_generate=True, output_scores=True)
            margins = []
            for scores in out.scores:
                top = torch.topk(scores[0].float(), 2).values
                margins.append(round(float(top[0] - top[1]), 6))
            prompts.append({"prompt_ids": prompt["prompt_ids"], "greedy_ids": out.sequences[0, ids.shape[1]:].tolist(),
                            "greedy_margins": margins})
    result = {"model": reference["model"], "repetition_penalty": args.penalty, "max_new_tokens": new_tokens,
              "min_new_tokens": new_tokens, "transformers_version": transformers.__version__,
              "torch_version": torch.__version__, "prompts": prompts}
    (args.fixture / "repetition_penalty.json").write_text(json.dumps(result, indent=1) + "\n")
    print(f"{args.fixture}/repetition_penalty.json: {len(prompts)} prompts")


if __name__ == "__main__":
    main()
