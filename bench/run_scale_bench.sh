#!/usr/bin/env bash
# Scale benchmark: export, compile and load of large random models, each stage in its own
# process with its wall time and peak RSS, against the time to copy the weight files (the
# export target is <= 2x that) and the weights a stage maps or keeps.
#
# Usage: bash bench/run_scale_bench.sh [BUILD_DIR=build] [OUT_JSON]
#   QEFF_SCALE_MODELS="tinyllama 7b"   shapes to run (7b: Llama-2-7B, 13.5 GB of bf16 safetensors;
#                                      needs ~60 GB free in TMPDIR and a long time)
#   QEFF_SCALE_DTYPES="fp32 int8 int4" compile weight precisions (each is also loaded and decoded)
set -euo pipefail
OUT_JSON="${2:-}"
if [ -n "$OUT_JSON" ]; then OUT_JSON=$(realpath -m "$OUT_JSON"); fi
cd "$(dirname "$0")/.."
BUILD="${1:-build}"
MODELS="${QEFF_SCALE_MODELS:-tinyllama}"
DTYPES="${QEFF_SCALE_DTYPES:-fp32 int8 int4}"
MAKE_MODEL="$BUILD/bench/qeff-make-random-model"
BENCH="$BUILD/bench/scale/qeff-scale-bench"
for b in "$MAKE_MODEL" "$BENCH"; do
  [ -x "$b" ] || { echo "error: $b is missing; build it: ninja -C $BUILD qeff-make-random-model qeff-scale-bench" >&2; exit 2; }
done
WORK=$(mktemp -d "${TMPDIR:-/tmp}/qeff-scale-XXXXXX")
trap 'rm -rf "$WORK"' EXIT
ROWS="$WORK/rows.jsonl"
: >"$ROWS"

for MODEL in $MODELS; do
  case "$MODEL" in
    tinyllama) SHAPE="--n-layer 22 --hidden 2048 --intermediate 5632 --n-head 32 --kv-heads 4 --vocab 32000" ;;
    7b) SHAPE="--n-layer 32 --hidden 4096 --intermediate 11008 --n-head 32 --kv-heads 32 --vocab 32000" ;;
    *) echo "unknown model $MODEL (tinyllama, 7b)" >&2; exit 2 ;;
  esac
  echo "== $MODEL: random bf16 safetensors"
  # shellcheck disable=SC2086
  "$MAKE_MODEL" --arch llama --out "$WORK/$MODEL" $SHAPE --n-positions 2048 --dtype bf16 --fast-normal >/dev/null
  WEIGHT_BYTES=$(python3 -c "import glob, os, sys; print(sum(os.path.getsize(f) for f in glob.glob(sys.argv[1] + '/*.safetensors')))" "$WORK/$MODEL")
  sync
  T0=$(date +%s.%N)
  cp "$WORK/$MODEL"/*.safetensors "$WORK/copy.safetensors"
  sync
  COPY_S=$(python3 -c "print(round($(date +%s.%N) - $T0, 3))")
  rm -f "$WORK/copy.safetensors"
  echo "   $WEIGHT_BYTES bytes of safetensors; cp + sync: ${COPY_S}s"
  ROW=$("$BENCH" export --model "$WORK/$MODEL" --out "$WORK/$MODEL-export")
  echo "   export: $ROW"
  echo "$ROW" | python3 -c "import json,sys; r=json.load(sys.stdin); r.update(model='$MODEL', safetensors_bytes=$WEIGHT_BYTES, copy_seconds=$COPY_S, export_over_copy=r['seconds']/$COPY_S); print(json.dumps(r))" >>"$ROWS"
  for DTYPE in $DTYPES; do
    ROW=$("$BENCH" compile --export "$WORK/$MODEL-export" --out "$WORK/$MODEL-$DTYPE" --weight-dtype "$DTYPE")
    echo "   compile $DTYPE: $ROW"
    echo "$ROW" | python3 -c "import json,sys; r=json.load(sys.stdin); r.update(model='$MODEL'); print(json.dumps(r))" >>"$ROWS"
    ROW=$("$BENCH" load --qpc "$WORK/$MODEL-$DTYPE")
    echo "   load $DTYPE: $ROW"
    echo "$ROW" | python3 -c "import json,sys; r=json.load(sys.stdin); r.update(model='$MODEL', weight_dtype='$DTYPE'); print(json.dumps(r))" >>"$ROWS"
    rm -rf "$WORK/$MODEL-$DTYPE"
  done
  rm -rf "$WORK/$MODEL" "$WORK/$MODEL-export"
done

python3 - "$ROWS" "$OUT_JSON" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
gb = lambda b: b / 1e9
print("\n| model | stage | dtype | seconds | peak RSS GB | notes |\n| --- | --- | --- | --- | --- | --- |")
for r in rows:
    note = ""
    if r["stage"] == "export":
        note = f"{gb(r['safetensors_bytes']):.2f} GB safetensors, copy {r['copy_seconds']:.1f}s, export/copy {r['export_over_copy']:.2f}x"
    if r["stage"] == "load":
        note = f"weights {gb(r['weights_bytes']):.2f} GB, peak RSS / weights {r['peak_rss_over_weights']:.2f}, decode {r['decode_tokens_per_s']:.1f} tok/s"
    print(f"| {r['model']} | {r['stage']} | {r.get('weight_dtype', '-')} | {r['seconds']:.1f} | {gb(r['peak_rss_bytes']):.2f} | {note} |")
if sys.argv[2]:
    json.dump(rows, open(sys.argv[2], "w"), indent=1)
    print(f"\nrows written to {sys.argv[2]}")
PY
