#!/usr/bin/env bash
# The open-loop ceiling by `attack --workers`, side by side with wrk2 in one run, against one
# nginx worker on loopback (bench/nginx.sh), and the closed loop beside wrk. Per target rate:
# what rpload achieved with 1 and 2 workers and its send-lag p99 after the first second (the
# cold pool's connect herd), and what wrk2 (-t2 -c64 -R, its latency corrected for coordinated
# omission) achieved with its latency p99. Held = achieved >= 99.5% of the target; for rpload
# also send-lag p99 after 1 s < 1 ms. Then the closed-loop maxima with 64 connections, and
# rpload's peak RSS at the highest rate run.
# Needs: nginx, wrk, jq, bc, GNU time; wrk2 (built from github.com/giltene/wrk2 outside the repo;
# WRK2=/path/to/wrk, else its column is skipped with a note). Prints a Markdown table.
# Usage: bench/workers.sh [seconds-per-step (10; wrk2 calibrates for its first seconds)]   (env: RATES, PORT, WORK, WRK2)
set -euo pipefail
cd "$(dirname "$0")/.."
STEP=${1:-10}
RATES=${RATES:-"10000 15000 20000 30000 50000"}
PORT=${PORT:-18081}
WORK=${WORK:-$(mktemp -d /tmp/rpload-workers.XXXXXX)}
mkdir -p "$WORK"
WRK2=${WRK2:-$(command -v wrk2 || true)}
URL="http://127.0.0.1:$PORT/"
for tool in nginx wrk jq bc /usr/bin/time; do
    command -v "$tool" >/dev/null || { echo "bench/workers.sh: $tool is missing (see the header)" >&2; exit 1; }
done
cargo build --release --quiet --bin rpload
RPLOAD=${CARGO_TARGET_DIR:-target}/release/rpload
source "$(dirname "$0")/nginx.sh"
start_nginx "$PORT" "$WORK"
ulimit -n 65536 2>/dev/null || true

# rpload_run RATE WORKERS -> "achieved send_lag_p99_us steady_p99_us success peak_rss_kib";
# achieved = requests / the span of their actual send times (the report's rate counts intended
# times, which a lagging attacker still has on schedule).
rpload_run() {
    local rate=$1 workers=$2 out="$WORK/rpload-$1-$2.jsonl"
    /usr/bin/time -f '%M' -o "$WORK/rss" "$RPLOAD" attack --api http --target "$URL" \
        --rate "$rate" --duration "${STEP}s" --workers "$workers" -o "$out" 2>/dev/null
    local steady sent
    steady=$(jq -r 'select(.intended_ns >= 1000000000) | .sent_ns - .intended_ns' "$out" \
        | sort -n | awk '{v[NR]=$1} END {i=int(NR*0.99); if (i<1) i=1; print v[i]/1000}')
    sent=$(jq -r '.sent_ns' "$out" | awk 'NR == 1 {lo=$1; hi=$1} {if ($1<lo) lo=$1; if ($1>hi) hi=$1} END {print (NR-1) / ((hi-lo)/1e9)}')
    "$RPLOAD" report --type json "$out" \
        | jq -r --arg s "$steady" --arg m "$(cat "$WORK/rss")" --arg a "$sent" \
            '[($a|tonumber), (.send_lag["99th"]/1000), ($s|tonumber), .success, ($m|tonumber)] | @tsv'
    rm -f "$out"
}

# wrk2_run RATE -> "achieved latency_p99_ms"
wrk2_run() {
    local out
    out=$("$WRK2" -t2 -c64 -d"${STEP}s" -R"$1" --latency "$URL")
    echo "$out" >> "$WORK/wrk2.log"
    local rps p99
    rps=$(echo "$out" | sed -n 's/^Requests\/sec: *//p')
    p99=$(echo "$out" | awk '$1 == "99.000%" {v=$2; if (v ~ /us$/) {sub(/us/,"",v); v/=1000} else if (v ~ /ms$/) {sub(/ms/,"",v)} else if (v ~ /s$/) {sub(/s/,"",v); v*=1000}; print v; exit}')
    echo "$rps ${p99:-nan}"
}

held() { echo "$1 >= $2 * 0.995" | bc -l; }

echo "## bench/workers.sh ($(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores: $(lscpu | sed -n 's/^Model name: *//p'); load $(cut -d' ' -f1-3 /proc/loadavg))"
echo
echo "one nginx worker; ${STEP} s per step; rpload \`attack --api http --rate R\`, wrk2 \`-t2 -c64 -R R\`"
echo
echo "| target req/s | rpload 1 worker | send-lag p99 after 1 s | rpload 2 workers | send-lag p99 after 1 s | wrk2 | wrk2 latency p99 |"
echo "|---:|---:|---:|---:|---:|---:|---:|"
best1=0; best2=0; bestw=0; rss_top=0
for rate in $RATES; do
    read -r a1 _ s1 ok1 _ < <(rpload_run "$rate" 1)
    read -r a2 _ s2 ok2 m2 < <(rpload_run "$rate" 2)
    rss_top=$m2
    if [ -n "$WRK2" ]; then read -r aw pw < <(wrk2_run "$rate"); else aw=nan; pw=nan; fi
    [ "$(held "$a1" "$rate")" = 1 ] && (( $(echo "$s1 < 1000 && $ok1 >= 0.99" | bc -l) )) && best1=$rate
    [ "$(held "$a2" "$rate")" = 1 ] && (( $(echo "$s2 < 1000 && $ok2 >= 0.99" | bc -l) )) && best2=$rate
    [ "$aw" != nan ] && [ "$(held "$aw" "$rate")" = 1 ] && bestw=$rate
    printf '| %d | %.0f | %.0f us | %.0f | %.0f us | %s | %s ms |\n' "$rate" "$a1" "$s1" "$a2" "$s2" "$aw" "$pw"
done
echo
echo "highest held: rpload --workers 1: ${best1}; --workers 2: ${best2}; wrk2: ${bestw:-skipped}$([ -z "$WRK2" ] && echo ' (wrk2 not found: set WRK2)')"
echo "peak RSS of the 2-worker attack at the last rate: $(echo "$rss_top/1024" | bc -l | xargs printf '%.1f') MiB"
echo
echo "| closed loop, 64 connections, ${STEP} s | req/s |"
echo "|---|---:|"
printf '| wrk -t2 -c64 | %.0f |\n' "$(wrk -t2 -c64 -d"${STEP}s" "$URL" | sed -n 's/^Requests\/sec: *//p')"
for w in 1 2; do
    "$RPLOAD" attack --api http --target "$URL" --rate 0 --max-inflight 64 --duration "${STEP}s" \
        --workers "$w" -o "$WORK/closed.jsonl" 2>/dev/null
    printf '| rpload --rate 0 --max-inflight 64 --workers %d | %.0f |\n' "$w" \
        "$("$RPLOAD" report --type json "$WORK/closed.jsonl" | jq -r '.throughput')"
done
rm -f "$WORK/closed.jsonl"
echo
echo "raw output: $WORK"
