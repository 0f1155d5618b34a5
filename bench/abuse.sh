#!/usr/bin/env bash
# The attacker against a hostile server (bench/hostile_server.py on loopback): peak RSS and
# wall time of `rpload attack` when every answer is huge, and what each request recorded.
#   one 256 MiB body; eight 64 MiB bodies at once; one 64 MiB SSE event line (tgi-stream),
#   and that line again with the bounds raised, to time the SSE parser itself (curl: 0.24 s).
# Before the bounds of issue 11 these read everything: 274 MB, 337 MB, and 5.1 s / 208 MB.
# Usage: bench/abuse.sh [BIN]   (default target/release/rpload; needs python3 and GNU time)
set -euo pipefail
cd "$(dirname "$0")/.."
BIN=${1:-${CARGO_TARGET_DIR:-target}/release/rpload}
PORT=${PORT:-18177}
WORK=$(mktemp -d)
python3 bench/hostile_server.py "$PORT" &
SERVER=$!
trap 'kill $SERVER 2>/dev/null; rm -rf "$WORK"' EXIT
sleep 0.5
echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; binary: $BIN"
echo
echo "| case | requests | peak RSS MiB | wall s | error kinds | bytes read per request (max) |"
echo "|---|---:|---:|---:|---|---:|"
run() {
    local name=$1 api=$2 path=$3 n=$4
    shift 4
    /usr/bin/time -f "%M %e" -o "$WORK/time" "$BIN" attack --api "$api" \
        --target "http://127.0.0.1:$PORT$path" --rate "$n/s" --max-requests "$n" \
        --timeout 60s -o "$WORK/r.jsonl" "$@" 2> /dev/null || true
    read -r kib secs < "$WORK/time"
    kinds=$(jq -r '.error_kind // "ok"' "$WORK/r.jsonl" | sort | uniq -c | awk '{printf "%s %s ", $1, $2}')
    maxb=$(jq -s 'map(.bytes_in) | max' "$WORK/r.jsonl")
    printf "| %s | %s | %.1f | %s | %s| %s |\n" "$name" "$n" "$(echo "$kib / 1024" | bc -l)" "$secs" "$kinds" "$maxb"
}
run "one 256 MiB body" tgi /big/256 1
run "eight 64 MiB bodies at once" tgi /big/64 8
run "one 64 MiB SSE event line" tgi-stream /line/64 1
# The parser's own speed: the same line with the bounds raised past it, read to the end (it is
# then a stream error only because the stream ends without TGI's final event).
run "the same line, bounds raised to 256MiB" tgi-stream /line/64 1 --max-event-size 256MiB --max-body-size 256MiB
