#!/usr/bin/env python3
"""Builds tests/fixtures/sampler-processors.json, the reference the sampler's unit tests
(src/server/engine/sampler/tests.rs) hold each logits processor to.

Made with the real HuggingFace transformers processors on torch (CPU) where transformers has
one: RepetitionPenaltyLogitsProcessor, TemperatureLogitsWarper, TopKLogitsWarper,
TopPLogitsWarper, TypicalLogitsWarper, each with its defaults (min_tokens_to_keep=1), and the
chain in the order `GenerationMixin._get_logits_processor` (and TGI's StaticWarper) applies them:
temperature, top_k, top_p, typical_p, then log_softmax.

transformers has no frequency or presence penalty, and TGI's server package (which needs its
CUDA kernels) does not install here, so those two are written below in torch from their
definitions:
  * TGI's frequency_penalty: HeterogeneousFrequencyPenaltyLogitsProcessor in
    text-generation-inference server/text_generation_server/utils/logits_process.py:
    token_freq = bincount(input_ids) / len(input_ids); scores -= token_freq * penalty
    (input_ids there are the prompt and the generated tokens).
  * OpenAI's frequency_penalty / presence_penalty (vLLM's apply_penalties): over the generated
    tokens only, scores -= frequency * count + presence * (count > 0).

Every vector is float32, as the server's logits are. `-inf` (a token a warper removed) is
written as null. Ids are small on purpose: a 32-token vocabulary keeps the file a few KB.

Usage (a venv; torch from PyPI works on CPU):
  python3 -m venv target/pyenv && target/pyenv/bin/pip install torch transformers
  target/pyenv/bin/python scripts/make-sampler-fixtures.py
"""
import json
import os

import torch
import transformers
from transformers import (
    RepetitionPenaltyLogitsProcessor,
    TemperatureLogitsWarper,
    TopKLogitsWarper,
    TopPLogitsWarper,
    TypicalLogitsWarper,
)

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "tests", "fixtures", "sampler-processors.json")
VOCAB = 32


def vec(t):
    """A float32 row as JSON numbers, -inf as null, 7 significant digits (the tests allow 1e-4)."""
    return [None if x == float("-inf") else float(f"{x:.7g}") for x in t.tolist()]


def vectors():
    g = torch.Generator().manual_seed(20261204)
    out = []
    # Three shapes of distribution: flat-ish, peaked, and one with negative and positive logits
    # far apart (the repetition penalty treats the two signs differently).
    for scale, shift in [(1.0, 0.0), (3.0, 1.0), (6.0, -2.0)]:
        logits = (torch.randn(VOCAB, generator=g) * scale + shift).to(torch.float32)
        prompt = torch.randint(0, VOCAB, (6,), generator=g)
        # Generated ids repeat on purpose: token 3 three times, so a per-occurrence penalty
        # would show.
        generated = torch.cat([torch.tensor([3, 3, 3]), torch.randint(0, VOCAB, (3,), generator=g)])
        out.append((logits, prompt.tolist(), generated.tolist()))
    return out


def tgi_frequency(ids, scores, penalty):
    freq = torch.zeros(scores.shape[-1], dtype=torch.float32)
    freq.scatter_add_(0, ids, torch.ones_like(ids, dtype=torch.float32))
    freq /= ids.shape[0]
    return scores - freq * penalty


def openai_penalties(generated, scores, frequency, presence):
    counts = torch.zeros(scores.shape[-1], dtype=torch.float32)
    counts.scatter_add_(0, generated, torch.ones_like(generated, dtype=torch.float32))
    return scores - frequency * counts - presence * (counts > 0).to(torch.float32)


def main():
    cases = []
    vecs = []
    for n, (logits, prompt, generated) in enumerate(vectors()):
        vecs.append({"logits": vec(logits), "prompt": prompt, "generated": generated})
        ids = torch.tensor(prompt + generated).unsqueeze(0)
        row = logits.unsqueeze(0)

        def case(processor, params, out):
            cases.append({"vector": n, "processor": processor, "params": params, "output": vec(out[0])})

        for penalty in [1.3, 0.7]:
            p = RepetitionPenaltyLogitsProcessor(penalty=penalty)
            case("repetition", {"penalty": penalty}, p(ids, row.clone()))
        for penalty in [0.9, -1.5]:
            out = tgi_frequency(ids[0], logits.clone(), penalty).unsqueeze(0)
            case("frequency_tgi", {"penalty": penalty}, out)
        for frequency, presence in [(0.5, 0.0), (0.0, 1.2), (0.8, -0.4)]:
            gen = torch.tensor(generated)
            out = openai_penalties(gen, logits.clone(), frequency, presence).unsqueeze(0)
            case("openai", {"frequency": frequency, "presence": presence}, out)
        for t in [0.7, 1.8]:
            case("temperature", {"t": t}, TemperatureLogitsWarper(t)(ids, row.clone()))
        for k in [1, 5]:
            case("top_k", {"k": k}, TopKLogitsWarper(top_k=k)(ids, row.clone()))
        for p in [0.3, 0.9]:
            case("top_p", {"p": p}, TopPLogitsWarper(top_p=p)(ids, row.clone()))
        for mass in [0.2, 0.6, 0.95]:
            case("typical_p", {"mass": mass}, TypicalLogitsWarper(mass=mass)(ids, row.clone()))
        # The warper chain as generation runs it, then the log-probabilities the server reports.
        for t, k, p, mass in [(0.8, 12, 0.9, 0.8), (1.5, 20, 0.95, 0.5), (1.0, 8, None, 0.9)]:
            scores = row.clone()
            scores = TemperatureLogitsWarper(t)(ids, scores) if t != 1.0 else scores
            scores = TopKLogitsWarper(top_k=k)(ids, scores)
            if p is not None:
                scores = TopPLogitsWarper(top_p=p)(ids, scores)
            scores = TypicalLogitsWarper(mass=mass)(ids, scores)
            logprobs = torch.log_softmax(scores, dim=-1)
            case("chain", {"t": t, "k": k, "p": p, "mass": mass}, logprobs)
        # Greedy: log_softmax of the raw row and its 3 best (TGI's top_tokens without warpers).
        logprobs = torch.log_softmax(row, dim=-1)
        top = torch.topk(logprobs[0], 3)
        cases.append({
            "vector": n,
            "processor": "greedy_top3",
            "params": {},
            "output": vec(logprobs[0]),
            "top_ids": top.indices.tolist(),
        })
    doc = {
        "made_by": f"scripts/make-sampler-fixtures.py (torch {torch.__version__}, transformers {transformers.__version__})",
        "vectors": vecs,
        "cases": cases,
    }
    with open(OUT, "w") as f:
        json.dump(doc, f, separators=(",", ":"))
        f.write("\n")
    print(f"wrote {OUT}: {len(cases)} cases, {os.path.getsize(OUT)} bytes")


if __name__ == "__main__":
    main()
