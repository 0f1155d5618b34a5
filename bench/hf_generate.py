#!/usr/bin/env python3
"""The transformers side of `bench/serve.sh`: `model.generate` on the same folder and prompt
as the server, greedy, exactly N new tokens, at batch sizes 1, 8 and 32 (static batches: the
best transformers does without a serving layer). Prints one JSON line per batch size with
generated tokens/s. Usage: hf_generate.py DIR [--max-new-tokens 64] [--batches 1,8,32]"""
import argparse
import json
import os
import time

import torch
from tokenizers import Tokenizer
from transformers import GPTNeoXForCausalLM

# The same prompt as examples/serve_load.rs (107 tokens with rpload's embedded tokenizer).
PROMPT = (
    "The quick brown fox jumps over the lazy dog while the server answers every request. "
    "Load testing measures how many requests an endpoint can take within a latency target, "
    "and what each thousand tokens costs on the instance that serves them."
)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("dir")
    ap.add_argument("--max-new-tokens", type=int, default=64)
    ap.add_argument("--batches", default="1,8,32")
    ap.add_argument("--min-seconds", type=float, default=5.0)
    args = ap.parse_args()
    model = GPTNeoXForCausalLM.from_pretrained(args.dir, torch_dtype=torch.float32).eval()
    ids = Tokenizer.from_file(os.path.join(args.dir, "tokenizer.json")).encode(PROMPT).ids
    n = args.max_new_tokens
    for b in [int(x) for x in args.batches.split(",")]:
        inp = torch.tensor([ids] * b)
        kw = dict(max_new_tokens=n, min_new_tokens=n, do_sample=False, pad_token_id=0,
                  attention_mask=torch.ones_like(inp))
        with torch.inference_mode():
            model.generate(inp, **kw)  # warm-up
            runs, start = 0, time.monotonic()
            while runs == 0 or time.monotonic() - start < args.min_seconds:
                out = model.generate(inp, **kw)
                assert out.shape[1] == len(ids) + n
                runs += 1
            elapsed = time.monotonic() - start
        print(json.dumps({"batch": b, "tokens_per_s": round(runs * b * n / elapsed, 1),
                          "threads": torch.get_num_threads()}), flush=True)


if __name__ == "__main__":
    main()
