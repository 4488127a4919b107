#!/usr/bin/env bash
# Installs what the browser tier (tests/browser) needs when it is missing: Debian's headless
# `chromium` and its `chromium-driver`, and the Python Selenium bindings (a dev dependency, in
# the venv, from the lock). Idempotent: does nothing when both binaries are there. Needs root for apt-get.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
# shellcheck source=lib-apt.sh
source "$root/hack/lib-apt.sh"
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
if [ ${#missing[@]} -gt 0 ]; then
  apt_install browser-deps "${missing[@]}" fonts-dejavu-core
fi
# Selenium is a dev dependency pinned in requirements-dev.lock: hack/venv.sh installs it.
"$root/.venv/bin/python" -c 'import selenium' 2>/dev/null || bash "$root/hack/venv.sh"
echo "browser-deps: $(chromium --version 2>/dev/null | head -1); $(chromedriver --version | head -1)"
