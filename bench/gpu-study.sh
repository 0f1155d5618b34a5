#!/usr/bin/env bash
# bench/gpu-study.sh: the seed study (RedPajama on one GPU, FastAPI vs TGI, classification and
# summarization) re-run with rpload on a GPU machine, against `rpload serve --device cuda`.
#
# Usage, from the repository root on the GPU machine (builds nothing):
#   RPLOAD=./rpload PRESET=redpajama-3b bench/gpu-study.sh
# Knobs: PRESET, ENGINES ("single continuous"), TASKS ("classification summarization"),
# MODES ("burst sustained"), DTYPE (f16), OUTDIR (reports/h100-redpajama), SWEEP_ARGS (extra
# flags for every sweep).
#
# Each engine is served once per preset; the sweeps reuse the study's scenario files
# (scenarios/study-*.toml: the FastAPI app's sampled 50-token answers for `single`, TGI's greedy
# 20-token answers for `continuous`) with the rates the study reported:
#   single:     classification 1..4 step 1,   summarization 10..160 step 15 (30 in bursts)
#   continuous: classification 10..150 step 15, summarization 10..200 step 15
# burst     = the study's method: N requests within 1 s, 3 times per N (cooldown 1 s, not 4 s,
#             to fit the GPU budget; the server is idle again long before), every N run
#             (single-engine summarization: one burst per N, see below);
# sustained = 10-second steps at N req/s, once, stopping after two unsustainable steps.
# Finished sweeps are skipped, so the study can be split across several device calls;
# results.jsonl is xz-compressed (`xz -dk` it before `rpload report --sweep DIR`).
# Sweeps are priced at the study's g5.4xlarge; the README re-prices them at one H100
# (p5.48xlarge-per-gpu in scenarios/pricing.toml).
set -euo pipefail
cd "$(dirname "$0")/.."

RPLOAD=${RPLOAD:-./rpload}
PRESET=${PRESET:-redpajama-3b}
ENGINES=${ENGINES:-"single continuous"}
TASKS=${TASKS:-"classification summarization"}
MODES=${MODES:-"burst sustained"}
DTYPE=${DTYPE:-f16}
DEVICE=${DEVICE:-cuda} # cpu: a dry run with PRESET=tiny DTYPE=f32
PORT=${PORT:-18081}
OUTDIR=${OUTDIR:-reports/h100-redpajama}
SWEEP_ARGS=${SWEEP_ARGS:-}
mkdir -p "$OUTDIR"
short=${PRESET#redpajama-}

server=
stop_server() {
  if [ -n "$server" ]; then kill "$server" 2>/dev/null; wait "$server" 2>/dev/null || true; fi
  server=
}
trap stop_server EXIT

start_server() { # engine
  local log="$OUTDIR/serve-$short-$1.log"
  "$RPLOAD" serve --device "$DEVICE" --dtype "$DTYPE" --model "$PRESET" --engine "$1" \
    --port "$PORT" --max-total-tokens 1024 >>"$log" 2>&1 &
  server=$!
  for _ in $(seq 600); do
    curl -sf "http://127.0.0.1:$PORT/health" >/dev/null 2>&1 && return 0
    kill -0 "$server" 2>/dev/null || { cat "$log"; exit 1; }
    sleep 0.5
  done
}

for mode in $MODES; do
  for engine in $ENGINES; do
    for task in $TASKS; do
      name="$short-$engine-$task-$mode"
      # A finished sweep (carried back into the tree) is not run again.
      [ -f "$OUTDIR/$name/summary.json" ] && { echo "== $name: done before"; continue; }
      [ -n "$server" ] || start_server "$engine"
      case "$engine/$task" in
        single/classification) api=fastapi; rps=1..4; step=1 ;;
        single/summarization) api=fastapi; rps=10..160; step=$([ "$mode" = burst ] && echo 30 || echo 15) ;;
        continuous/classification) api=tgi; rps=10..150; step=15 ;;
        continuous/summarization) api=tgi; rps=10..200; step=15 ;;
      esac
      case $mode/$engine/$task in
        # One burst per N at every other rate of the study (10, 40, .. 160): a single worker
        # drains N x 0.25-0.4 s per burst, which three bursts at each of 11 rates would take
        # most of a 10-minute device call to wait out.
        burst/single/summarization) how=(--step-duration 1s --repeat 1 --cooldown 1s --no-early-stop) ;;
        burst/*) how=(--step-duration 1s --repeat 3 --cooldown 1s --no-early-stop) ;;
        sustained/*) how=(--step-duration 10s --repeat 1 --cooldown 2s) ;;
      esac
      echo "== $name ($(date +%T))"
      rm -rf "${OUTDIR:?}/$name"
      # shellcheck disable=SC2086 # SWEEP_ARGS is a list of flags
      "$RPLOAD" sweep --scenario "scenarios/study-$task-$api.toml" \
        --target "http://127.0.0.1:$PORT" --rps "$rps" --step "$step" "${how[@]}" \
        --instance g5.4xlarge --out "$OUTDIR/$name" $SWEEP_ARGS \
        --name "RedPajama-${short^^} $task, $engine engine, $mode (H100, $DTYPE)" ||
        echo "sweep $name failed: $?"
      [ -f "$OUTDIR/$name/results.jsonl" ] && xz -9 -T0 "$OUTDIR/$name/results.jsonl"
    done
    stop_server
  done
done
