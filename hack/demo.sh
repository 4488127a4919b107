#!/usr/bin/env bash
# `make demo`: a cluster (the local one from binaries; kind where a Docker engine answers),
# the operator installed with its Helm chart from the locally built image, and an example
# workflow run with its progress shown live until it ends.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
step() { printf '\n\033[1m==> %s\033[0m\n' "$*"; }

bash hack/venv.sh
if [ -n "${KUBECONFIG:-}" ]; then
  step "using the cluster of KUBECONFIG=$KUBECONFIG"
elif command -v docker >/dev/null 2>&1 && docker info >/dev/null 2>&1 && command -v kind >/dev/null 2>&1; then
  step "Docker is available: starting a kind cluster"
  bash hack/kind-up.sh
  export KUBECONFIG=${KUBECONFIG:-$HOME/.kube/config}
else
  step "starting the local single-node cluster (first run builds Kubernetes: about 7 minutes on 2 cores)"
  bash hack/cluster-up.sh
  eval "$(bash hack/cluster-env.sh)"
fi
eval "$(bash hack/cluster-env.sh 2>/dev/null | grep PATH)"

step "building the operator image and loading it into the cluster"
bash hack/image-build.sh

step "installing the operator with Helm (watching the namespace jobchain-demo)"
kubectl create namespace jobchain-demo --dry-run=client -o yaml | kubectl apply -f -
# CRDs that exist already (from kubectl, or another release) stay as they are: Helm cannot adopt
# objects of another owner, so the chart is told not to install them.
crds=true
owner=$(kubectl get crd workflows.jobchain.dev -o jsonpath='{.metadata.annotations.meta\.helm\.sh/release-name}' 2>/dev/null || true)
if kubectl get crd workflows.jobchain.dev >/dev/null 2>&1 && [ "$owner" != "jobchain" ]; then
  crds=false
  kubectl apply --server-side --force-conflicts -f crds/ >/dev/null
fi
helm upgrade --install jobchain charts/jobchain --namespace jobchain-system --create-namespace \
  --set crds.install=$crds \
  --set image.repository=localhost/jobchain-operator --set image.tag=dev --set image.pullPolicy=Never \
  --set "watchNamespaces={jobchain-demo}" --wait --timeout 5m
kubectl -n jobchain-system get pods

step "creating the example workflow (examples/hello-chain.yaml)"
kubectl -n jobchain-demo apply -f <(.venv/bin/python - <<'PY'
import yaml
for doc in yaml.safe_load_all(open("examples/hello-chain.yaml")):
    if doc["kind"] == "Workflow":
        print(yaml.safe_dump(doc))
PY
)

step "running it: jobchain run hello-chain --watch"
.venv/bin/jobchain -n jobchain-demo run hello-chain -p who=demo --watch
