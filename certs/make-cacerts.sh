#!/usr/bin/env bash
# Plug-in CA for one or more clusters (Istio's tools/certs Makefile.selfsigned.mk, with mizzen's tooling):
#   certs/make-cacerts.sh OUT_DIR CLUSTER [CLUSTER...]
# creates OUT_DIR/root (root-cert.pem, root-key.pem: keep offline) once, then OUT_DIR/<cluster> for each cluster
# (ca-cert.pem, ca-key.pem, cert-chain.pem, root-cert.pem), ready for:
#   kubectl create secret generic cacerts -n istio-system --from-file=OUT_DIR/<cluster>
# KEY_TYPE=ec for ECDSA P-256 instead of RSA-4096. MIZZEN overrides the command (default: this checkout's CLI).
set -euo pipefail
if [ $# -lt 2 ]; then
  echo "usage: $0 OUT_DIR CLUSTER [CLUSTER...]" >&2
  exit 2
fi
here="$(cd "$(dirname "$0")" && pwd)"
mizzen="${MIZZEN:-node ${here}/../src/cli/main.ts}"
key_type="${KEY_TYPE:-rsa}"
out="$1"
shift
umask 077
if [ ! -f "${out}/root/root-key.pem" ]; then
  ${mizzen} ca init-root --dir "${out}/root" --key-type "${key_type}"
fi
for cluster in "$@"; do
  ${mizzen} ca intermediate --root-dir "${out}/root" --out "${out}/${cluster}" --cluster "${cluster}" --key-type "${key_type}"
done
