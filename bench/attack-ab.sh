#!/usr/bin/env bash
# Two builds of the attacker side by side, interleaved run by run against one nginx worker on
# loopback, so a change to the attack loop is judged as a ratio on the same machine at the same
# moment: pacing (achieved rate, send-lag p50/p99) at 1k, 5k and 20k req/s, and peak RSS of a
# 60 s attack at 5k req/s.
# Needs: nginx, jq, bc, GNU time. Usage: bench/attack-ab.sh OLD_BINARY NEW_BINARY [seconds (10)]
# (build the old one from a worktree: git worktree add /tmp/old REV && cargo build --release).
set -euo pipefail
[[ $# -ge 2 ]] || { echo "usage: bench/attack-ab.sh OLD_BINARY NEW_BINARY [seconds]" >&2; exit 2; }
OLD=$1 NEW=$2 DUR=${3:-10}
PORT=${PORT:-18081}
WORK=${WORK:-$(mktemp -d /tmp/rpload-ab.XXXXXX)}
URL="http://127.0.0.1:$PORT/"
for tool in nginx jq /usr/bin/time "$OLD" "$NEW"; do
    command -v "$tool" >/dev/null || { echo "bench/attack-ab.sh: $tool is missing" >&2; exit 1; }
done
source "$(dirname "$0")/nginx.sh"
start_nginx "$PORT" "$WORK"

# "achieved send_lag_p50_us send_lag_p99_us success" of one attack.
pacing() {
    local bin=$1 rate=$2 out="$WORK/run.jsonl"
    "$bin" attack --api http --target "$URL" --rate "$rate" --duration "${DUR}s" -o "$out"
    "$bin" report --type json "$out" |
        jq -r '[.rate, (.send_lag["50th"]/1000), (.send_lag["99th"]/1000), .success] | @tsv'
    rm -f "$out"
}
rss_mib() {
    /usr/bin/time -f '%M' "$1" attack --api http --target "$URL" --rate 5000 --duration 60s \
        -o /dev/null 2>&1 >/dev/null | tail -1 | awk '{printf "%.1f", $1/1024}'
}

echo "## attacker A/B ($(date -u +%Y-%m-%d), $(nproc) cores: $(lscpu | sed -n 's/^Model name: *//p'))"
echo
echo "old: $OLD, new: $NEW; ${DUR} s per run, runs interleaved"
echo
echo "| target req/s | build | achieved | send-lag p50 | send-lag p99 | success | p99 new/old |"
echo "|---:|---|---:|---:|---:|---:|---:|"
for rate in 1000 5000 20000; do
    read -r og op50 op99 ook < <(pacing "$OLD" "$rate")
    read -r ng np50 np99 nok < <(pacing "$NEW" "$rate")
    printf '| %d | old | %.1f | %.0f us | %.0f us | %.4f | |\n' "$rate" "$og" "$op50" "$op99" "$ook"
    printf '| %d | new | %.1f | %.0f us | %.0f us | %.4f | %.2f |\n' "$rate" "$ng" "$np50" "$np99" \
        "$nok" "$(echo "$np99/($op99+0.001)" | bc -l)"
done
echo
ro=$(rss_mib "$OLD")
rn=$(rss_mib "$NEW")
echo "| peak RSS, 60 s at 5000 req/s | old | new | new/old |"
echo "|---|---:|---:|---:|"
printf '| | %s MiB | %s MiB | %.2f |\n' "$ro" "$rn" "$(echo "$rn/$ro" | bc -l)"
