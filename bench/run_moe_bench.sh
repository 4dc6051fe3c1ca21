#!/usr/bin/env bash
# Mixture-of-experts decode: does a token read only its routed experts? Runs, in one session,
# a Mixtral-shaped random model (E experts of I each, top K) and a dense Llama of the same active
# size (intermediate K·I, everything else equal), and prints decode tokens/s, weight bytes read
# per token (active) and in total, and the MoE / dense speed ratio. Reading every expert would
# make the MoE E/K times slower than the dense model; reading only the routed ones keeps the
# ratio near 1.
# Usage: bash bench/run_moe_bench.sh [build_dir=build] [threads=all]
# Knobs: QEFF_MOE_LAYERS (8) QEFF_MOE_HIDDEN (1024) QEFF_MOE_INNER (2816) QEFF_MOE_EXPERTS (8)
#        QEFF_MOE_TOPK (2) QEFF_MOE_DTYPE (fp32)
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD="${1:-build}"
THREADS="${2:-$(nproc)}"
L="${QEFF_MOE_LAYERS:-8}" H="${QEFF_MOE_HIDDEN:-1024}" I="${QEFF_MOE_INNER:-2816}"
E="${QEFF_MOE_EXPERTS:-8}" K="${QEFF_MOE_TOPK:-2}" DTYPE="${QEFF_MOE_DTYPE:-fp32}"
WORK=$(mktemp -d /tmp/qeff-moe-bench-XXXXXX)
trap 'rm -rf "$WORK"' EXIT
COMMON=(--n-layer "$L" --hidden "$H" --n-head 16 --kv-heads 4 --vocab 32000 --n-positions 1024)
"$BUILD/bench/qeff-make-random-model" --arch mixtral --out "$WORK/moe" "${COMMON[@]}" --intermediate "$I" \
  --experts "$E" --top-k "$K" >/dev/null
"$BUILD/bench/qeff-make-random-model" --arch llama --out "$WORK/dense" "${COMMON[@]}" --intermediate $((K * I)) >/dev/null
run() {
  "$BUILD/bench/decode/qeff-decode-bench" --model "$WORK/$1" --weight-dtype "$DTYPE" --threads "$THREADS" \
    --ctx 256 --prompt 32 --steps 64 --work-dir "$WORK/run-$1"
}
echo "== $L layers, hidden $H, $E experts of $I, top $K vs dense intermediate $((K * I)); $DTYPE, $THREADS threads"
MOE=$(run moe) ; echo "moe:   $MOE"
DENSE=$(run dense) ; echo "dense: $DENSE"
python3 - "$MOE" "$DENSE" <<'PY'
import json, sys
m, d = json.loads(sys.argv[1]), json.loads(sys.argv[2])
print(f"| model | decode tok/s | weight MB read/token | weight MB total | roofline fraction |")
print(f"|---|---|---|---|---|")
for name, r in (("MoE", m), ("dense, same active size", d)):
    print(f"| {name} | {r['decode_tokens_per_s']:.1f} | {r['weight_bytes_per_token']/1e6:.0f} | "
          f"{r['weight_bytes_total']/1e6:.0f} | {r['fraction_of_roofline']:.2f} |")
print(f"MoE / dense decode speed: {m['decode_tokens_per_s'] / d['decode_tokens_per_s']:.2f} "
      f"(reading every expert would bound it near {d['weight_bytes_total'] / m['weight_bytes_total']:.2f})")
PY
