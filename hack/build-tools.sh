#!/usr/bin/env bash
# Builds etcd, the Kubernetes control plane, kubelet, kubectl and helm from the Go module proxy,
# once, into a cache outside the repo (JOBCHAIN_CACHE, default ~/.cache/jobchain). Idempotent:
# a complete cache is reused at once. Why from source: no registry or download site is
# reachable here, only the Go module proxy.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
# shellcheck source=versions.env
source "$here/versions.env"
CACHE=${JOBCHAIN_CACHE:-$HOME/.cache/jobchain}
BIN=$CACHE/k8s-$KUBE_VERSION/bin
mkdir -p "$BIN"

log() { printf '[build-tools %(%H:%M:%S)T] %s\n' -1 "$*"; }

want=(etcd kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl helm)
missing=()
for b in "${want[@]}"; do [ -x "$BIN/$b" ] || missing+=("$b"); done
if [ ${#missing[@]} -eq 0 ]; then
  log "all tools cached in $BIN"
  exit 0
fi
if ! command -v go >/dev/null 2>&1; then
  echo "build-tools: the 'go' command is missing. Install Go >= 1.24 (https://go.dev/doc/install) and put it on PATH, then run again." >&2
  exit 1
fi

log "building: ${missing[*]} (first build: about 7 minutes on 2 cores with an empty Go build cache, more on slower machines; cached afterwards)"

export GOFLAGS=-mod=mod GOTOOLCHAIN=local CGO_ENABLED=0
work=$CACHE/build
mkdir -p "$work"

# go.mod of a wrapper module that requires $1@$2 and maps that module's ./staging replaces
# (if any) to published versions; Kubernetes' own go.mod cannot be used with `go install`.
wrapper() { # dir module version
  local dir=$1 mod=$2 ver=$3 gomod
  mkdir -p "$dir"
  if ! gomod=$(go mod download -json "$mod@$ver" | python3 -c 'import json,sys; d=json.load(sys.stdin); print(d.get("GoMod") or ""); sys.exit(1 if d.get("Error") else 0)'); then
    echo "build-tools: cannot fetch $mod@$ver from the Go module proxy ($(go env GOPROXY)). Check network access to the proxy." >&2
    exit 1
  fi
  {
    echo "module jobchain.dev/localtools"
    echo "go 1.24.0"
    echo "require $mod $ver"
    # staging modules: k8s.io/NAME => ./staging/src/k8s.io/NAME  ->  k8s.io/NAME v0.MINOR.PATCH
    local minor_patch=${KUBE_VERSION#v1.}
    grep -E '=> \./staging/src/' "$gomod" | awk -v v="v0.$minor_patch" '{print "replace " $1 " => " $1 " " v}'
  } > "$dir/go.mod"
}

build_k8s() {
  local d=$work/k8s-$KUBE_VERSION
  wrapper "$d" k8s.io/kubernetes "$KUBE_VERSION"
  cat > "$d/tools.go" <<'GO'
//go:build tools

package tools

import (
	_ "k8s.io/kubernetes/cmd/kube-apiserver"
	_ "k8s.io/kubernetes/cmd/kube-controller-manager"
	_ "k8s.io/kubernetes/cmd/kube-scheduler"
	_ "k8s.io/kubernetes/cmd/kubelet"
	_ "k8s.io/kubernetes/cmd/kube-proxy"
	_ "k8s.io/kubernetes/cmd/kubectl"
)
GO
  (cd "$d" && log "resolving Kubernetes $KUBE_VERSION modules" && go mod tidy -e >/dev/null 2>&1 || true)
  (cd "$d" && go mod download)
  local cmds=()
  for b in kube-apiserver kube-controller-manager kube-scheduler kubelet kube-proxy kubectl; do
    [ -x "$BIN/$b" ] || cmds+=("k8s.io/kubernetes/cmd/$b")
  done
  [ ${#cmds[@]} -eq 0 ] && return 0
  log "compiling ${cmds[*]}"
  (cd "$d" && GOBIN=$BIN go install -trimpath -ldflags "-s -w \
      -X k8s.io/component-base/version.gitVersion=$KUBE_VERSION \
      -X k8s.io/component-base/version.gitMajor=1 \
      -X k8s.io/component-base/version.gitMinor=$(echo "$KUBE_VERSION" | cut -d. -f2) \
      -X k8s.io/client-go/pkg/version.gitVersion=$KUBE_VERSION" "${cmds[@]}")
}

build_etcd() {
  [ -x "$BIN/etcd" ] && return 0
  local d=$work/etcd-$ETCD_VERSION
  mkdir -p "$d"
  printf 'module jobchain.dev/localtools\ngo 1.24.0\nrequire go.etcd.io/etcd/server/v3 %s\n' "$ETCD_VERSION" > "$d/go.mod"
  printf '//go:build tools\n\npackage tools\n\nimport _ "go.etcd.io/etcd/server/v3"\n' > "$d/tools.go"
  (cd "$d" && go mod tidy -e >/dev/null 2>&1 || true)
  log "compiling etcd $ETCD_VERSION"
  (cd "$d" && go build -trimpath -ldflags "-s -w" -o "$BIN/etcd" go.etcd.io/etcd/server/v3)
}

build_helm() {
  [ -x "$BIN/helm" ] && return 0
  local d=$work/helm-$HELM_VERSION
  mkdir -p "$d"
  printf 'module jobchain.dev/localtools\ngo 1.24.0\nrequire helm.sh/helm/v3 %s\n' "$HELM_VERSION" > "$d/go.mod"
  printf '//go:build tools\n\npackage tools\n\nimport _ "helm.sh/helm/v3/cmd/helm"\n' > "$d/tools.go"
  (cd "$d" && go mod tidy -e >/dev/null 2>&1 || true)
  log "compiling helm $HELM_VERSION"
  (cd "$d" && go build -trimpath -ldflags "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION" -o "$BIN/helm" helm.sh/helm/v3/cmd/helm)
}

start=$SECONDS
build_etcd
build_helm
build_k8s
for b in "${want[@]}"; do
  [ -x "$BIN/$b" ] || { echo "build-tools: $b was not built; see the output above" >&2; exit 1; }
done
log "done in $((SECONDS - start))s: $BIN"
