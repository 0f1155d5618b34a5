#!/usr/bin/env bash
# Attacker benchmark: rpload against nginx on loopback, side by side with oha, wrk and hey.
#   (1) pacing: achieved/target rate and send lag at 1k, 5k, 20k req/s, beside oha -q
#   (2) ceiling: the highest open-loop rate rpload holds with send-lag p99 < 1 ms, beside the
#       closed-loop maxima of wrk, oha and hey
#   (3) memory: peak RSS of a 10 s and a 60 s attack at 5k req/s
# Needs: nginx, wrk, hey (Debian: apt-get install nginx-light wrk hey), oha
# (cargo install --locked oha), jq, GNU time. Prints a Markdown table; raw output in $WORK.
# Usage: bench/attack.sh [seconds-per-pacing-run (10)] [seconds-per-ceiling-step (5)]
set -euo pipefail
cd "$(dirname "$0")/.."
DUR=${1:-10}
STEP=${2:-5}
PORT=${PORT:-18080}
WORK=${WORK:-$(mktemp -d /tmp/rpload-bench.XXXXXX)}
# A $WORK that is given but missing is made, so `WORK=/tmp/run1 bench/attack.sh` works as written.
mkdir -p "$WORK"
URL="http://127.0.0.1:$PORT/"
for tool in nginx wrk hey oha jq /usr/bin/time; do
    command -v "$tool" >/dev/null || { echo "bench/attack.sh: $tool is missing (see the header of this script)" >&2; exit 1; }
done

cargo build --release --quiet
RPLOAD=target/release/rpload

# nginx: one worker (the other core is the load generator's); see bench/nginx.sh.
source "$(dirname "$0")/nginx.sh"
start_nginx "$PORT" "$WORK"
ulimit -n 65536 || true

# rpload attack at a rate; prints "achieved_rate send_lag_p50_us send_lag_p99_us success
# steady_p99_us", where the steady p99 leaves out the first second: a cold connection pool
# opens one connection per waiting request, and at 20k req/s that herd delays sends for
# about 100 ms once.
rpload_run() {
    local rate=$1 dur=$2 out="$WORK/rpload-$1-$2.jsonl"
    "$RPLOAD" attack --api http --target "$URL" --rate "$rate" --duration "${dur}s" -o "$out"
    local steady
    steady=$(jq -r 'select(.intended_ns >= 1000000000) | .sent_ns - .intended_ns' "$out" \
        | sort -n | awk '{v[NR]=$1} END {i=int(NR*0.99); if (i<1) i=1; print v[i]/1000}')
    "$RPLOAD" report --type json "$out" | jq -r --arg s "$steady" '[.rate, (.send_lag["50th"]/1000), (.send_lag["99th"]/1000), .success, ($s|tonumber)] | @tsv'
    rm -f "$out"
}

echo "## rpload attack benchmark ($(date -u +%Y-%m-%d), $(nproc) cores: $(lscpu | sed -n 's/^Model name: *//p'))"
echo
echo "### (1) pacing, ${DUR} s per run"
echo
echo "| target req/s | rpload achieved | rpload rate error | send-lag p50 | send-lag p99 | p99 after 1 s | oha -q achieved | oha rate error |"
echo "|---:|---:|---:|---:|---:|---:|---:|---:|"
for rate in 1000 5000 20000; do
    read -r got p50 p99 ok steady < <(rpload_run "$rate" "$DUR")
    oha_json=$(oha -z "${DUR}s" -q "$rate" -c 200 --no-tui --output-format json "$URL" 2>/dev/null || echo '{}')
    oha_rps=$(echo "$oha_json" | jq -r '.summary.requestsPerSec // 0')
    printf '| %d | %.1f | %.3f%% | %.0f us | %.0f us | %.0f us | %.1f | %.3f%% |\n' "$rate" "$got" \
        "$(echo "($got-$rate)/$rate*100" | bc -l)" "$p50" "$p99" "$steady" "$oha_rps" \
        "$(echo "($oha_rps-$rate)/$rate*100" | bc -l)"
done

echo
echo "### (2) ceiling, ${STEP} s per step"
echo
echo "| tool | mode | max req/s | note |"
echo "|---|---|---:|---|"
best=0; best_p99=0; best_all=0
for rate in 10000 20000 30000 40000 50000 60000 70000 80000; do
    read -r got p50 p99 ok steady < <(rpload_run "$rate" "$STEP")
    echo "rpload open loop $rate: achieved $got p99 ${p99}us steady p99 ${steady}us success $ok" >> "$WORK/ceiling.log"
    if (( $(echo "$steady < 1000 && $got >= $rate*0.995 && $ok >= 0.99" | bc -l) )); then
        best=$rate; best_p99=$steady; best_all=$p99
    else
        break
    fi
done
printf '| rpload | open loop (send-lag p99 after 1 s < 1 ms, rate error < 0.5%%) | %d | send-lag p99 %.0f us after 1 s, %.0f us whole run |\n' "$best" "$best_p99" "$best_all"
wrk_rps=$(wrk -t1 -c64 -d"${STEP}s" "$URL" | sed -n 's/^Requests\/sec: *//p')
printf '| wrk | closed loop, 1 thread, 64 connections | %.0f | |\n' "$wrk_rps"
oha_rps=$(oha -z "${STEP}s" -c 64 --no-tui --output-format json "$URL" 2>/dev/null | jq -r '.summary.requestsPerSec')
printf '| oha | closed loop, 64 connections | %.0f | |\n' "$oha_rps"
hey_rps=$(hey -z "${STEP}s" -c 64 "$URL" | sed -n 's/^ *Requests\/sec: *//p')
printf '| hey | closed loop, 64 connections | %.0f | |\n' "$hey_rps"
read -r rl_closed _ < <("$RPLOAD" attack --api http --target "$URL" --rate 0 --max-inflight 64 --duration "${STEP}s" -o "$WORK/closed.jsonl" && "$RPLOAD" report --type json "$WORK/closed.jsonl" | jq -r '[.throughput] | @tsv')
rm -f "$WORK/closed.jsonl"
printf '| rpload | closed loop, 64 users | %.0f | |\n' "$rl_closed"

echo
echo "### (3) peak RSS at 5000 req/s"
echo
echo "| tool | 10 s | 60 s |"
echo "|---|---:|---:|"
rss() { /usr/bin/time -f '%M' "$@" 2>&1 >/dev/null | tail -1; }
r10=$(rss "$RPLOAD" attack --api http --target "$URL" --rate 5000 --duration 10s -o /dev/null)
r60=$(rss "$RPLOAD" attack --api http --target "$URL" --rate 5000 --duration 60s -o /dev/null)
printf '| rpload | %.1f MiB | %.1f MiB |\n' "$(echo "$r10/1024" | bc -l)" "$(echo "$r60/1024" | bc -l)"
o10=$(rss oha -z 10s -q 5000 -c 200 --no-tui "$URL")
o60=$(rss oha -z 60s -q 5000 -c 200 --no-tui "$URL")
printf '| oha -q | %.1f MiB | %.1f MiB |\n' "$(echo "$o10/1024" | bc -l)" "$(echo "$o60/1024" | bc -l)"
echo
echo "raw output: $WORK"
