#!/usr/bin/env bash
# bench/replicas.sh: the capacity plan put to the test. One replica's sustained knee for the
# study's 3B classification scenario, then R replicas behind one multi-target attack
# (`--target` per replica, --balance), against what `rpload plan` predicts from the one:
# R x the single knee. Prediction error = (sustained - predicted) / predicted.
#
# Usage, from the repository root on a GPU machine (builds nothing):
#   RPLOAD=./rpload bench/replicas.sh
# Knobs: PRESET (redpajama-3b), DTYPE (f16), GPUS (default: nvidia-smi's count), RPS_ONE
# (one replica's plan, "40..140"), STEP_ONE (10), STEP_S (10: seconds a step), BALANCE
# (round-robin), OUTDIR (reports/replicas), DEVICE (cuda; cpu with PRESET=tiny is a dry run).
# Needs curl and python3 (no jq or bc: GPU images often lack them).
#
# With GPUS >= 2 the runs are 1 replica on cuda:0, then GPUS replicas, one per card. With one
# GPU the second run is two replicas sharing cuda:0: it proves the code path (two servers,
# one attack, per-target verdicts) and measures what a plan that counts processes instead of
# cards gets wrong. The plan for R replicas runs the single plan's levels times R.
set -euo pipefail
cd "$(dirname "$0")/.."

RPLOAD=${RPLOAD:-./rpload}
PRESET=${PRESET:-redpajama-3b}
DTYPE=${DTYPE:-f16}
DEVICE=${DEVICE:-cuda}
RPS_ONE=${RPS_ONE:-40..140}
STEP_ONE=${STEP_ONE:-10}
STEP_S=${STEP_S:-10}
BALANCE=${BALANCE:-round-robin}
OUTDIR=${OUTDIR:-reports/replicas}
BASE_PORT=${BASE_PORT:-18200}
if [ -z "${GPUS:-}" ]; then
  GPUS=$(nvidia-smi -L 2>/dev/null | grep -c '^GPU' || true)
  [ "$GPUS" -ge 1 ] 2>/dev/null || GPUS=1
fi
mkdir -p "$OUTDIR"

pids=()
stop_all() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  pids=()
}
trap stop_all EXIT

# start_replicas N SHARED: N servers, on cuda:i (or all on cuda:0 when SHARED=1); prints the
# --target flags.
start_replicas() {
  local n=$1 shared=$2 targets=()
  for i in $(seq 0 $((n - 1))); do
    local port=$((BASE_PORT + i)) dev=$DEVICE
    if [ "$DEVICE" = cuda ]; then dev="cuda:$([ "$shared" = 1 ] && echo 0 || echo "$i")"; fi
    "$RPLOAD" serve --device "$dev" --dtype "$DTYPE" --model "$PRESET" --engine continuous \
      --port "$port" --max-total-tokens 1024 >>"$OUTDIR/serve-$n-$i.log" 2>&1 &
    pids+=($!)
    targets+=(--target "http://127.0.0.1:$port")
  done
  for i in $(seq 0 $((n - 1))); do
    for _ in $(seq 900); do
      curl -sf "http://127.0.0.1:$((BASE_PORT + i))/health" >/dev/null 2>&1 && break
      sleep 0.5
    done
    curl -sf "http://127.0.0.1:$((BASE_PORT + i))/health" >/dev/null ||
      { cat "$OUTDIR/serve-$n-$i.log" >&2; exit 1; }
  done
  echo "${targets[@]}"
}

# sweep NAME "TARGET FLAGS" RPS STEP
sweep() {
  local name=$1 targets=$2 rps=$3 step=$4
  rm -rf "${OUTDIR:?}/$name"
  # shellcheck disable=SC2086 # the target flags are a list
  "$RPLOAD" sweep --scenario scenarios/study-classification-tgi.toml $targets \
    --balance "$BALANCE" --rps "$rps" --step "$step" --step-duration "${STEP_S}s" --repeat 1 \
    --cooldown 2s --instance "${INSTANCE:-g5.4xlarge}" --out "$OUTDIR/$name" \
    --name "RedPajama $PRESET classification, $name ($DTYPE)" -q || true
}

# The highest sustainable level of a run (0: none), from its summary.json.
knee() {
  python3 -c 'import json,sys; h=json.load(open(sys.argv[1])).get("headline"); print(h["target_rps"] if h else 0)' \
    "$OUTDIR/$1/summary.json" 2>/dev/null || echo 0
}
calc() { python3 -c "print($1)"; }

echo "== one replica ($(date +%T))"
one_targets=$(start_replicas 1 0)
sweep one "$one_targets" "$RPS_ONE" "$STEP_ONE"
stop_all
k1=$(knee one)

if [ "$GPUS" -ge 2 ]; then r=$GPUS shared=0 name="$GPUS-gpus"; else r=2 shared=1 name="2-sharing-1-gpu"; fi
lo=${RPS_ONE%%..*} hi=${RPS_ONE##*..}
echo "== $r replicas, $name ($(date +%T))"
many_targets=$(start_replicas "$r" "$shared")
sweep "$name" "$many_targets" "$((lo * r))..$((hi * r))" "$((STEP_ONE * r))"
stop_all
kr=$(knee "$name")

predicted=$(calc "$k1 * $r")
echo
echo "rpload plan for $predicted req/s from the one-replica run (headroom 1):"
"$RPLOAD" plan --from "$OUTDIR/one" --target-rps "$predicted" --headroom 1 || true
echo
echo "| run | replicas | GPUs | plan (req/s) | step (req/s) | predicted (req/s) | sustained (req/s) | prediction error |"
echo "|---|---:|---:|---|---:|---:|---:|---:|"
echo "| one | 1 | 1 | $RPS_ONE | $STEP_ONE | - | $k1 | - |"
if [ "$(calc "int($predicted > 0)")" = 1 ]; then
  err=$(calc "'%+.1f%%' % (($kr - $predicted) / $predicted * 100)")
else
  err="-"
fi
echo "| $name | $r | $([ "$shared" = 1 ] && echo 1 || echo "$r") | $((lo * r))..$((hi * r)) | $((STEP_ONE * r)) | $predicted | $kr | $err |"
echo
echo "per target, $name:"
python3 - "$OUTDIR/$name/summary.json" <<'PY' || true
import json, sys
for t in json.load(open(sys.argv[1])).get("by_target", []):
    h = t["headline"]
    best = f"{h['target_rps']:g} req/s of the plan (served {h['served_rps']:.2f} req/s)" if h else "none"
    print(f"  {t['target']}: highest sustainable {best}")
PY
for d in "$OUTDIR"/one "$OUTDIR/$name"; do
  [ -f "$d/results.jsonl" ] && xz -9 -T0 -f "$d/results.jsonl"
done
