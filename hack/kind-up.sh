#!/usr/bin/env bash
# A kind cluster instead of hack/cluster-up.sh, for machines with Docker (macOS, Windows
# with WSL2, Linux without root). NOT exercised by CI: CI has no Docker engine, so this
# script has never run there; treat it as a convenience.
# Needs: a running docker (or podman with KIND_EXPERIMENTAL_PROVIDER=podman), and kind on
# PATH or Go to install it. The project's local images are loaded with
# `kind load image-archive`, from the same OCI archives hack/images/build-images.sh writes.
set -euo pipefail
JC_SCRIPT=kind-up
# shellcheck source=lib-cluster.sh
source "$(cd "$(dirname "$0")" && pwd)/lib-cluster.sh"

# kind supports only the node images built for its own release, pinned by digest (see the
# release notes of kind v0.33.0). That release has no v1.34.4 image: v1.34.11 is the
# nearest of the same minor as hack/versions.env. Override both together for another kind.
KIND_VERSION=${KIND_VERSION:-v0.33.0}
KIND_NODE_IMAGE=${KIND_NODE_IMAGE:-kindest/node:v1.34.11@sha256:44e222ee2132dab25ff87301682f89eb82c7880ea3a1bf543bfe9708fd08d67d}
name=jobchain
kubeconfig=${KIND_KUBECONFIG:-$HOME/.kube/jobchain-kind}

if [ "${KIND_EXPERIMENTAL_PROVIDER:-}" != podman ]; then
  command -v docker >/dev/null && docker info >/dev/null 2>&1 ||
    jc_die "kind needs a running Docker engine (docker info failed). Without Docker, on Linux as root, use: make cluster-up"
fi
if ! command -v kind >/dev/null; then
  command -v go >/dev/null || jc_die "kind is not installed (https://kind.sigs.k8s.io/docs/user/quick-start/#installation)"
  jc_log "installing kind $KIND_VERSION with go install"
  go install "sigs.k8s.io/kind@$KIND_VERSION"
  PATH=$(go env GOPATH)/bin:$PATH
fi

if ! grep -qx "$name" <<<"$(kind get clusters 2>/dev/null || true)"; then
  kind create cluster --name "$name" --config "$JC_HACK/kind.yaml" \
    --image "$KIND_NODE_IMAGE" --kubeconfig "$kubeconfig" --wait 180s
fi

# The same images as the local cluster (minus pause: kind brings its own).
if [ -x "$JC_BIN/kubectl" ] && command -v gcc >/dev/null && command -v busybox >/dev/null; then
  mapfile -t archives < <(bash "$JC_HACK/images/build-images.sh")
  for a in "${archives[@]}"; do
    case $a in */pause.tar) continue ;; esac
    kind load image-archive "$a" --name "$name"
  done
else
  jc_log "not loading the local images (needs hack/build-tools.sh, gcc, busybox-static);" \
    "load images with: kind load image-archive X.tar --name $name"
fi
jc_log "kind cluster '$name' is up; delete it with: kind delete cluster --name $name"
echo "export KUBECONFIG=$kubeconfig"
