#!/usr/bin/env bash
# Installs the shells the unit tier runs generated scripts in when they are missing (Debian's
# `dash`, `bash` and `busybox-static`): tests/unit/test_shell_differential.py checks that a
# reference's value reaches dash, bash and busybox ash byte for byte and never runs.
# Idempotent: does nothing when all three are there. Needs root for apt-get.
set -euo pipefail
# shellcheck source=lib-apt.sh
source "$(cd "$(dirname "$0")" && pwd)/lib-apt.sh"
missing=()
command -v dash >/dev/null 2>&1 || missing+=(dash)
command -v bash >/dev/null 2>&1 || missing+=(bash)
command -v busybox >/dev/null 2>&1 || missing+=(busybox-static)
if [ ${#missing[@]} -gt 0 ]; then
  apt_install test-deps "${missing[@]}"
fi
echo "test-deps: dash, bash $(bash -c 'echo $BASH_VERSION'), $(busybox | head -1)"
