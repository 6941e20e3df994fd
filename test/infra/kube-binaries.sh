#!/usr/bin/env bash
# Builds a real kube-apiserver and etcd for the integration tests from the Go module proxy (no Docker, no binary
# downloads), into $MIZZEN_TEST_CACHE/kube/bin (default ~/.cache/mizzen-test). Idempotent: when both binaries exist
# for the pinned versions it exits at once. The Go module and build caches live under the same cache directory, so
# a rebuild on the same machine is incremental. Nothing here is ever written into the repository.
#
#   bash test/infra/kube-binaries.sh          # build if missing, print where the binaries are
#   MIZZEN_KUBE_REBUILD=1 bash test/infra/kube-binaries.sh   # force a rebuild
set -euo pipefail

# 1.34.10, not the 1.34.9 of shared/reference/test-infra.md: through the module proxy reachable here,
# k8s.io/externaljwt@v0.34.9 fails checksum-database verification (sum.golang.org lookup 404) and
# cli-runtime/kube-proxy@v0.34.9 are refused (403 "not available"); every module kube-apiserver needs exists and
# verifies at 1.34.10. (sample-* at v0.34.10 are refused too, but nothing in kube-apiserver's build loads them.)
K8S_VERSION=1.34.10     # k8s.io/kubernetes
STAGING_VERSION=0.34.10 # k8s.io/<staging> modules, same patch as K8S_VERSION
ETCD_VERSION=3.6.14     # go.etcd.io/etcd/server/v3
STAMP="kubernetes=v$K8S_VERSION etcd=v$ETCD_VERSION"

CACHE="${MIZZEN_TEST_CACHE:-$HOME/.cache/mizzen-test}"
KUBE="$CACHE/kube"
BIN="$KUBE/bin"

if [[ -z "${MIZZEN_KUBE_REBUILD:-}" && -x "$BIN/kube-apiserver" && -x "$BIN/etcd" ]] \
  && [[ "$(cat "$BIN/VERSIONS" 2>/dev/null)" == "$STAMP" ]]; then
  exit 0
fi

command -v go >/dev/null || { echo "kube-binaries: no Go toolchain on PATH" >&2; exit 1; }
mkdir -p "$BIN" "$KUBE/src"

# One build at a time (parallel vitest workers may all call this script).
exec 9>"$KUBE/.lock"
if command -v flock >/dev/null; then
  flock 9
  if [[ -z "${MIZZEN_KUBE_REBUILD:-}" && -x "$BIN/kube-apiserver" && -x "$BIN/etcd" ]] \
    && [[ "$(cat "$BIN/VERSIONS" 2>/dev/null)" == "$STAMP" ]]; then
    exit 0
  fi
fi

export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS="-trimpath -buildvcs=false -mod=mod"
export GOMODCACHE="${MIZZEN_GOMODCACHE:-$CACHE/go/mod}"
export GOCACHE="${MIZZEN_GOCACHE:-$CACHE/go/build}"
export GOPROXY="${GOPROXY:-https://proxy.golang.org,direct}"

t0=$SECONDS
log() { echo "kube-binaries: [$((SECONDS - t0))s] $*" >&2; }
log "building kube-apiserver v$K8S_VERSION and etcd v$ETCD_VERSION with $(go version | cut -d' ' -f3) into $BIN"

# --- etcd: wrapper module (the server module's own replaces only apply when it is the main module) ---
ETCD_SRC="$KUBE/src/etcd-$ETCD_VERSION"
mkdir -p "$ETCD_SRC" && cd "$ETCD_SRC"
[[ -f go.mod ]] || go mod init local/etcdwrap >/dev/null 2>&1
go get "go.etcd.io/etcd/server/v3@v$ETCD_VERSION"
log "etcd modules resolved"
go build -p 2 -ldflags "-s -w" -o "$BIN/etcd.tmp" go.etcd.io/etcd/server/v3
mv -f "$BIN/etcd.tmp" "$BIN/etcd"
log "etcd built ($(du -h "$BIN/etcd" | cut -f1))"

# --- kube-apiserver: wrapper module with the staging modules replaced by their published versions ---
K8S_SRC="$KUBE/src/kubernetes-$K8S_VERSION"
mkdir -p "$K8S_SRC" && cd "$K8S_SRC"
if [[ ! -f go.mod ]]; then
  go mod init local/k8swrap >/dev/null 2>&1
  printf 'godebug default=go1.24\n' >>go.mod
fi
for m in api apiextensions-apiserver apimachinery apiserver cli-runtime client-go cloud-provider \
  cluster-bootstrap code-generator component-base component-helpers controller-manager cri-api cri-client \
  csi-translation-lib dynamic-resource-allocation endpointslice externaljwt kms kube-aggregator \
  kube-controller-manager kube-proxy kube-scheduler kubectl kubelet metrics mount-utils \
  pod-security-admission sample-apiserver sample-cli-plugin sample-controller; do
  go mod edit "-replace=k8s.io/$m=k8s.io/$m@v$STAGING_VERSION"
done
go get "k8s.io/kubernetes/cmd/kube-apiserver@v$K8S_VERSION"
log "kubernetes modules resolved"
MINOR="$(cut -d. -f2 <<<"$K8S_VERSION")"
V="-X k8s.io/component-base/version.gitVersion=v$K8S_VERSION -X k8s.io/component-base/version.gitMajor=1"
V="$V -X k8s.io/component-base/version.gitMinor=$MINOR -X k8s.io/component-base/version.gitTreeState=clean"
V="$V -X k8s.io/client-go/pkg/version.gitVersion=v$K8S_VERSION -X k8s.io/client-go/pkg/version.gitMajor=1"
V="$V -X k8s.io/client-go/pkg/version.gitMinor=$MINOR -X k8s.io/client-go/pkg/version.gitTreeState=clean"
go build -p 2 -ldflags "-s -w $V" -o "$BIN/kube-apiserver.tmp" k8s.io/kubernetes/cmd/kube-apiserver
mv -f "$BIN/kube-apiserver.tmp" "$BIN/kube-apiserver"
log "kube-apiserver built ($(du -h "$BIN/kube-apiserver" | cut -f1))"

printf '%s' "$STAMP" >"$BIN/VERSIONS"
log "done in $((SECONDS - t0))s; module cache $(du -sh "$GOMODCACHE" 2>/dev/null | cut -f1), build cache $(du -sh "$GOCACHE" 2>/dev/null | cut -f1)"
echo "$BIN"
