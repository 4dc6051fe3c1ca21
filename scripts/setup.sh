#!/usr/bin/env bash
# Installs everything qeff needs on a fresh Debian 12 machine (Debian packages + npm test tools).
set -euo pipefail
cd "$(dirname "$0")/.."

SUDO=""
if [ "$(id -u)" != 0 ]; then SUDO="sudo"; fi
PACKAGES=(
  build-essential cmake ninja-build ccache pkg-config
  libgrpc++-dev protobuf-compiler-grpc libprotobuf-dev protobuf-compiler grpc-proto
  libonnx-dev libonnx-testdata libabsl-dev libspdlog-dev nlohmann-json3-dev libopenblas-dev
  libcli11-dev libgtest-dev libgmock-dev libbenchmark-dev libxxhash-dev libpcre2-dev libutf8proc-dev libcpp-httplib-dev libssl-dev openssl curl python3-yaml
)
missing=()
for p in "${PACKAGES[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "setup: installing ${missing[*]}"
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q "${missing[@]}"
fi
# Node.js is only used by tests and benchmarks (onnxruntime-node as an independent ONNX runtime,
# the `tokenizers` npm package as the tokenizer reference).
if ! command -v npm >/dev/null 2>&1; then
  $SUDO apt-get update -q
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q nodejs npm
fi
