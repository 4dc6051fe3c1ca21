#!/usr/bin/env bash
# qeff against its peers on this CPU, measured side by side in one interleaved run (this VM's
# bandwidth drifts too much for numbers from different runs to compare): qeff, llama.cpp (the npm
# package node-llama-cpp's prebuilt CPU build, on GGUF files written by qeff-gguf-writer from the
# same random safetensors) and onnxruntime (fp32, on qeff's exported graph). qeff and llama.cpp
# both probe the read bandwidth (qeff-membw's loop) just before and after every decode run, and
# each run's roofline share uses those probes. Models: GPT-2-124M and TinyLlama-1.1B shapes,
# random weights.
#
#   bash bench/run_peers.sh BUILD_DIR OUT_JSON           # table + OUT_JSON rows (see bench/peers/report.js)
#   bash bench/run_peers.sh BUILD_DIR OUT_JSON --check   # greedy tokens: qeff fp32 == GGUF F32 and F16
#
# Weights: qeff fp32|bf16|int8|int4 against GGUF F32|BF16|Q8_0|Q4_0 (the llama.cpp build has BF16
# on this CPU). Decode: `PEERS_STEPS` tokens after a 32-token prompt in a context of `PEERS_CTX`;
# prefill: one call on a prompt of each `PEERS_PREFILL` length. Environment (defaults):
#   PEERS_MODELS="gpt2 tinyllama"  PEERS_DTYPES="fp32 bf16 int8 int4"  PEERS_THREADS="1 2"
#   PEERS_STEPS=64  PEERS_CTX=256  PEERS_PREFILL="32 512"
#   PEERS_WORK=DIR  keep models, exports and GGUF files there (reused by the next run)
# Needs BUILD_DIR's qeff-make-random-model, qeff-membw, qeff-decode-bench and qeff-gguf-writer.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ $# -lt 2 ] || { [ $# -eq 3 ] && [ "$3" != --check ]; } || [ $# -gt 3 ]; then
  echo "usage: bash bench/run_peers.sh BUILD_DIR OUT_JSON [--check]" >&2
  exit 2
fi
BUILD=$(realpath "$1")
OUT=$(realpath -m "$2")
CHECK=$([ "${3:-}" = --check ] && echo 1 || echo 0)
MODELS=${PEERS_MODELS:-gpt2 tinyllama}
DTYPES=${PEERS_DTYPES:-fp32 bf16 int8 int4}
THREADS=${PEERS_THREADS:-1 2}
STEPS=${PEERS_STEPS:-64}
CTX=${PEERS_CTX:-256}
PREFILL=${PEERS_PREFILL:-32 512}
PROMPT=32

gguf_type() {
  case $1 in fp32) echo f32 ;; bf16) echo bf16 ;; int8) echo q8_0 ;; int4) echo q4_0 ;;
    *) echo "error: unknown weight dtype '$1' (fp32, bf16, int8, int4)" >&2; exit 2 ;; esac
}

for name in $MODELS; do
  case $name in gpt2 | tinyllama) ;; *) echo "error: unknown model '$name' in PEERS_MODELS (gpt2, tinyllama)" >&2; exit 2 ;; esac
done
for dtype in $DTYPES; do gguf_type "$dtype" >/dev/null; done

for bin in qeff-make-random-model qeff-membw decode/qeff-decode-bench peers/qeff-gguf-writer; do
  if [ ! -x "$BUILD/bench/$bin" ]; then
    echo "error: $BUILD/bench/$bin is missing (ninja -C $BUILD ${bin##*/})" >&2
    exit 1
  fi
done

# npm packages. node-llama-cpp's postinstall would try to download or build llama.cpp; its
# prebuilt binaries come as an optional npm dependency (@node-llama-cpp/linux-x64), so it is skipped.
if [ ! -d bench/peers/node_modules/node-llama-cpp ]; then
  echo "== npm ci in bench/peers (node-llama-cpp)"
  (cd bench/peers && npm ci --ignore-scripts --no-audit --no-fund --loglevel=error)
fi
ORT=1
if [ ! -d tests/node/node_modules/onnxruntime-node ]; then
  echo "== npm install in tests/node (onnxruntime-node)"
  (cd tests/node && npm install --ignore-scripts --no-audit --no-fund --loglevel=error) || ORT=0
fi

if [ -n "${PEERS_WORK:-}" ]; then
  WORK=$(realpath -m "$PEERS_WORK")
  mkdir -p "$WORK"
else
  WORK=$(mktemp -d /tmp/qeff-peers-XXXXXX)
  trap 'rm -rf "$WORK"' EXIT
fi
RAW=$WORK/raw.jsonl
: >"$RAW"

# make_model NAME: the random HF folder's path (made once per work dir).
make_model() {
  local dir=$WORK/models/$1
  if [ ! -f "$dir/config.json" ]; then
    case $1 in
      gpt2) "$BUILD/bench/qeff-make-random-model" --out "$dir" --n-layer 12 --n-embd 768 --n-head 12 --vocab 50257 \
              --n-positions 1024 --std 0.02 --tokenizer-from tests/fixtures/hf/gpt2 >/dev/null ;;
      tinyllama) "$BUILD/bench/qeff-make-random-model" --arch llama --out "$dir" --n-layer 22 --hidden 2048 \
              --intermediate 5632 --n-head 32 --kv-heads 4 --vocab 32000 --n-positions 2048 >/dev/null ;;
    esac
  fi
  echo "$dir"
}

# write_gguf MODEL_DIR NAME TYPE: the GGUF path; its writer summary is next to it (.json).
write_gguf() {
  local out=$WORK/$2-$3.gguf
  if [ ! -f "$out" ] || [ ! -f "$out.json" ]; then
    "$BUILD/bench/peers/qeff-gguf-writer" --model "$1" --out "$out" --type "$3" >"$out.json"
  fi
  echo "$out"
}

# CPU seconds all processes have used (user, nice, system, irq, softirq).
cpu_busy_s() { awk -v hz="$(getconf CLK_TCK)" '/^cpu /{print ($2+$3+$4+$7+$8)/hz}' /proc/stat; }

# run FIELDS_JSON [--gguf SUMMARY] -- COMMAND...: runs it and appends its record (result or
# error) with `other_cpu_cores`: the CPU other processes used meanwhile, in cores (all busy
# minus the command's own user+sys time, over its wall time; null under a second, too short to
# tell). On this 2-core VM anything above ~0.1 means someone else competed and the numbers, at 2
# threads most, are not to be trusted.
run() {
  local fields=$1 gguf="" status=0 busy0 real user sys
  shift
  if [ "$1" = --gguf ]; then gguf=$2; shift 2; fi
  shift  # --
  busy0=$(cpu_busy_s)
  local TIMEFORMAT='%R %U %S'
  { time "$@" >"$WORK/stdout" 2>"$WORK/stderr" || status=$?; } 2>"$WORK/time"
  read -r real user sys <"$WORK/time"
  fields="${fields%\}},\"other_cpu_cores\":$(awk -v b0="$busy0" -v b1="$(cpu_busy_s)" -v r="$real" -v u="$user" \
    -v s="$sys" 'BEGIN{o=(b1-b0-u-s)/r; if (r < 1) print "null"; else printf "%.2f", o < 0 ? 0 : o}')}"
  node bench/peers/report.js add "$RAW" "$fields" "$WORK/stdout" "$WORK/stderr" "$status" ${gguf:+"$gguf"}
  [ $status -eq 0 ] || echo "   failed: $(tail -n 1 "$WORK/stderr")"
}

qeff() {  # qeff MODEL_NAME MODEL_DIR DTYPE THREADS STEPS KEY [decode-bench flags...]
  local name=$1 dir=$2 dtype=$3 threads=$4 steps=$5 key=$6
  shift 6
  echo "== qeff $name $dtype, $threads threads"
  run "{\"kind\":\"qeff\",\"key\":\"$key\",\"model\":\"$name\",\"weight_dtype\":\"$dtype\",\"threads\":$threads}" -- \
    "$BUILD/bench/decode/qeff-decode-bench" --model "$dir" --weight-dtype "$dtype" --threads "$threads" \
    --ctx "$CTX" --prompt $PROMPT --steps "$steps" --work-dir "$WORK/qeff-$name" --reuse-export "$@"
}

llama() {  # llama MODEL_NAME GGUF DTYPE THREADS STEPS KEY EXTRA_FIELDS PREFILL_LIST
  echo "== llama.cpp $1 $(basename "$2"), $4 threads"
  # llama.cpp maps the GGUF file. Pages cached since the file was written or last read can sit
  # in 4 KB folios, and then the same binary decoded TinyLlama F32 at 2.4 tok/s instead of 5.5.
  # Dropping them first lets its warm-up read the file back into large folios, every run alike.
  dd if="$2" iflag=nocache count=0 status=none
  run "{\"kind\":\"llama.cpp\",\"key\":\"$6\",\"model\":\"$1\",\"weight_dtype\":\"$3\",\"threads\":$4$7}" --gguf "$2.json" -- \
    node bench/peers/llama_bench.js --model "$2" --threads "$4" --ctx "$CTX" --prompt $PROMPT --steps "$5" --prefill "$8" \
      --probe "$BUILD/bench/qeff-membw"
}

if [ "$CHECK" = 1 ]; then
  # The same prompt (ids 100..131) and 16 greedy tokens on both runtimes, at the largest thread count.
  T=${THREADS##* }
  for name in $MODELS; do
    dir=$(make_model "$name")
    for dtype in fp32 bf16; do qeff "$name" "$dir" $dtype "$T" 16 "check"; done
    for pair in fp32:f32 fp32:f16 bf16:bf16; do
      gguf=$(write_gguf "$dir" "$name" "${pair#*:}")
      llama "$name" "$gguf" "${pair%%:*}" "$T" 16 check ",\"qeff_dtype\":\"${pair%%:*}\",\"gguf_type\":\"${pair#*:}\",\"tokens\":16" ""
      [ -n "${PEERS_WORK:-}" ] || rm -f "$gguf" "$gguf.json"
    done
  done
  node bench/peers/report.js check "$RAW" "$OUT"
  exit $?
fi

PREFILL_FLAGS=()
for n in $PREFILL; do PREFILL_FLAGS+=(--prefill-tokens "$n"); done
PREFILL_LIST=$(echo $PREFILL | tr ' ' ',')
for name in $MODELS; do
  echo "== model $name"
  dir=$(make_model "$name")
  for dtype in $DTYPES; do
    gguf=$(write_gguf "$dir" "$name" "$(gguf_type "$dtype")")
    for t in $THREADS; do
      key="$name|$dtype|$t"
      qeff "$name" "$dir" "$dtype" "$t" "$STEPS" "$key" "${PREFILL_FLAGS[@]}"
      llama "$name" "$gguf" "$dtype" "$t" "$STEPS" "$key" "" "$PREFILL_LIST"
      if [ "$dtype" = fp32 ] && [ $ORT = 1 ] && [ -f "$WORK/qeff-$name/export/model.onnx" ]; then
        cp "$dir/config.json" "$WORK/qeff-$name/export/"
        echo "== onnxruntime $name fp32, $t threads"
        run "{\"kind\":\"onnxruntime\",\"key\":\"$key\",\"model\":\"$name\",\"weight_dtype\":\"fp32\",\"threads\":$t}" -- \
          env NODE_PATH=tests/node/node_modules node bench/node/ort_decode_bench.js "$WORK/qeff-$name/export" "$CTX" \
          "$STEPS" "$t" "$PREFILL_LIST"
      fi
    done
    [ -n "${PEERS_WORK:-}" ] || rm -f "$gguf" "$gguf.json"
  done
done
echo
node bench/peers/report.js bench "$RAW" "$OUT"
echo "rows: $OUT"
