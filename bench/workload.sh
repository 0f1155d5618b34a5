#!/usr/bin/env bash
# Does building requests from a workload slow the attacker? One nginx worker answers every
# POST with a TGI body; rpload attacks it at RATE req/s with the default fixed prompt, with
# 200-token synthetic prompts (estimated, no tokenizer) and with 200-token synthetic prompts
# made exact by the GPT-NeoX fixture tokenizer, interleaved over two rounds. Prints achieved
# rate, send-lag p50/p99 (and p99 as a ratio to the fixed prompt's in the same round), the
# attack's wall time beyond its duration (the pool is built before the first send) and peak RSS.
#
# Needs: nginx, jq, bc, GNU time. Usage: bench/workload.sh [BIN (target/release/rpload)] [secs (10)] [rate (5000)]
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
BIN=${1:-$here/target/release/rpload}
SECS=${2:-10}
RATE=${3:-5000}
TOK=$here/tests/fixtures/gpt_neox_parallel/tokenizer.json
for tool in nginx jq bc /usr/bin/time "$BIN"; do
    command -v "$tool" >/dev/null || { echo "bench/workload.sh: $tool not found" >&2; exit 2; }
done
dir=$(mktemp -d)
port=18093
cat > "$dir/nginx.conf" <<CONF
worker_processes 1;
pid $dir/nginx.pid;
error_log $dir/nginx-error.log;
events { worker_connections 65536; }
http {
    access_log off;
    keepalive_requests 1000000;
    client_body_buffer_size 64k;
    server {
        listen 127.0.0.1:$port reuseport backlog=65535;
        default_type application/json;
        location / { return 200 '{"generated_text":" ok","details":{"finish_reason":"length","generated_tokens":1}}'; }
    }
}
CONF
nginx -c "$dir/nginx.conf"
trap "nginx -c '$dir/nginx.conf' -s stop 2>/dev/null || true; rm -rf '$dir'" EXIT
sleep 0.5

run() { # name, extra flags...
    local name=$1; shift
    local out=$dir/$name.jsonl
    /usr/bin/time -f '%e %M' -o "$dir/time" "$BIN" attack -t "http://127.0.0.1:$port" --api tgi \
        --rate "$RATE" --duration "${SECS}s" --max-new-tokens 1 "$@" -o "$out" 2>/dev/null || true
    read -r wall rss_kb < "$dir/time"
    local row
    row=$("$BIN" report --type json "$out" |
        jq -r '[.rate, (.send_lag["50th"]/1000), (.send_lag["99th"]/1000), .success, (.workload.input.mean // 0)] | @tsv')
    echo "$name	$row	$(echo "$wall - $SECS" | bc)	$(echo "scale=1; $rss_kb/1024" | bc)"
}

echo "machine: $(nproc) cores, $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); load: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "$RATE req/s for ${SECS}s per run against one nginx worker; $(date -u '+%F %H:%M UTC')"
echo
echo "| round | prompts | achieved req/s | send-lag p50 | send-lag p99 | p99 / fixed | success | prompt tokens (mean) | wall beyond duration | peak RSS |"
echo "|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|"
for round in 1 2; do
    base=""
    for kind in fixed synthetic synthetic+tokenizer; do
        case $kind in
            fixed) row=$(run "$kind-$round") ;;
            synthetic) row=$(run "$kind-$round" --input-tokens 200) ;;
            synthetic+tokenizer) row=$(run "$kind-$round" --input-tokens 200 --tokenizer "$TOK") ;;
        esac
        IFS=$'\t' read -r _ rate p50 p99 ok mean extra rss <<< "$row"
        [ -z "$base" ] && base=$p99
        ratio=$(echo "scale=2; $p99 / $base" | bc)
        printf '| %s | %s | %.1f | %.0f us | %.0f us | %s | %.2f%% | %.0f | %.2f s | %s MiB |\n' \
            "$round" "$kind" "$rate" "$p50" "$p99" "$ratio" "$(echo "$ok * 100" | bc)" "$mean" "$extra" "$rss"
    done
done
