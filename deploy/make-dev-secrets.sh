#!/usr/bin/env bash
# Makes a development CA, a server certificate, a client certificate and one bearer token for the
# compose file and for trying the Kubernetes manifests (use your own PKI in production).
#
#   bash deploy/make-dev-secrets.sh [OUT_DIR] [EXTRA_DNS_NAME]...
#
# OUT_DIR (default deploy/secrets) gets ca.crt ca.key tls.crt tls.key client.crt client.key tokens.
# The server certificate names localhost, 127.0.0.1, the compose service names, the Kubernetes
# Services (qeff-exporter, qeff-compiler, qeff-runner-*) in namespace qeff, and EXTRA_DNS_NAMEs.
# OUT_DIR is private (0700); the files in it are 0644 so that the containers' user (uid 10001)
# can read them through compose's bind-mounted secrets.
set -euo pipefail
out=${1:-"$(dirname "$0")/secrets"}
shift || true
mkdir -p "$out"
chmod 0700 "$out"
cd "$out"
days=365

sans="DNS:localhost,IP:127.0.0.1,DNS:exporter,DNS:compiler,DNS:runner"
for svc in qeff-exporter qeff-compiler; do
  sans+=",DNS:$svc,DNS:$svc.qeff,DNS:$svc.qeff.svc,DNS:$svc.qeff.svc.cluster.local"
done
sans+=",DNS:*.qeff.svc,DNS:*.qeff.svc.cluster.local"
for extra in "$@"; do sans+=",DNS:$extra"; done

openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days "$days" \
  -keyout ca.key -out ca.crt -subj "/CN=qeff development CA" \
  -addext "basicConstraints=critical,CA:TRUE" -addext "keyUsage=critical,keyCertSign,cRLSign" 2>/dev/null

issue() {  # name CN extendedKeyUsage [subjectAltName]
  local name=$1 cn=$2 eku=$3 san=${4:-}
  openssl req -new -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes \
    -keyout "$name.key" -out "$name.csr" -subj "/CN=$cn" 2>/dev/null
  {
    echo "basicConstraints=CA:FALSE"
    echo "keyUsage=critical,digitalSignature,keyEncipherment"
    echo "extendedKeyUsage=$eku"
    if [ -n "$san" ]; then echo "subjectAltName=$san"; fi
  } > "$name.ext"
  openssl x509 -req -in "$name.csr" -CA ca.crt -CAkey ca.key -CAcreateserial -days "$days" \
    -extfile "$name.ext" -out "$name.crt" 2>/dev/null
  rm -f "$name.csr" "$name.ext"
}
# The server certificate may also act as a client (serverAuth + clientAuth): a pod can then call
# another qeff server under mTLS with its own certificate.
issue tls qeff serverAuth,clientAuth "$sans"
issue client qeff-client clientAuth
rm -f ca.srl

# One accepted bearer token per line (--auth-token-file); clients send it with --token-file or
# QEFF_TOKEN.
head -c 32 /dev/urandom | od -An -v -tx1 | tr -d ' \n' > tokens
echo >> tokens

chmod 0644 ca.crt tls.crt tls.key client.crt client.key tokens
chmod 0600 ca.key
echo "wrote $(pwd): ca.crt ca.key tls.crt tls.key client.crt client.key tokens"
