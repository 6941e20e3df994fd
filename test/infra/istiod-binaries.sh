#!/usr/bin/env bash
# Builds istiod's pilot-discovery (the peer control plane for bench/istiod-compare.ts) from the Go module proxy (no
# Docker, no binary downloads) into $MIZZEN_TEST_CACHE/istiod/bin (default ~/.cache/mizzen-test). Idempotent: when
# the binary exists for the pinned version it exits at once. Shares the Go module and build caches with
# kube-binaries.sh, so dependencies common to both (k8s client libraries, grpc, protobuf...) are fetched and compiled
# once. Nothing here is ever written into the repository.
#
#   bash test/infra/istiod-binaries.sh                          # build if missing, print where the binary is
#   MIZZEN_ISTIOD_REBUILD=1 bash test/infra/istiod-binaries.sh  # force a rebuild
set -euo pipefail

# Not the v0.0.0-20260713165634-56df41f63e51 (= 1.30.3) of shared/reference/test-infra.md: through the module proxy
# reachable here that pseudo-version is refused ("403 Forbidden / This module version is not available"), and so
# are 1.29.6's v0.0.0-20260713140233-7019d6d3608e, the bare tags 1.30.3 / 1.29.6 / 1.28.10 and the branch queries
# release-1.30 / release-1.29 / master. `go list -m -json istio.io/istio@latest` is served and resolves to the
# master-branch pseudo-version below (go 1.26.0, fine for the local go1.26.8), so that is what is pinned.
ISTIO_VERSION=v0.0.0-20260827124520-eed52ebb66ad
ISTIO_LABEL=1.31-dev-eed52ebb66ad # what `pilot-discovery version` reports (buildVersion ldflag)
STAMP="istio=$ISTIO_VERSION"

CACHE="${MIZZEN_TEST_CACHE:-$HOME/.cache/mizzen-test}"
ISTIOD="$CACHE/istiod"
BIN="$ISTIOD/bin"

if [[ -z "${MIZZEN_ISTIOD_REBUILD:-}" && -x "$BIN/pilot-discovery" ]] \
  && [[ "$(cat "$BIN/VERSIONS" 2>/dev/null)" == "$STAMP" ]]; then
  echo "$BIN"
  exit 0
fi

command -v go >/dev/null || { echo "istiod-binaries: no Go toolchain on PATH" >&2; exit 1; }
mkdir -p "$BIN" "$ISTIOD/src"

# One build at a time.
exec 9>"$ISTIOD/.lock"
if command -v flock >/dev/null; then
  flock 9
  if [[ -z "${MIZZEN_ISTIOD_REBUILD:-}" && -x "$BIN/pilot-discovery" ]] \
    && [[ "$(cat "$BIN/VERSIONS" 2>/dev/null)" == "$STAMP" ]]; then
    echo "$BIN"
    exit 0
  fi
fi

export GOTOOLCHAIN=local CGO_ENABLED=0 GOFLAGS="-trimpath -buildvcs=false"
export GOMODCACHE="${MIZZEN_GOMODCACHE:-$CACHE/go/mod}"
export GOCACHE="${MIZZEN_GOCACHE:-$CACHE/go/build}"
export GOPROXY="${GOPROXY:-https://proxy.golang.org,direct}"

t0=$SECONDS
log() { echo "istiod-binaries: [$((SECONDS - t0))s] $*" >&2; }
log "building pilot-discovery istio.io/istio@$ISTIO_VERSION with $(go version | cut -d' ' -f3) into $BIN"

# Wrapper module (replaces only apply to the main module). istio's go.mod has no replace directives of its own,
# but the proxy here refuses ("403 Forbidden / This module version is not available") four of the exact
# dependency versions that istio@$ISTIO_VERSION requires:
#   istio.io/api@v1.31.0-rc.0.0.20260824154656-b943409680a7
#   istio.io/client-go@v1.31.0-rc.0.0.20260824155257-512e1cfc6c15
#   github.com/envoyproxy/go-control-plane/envoy@v1.37.1-0.20260713214202-ca8ce173c36f
#   github.com/envoyproxy/go-control-plane/contrib@v1.36.1-0.20260713214202-ca8ce173c36f
# so each is replaced by a version the proxy serves and that verifies: go-control-plane/envoy v1.39.0 is the tag
# on that very commit (ca8ce173c36f, 2026-07-13 21:42:02); api/client-go v1.31.1 are the release-1.31 tags that
# follow the rc pseudo-versions; contrib gets its next served pseudo-version (2026-07-29).
SRC="$ISTIOD/src/istio-$ISTIO_VERSION"
mkdir -p "$SRC" && cd "$SRC"
[[ -f go.mod ]] || go mod init local/istiodwrap >/dev/null 2>&1
go mod edit -replace=istio.io/api=istio.io/api@v1.31.1
go mod edit -replace=istio.io/client-go=istio.io/client-go@v1.31.1
go mod edit -replace=github.com/envoyproxy/go-control-plane/envoy=github.com/envoyproxy/go-control-plane/envoy@${ISTIOD_ENVOY_API:-v1.39.0}
go mod edit -replace=github.com/envoyproxy/go-control-plane/contrib=github.com/envoyproxy/go-control-plane/contrib@v1.36.1-0.20260729145720-a2d8c7492908
go get "istio.io/istio/pilot/cmd/pilot-discovery@$ISTIO_VERSION"
log "istio modules resolved"
# Tags as Makefile.core.mk's STANDARD_TAGS.
go build -mod=mod -p 2 -tags vtprotobuf,disable_pgv \
  -ldflags "-s -w -X istio.io/istio/pkg/version.buildVersion=$ISTIO_LABEL -X istio.io/istio/pkg/version.buildStatus=Clean" \
  -o "$BIN/pilot-discovery.tmp" istio.io/istio/pilot/cmd/pilot-discovery
mv -f "$BIN/pilot-discovery.tmp" "$BIN/pilot-discovery"
log "pilot-discovery built ($(du -h "$BIN/pilot-discovery" | cut -f1))"

printf '%s' "$STAMP" >"$BIN/VERSIONS"
log "done in $((SECONDS - t0))s; module cache $(du -sh "$GOMODCACHE" 2>/dev/null | cut -f1), build cache $(du -sh "$GOCACHE" 2>/dev/null | cut -f1)"
echo "$BIN"
