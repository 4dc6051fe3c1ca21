#!/usr/bin/env bash
# Decode benchmark on a GPT-2-124M-shaped random model, reported as ratios measured in one run:
#   qeff decode tokens/s vs the memory-bandwidth roofline (weight bytes read per token), and vs
#   onnxruntime (CPU, same thread count) on the same exported graph.
# Usage: bash bench/run_decode_bench.sh [build_dir=build] [threads=all]
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD="${1:-build}"
THREADS="${2:-$(nproc)}"
WORK=$(mktemp -d /tmp/qeff-bench-XXXXXX)
trap 'rm -rf "$WORK"' EXIT

echo "== memory read bandwidth (1 GiB in 2 MB pages, best of 5); the decode runs re-measure it between runs"
BW_JSON=$("$BUILD/bench/qeff-membw" 1)
echo "$BW_JSON"

echo "== random GPT-2-124M (12 layers, 768 hidden, 12 heads, 50257 vocab)"
"$BUILD/bench/qeff-make-random-model" --out "$WORK/gpt2-124m" --n-layer 12 --n-embd 768 --n-head 12 \
  --vocab 50257 --n-positions 1024 --std 0.02 --tokenizer-from tests/fixtures/hf/gpt2 >/dev/null

for DTYPE in fp32 bf16 int8; do
  echo "== qeff cpu, $DTYPE weights, $THREADS threads, ctx 256, 32-token prompt, 128 decode steps"
  "$BUILD/bench/decode/qeff-decode-bench" --model "$WORK/gpt2-124m" --weight-dtype $DTYPE --threads "$THREADS" \
    --ctx 256 --prompt 32 --steps 128 --work-dir "$WORK/run-$DTYPE"
done

echo "== onnxruntime on the same exported graph ($THREADS threads, ctx 256, 128 steps)"
if [ -d tests/node/node_modules/onnxruntime-node ]; then
  cp "$WORK/gpt2-124m/config.json" "$WORK/run-fp32/export/"
  NODE_PATH=tests/node/node_modules node bench/node/ort_decode_bench.js "$WORK/run-fp32/export" 256 128 "$THREADS"
else
  echo "(onnxruntime-node missing: cd tests/node && npm install --ignore-scripts)"
fi
