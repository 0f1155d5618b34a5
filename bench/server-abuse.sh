#!/usr/bin/env bash
# The server under abuse (issue 11's figures): `/health` p50 while six 1 MB prompts arrive at
# once, and `rpload serve --model tiny`'s RSS through 56 such prompts (refused by their length)
# and 18 more with `truncate` (tokenised). Runs the ignored test that measures it, on a release
# build; RPLOAD_BIN=<older rpload> measures another build with the same probes.
# Usage: bench/server-abuse.sh
set -euo pipefail
cd "$(dirname "$0")/.."
echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; load average: $(cut -d' ' -f1-3 /proc/loadavg)"
cargo test --release --locked --test server_hardening abuse_keeps_health_quick_and_rss_flat \
    -- --ignored --nocapture 2>&1 | grep -E "^(health|RSS)|test result|panicked"
