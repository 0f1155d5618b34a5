#!/usr/bin/env python3
"""Closed-loop load for `bench/serve.sh`: C threads each send TGI `POST /generate` requests
back to back (keep-alive) for a fixed time, with `ignore_eos` so every request generates exactly
`--max-new-tokens`. Prints one JSON line: requests, generated tokens/s, mean latency.
Standard library only, so it runs anywhere the server does."""
import argparse
import http.client
import json
import threading
import time
import urllib.parse

PROMPT = (
    "The quick brown fox jumps over the lazy dog while the server answers every request. "
    "Load testing measures how many requests an endpoint can take within a latency target, "
    "and what each thousand tokens costs on the instance that serves them."
)


def worker(url, body, deadline, out):
    u = urllib.parse.urlparse(url)
    conn = http.client.HTTPConnection(u.hostname, u.port, timeout=600)
    done, tokens, latency = 0, 0, 0.0
    while time.monotonic() < deadline:
        t0 = time.monotonic()
        conn.request("POST", "/generate", body=body, headers={"content-type": "application/json"})
        resp = conn.getresponse()
        data = resp.read()
        if resp.status != 200:
            raise SystemExit(f"status {resp.status}: {data[:200]!r}")
        latency += time.monotonic() - t0
        tokens += int(resp.getheader("x-generated-tokens"))
        done += 1
    out.append((done, tokens, latency))


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--url", default="http://127.0.0.1:8080")
    ap.add_argument("--concurrency", type=int, default=1)
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--max-new-tokens", type=int, default=64)
    args = ap.parse_args()
    body = json.dumps({"inputs": PROMPT, "parameters": {"max_new_tokens": args.max_new_tokens, "ignore_eos": True}})
    # One warm-up request (first-touch allocations) outside the measurement.
    worker(args.url, body, time.monotonic() + 0.001, [])
    out = []
    start = time.monotonic()
    deadline = start + args.duration
    threads = [threading.Thread(target=worker, args=(args.url, body, deadline, out)) for _ in range(args.concurrency)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.monotonic() - start
    done = sum(d for d, _, _ in out)
    tokens = sum(t for _, t, _ in out)
    lat = sum(l for _, _, l in out) / max(done, 1)
    print(json.dumps({"concurrency": args.concurrency, "requests": done, "tokens_per_s": round(tokens / elapsed, 1),
                      "mean_latency_s": round(lat, 3), "elapsed_s": round(elapsed, 1)}))


if __name__ == "__main__":
    main()
