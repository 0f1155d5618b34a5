#!/usr/bin/env bash
# bench/gpu.sh: the server's decode speed on a GPU, beside the card's memory-bandwidth floor and
# HuggingFace transformers on the same card, in one run that builds nothing.
#
# Needs: an rpload built with `--features cuda` (README, "GPU"), python3 with torch and
# transformers, curl. Usage, from the repository root on the GPU machine:
#   RPLOAD=./rpload bench/gpu.sh            # both presets, batches 1 8 32 64, f16
# Knobs: PRESETS, BATCHES, NEW (new tokens, 128), DTYPE (f16), OUTDIR, HF=0 to skip transformers,
# PARITY_DTYPES ("f32 f16 bf16"; empty skips the parity check).
#
# For each preset, `rpload serve --device cuda` runs the continuous engine; for each batch size B,
# `rpload attack` sends B identical 100-token prompts at once (closed loop, B users, B requests)
# asking for exactly NEW tokens, so B sequences decode in lockstep. The server's own
# `tgi_batch_forward_duration{method="decode"}` (sum / count over the run) gives ms per decode
# step: prefill steps are counted apart, as gpu_hf.py leaves prefill out of transformers' figure.
# tokens/s = B / step time. The client's mean inter-token latency is printed beside it.
set -euo pipefail
cd "$(dirname "$0")/.."

RPLOAD=${RPLOAD:-./rpload}
PRESETS=${PRESETS:-"redpajama-3b redpajama-7b"}
BATCHES=${BATCHES:-"1 8 32 64"}
NEW=${NEW:-128}
DTYPE=${DTYPE:-f16}
DEVICE=${DEVICE:-cuda} # cpu: a dry run of this script with PRESETS=tiny DTYPE=f32 HF=0
HF=${HF:-1}
PORT=${PORT:-18080}
OUTDIR=${OUTDIR:-${OUT:-bench-gpu-out}}
mkdir -p "$OUTDIR"
# 100 tokens with rpload's embedded tokenizer (the presets' tokenizer).
PROMPT='The quick brown fox jumps over the lazy dog while the server answers every request. Load testing measures how many requests an endpoint can take within a latency target, and what each thousand tokens costs on the instance that'
pid=
trap '[ -n "$pid" ] && kill "$pid" 2>/dev/null' EXIT
max_batch=0
for b in $BATCHES; do [ "$b" -gt "$max_batch" ] && max_batch=$b; done

{ nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv,noheader 2>/dev/null ||
  echo "no nvidia-smi"; } | tee "$OUTDIR/gpu.txt"


# Parity on the device first: the transformers-made fixture, served from its folder, must give
# the same 16 greedy tokens as transformers did (f32; f16/bf16 report how many agree).
fixture=tests/fixtures/gpt_neox_sequential
for dt in ${PARITY_DTYPES-f32 f16 bf16}; do
  "$RPLOAD" serve --device "$DEVICE" --dtype "$dt" --model "$fixture" --port "$PORT" \
    >"$OUTDIR/serve-fixture-$dt.log" 2>&1 &
  pid=$!
  for _ in $(seq 200); do curl -sf "http://127.0.0.1:$PORT/health" >/dev/null 2>&1 && break; sleep 0.3; done
  curl -s "http://127.0.0.1:$PORT/generate" -H 'content-type: application/json' -d '{"inputs":
    "The quick brown fox jumps over the lazy dog, and the server answers every request.",
    "parameters": {"max_new_tokens": 16, "details": true, "decoder_input_details": false}}' |
    python3 -c 'import json,sys
body=sys.stdin.read(); want=json.load(open(sys.argv[1]))["greedy_tokens"]
try: got=[t["id"] for t in json.loads(body)["details"]["tokens"]]
except (KeyError, ValueError): got=[]
same=sum(a==b for a,b in zip(got,want))
print(json.dumps({"kind":"parity","dtype":sys.argv[2],"agree":same,"of":len(want),
                  "error":None if got else body[:300]}))' \
    "$fixture/expected.json" "$dt" | tee -a "$OUTDIR/rpload.jsonl"
  kill "$pid"; wait "$pid" 2>/dev/null || true
done

decode_totals() { # prints "sum count" of the decode step histogram
  curl -s "http://127.0.0.1:$PORT/metrics" | awk '
    /^tgi_batch_forward_duration_sum\{method="decode"\}/ {s=$2}
    /^tgi_batch_forward_duration_count\{method="decode"\}/ {c=$2}
    END {printf "%s %s\n", s+0, c+0}'
}

for preset in $PRESETS; do
  log="$OUTDIR/serve-$preset.log"
  t0=$(date +%s.%N)
  "$RPLOAD" serve --device "$DEVICE" --dtype "$DTYPE" --model "$preset" --port "$PORT" \
    --max-total-tokens $((100 + NEW + 32)) --max-batch-size "$max_batch" >"$log" 2>&1 &
  pid=$!
  for _ in $(seq 600); do
    curl -sf "http://127.0.0.1:$PORT/health" >/dev/null 2>&1 && break
    kill -0 "$pid" 2>/dev/null || { cat "$log"; exit 1; }
    sleep 0.5
  done
  python3 -c 'import json,sys,time; print(json.dumps({"kind": "load", "preset": sys.argv[1],
    "seconds": round(time.time() - float(sys.argv[2]), 1)}))' "$preset" "$t0" |
    tee -a "$OUTDIR/rpload.jsonl"
  # Warm-up: JIT of the kernels and the allocator's first growth.
  "$RPLOAD" attack --target "http://127.0.0.1:$PORT" --api tgi --rate 0 --max-inflight 8 \
    --max-requests 8 --duration 0 --max-new-tokens 16 --ignore-eos --prompt "$PROMPT" \
    --output /dev/null >/dev/null
  for b in $BATCHES; do
    read -r s0 c0 < <(decode_totals)
    rec="$OUTDIR/attack-$preset-$b.jsonl"
    "$RPLOAD" attack --target "http://127.0.0.1:$PORT" --api tgi-stream --rate 0 \
      --max-inflight "$b" --max-requests "$b" --duration 0 --timeout 300s \
      --max-new-tokens "$NEW" --ignore-eos --prompt "$PROMPT" --output "$rec"
    read -r s1 c1 < <(decode_totals)
    itl=$("$RPLOAD" report --type json "$rec" | python3 -c \
      'import json,sys; r=json.load(sys.stdin); print(r.get("itl",{}).get("mean",0))')
    python3 - "$preset" "$b" "$s0" "$c0" "$s1" "$c1" "$itl" "$rec" <<'EOF' | tee -a "$OUTDIR/rpload.jsonl"
import json, sys
preset, b, s0, c0, s1, c1, itl, rec = sys.argv[1:]
b = int(b); steps = float(c1) - float(c0); secs = float(s1) - float(s0)
ok = sum(1 for line in open(rec) if json.loads(line).get("code") == 200)
ms = secs / steps * 1e3 if steps else float("nan")
print(json.dumps({"kind": "rpload", "preset": preset, "batch": b, "ms_per_step": ms,
                  "tokens_per_s": b * 1e3 / ms if steps else 0, "decode_steps": int(steps),
                  "client_itl_ms": float(itl) / 1e6, "ok": ok}))
EOF
  done
  kill "$pid"; wait "$pid" 2>/dev/null || true
  pid=
done

# transformers last: the rpload figures are in even if the reference fails.
if [ "$HF" = 1 ]; then
  PYTHONUNBUFFERED=1 python3 bench/gpu_hf.py --presets "$(echo $PRESETS | tr ' ' ,)" \
    --batches "$(echo $BATCHES | tr ' ' ,)" --new "$NEW" | tee "$OUTDIR/hf.jsonl"
fi

python3 bench/gpu_table.py "$OUTDIR" | tee "$OUTDIR/table.md"
