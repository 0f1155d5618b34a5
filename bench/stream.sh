#!/usr/bin/env bash
# The attacker's own ceiling for streamed tokens: `rpload serve --engine mock` (no model,
# tokens on timers, so the truth is known) and `rpload attack --api tgi-stream` on one machine,
# at rising rates of token events. Per level: token events/s achieved, the TTFT and ITL p50
# errors (measured minus the mock's --ttft / --itl), send-lag p99, the mock's own timer
# lateness (from its /metrics: what the server adds, not the client), and each process's CPU.
# Target (issue 14): >= 100,000 token events/s with TTFT and ITL p50 within 1 ms of truth.
# Needs: python3, curl. Prints a Markdown table; raw records in $WORK (created if missing).
# Usage: bench/stream.sh [seconds-per-level (8)]   (env: RATES="100 250 500 1000 1500",
#        TTFT=50ms ITL=1ms TOKENS=100 PORT=18282 API=tgi-stream)
set -euo pipefail
cd "$(dirname "$0")/.."
DUR=${1:-8}
RATES=${RATES:-"100 250 500 1000 1500"}
TTFT=${TTFT:-50ms}
ITL=${ITL:-1ms}
TOKENS=${TOKENS:-100}
PORT=${PORT:-18282}
API=${API:-tgi-stream}
WORK=${WORK:-$(mktemp -d /tmp/rpload-stream.XXXXXX)}
mkdir -p "$WORK"
URL="http://127.0.0.1:$PORT"
for tool in python3 curl; do
    command -v "$tool" >/dev/null || { echo "bench/stream.sh: $tool is missing" >&2; exit 1; }
done
cargo build --release --quiet --bin rpload
RPLOAD=${CARGO_TARGET_DIR:-target}/release/rpload
ulimit -n 65536 2>/dev/null || true

"$RPLOAD" serve --engine mock --ttft "$TTFT" --itl "$ITL" --tokens "$TOKENS" --port "$PORT" \
    --max-concurrent-requests 100000 --max-connections 60000 2> "$WORK/serve.log" &
SERVER=$!
trap 'kill $SERVER 2>/dev/null || true' EXIT
for _ in $(seq 1 100); do curl -sf "$URL/health" >/dev/null && break; sleep 0.1; done

# CPU seconds (user + system) of a process so far.
cpu() { awk -v hz="$(getconf CLK_TCK)" '{print ($14 + $15) / hz}' "/proc/$1/stat"; }
# The sum and count of a histogram in the mock's /metrics.
hist() { curl -s "$URL/metrics" | awk -v n="$1" '$1 == n"_sum" {s=$2} $1 == n"_count" {c=$2} END {print s+0, c+0}'; }

echo "## bench/stream.sh ($(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores: $(lscpu | sed -n 's/^Model name: *//p'), $(free -g | awk '/^Mem:/ {print $2}') GiB; load $(cut -d' ' -f1-3 /proc/loadavg))"
echo
echo "mock: --ttft $TTFT --itl $ITL --tokens $TOKENS; attacker: --api $API, constant arrivals, ${DUR} s per level; errors are p50(measured) - truth"
echo
echo "| req/s | token events/s target | achieved | success | TTFT p50 error | client TTFT error | ITL p50 error | ITL p99 error | send-lag p99 | mock first-token lateness (mean) | mock token lateness (mean) | attacker CPU | mock CPU |"
echo "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
for rate in $RATES; do
    out="$WORK/attack-$rate.jsonl"
    read -r fs fc < <(hist rpload_mock_first_token_lateness_seconds)
    read -r ts tc < <(hist rpload_mock_token_lateness_seconds)
    s0=$(cpu "$SERVER")
    /usr/bin/time -f '%U %S' -o "$WORK/time-$rate" "$RPLOAD" attack --api "$API" --target "$URL" \
        --rate "$rate" --duration "${DUR}s" --max-new-tokens "$TOKENS" --ignore-eos -o "$out" 2> "$WORK/attack-$rate.log"
    s1=$(cpu "$SERVER")
    read -r fs2 fc2 < <(hist rpload_mock_first_token_lateness_seconds)
    read -r ts2 tc2 < <(hist rpload_mock_token_lateness_seconds)
    python3 - "$out" "$rate" "$DUR" "$TTFT" "$ITL" "$TOKENS" "$(cat "$WORK/time-$rate")" \
        "$(echo "$s1 - $s0" | bc -l)" "$fs $fc $fs2 $fc2" "$ts $tc $ts2 $tc2" <<'EOF'
import json, re, sys
path, rate, dur, ttft, itl, tokens, atime, scpu, first, mean = sys.argv[1:]
rate, dur, tokens = float(rate), float(dur), int(tokens)
def secs(t):
    m = re.fullmatch(r"([\d.]+)(ms|us|s)", t)
    return float(m[1]) * {"ms": 1e-3, "us": 1e-6, "s": 1.0}[m[2]]
ttft, itl = secs(ttft), secs(itl)
lo = ttft + (tokens - 1) * itl
ttfts, itls, lags, events, ok, n = [], [], [], 0, 0, 0
for line in open(path):
    r = json.loads(line)
    n += 1
    lags.append((r["sent_ns"] - r["intended_ns"]) / 1e9)
    if r.get("error"):
        continue
    ok += 1
    if r.get("ttft_ns") is None:
        continue
    ttfts.append(r["ttft_ns"] / 1e9)
    itls.extend(g / 1e9 for g in r.get("itl_ns", []))
    # Each token event's arrival, to count those in the steady window.
    t = (r["intended_ns"] + r["ttft_ns"]) / 1e9
    arrivals = [t]
    for g in r.get("itl_ns", []):
        t += g / 1e9
        arrivals.append(t)
    events += sum(lo <= a < dur for a in arrivals)
def pct(v, p):
    v = sorted(v)
    return v[min(len(v) - 1, int(len(v) * p))] if v else float("nan")
def delta(s):
    a, b, c, d = map(float, s.split())
    return (c - a) / (d - b) * 1e3 if d > b else float("nan")
user, sys_ = map(float, atime.split())
wall = dur - lo
ms = lambda x: f"{x * 1e3:+.3f} ms"
# The client's own TTFT error: measured minus when the mock actually sent the first token
# (its due time plus its mean lateness in this level, from its /metrics).
late = delta(first) / 1e3
print(f"| {rate:.0f} | {rate * tokens:,.0f} | {events / wall:,.0f} | {ok / max(n, 1):.2%} | "
      f"{ms(pct(ttfts, .5) - ttft)} | {ms(pct(ttfts, .5) - ttft - late)} | {ms(pct(itls, .5) - itl)} | {ms(pct(itls, .99) - itl)} | "
      f"{pct(lags, .99) * 1e3:.3f} ms | {delta(first):.3f} ms | {delta(mean):.3f} ms | "
      f"{(user + sys_) / dur:.0%} | {float(scpu) / dur:.0%} |")
EOF
    rm -f "$out"
done
echo
echo "client TTFT error = TTFT p50 error minus the mock's mean first-token lateness: what the"
echo "attacker adds; ITL errors need no such correction (the mock's per-token lateness is the same"
echo "wake-up for every token, so it largely cancels in a gap)."
echo "achieved = token events that arrived between ttft + (tokens - 1) x itl (every answer of the"
echo "level under way) and the level's end, per second of that window; CPU = CPU seconds / the"
echo "level's duration (100% = one core; the attacker's includes its start and drain); logs in $WORK"
