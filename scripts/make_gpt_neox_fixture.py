#!/usr/bin/env python3
"""Builds the GPT-NeoX parity fixtures for `rpload serve` with HuggingFace transformers (torch CPU).

Writes, under tests/fixtures/:
  gpt_neox_parallel/    parallel residual, partial rotary (0.25), old-style config keys
                        (`rotary_pct`, `rotary_emb_base`, as Pythia/RedPajama ship them), one
                        model.safetensors
  gpt_neox_sequential/  sequential residual, full rotary, new-style config keys
                        (`rope_parameters`), an embedding padded past the tokenizer (like
                        RedPajama's 50432 rows), sharded safetensors with an index
Each folder holds config.json, the weights, tokenizer.json and expected.json: the input ids, the
last-position logits of the prompt, a 16-token greedy continuation (full recompute, no cache) and
the last-position logits of prompt + 15 generated tokens (pins the KV-cache path numerically).

It also writes src/server/engine/tiny_tokenizer.json, the byte-level BPE the presets embed, so
the fixtures and the presets share one tokenizer. Nothing is downloaded: the tokenizer is trained
here on Python's own docstrings (English prose that ships with the interpreter).

Usage: pip install torch transformers safetensors tokenizers && python3 scripts/make_gpt_neox_fixture.py
"""
import json
import os
import pydoc
import shutil

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import GPTNeoXConfig, GPTNeoXForCausalLM

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
FIXTURES = os.path.join(ROOT, "tests", "fixtures")
TINY_TOKENIZER = os.path.join(ROOT, "src", "server", "engine", "tiny_tokenizer.json")
VOCAB = 1024
PROMPT = "The quick brown fox jumps over the lazy dog, and the server answers every request."
NEW_TOKENS = 16


def corpus():
    """English prose that ships with Python: the docstrings of a few stdlib modules."""
    import argparse, collections, datetime, email, json as js, logging, pathlib, re, statistics, string, textwrap, threading, unittest
    texts = []
    for mod in [argparse, collections, datetime, email, js, logging, pathlib, re, statistics, string, textwrap, threading, unittest]:
        texts.append(pydoc.render_doc(mod, renderer=pydoc.plaintext))
    return texts


def build_tokenizer():
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=VOCAB,
        special_tokens=["<|endoftext|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus(), trainer=trainer)
    assert tok.token_to_id("<|endoftext|>") == 0
    return tok


def randomize(model, seed):
    """Random weights with a large spread so logits are well separated (greedy ties would make
    the continuation fragile) and every bias and LayerNorm parameter matters."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "layernorm" in name or "layer_norm" in name:
                if name.endswith("weight"):
                    p.copy_(1.0 + 0.1 * torch.randn(p.shape, generator=g))
                else:
                    p.copy_(0.1 * torch.randn(p.shape, generator=g))
            elif name.endswith("bias"):
                p.copy_(0.1 * torch.randn(p.shape, generator=g))
            else:
                p.copy_(0.3 * torch.randn(p.shape, generator=g))


def expected(model, ids):
    with torch.no_grad():
        seq = torch.tensor([ids])
        prompt_logits = model(seq).logits[0, -1].tolist()
        generated = []
        last_logits = None
        for step in range(NEW_TOKENS):
            logits = model(seq).logits[0, -1]
            if step == NEW_TOKENS - 1:
                last_logits = logits.tolist()
            nxt = int(torch.argmax(logits))
            generated.append(nxt)
            seq = torch.cat([seq, torch.tensor([[nxt]])], dim=1)
    return {
        "prompt": PROMPT,
        "input_ids": ids,
        "prompt_logits": prompt_logits,
        "greedy_tokens": generated,
        "last_step_logits": last_logits,
    }


def write_fixture(name, cfg, seed, tok, old_style_keys, shard):
    out = os.path.join(FIXTURES, name)
    shutil.rmtree(out, ignore_errors=True)
    torch.manual_seed(seed)
    model = GPTNeoXForCausalLM(cfg).eval()
    randomize(model, seed)
    if shard:
        model.save_pretrained(out, max_shard_size="100KB")
    else:
        model.save_pretrained(out)
    if old_style_keys:
        path = os.path.join(out, "config.json")
        with open(path) as f:
            c = json.load(f)
        rope = c.pop("rope_parameters")
        c["rotary_pct"] = rope["partial_rotary_factor"]
        c["rotary_emb_base"] = rope["rope_theta"]
        with open(path, "w") as f:
            json.dump(c, f, indent=2, sort_keys=True)
    tok.save(os.path.join(out, "tokenizer.json"))
    ids = tok.encode(PROMPT).ids
    with open(os.path.join(out, "expected.json"), "w") as f:
        json.dump(expected(model, ids), f)
    print(name, "ok:", len(ids), "prompt tokens")


def main():
    torch.set_num_threads(1)
    tok = build_tokenizer()
    tok.save(TINY_TOKENIZER)
    common = dict(
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=2,
        intermediate_size=128,
        max_position_embeddings=256,
        bos_token_id=0,
        eos_token_id=0,
        tie_word_embeddings=False,
    )
    parallel = GPTNeoXConfig(vocab_size=VOCAB, rotary_pct=0.25, use_parallel_residual=True, **common)
    sequential = GPTNeoXConfig(vocab_size=VOCAB + 16, rotary_pct=1.0, use_parallel_residual=False, **common)
    write_fixture("gpt_neox_parallel", parallel, 1, tok, old_style_keys=True, shard=False)
    write_fixture("gpt_neox_sequential", sequential, 2, tok, old_style_keys=False, shard=True)


if __name__ == "__main__":
    main()
