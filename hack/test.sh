#!/usr/bin/env bash
# The project's test command (`make test`; CI runs exactly this through .ci/run).
# Sets up everything it needs: the venv, the local cluster (unless $KUBECONFIG names one),
# the operator image; then runs static checks, the unit tier and the end-to-end tier.
# Prints how long each phase took.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"

declare -a timings=()
phase() { # name command...
  local name=$1; shift
  local start=$SECONDS
  printf '\n=== %s\n' "$name"
  "$@"
  timings+=("$(printf '%-28s %5ss' "$name" $((SECONDS - start)))")
}
report() {
  printf '\n=== phase timings\n'
  printf '%s\n' "${timings[@]}"
}
trap report EXIT

phase "venv" bash hack/venv.sh
# kubectl and helm first: the unit tier renders the kustomize tree and the chart with them.
phase "cluster tools" bash hack/build-tools.sh
phase "ruff" .venv/bin/ruff check operator tests
phase "mypy" .venv/bin/mypy
phase "import layers" .venv/bin/lint-imports
phase "CRDs match the models" .venv/bin/python -m jobchain.api.crd --check
# dash, bash and busybox: the unit tier runs generated scripts in each (installed when missing).
phase "test deps" bash hack/test-deps.sh
phase "unit tier" .venv/bin/pytest tests/unit -q -p no:cacheprovider

if [ -z "${KUBECONFIG:-}" ]; then
  phase "local cluster" bash hack/cluster-up.sh
  eval "$(bash hack/cluster-env.sh)"
fi
export KUBECONFIG
if [ -x hack/image-build.sh ] || [ -f hack/image-build.sh ]; then
  phase "operator image" bash hack/image-build.sh
fi
phase "end-to-end tier" .venv/bin/pytest tests/e2e -m e2e -v -p no:cacheprovider --durations=15
# The dashboard in a real browser (Debian's headless chromium, installed when missing).
phase "browser deps" bash hack/browser-deps.sh
phase "browser tier" .venv/bin/pytest tests/browser -v -s -p no:cacheprovider
# Operator SIGKILLs at random and control-plane restarts; prints the seed, the kills, the recovery times.
phase "chaos tier" .venv/bin/pytest tests/chaos -m chaos -v -s -p no:cacheprovider --durations=5
