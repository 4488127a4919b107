#!/usr/bin/env bash
# Installs what the browser tier (tests/browser) needs when it is missing: Debian's headless
# `chromium` and its `chromium-driver`, and the Python Selenium bindings (a dev dependency, in
# the venv, from the lock). Idempotent: does nothing when both binaries are there. Needs root for apt-get.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
missing=()
command -v chromium >/dev/null 2>&1 || missing+=(chromium)
command -v chromedriver >/dev/null 2>&1 || missing+=(chromium-driver)
if [ ${#missing[@]} -gt 0 ]; then
  if [ "$(id -u)" != 0 ]; then
    echo "browser-deps: ${missing[*]} missing; install them as root: apt-get install ${missing[*]}" >&2
    exit 1
  fi
  echo "browser-deps: installing ${missing[*]} (Debian packages)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "${missing[@]}" fonts-dejavu-core >/dev/null
fi
# Selenium is a dev dependency pinned in requirements-dev.lock: hack/venv.sh installs it.
"$root/.venv/bin/python" -c 'import selenium' 2>/dev/null || bash "$root/hack/venv.sh"
echo "browser-deps: $(chromium --version 2>/dev/null | head -1); $(chromedriver --version | head -1)"
