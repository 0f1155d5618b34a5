#!/usr/bin/env bash
# Tokens/s of `rpload serve` on this machine, continuous vs single, at 1, 8 and 32 concurrent
# requests, side by side with HuggingFace transformers `generate` on the SAME weights.
#
# For each model shape (tiny, pythia-70m) it writes a HF folder with random weights
# (bench/hf_model.py), serves it with `rpload serve --model DIR`, drives it with
# examples/serve_load.rs (closed loop: C clients back to back, TGI /generate, a 107-token prompt,
# exactly MAX_NEW new tokens via ignore_eos), then runs transformers on the folder.
#
# Needs: python3 with torch, transformers, tokenizers (pip install torch transformers tokenizers).
# Usage: bench/serve.sh            (env: DURATION=10 MAX_NEW=64 MODELS="tiny pythia-70m")
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-10}
MAX_NEW=${MAX_NEW:-64}
MODELS=${MODELS:-"tiny pythia-70m"}
PORT=${PORT:-18181}
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
cargo build --release --quiet --bin rpload --example serve_load
BIN="$CARGO_TARGET_DIR/release/rpload"
LOAD="$CARGO_TARGET_DIR/release/examples/serve_load"
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

echo "machine: $(lscpu | sed -n 's/^Model name: *//p'), $(nproc) cores; load average: $(cut -d' ' -f1-3 /proc/loadavg)"
echo "workload: 107-token prompt, $MAX_NEW new tokens (ignore_eos), ${DURATION}s per cell, f32"
echo
echo "| model | concurrency | rpload continuous tok/s | rpload single tok/s | continuous / single | transformers generate tok/s (batch = concurrency) |"
echo "|---|---|---|---|---|---|"
for model in $MODELS; do
  dir="$WORK/$model"
  python3 bench/hf_model.py "$model" "$dir" > /dev/null 2>&1
  # tiny's ops are too small to split across cores; bigger models use both.
  threads=$([ "$model" = tiny ] && echo 1 || nproc)
  declare -A tps=()
  for engine in continuous single; do
    "$BIN" serve --model "$dir" --engine "$engine" --threads "$threads" --port "$PORT" 2> "$WORK/serve.log" &
    pid=$!
    for _ in $(seq 1 100); do curl -sf "http://127.0.0.1:$PORT/health" > /dev/null && break; sleep 0.2; done
    for c in 1 8 32; do
      tps[$engine-$c]=$("$LOAD" "http://127.0.0.1:$PORT" "$c" "$DURATION" "$MAX_NEW" \
        | python3 -c 'import json,sys; print(json.load(sys.stdin)["tokens_per_s"])')
    done
    kill "$pid"; wait "$pid" 2> /dev/null || true
  done
  declare -A hf=()
  while read -r line; do
    b=$(echo "$line" | python3 -c 'import json,sys; print(json.load(sys.stdin)["batch"])')
    hf[$b]=$(echo "$line" | python3 -c 'import json,sys; print(json.load(sys.stdin)["tokens_per_s"])')
  done < <(python3 bench/hf_generate.py "$dir" --max-new-tokens "$MAX_NEW" --min-seconds "$DURATION" 2> /dev/null)
  for c in 1 8 32; do
    ratio=$(python3 -c "print(f'{${tps[continuous-$c]} / ${tps[single-$c]}:.1f}x')")
    echo "| $model | $c | ${tps[continuous-$c]} | ${tps[single-$c]} | $ratio | ${hf[$c]} |"
  done
  unset tps hf
done
