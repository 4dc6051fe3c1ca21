#!/usr/bin/env bash
# The demo: set up, build, start qeffd on a free port with a fresh cache, and run
# `qeffctl infer` on the bundled tiny GPT-2 (export -> compile -> load -> generate, with stats).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
QEFF_BUILD_DIR="${QEFF_BUILD_DIR:-build}" bash scripts/build.sh
BUILD_DIR="${QEFF_BUILD_DIR:-build}"

CACHE=$(mktemp -d /tmp/qeff-demo-XXXXXX)
LOG="$CACHE/qeffd.log"
PORT_FILE="$CACHE/port"
"$BUILD_DIR/services/qeffd/qeffd" --listen 127.0.0.1:0 --cache-dir "$CACHE/cache" >"$PORT_FILE" 2>"$LOG" &
QEFFD=$!
trap 'kill -TERM $QEFFD 2>/dev/null; wait $QEFFD 2>/dev/null; rm -rf "$CACHE"' EXIT
for _ in $(seq 100); do grep -q "listening on" "$PORT_FILE" 2>/dev/null && break; sleep 0.1; done
ADDR=$(sed -n 's/^listening on //p' "$PORT_FILE")
echo "qeffd listening on $ADDR (cache $CACHE/cache)"

PROMPT="${1:-Once upon a time, there was a}"
"$BUILD_DIR/clients/qeffctl/qeffctl" --server "$ADDR" infer --model tests/fixtures/hf/gpt2 \
  --prompt "$PROMPT" --max-new-tokens 16 --prefill-seq-len 8 --ctx-len 128
echo
echo "second run (export and compile are cache hits):"
"$BUILD_DIR/clients/qeffctl/qeffctl" --server "$ADDR" infer --model tests/fixtures/hf/gpt2 \
  --prompt "$PROMPT" --max-new-tokens 16 --prefill-seq-len 8 --ctx-len 128
