# shellcheck shell=bash
# Sourced by the hack scripts that install Debian packages when a tool is missing.
#   apt_install TAG PACKAGE...   installs the packages (root), or says how to and fails (not root)
apt_install() {
  local tag=$1; shift
  if [ "$(id -u)" != 0 ]; then
    echo "$tag: $* missing; install them as root: apt-get install $*" >&2
    return 1
  fi
  echo "$tag: installing $* (Debian packages)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq
  apt-get install -y -qq --no-install-recommends "$@" >/dev/null
}
