#!/usr/bin/env bash
# Creates .venv (idempotent) with jobchain installed editable and its dev tools, from
# requirements-dev.lock: every package pinned and checked against its sha256 (pip
# --require-hashes), the same versions on every machine. `make lock` (hack/lock.sh) regenerates
# the lock after pyproject.toml's dependencies change.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cd "$root"
venv=${JOBCHAIN_VENV:-.venv}
if [ ! -x "$venv/bin/python" ]; then
  python3 -m venv "$venv"
fi
stamp=$venv/.jobchain-installed
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ requirements-dev.lock -nt "$stamp" ]; then
  "$venv/bin/pip" install -q --upgrade pip
  "$venv/bin/pip" install -q --require-hashes -r requirements-dev.lock
  # The package itself, without resolving anything again: its build backend is in the lock.
  "$venv/bin/pip" install -q --no-deps --no-build-isolation -e .
  touch "$stamp"
fi
