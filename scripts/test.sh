#!/usr/bin/env bash
# Sets up a fresh machine, builds everything and runs all tests (unit + integration).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# onnxruntime-node is the independent check of exported graphs. --ignore-scripts: its install
# script would download GPU binaries; the CPU library ships inside the package.
(cd tests/node && npm install --ignore-scripts --no-audit --no-fund --loglevel=error)
QEFF_BUILD_DIR="${QEFF_BUILD_DIR:-build}" bash scripts/build.sh
BUILD_DIR="${QEFF_BUILD_DIR:-build}"
ctest --test-dir "$BUILD_DIR" --output-on-failure -j2 --timeout 900
