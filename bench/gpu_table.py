#!/usr/bin/env python3
"""Turns the JSON lines of `bench/gpu.sh` (hf.jsonl, rpload.jsonl in DIR) into the Markdown table
of bench/README.md: per preset and batch, rpload's and transformers' decode ms/step and
tokens/s, the share of the memory-bandwidth floor, and the ratios the GPU issue sets targets
for. Usage: gpu_table.py DIR"""
import json
import os
import sys


def lines(path):
    if not os.path.exists(path):
        return []
    return [json.loads(l) for l in open(path) if l.strip().startswith("{")]


def main():
    d = sys.argv[1]
    hf = lines(os.path.join(d, "hf.jsonl"))
    ours = lines(os.path.join(d, "rpload.jsonl"))
    copy = next((r for r in hf if r["kind"] == "copy"), None)
    floors = {r["preset"]: r for r in hf if r["kind"] == "weights"}
    ref = {(r["preset"], r["batch"]): r for r in hf if r["kind"] == "hf"}
    gpu = open(os.path.join(d, "gpu.txt")).read().strip() if os.path.exists(os.path.join(d, "gpu.txt")) else "?"
    print(f"card: {gpu}")
    if copy:
        print(f"device copy: {copy['bytes_per_s'] / 1e12:.2f} TB/s (read + write); torch "
              f"{copy['torch']}, transformers {copy['transformers']}")
    for p, f in floors.items():
        print(f"{p}: {f['bytes'] / 1e9:.2f} GB of fp16 weights -> floor {f['floor_ms']:.2f} ms/step")
    loads = {r["preset"]: r["seconds"] for r in ours if r["kind"] == "load"}
    for p, s in loads.items():
        print(f"{p}: server ready in {s:.1f} s")
    for r in ours:
        if r["kind"] == "parity":
            err = f" (error: {r['error']})" if r.get("error") else ""
            print(f"parity fixture, {r['dtype']}: {r['agree']} of {r['of']} greedy tokens as transformers{err}")
    print()
    print("| preset | batch | rpload ms/step | rpload tok/s | % of floor | client ITL ms "
          "| transformers ms/step | transformers tok/s | rpload / transformers |")
    print("|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    batch1 = {}
    for r in ours:
        if r["kind"] != "rpload":
            continue
        p, b = r["preset"], r["batch"]
        if b == 1:
            batch1[p] = r["tokens_per_s"]
        floor = floors.get(p, {}).get("floor_ms")
        pct = f"{floor / r['ms_per_step'] * 100:.0f}%" if floor and b == 1 else ""
        h = ref.get((p, b))
        hf_ms = f"{h['ms_per_step']:.2f}" if h else "-"
        hf_tps = f"{h['tokens_per_s']:.0f}" if h else "-"
        ratio = f"{h['ms_per_step'] / r['ms_per_step']:.1f}x" if h else "-"
        print(f"| {p} | {b} | {r['ms_per_step']:.2f} | {r['tokens_per_s']:.0f} | {pct} | "
              f"{r['client_itl_ms']:.2f} | {hf_ms} | {hf_tps} | {ratio} |")
    print()
    for r in ours:
        if r["kind"] == "rpload" and r["batch"] != 1 and r["preset"] in batch1:
            print(f"{r['preset']}: batch {r['batch']} gives {r['tokens_per_s'] / batch1[r['preset']]:.1f}x "
                  f"the tokens/s of batch 1")


if __name__ == "__main__":
    main()
