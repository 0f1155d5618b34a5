#!/usr/bin/env bash
# Soak: `rpload serve --model tiny` held at a rate near its knee for MINUTES minutes by one
# `rpload attack` of the same length. Every minute it samples both processes' RSS (VmRSS) and
# that minute's requests, errors and latency p50/p99 from the results written so far, and
# prints one table row. Flat RSS columns are the point: a server or an attacker that keeps
# memory through a long run shows it here, not in a 10-second test.
#
# Usage: bench/soak.sh [MINUTES] [RATE]      (defaults: 10 minutes at 10 req/s, 20 new tokens)
# Needs: curl, jq. Builds the release binary if it is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
MINUTES=${1:-10}
RATE=${2:-10}
PORT=${PORT:-18199}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
BIN="$CARGO_TARGET_DIR/release/rpload"
[ -x "$BIN" ] || cargo build --release --quiet --bin rpload
WORK=$(mktemp -d)
SERVER=
ATTACK=
cleanup() {
    [ -n "$ATTACK" ] && kill "$ATTACK" 2>/dev/null || true
    [ -n "$SERVER" ] && kill "$SERVER" 2>/dev/null || true
    rm -rf "$WORK"
}
trap cleanup EXIT

rss_mib() { awk '/^VmRSS/ {printf "%.1f", $2 / 1024}' "/proc/$1/status" 2>/dev/null || echo "-"; }

"$BIN" serve --model tiny --port "$PORT" 2> "$WORK/serve.log" &
SERVER=$!
for _ in $(seq 1 150); do curl -sf "http://127.0.0.1:$PORT/health" > /dev/null && break; sleep 0.2; done
curl -sf "http://127.0.0.1:$PORT/health" > /dev/null || { cat "$WORK/serve.log"; exit 1; }

echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; load average: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "workload: rpload serve --model tiny (continuous), tgi /generate, 20 new tokens, $RATE req/s for $MINUTES min"
echo "server RSS before load: $(rss_mib "$SERVER") MiB"
echo
echo "| minute | server RSS MiB | attacker RSS MiB | requests | errors | p50 ms | p99 ms |"
echo "|---:|---:|---:|---:|---:|---:|---:|"
"$BIN" attack --api tgi --target "http://127.0.0.1:$PORT" --rate "$RATE/s" \
    --duration "${MINUTES}m" --max-new-tokens 20 -o "$WORK/soak.jsonl" 2> "$WORK/attack.log" &
ATTACK=$!
start=$(date +%s)
for m in $(seq 1 "$MINUTES"); do
    # Sample at the end of each minute of the attack's own schedule.
    while [ $(( $(date +%s) - start )) -lt $(( m * 60 )) ]; do sleep 1; done
    srss=$(rss_mib "$SERVER")
    arss=$(rss_mib "$ATTACK")
    lo=$(( (m - 1) * 60 * 1000000000 ))
    hi=$(( m * 60 * 1000000000 ))
    # Requests intended in this minute that have finished (the last seconds' may still run).
    row=$(jq -s -r --argjson lo "$lo" --argjson hi "$hi" '
        [.[] | select(.intended_ns >= $lo and .intended_ns < $hi)] as $r
        | ($r | map(.latency) | sort) as $l
        | def q(p): if ($l | length) == 0 then 0 else $l[(($l | length) - 1) * p | floor] / 1e6 end;
        "\($r | length) | \($r | map(select(.error_kind != null)) | length) | \(q(0.5) | floor) | \(q(0.99) | floor)"
    ' "$WORK/soak.jsonl")
    echo "| $m | $srss | $arss | $row |"
done
wait "$ATTACK" || true
ATTACK=
echo
echo "server RSS after the attack ended: $(rss_mib "$SERVER") MiB"
