#!/usr/bin/env python3
"""Prints the Markdown tables of reports/h100-redpajama/README.md from the sweep folders that
bench/gpu-study.sh wrote: per sweep, the study's "max RPS" (highest rate whose requests all
succeeded), the throughput and p90 there, and cost per 1K tokens by the study's formula at the
study's g5.4xlarge price and at one H100's price; then the study's A10 rows beside ours.
Usage: study_table.py [DIR] (default reports/h100-redpajama)"""
import glob
import json
import os
import sys

G5, H100 = 1.624, 6.88  # USD/h: g5.4xlarge (the study), p5.48xlarge / 8 (scenarios/pricing.toml)
# The study's table (seed-study-and-apis.md section 1.7): max RPS, throughput, p90 s, USD/1K tok.
STUDY = {
    ("3b", "classification", "single"): (4, 0.15, 26.4, "0.001"),
    ("3b", "classification", "continuous"): (135, 57.3, 1.44, "0.00003"),
    ("7b", "classification", "single"): (4, 0.14, 28.1, "0.001"),
    ("7b", "classification", "continuous"): (125, 26.13, 3.98, "0.00003"),
    ("3b", "summarization", "single"): (160, 5.46, 28.4, "0.00002"),
    ("3b", "summarization", "continuous"): (195, 96.06, 1.062, "0.00001"),
    ("7b", "summarization", "single"): (160, 5.27, 29.527, "0.00002"),
    ("7b", "summarization", "continuous"): (145, 41.5, 2.5, "0.00002"),
}


def load(d):
    out = {}
    for path in sorted(glob.glob(os.path.join(d, "*", "summary.json"))):
        name = os.path.basename(os.path.dirname(path))
        preset, engine, task, mode = name.split("-")
        out[(preset, task, engine, mode)] = json.load(open(path))
    return out


def at_max(s):
    """The rate row of the study's max RPS (None when no rate had every request succeed)."""
    rps = s.get("study_max_rps")
    return next((r for r in s["rates"] if r["target_rps"] == rps), None) if rps else None


def sig(x):
    """Two significant digits, written out in decimals as the study writes costs."""
    if x is None:
        return "-"
    if x == 0:
        return "0"
    import math
    digits = max(0, 1 - int(math.floor(math.log10(abs(x)))))
    return f"{x:.{digits}f}"


def main():
    d = sys.argv[1] if len(sys.argv) > 1 else "reports/h100-redpajama"
    runs = load(d)
    print("| model | task | engine | mode | rates run | max RPS | throughput | p90 | "
          "USD/1K tok, study formula (g5.4xlarge / H100) | USD/1K tok, measured tokens (H100) |")
    print("|---|---|---|---|---|---:|---:|---:|---:|---:|")
    for (preset, task, engine, mode), s in runs.items():
        r = at_max(s)
        rates = f"{s['rates'][0]['target_rps']:g}..{s['rates'][-1]['target_rps']:g}"
        if r is None:
            print(f"| {preset.upper()} | {task} | {engine} | {mode} | {rates} | none | | | | |")
            continue
        g5 = r["cost"]["study_usd_per_1k_tokens"]
        measured = r["cost"]["usd_per_1k_tokens"]
        measured = sig(measured * H100 / G5) if measured else "-"
        print(f"| {preset.upper()} | {task} | {engine} | {mode} | {rates} | {r['target_rps']:g} | "
              f"{r['throughput_rps']:.2f} | {r['latency_ms']['p90'] / 1e3:.3f} s | "
              f"{sig(g5)} / {sig(g5 * H100 / G5)} | {measured} |")
    print()
    print("| model | task | server | A10 max RPS | H100 max RPS | A10 throughput | H100 throughput "
          "| A10 p90 | H100 p90 | A10 USD/1K tok | H100 USD/1K tok (g5 price / H100 price) |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|")
    for (preset, task, engine), (rps, thr, p90, cost) in STUDY.items():
        s = runs.get((preset, task, engine, "burst"))
        r = at_max(s) if s else None
        server = "FastAPI / single" if engine == "single" else "TGI / continuous"
        if r is None:
            ours = "| - | - | - | -"
        else:
            g5 = r["cost"]["study_usd_per_1k_tokens"]
            ours = (f"| {r['target_rps']:g} | {r['throughput_rps']:.2f} | "
                    f"{r['latency_ms']['p90'] / 1e3:.3f} s | {sig(g5)} / {sig(g5 * H100 / G5)}")
        cols = ours.split(" | ")
        print(f"| {preset.upper()} | {task} | {server} | {rps} | {cols[0].strip('| ')} | {thr} | "
              f"{cols[1]} | {p90} s | {cols[2]} | {cost} | {cols[3]} |")
    print()
    # Single vs continuous p90, at each one's max RPS (the study's rows) and at equal rates.
    for preset in ("3b", "7b"):
        for task in ("classification", "summarization"):
            for mode in ("burst", "sustained"):
                a, b = runs.get((preset, task, "single", mode)), runs.get((preset, task, "continuous", mode))
                if not (a and b):
                    continue
                ra, rb = at_max(a), at_max(b)
                line = f"- {preset.upper()} {task}, {mode}:"
                if ra and rb:
                    line += (f" p90 at each engine's max RPS: single {ra['latency_ms']['p90'] / 1e3:.2f} s"
                             f" at {ra['target_rps']:g} req/s, continuous {rb['latency_ms']['p90'] / 1e3:.2f} s"
                             f" at {rb['target_rps']:g} req/s ({ra['latency_ms']['p90'] / rb['latency_ms']['p90']:.1f}x)")
                same = [(x, y) for x in a["rates"] for y in b["rates"] if x["target_rps"] == y["target_rps"]]
                if same:
                    ratios = ", ".join(f"{x['target_rps']:g}: {x['latency_ms']['p90'] / y['latency_ms']['p90']:.0f}x"
                                       for x, y in same)
                    line += f"; single/continuous p90 at equal rates: {ratios}"
                print(line)


if __name__ == "__main__":
    main()
