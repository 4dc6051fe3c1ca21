#!/usr/bin/env bash
# Decode benchmark on a GPT-2-124M-shaped random model, reported as ratios measured in one run:
#   qeff decode tokens/s vs the memory-bandwidth roofline (weight bytes read per token), and vs
#   onnxruntime (CPU) on the same exported graph.
# Usage: bash bench/run_decode_bench.sh [build_dir=build]
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD="${1:-build}"
WORK=$(mktemp -d /tmp/qeff-bench-XXXXXX)
trap 'kill -TERM ${QEFFD:-0} 2>/dev/null; wait ${QEFFD:-0} 2>/dev/null; rm -rf "$WORK"' EXIT

echo "== memory bandwidth (read, 1 GiB)"
BW=$("$BUILD/bench/qeff-membw" 1)
echo "$BW"

echo "== random GPT-2-124M (12 layers, 768 hidden, 12 heads, 50257 vocab)"
"$BUILD/bench/qeff-make-random-model" --out "$WORK/gpt2-124m" --n-layer 12 --n-embd 768 --n-head 12 \
  --vocab 50257 --n-positions 1024 --tokenizer-from tests/fixtures/hf/gpt2 >/dev/null

"$BUILD/services/qeffd/qeffd" --listen 127.0.0.1:0 --cache-dir "$WORK/cache" >"$WORK/port" 2>"$WORK/qeffd.log" &
QEFFD=$!
for _ in $(seq 100); do grep -q "listening on" "$WORK/port" 2>/dev/null && break; sleep 0.1; done
ADDR=$(sed -n 's/^listening on //p' "$WORK/port")
CTL="$BUILD/clients/qeffctl/qeffctl --server $ADDR --json"
IDS=$(seq -s, 100 131)   # 32 prompt tokens
STEPS=128
CTX=256

for DTYPE in fp32 bf16; do
  OUT=$($CTL infer --model "$WORK/gpt2-124m" --input-ids "$IDS" --max-new-tokens 8 --ctx-len $CTX \
        --prefill-seq-len 32 --weight-dtype $DTYPE)   # warm-up: export + compile + page cache
  OUT=$($CTL infer --model "$WORK/gpt2-124m" --input-ids "$IDS" --max-new-tokens $STEPS --ctx-len $CTX \
        --prefill-seq-len 32 --weight-dtype $DTYPE)
  QPC=$(echo "$OUT" | node -e 'let s="";process.stdin.on("data",d=>s+=d).on("end",()=>console.log(JSON.parse(s).qpc_key))')
  WBYTES=$(stat -c %s "$WORK/cache/qpcs/$QPC/weights.bin")
  echo "$OUT" | BW="$BW" WBYTES="$WBYTES" DTYPE="$DTYPE" node -e '
    let s=""; process.stdin.on("data",d=>s+=d).on("end",()=>{
      const r=JSON.parse(s), bw=JSON.parse(process.env.BW).read_gb_per_s;
      const w=+process.env.WBYTES, tps=r.stats.decode_tokens_per_s;
      const best=Math.max(...Object.values(bw));
      const roof=best*1e9/w;
      console.log(`== qeff ${process.env.DTYPE}: decode ${tps.toFixed(1)} tokens/s, TTFT ${r.stats.ttft_ms.toFixed(1)} ms; `+
        `weights.bin ${(w/1e6).toFixed(0)} MB/token; effective ${(tps*w/1e9).toFixed(1)} GB/s; `+
        `roofline ${roof.toFixed(1)} tokens/s at ${best} GB/s -> ${(100*tps/roof).toFixed(0)}% of roofline`);
    });'
done

EXPORT=$(ls "$WORK/cache/exports" | head -1)
if [ -d bench/node/node_modules/onnxruntime-node ]; then
  echo "== onnxruntime on the same graph (2 threads, ctx $CTX, $STEPS steps)"
  node bench/node/ort_decode_bench.js "$WORK/cache/exports/$EXPORT" $CTX $STEPS 2
else
  echo "(skipping onnxruntime: run 'cd bench/node && npm install --ignore-scripts')"
fi
