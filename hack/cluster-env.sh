#!/usr/bin/env bash
# Prints the shell settings for using the local cluster: the admin kubeconfig, and the
# directory of the kubectl/helm built for it first on PATH.
#   eval "$(hack/cluster-env.sh)"
set -euo pipefail
# shellcheck source=lib-cluster.sh
source "$(cd "$(dirname "$0")" && pwd)/lib-cluster.sh"
[ -f "$JC_KUBECONFIG" ] || echo "# warning: $JC_KUBECONFIG does not exist yet: run hack/cluster-up.sh (as root)" >&2
echo "export KUBECONFIG=$JC_KUBECONFIG"
echo "export PATH=$JC_BIN:\$PATH"
