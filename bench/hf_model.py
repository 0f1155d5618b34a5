#!/usr/bin/env python3
"""Writes a HuggingFace GPT-NeoX folder with the shape of an rpload preset (`tiny` or
`pythia-70m`), random weights, and rpload's embedded tokenizer, so that `rpload serve --model DIR`
and transformers load IDENTICAL weights for `bench/serve.sh`. Usage: hf_model.py PRESET DIR"""
import os
import shutil
import sys

import torch
from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
# Must match src/server/engine/presets.rs.
SHAPES = {
    "tiny": dict(vocab_size=1024, hidden_size=320, num_hidden_layers=10, num_attention_heads=5,
                 intermediate_size=1280, rotary_pct=0.25, use_parallel_residual=True),
    "pythia-70m": dict(vocab_size=50304, hidden_size=512, num_hidden_layers=6, num_attention_heads=8,
                       intermediate_size=2048, rotary_pct=0.25, use_parallel_residual=True),
}


def main():
    preset, out = sys.argv[1], sys.argv[2]
    cfg = GPTNeoXConfig(max_position_embeddings=2048, bos_token_id=0, eos_token_id=0,
                        tie_word_embeddings=False, **SHAPES[preset])
    torch.manual_seed(0)
    model = GPTNeoXForCausalLM(cfg).eval()
    os.makedirs(out, exist_ok=True)
    model.save_pretrained(out)
    shutil.copy(os.path.join(ROOT, "src/server/engine/tiny_tokenizer.json"), os.path.join(out, "tokenizer.json"))
    print(f"{preset}: {sum(p.numel() for p in model.parameters()):,} parameters -> {out}")


if __name__ == "__main__":
    main()
