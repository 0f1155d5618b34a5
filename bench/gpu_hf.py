#!/usr/bin/env python3
"""The reference side of `bench/gpu.sh`, on the GPU: (a) the card's device-to-device copy rate,
which turns a model's weight bytes into a memory-bandwidth floor per decode step, and (b)
HuggingFace transformers `GPTNeoXForCausalLM` with random weights of each rpload preset's
config, fp16, `generate` (greedy, exactly N new tokens) at each batch size.

Decode ms/step = (time for N new tokens - time for 1 new token) / (N - 1): the prefill and the
first token are taken out, as rpload's figure (its engine's decode steps) leaves them out.
Prints one JSON object per line; gpu.sh collects them.
Usage: gpu_hf.py --presets redpajama-3b,redpajama-7b --batches 1,8,32,64 --new 128"""
import argparse
import json
import time

import torch
from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

# Must match src/server/engine/presets.rs.
SHAPES = {
    "redpajama-3b": dict(vocab_size=50432, hidden_size=2560, num_hidden_layers=32,
                         num_attention_heads=32, intermediate_size=10240),
    "redpajama-7b": dict(vocab_size=50432, hidden_size=4096, num_hidden_layers=32,
                         num_attention_heads=32, intermediate_size=16384),
}
PROMPT_TOKENS = 100


def copy_rate(gib=4, reps=20):
    """Bytes moved per second (read + write) by a device-to-device copy of `gib` GiB."""
    n = gib << 30
    src = torch.empty(n, dtype=torch.uint8, device="cuda")
    dst = torch.empty_like(src)
    for _ in range(3):
        dst.copy_(src)
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(reps):
        dst.copy_(src)
    torch.cuda.synchronize()
    dt = (time.perf_counter() - t0) / reps
    del src, dst
    torch.cuda.empty_cache()
    return 2 * n / dt


def timed_generate(model, inp, new):
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    out = model.generate(inp, max_new_tokens=new, min_new_tokens=new, do_sample=False,
                         pad_token_id=0, attention_mask=torch.ones_like(inp))
    torch.cuda.synchronize()
    assert out.shape[1] == inp.shape[1] + new
    return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--presets", default="redpajama-3b,redpajama-7b")
    ap.add_argument("--batches", default="1,8,32,64")
    ap.add_argument("--new", type=int, default=128)
    args = ap.parse_args()
    rate = copy_rate()
    print(json.dumps({"kind": "copy", "bytes_per_s": rate,
                      "device": torch.cuda.get_device_name(),
                      "torch": torch.__version__,
                      "transformers": __import__("transformers").__version__}), flush=True)
    for preset in args.presets.split(","):
        cfg = GPTNeoXConfig(max_position_embeddings=2048, rotary_pct=1.0,
                            use_parallel_residual=False, bos_token_id=0, eos_token_id=0,
                            tie_word_embeddings=False, **SHAPES[preset])
        torch.manual_seed(0)
        with torch.device("cuda"):
            model = GPTNeoXForCausalLM(cfg).to(torch.float16).eval()
        weight_bytes = sum(p.numel() * p.element_size() for p in model.parameters())
        print(json.dumps({"kind": "weights", "preset": preset, "bytes": weight_bytes,
                          "floor_ms": weight_bytes / rate * 1e3}), flush=True)
        gen = torch.Generator(device="cpu").manual_seed(1)
        with torch.inference_mode():
            for b in [int(x) for x in args.batches.split(",")]:
                inp = torch.randint(1, cfg.vocab_size, (b, PROMPT_TOKENS), generator=gen).cuda()
                timed_generate(model, inp, 4)  # warm-up
                first = timed_generate(model, inp, 1)
                full = timed_generate(model, inp, args.new)
                ms = (full - first) / (args.new - 1) * 1e3
                print(json.dumps({"kind": "hf", "preset": preset, "batch": b, "ms_per_step": ms,
                                  "tokens_per_s": b * 1e3 / ms, "total_s": full}), flush=True)
        del model
        torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
