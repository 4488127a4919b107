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
# The unit tests' fakes of the cluster against the Protocols the real classes satisfy.
phase "mypy (test fakes)" .venv/bin/mypy tests/unit/builders.py tests/unit/fakes.py tests/unit/test_cli_commands.py \
  tests/unit/test_reconcile.py tests/unit/test_item_refusals.py tests/unit/test_queue_resume.py
phase "import layers" .venv/bin/lint-imports
phase "CRDs match the models" .venv/bin/python -m jobchain.api.crd --check
# dash, bash and busybox: the unit tier runs generated scripts in each (installed when missing).
phase "test deps" bash hack/test-deps.sh
# A test skipped for want of a tool the project builds itself (kubectl, helm, chromium) fails here
# (tests/conftest.py); -rs prints every other skip's reason.
export JOBCHAIN_REQUIRE_TOOLS=1
phase "unit tier" .venv/bin/pytest tests/unit -q -rs -p no:cacheprovider
# The property tests run derandomized above (the same examples every run); here they hunt with
# fresh ones for a bounded time: about a minute on a 2-core machine.
phase "property search" env JOBCHAIN_PROPERTY_SEARCH=1 JOBCHAIN_PROPERTY_EXAMPLES=150 JOBCHAIN_FUZZ_EXAMPLES=150 \
  .venv/bin/pytest tests/unit/test_planner_properties.py tests/unit/test_fuzz.py tests/unit/test_schedule_replays.py \
  -q -rs -p no:cacheprovider

if [ -z "${KUBECONFIG:-}" ]; then
  phase "local cluster" bash hack/cluster-up.sh
  eval "$(bash hack/cluster-env.sh)"
fi
export KUBECONFIG
if [ -x hack/image-build.sh ] || [ -f hack/image-build.sh ]; then
  phase "operator image" bash hack/image-build.sh
fi
phase "end-to-end tier" .venv/bin/pytest tests/e2e -m e2e -v -rs -p no:cacheprovider --durations=15
# The dashboard in a real browser (Debian's headless chromium, installed when missing).
phase "browser deps" bash hack/browser-deps.sh
phase "browser tier" .venv/bin/pytest tests/browser -v -s -rs -p no:cacheprovider
# Operator SIGKILLs at random and control-plane restarts; prints the seed, the kills, the recovery times.
phase "chaos tier" .venv/bin/pytest tests/chaos -m chaos -v -s -rs -p no:cacheprovider --durations=5
