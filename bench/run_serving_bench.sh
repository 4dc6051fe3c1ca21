#!/usr/bin/env bash
# Serving benchmark for continuous batching: one qeffd, random GPT-2-124M and TinyLlama-1.1B-shaped
# models, ctx 256 and 1024, 1..16 concurrent Generate streams (32-token prompts, 64 new tokens);
# reports aggregate tokens/s, the speed-up over one stream, TTFT and inter-token latency
# percentiles, plus the long-context check (one stream, ~100-token prompt: decode tokens/s at
# ctx 1024 over ctx 256, i.e. what an unfilled KV cache costs).
#
# Usage: bash bench/run_serving_bench.sh [BUILD_DIR=build] [OUT_JSON]
#   QEFF_BENCH_MODELS=gpt2|tinyllama|both   (default both)
#   QEFF_BENCH_STREAMS="1 2 4 8 16"          stream counts to run
#   QEFF_BENCH_CTXS="256 1024"               context lengths (the long-context check uses min and max)
#   QEFF_BENCH_TINY=1                        2-layer, hidden-64 shapes of both models (checks the script)
#   QEFF_BENCH_WEIGHT_DTYPE=fp32|bf16|int8   compile weight precision (default fp32)
#   QEFF_BENCH_FULL_BATCH_SIZE=16            continuous-batching slots
#   QEFF_BENCH_KV_CACHE_DTYPE=fp32|bf16      KV cache precision (default fp32)
# The full-size run needs ~25 GB free in TMPDIR (random checkpoints, exports, one qpc per ctx)
# and ~10 GB of RAM (TinyLlama's fp32 weights while exporting and while loaded).
# Until the server supports continuous batching, the CB export/compile fail; the script then
# prints the error, uses a plain export/compile (batch 1, requests served one at a time) and
# marks those rows cb=false.
set -euo pipefail
OUT_JSON="${2:-}"
if [ -n "$OUT_JSON" ]; then OUT_JSON=$(realpath -m "$OUT_JSON"); fi  # relative to the caller's cwd
cd "$(dirname "$0")/.."
BUILD="${1:-build}"
MODELS="${QEFF_BENCH_MODELS:-both}"
STREAMS="${QEFF_BENCH_STREAMS:-1 2 4 8 16}"
CTXS="${QEFF_BENCH_CTXS:-256 1024}"
TINY="${QEFF_BENCH_TINY:-0}"
WEIGHT_DTYPE="${QEFF_BENCH_WEIGHT_DTYPE:-fp32}"
FBS="${QEFF_BENCH_FULL_BATCH_SIZE:-16}"
KV_DTYPE="${QEFF_BENCH_KV_CACHE_DTYPE:-fp32}"
PREFILL=32 PROMPT=32 NEW=64 LONG_PROMPT=100

QEFFD="$BUILD/services/qeffd/qeffd"
QEFFCTL="$BUILD/clients/qeffctl/qeffctl"
MAKE_MODEL="$BUILD/bench/qeff-make-random-model"
BENCH="$BUILD/bench/serving/qeff-serving-bench"
for b in "$QEFFD" "$QEFFCTL" "$MAKE_MODEL" "$BENCH"; do
  if [ ! -x "$b" ]; then
    echo "error: $b is missing; build it: ninja -C $BUILD qeffd qeffctl qeff-make-random-model qeff-serving-bench" >&2
    exit 2
  fi
done
case "$MODELS" in
  both) MODELS="gpt2 tinyllama" ;;
  gpt2 | tinyllama) ;;
  *) echo "error: QEFF_BENCH_MODELS must be gpt2, tinyllama or both" >&2; exit 2 ;;
esac

WORK=$(mktemp -d "${TMPDIR:-/tmp}/qeff-serving-XXXXXX")
QEFFD_PID=""
cleanup() {
  if [ -n "$QEFFD_PID" ]; then
    kill "$QEFFD_PID" 2>/dev/null || true
    wait "$QEFFD_PID" 2>/dev/null || true
  fi
  rm -rf "$WORK"
}
trap cleanup EXIT
trap 'exit 130' INT TERM

# model name -> generator flags and vocabulary size.
declare -A SHAPE VOCAB
if [ "$TINY" = 1 ]; then
  SHAPE[gpt2]="--n-layer 2 --n-embd 64 --n-head 4 --vocab 512 --n-positions 1024"
  SHAPE[tinyllama]="--arch llama --n-layer 2 --hidden 64 --intermediate 176 --n-head 4 --kv-heads 2 --vocab 512 --n-positions 2048"
  VOCAB[gpt2]=512 VOCAB[tinyllama]=512
else
  SHAPE[gpt2]="--n-layer 12 --n-embd 768 --n-head 12 --vocab 50257 --n-positions 1024 --std 0.02"
  # bf16 on disk like the real checkpoint (half the temp space); the compile decides the run precision.
  SHAPE[tinyllama]="--arch llama --n-layer 22 --hidden 2048 --intermediate 5632 --n-head 32 --kv-heads 4 --vocab 32000 --n-positions 2048 --std 0.02 --dtype bf16"
  VOCAB[gpt2]=50257 VOCAB[tinyllama]=32000
fi

echo "== qeffd ($(nproc) cores), cache in $WORK/cache"
"$QEFFD" --listen 127.0.0.1:0 --cache-dir "$WORK/cache" >"$WORK/qeffd.out" 2>"$WORK/qeffd.log" &
QEFFD_PID=$!
ADDR=""
for _ in $(seq 300); do
  ADDR=$(sed -n '/^listening on /{s///p;q}' "$WORK/qeffd.out")
  [ -n "$ADDR" ] && break
  if ! kill -0 "$QEFFD_PID" 2>/dev/null; then break; fi
  sleep 0.1
done
if [ -z "$ADDR" ]; then
  echo "error: qeffd did not report a listening address" >&2
  tail -n 20 "$WORK/qeffd.log" >&2 || true
  exit 1
fi
echo "listening on $ADDR"

# qeffctl --json prints one compact object; field KEY pulls a string value out of it.
field() { sed -n "s/.*\"$1\":\"\([^\"]*\)\".*/\1/p" <<<"$2"; }
ctl() { "$QEFFCTL" --server "$ADDR" --json "$@" 2>"$WORK/ctl.err"; }
ctl_error() { tr '\n' ' ' <"$WORK/ctl.err"; }

# prepare NAME DIR CTX: export + compile (continuous batching if the server can) + load.
# Sets MODEL_ID and CB.
prepare() {
  local name=$1 dir=$2 ctx=$3 out key="" qpc=""
  CB=true
  if out=$(ctl export --model "$dir" --continuous-batching) && key=$(field export_key "$out") && [ -n "$key" ] &&
    out=$(ctl compile --export-key "$key" --full-batch-size "$FBS" --prefill-seq-len "$PREFILL" --ctx-len "$ctx" \
      --weight-dtype "$WEIGHT_DTYPE" --kv-cache-dtype "$KV_DTYPE") && qpc=$(field qpc_key "$out") && [ -n "$qpc" ]; then
    :
  else
    echo "   continuous-batching export/compile failed: $(ctl_error)"
    echo "   falling back to a plain export/compile (rows marked cb=false)"
    CB=false
    out=$(ctl export --model "$dir") || { echo "error: export failed: $(ctl_error)" >&2; exit 1; }
    key=$(field export_key "$out")
    out=$(ctl compile --export-key "$key" --prefill-seq-len "$PREFILL" --ctx-len "$ctx" --weight-dtype "$WEIGHT_DTYPE" \
      --kv-cache-dtype "$KV_DTYPE") ||
      { echo "error: compile failed: $(ctl_error)" >&2; exit 1; }
    qpc=$(field qpc_key "$out")
  fi
  out=$(ctl load --qpc-key "$qpc" --model-id "$name-ctx$ctx") || { echo "error: load failed: $(ctl_error)" >&2; exit 1; }
  MODEL_ID=$(field model_id "$out")
  echo "   export $key -> qpc $qpc -> model $MODEL_ID (cb=$CB)"
}

# bench NAME CTX KIND STREAMS PROMPT: one qeff-serving-bench run, its JSON line appended to ROWS.
ROWS="$WORK/rows.jsonl"
: >"$ROWS"
bench() {
  local name=$1 ctx=$2 kind=$3 streams=$4 prompt=$5 line
  line=$("$BENCH" --server "$ADDR" --model-id "$MODEL_ID" --streams "$streams" --prompt-tokens "$prompt" \
    --new-tokens "$NEW" --vocab "${VOCAB[$name]}" --seed 1 \
    --tag model="$name" --tag ctx="$ctx" --tag cb="$CB" --tag kind="$kind") || true
  if [ -z "$line" ]; then
    echo "   (no result)"
    return
  fi
  echo "$line" >>"$ROWS"
  echo "   $kind, $streams stream(s), $prompt-token prompt: $line"
}

for name in $MODELS; do
  echo "== random $name: ${SHAPE[$name]}"
  # shellcheck disable=SC2086  # SHAPE holds several flags
  "$MAKE_MODEL" --out "$WORK/$name" ${SHAPE[$name]} >/dev/null
  for ctx in $CTXS; do
    echo "== $name, ctx $ctx"
    prepare "$name" "$WORK/$name" "$ctx"
    # Warm-up (page in the weights, first-call allocations); not recorded.
    "$BENCH" --server "$ADDR" --model-id "$MODEL_ID" --streams 1 --prompt-tokens "$PROMPT" --new-tokens 4 \
      --vocab "${VOCAB[$name]}" >/dev/null || echo "   warm-up reported errors"
    for s in $STREAMS; do bench "$name" "$ctx" streams "$s" "$PROMPT"; done
    bench "$name" "$ctx" long_context 1 "$LONG_PROMPT"
    ctl unload --model-id "$MODEL_ID" >/dev/null || echo "   unload failed: $(ctl_error)"
  done
  rm -rf "${WORK:?}/$name"
done

echo
echo "== serving benchmark: prompt $PROMPT tokens, $NEW new tokens, prefill chunk $PREFILL, weights $WEIGHT_DTYPE, KV cache $KV_DTYPE$([ "$TINY" = 1 ] && echo ', TINY shapes')"
echo
if [ -n "$OUT_JSON" ]; then
  "$BENCH" --report "$ROWS" --out "$OUT_JSON"
  echo
  echo "rows written to $OUT_JSON"
else
  "$BENCH" --report "$ROWS"
fi
