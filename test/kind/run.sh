#!/usr/bin/env bash
# End-to-end on a kind cluster, for hosts with Docker (the development machines have none; there the same scenarios
# run against a locally built kube-apiserver in `npm test`). Builds the control-plane and proxy images, loads them into
# a fresh kind cluster, installs the chart with helm, waits for mizzen to be ready, and runs test/kind with vitest.
#
#   bash test/kind/run.sh            # create, test, delete
#   KEEP=1 bash test/kind/run.sh     # leave the cluster up afterwards
set -euo pipefail
cd "$(dirname "$0")/../.."

CLUSTER="${CLUSTER:-mizzen-e2e}"
TAG="${TAG:-e2e}"
HUB="${HUB:-localhost/mizzen}"
NS=istio-system
for tool in docker kind helm kubectl; do
  command -v "$tool" >/dev/null || { echo "kind e2e: $tool is required" >&2; exit 2; }
done

KUBECONFIG_FILE="$(mktemp -t mizzen-kind-XXXXXX)"
cleanup() {
  if [[ -z "${KEEP:-}" ]]; then kind delete cluster --name "$CLUSTER" >/dev/null 2>&1 || true; fi
  rm -f "$KUBECONFIG_FILE"
}
trap cleanup EXIT

docker build -t "$HUB/mizzen:$TAG" -f Dockerfile .
docker build -t "$HUB/mizzen-proxy:$TAG" -f proxy.Dockerfile .
kind create cluster --name "$CLUSTER" --kubeconfig "$KUBECONFIG_FILE" --wait 120s
kind load docker-image --name "$CLUSTER" "$HUB/mizzen:$TAG" "$HUB/mizzen-proxy:$TAG"

export KUBECONFIG="$KUBECONFIG_FILE"
helm install mizzen manifests/charts/mizzen --namespace "$NS" --create-namespace \
  --set global.hub="$HUB" --set global.tag="$TAG" --set global.imagePullPolicy=Never --wait --timeout 5m
kubectl -n "$NS" rollout status deployment/mizzen --timeout=120s
helm test mizzen --namespace "$NS" --timeout 2m

MIZZEN_KIND_KUBECONFIG="$KUBECONFIG_FILE" MIZZEN_KIND_NAMESPACE="$NS" MIZZEN_KIND_HUB="$HUB" MIZZEN_KIND_TAG="$TAG" \
  npx vitest run test/kind
