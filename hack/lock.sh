#!/usr/bin/env bash
# Regenerates the lock files from pyproject.toml: every package pinned, with the sha256 of each
# of its files on PyPI, so an install (pip --require-hashes) gets exactly these bytes.
#   requirements.lock      the operator's dependencies (the image installs these)
#   requirements-dev.lock  the same plus the dev tools (hack/venv.sh, so `make test`, installs these)
# Both include the build backend (setuptools), so the package itself installs without fetching
# anything unpinned. Run after changing dependencies in pyproject.toml: `make lock` (keeps the
# pins that still fit; JOBCHAIN_LOCK_UPGRADE=1 moves every package to its newest version).
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
bash hack/venv.sh
common=(--quiet --generate-hashes --allow-unsafe --strip-extras --all-build-deps --no-emit-index-url --no-emit-find-links
        --resolver=backtracking pyproject.toml)
upgrade=()
[ -n "${JOBCHAIN_LOCK_UPGRADE:-}" ] && upgrade=(--upgrade)
CUSTOM_COMPILE_COMMAND="make lock" .venv/bin/pip-compile "${common[@]}" "${upgrade[@]}" -o requirements.lock
CUSTOM_COMPILE_COMMAND="make lock" .venv/bin/pip-compile "${common[@]}" "${upgrade[@]}" --extra dev -o requirements-dev.lock
