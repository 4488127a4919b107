#!/usr/bin/env bash
# Builds the operator image localhost/jobchain-operator:dev from the Dockerfile without Docker
# and without any registry, and loads it into the local cluster when that is up.
#
#   hack/image-build.sh [--force]
#
# 1. buildah and debootstrap come from Debian's packages (installed when missing; root).
# 2. A Debian bookworm rootfs (debootstrap minbase + python3, python3-venv) is made once and
#    kept as $CACHE/images/jobchain-base-bookworm.tar, then imported into buildah's storage as
#    localhost/jobchain-base:bookworm (the Dockerfile's BASE).
# 3. The Dockerfile is built FROM that base (pip installs the dependencies from PyPI inside
#    the build), tagged localhost/jobchain-operator:dev and :VERSION (pyproject's version, which
#    the chart and manifests/ default to) and saved as an OCI archive,
#    $CACHE/images/jobchain-operator.tar.
# 4. If the local cluster's containerd runs, hack/import-image.sh imports the archive.
# Steps 3-4 are skipped when operator/, pyproject.toml, README.md, the Dockerfile and the
# base are unchanged since the last build (a hash of them is kept beside the archive).
# CACHE is $JOBCHAIN_CACHE, default ~/.cache/jobchain. Prints the time each step took.
set -euo pipefail
root=$(cd "$(dirname "$0")/.." && pwd)
cache=${JOBCHAIN_CACHE:-$HOME/.cache/jobchain}/images
cluster_dir=${JOBCHAIN_CLUSTER_DIR:-/var/lib/jobchain-cluster}
image=localhost/jobchain-operator:dev
# Also tagged with the package version, the tag the Helm chart and kustomize base default to.
version=$(sed -n 's/^version *= *"\(.*\)"/\1/p' "$root/pyproject.toml" | head -1)
image_version=localhost/jobchain-operator:$version
base=localhost/jobchain-base:bookworm
base_tar=$cache/jobchain-base-bookworm.tar
archive=$cache/jobchain-operator.tar
# The rootfs is fetched over https and checked against Debian's archive keyring (debootstrap
# --force-check-gpg: an unsigned or badly signed Release fails the build). With
# JOBCHAIN_DEBIAN_SNAPSHOT=YYYYMMDDTHHMMSSZ it comes from snapshot.debian.org at that date, the
# same bytes on every machine (not the default: this project's builders cannot reach
# snapshot.debian.org). Either way the Release date and every package version are recorded
# beside the archive ($base_tar.packages).
snapshot=${JOBCHAIN_DEBIAN_SNAPSHOT:-}
if [ -n "$snapshot" ]; then
  mirror=${DEBIAN_MIRROR:-https://snapshot.debian.org/archive/debian/$snapshot}
else
  mirror=${DEBIAN_MIRROR:-https://deb.debian.org/debian}
fi
keyring=/usr/share/keyrings/debian-archive-keyring.gpg
base_packages=python3,python3-venv,ca-certificates
force=0
[ "${1:-}" = --force ] && force=1

log() { printf '[image-build %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }
t_all=$SECONDS
step_start=$SECONDS
step() { log "$1 ($((SECONDS - step_start))s)"; step_start=$SECONDS; }

[ "$(id -u)" = 0 ] || die "run as root: buildah keeps its images in /var/lib/containers and debootstrap needs root"
mkdir -p "$cache"
exec 9>"$cache/.image-build.lock"
flock 9 # one build at a time

# 1. tools
missing=()
command -v buildah >/dev/null || missing+=(buildah)
command -v debootstrap >/dev/null || missing+=(debootstrap)
[ -s "$keyring" ] || missing+=(debian-archive-keyring)
if [ ${#missing[@]} -gt 0 ]; then
  log "installing ${missing[*]} from Debian's packages"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  step "installed ${missing[*]}"
fi

# buildah runs RUN steps in a chroot (no daemon, no runc network setup) on the host network,
# so pip reaches PyPI like the host does. Its storage is overlay, except where the storage
# folder is itself on overlayfs (inside a container), where overlay cannot nest: there vfs,
# which copies layers but works everywhere, in a root of its own (a root is tied to one
# driver). JOBCHAIN_BUILDAH_VFS=1 forces vfs.
export BUILDAH_ISOLATION=chroot
storage=()
graph=/var/lib/containers
probe=$graph; while [ ! -e "$probe" ]; do probe=$(dirname "$probe"); done
if [ -n "${JOBCHAIN_BUILDAH_VFS:-}" ] || [ "$(stat -f -c %T "$probe")" = overlayfs ]; then
  storage=(--storage-driver vfs --root "$graph/jobchain-vfs")
  log "buildah storage: vfs in $graph/jobchain-vfs"
fi
bh() { buildah "${storage[@]}" "$@"; }

# 2. base rootfs, made once
if [ ! -s "$base_tar" ]; then
  log "debootstrap bookworm minbase + $base_packages (once; cached as $base_tar)"
  rootfs=$(mktemp -d "$cache/rootfs.XXXXXX")
  trap 'rm -rf "$rootfs"' EXIT
  debootstrap --variant=minbase --include="$base_packages" --keyring="$keyring" --force-check-gpg \
    bookworm "$rootfs" "$mirror" > "$cache/debootstrap.log" 2>&1 || die "debootstrap failed; see $cache/debootstrap.log"
  {
    echo "# mirror: $mirror"
    sed -n 's/^Date: /# release date: /p' "$rootfs"/var/lib/apt/lists/*_InRelease "$rootfs"/var/lib/apt/lists/*_Release 2>/dev/null | head -1 || true
    chroot "$rootfs" dpkg-query -W -f '${Package}=${Version}\n'
  } > "$base_tar.packages.tmp"
  rm -rf "$rootfs"/var/cache/apt/archives/*.deb "$rootfs"/var/lib/apt/lists/* \
    "$rootfs"/var/log/* "$rootfs"/tmp/* "$rootfs"/dev/* "$rootfs"/proc/* "$rootfs"/sys/*
  : > "$rootfs/etc/resolv.conf"; : > "$rootfs/etc/hostname"
  tar --numeric-owner -C "$rootfs" -cf "$base_tar.tmp" .
  mv "$base_tar.tmp" "$base_tar"
  mv "$base_tar.packages.tmp" "$base_tar.packages"
  rm -rf "$rootfs"; trap - EXIT
  step "base rootfs $(du -h "$base_tar" | cut -f1)"
fi
base_sum=$(sha256sum "$base_tar" | cut -c1-64)
if [ "$(bh inspect --type image --format '{{index .Docker.Config.Labels "dev.jobchain.base-sha256"}}' "$base" 2>/dev/null)" != "$base_sum" ]; then
  ctr=$(bh from --pull=never scratch)
  bh add --quiet "$ctr" "$base_tar" / >/dev/null
  bh config --env PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin \
    --env LANG=C.UTF-8 --cmd /bin/bash --label "dev.jobchain.base-sha256=$base_sum" "$ctr"
  bh commit --quiet --rm "$ctr" "$base" >/dev/null
  step "imported $base_tar as $base"
fi

# 3. the operator image, when its inputs changed
inputs=$(cd "$root" && find operator pyproject.toml requirements.lock README.md Dockerfile .dockerignore -type f \
  ! -path '*/__pycache__/*' ! -name '*.pyc' ! -path '*.egg-info/*' -print0 | sort -z |
  xargs -0 sha256sum | sha256sum | cut -c1-64)
key="$inputs base=$base_sum"
if [ $force = 0 ] && [ -s "$archive" ] && [ "$(cat "$archive.inputs" 2>/dev/null)" = "$key" ] &&
   bh inspect --type image "$image" >/dev/null 2>&1; then
  log "$image is up to date ($archive)"
else
  log "building $image from $root/Dockerfile on $base"
  # Behind a TLS-intercepting proxy pip needs this machine's CA bundle: it is bind-mounted
  # into the RUN steps only (PIP_CA_FILE), never copied into the image.
  ca_args=()
  ca=${PIP_CERT:-${REQUESTS_CA_BUNDLE:-${SSL_CERT_FILE:-/etc/ssl/certs/ca-certificates.crt}}}
  if [ -n "$ca" ] && [ -f "$ca" ]; then
    ca_args=(--volume "$ca:/run/jobchain-build-ca.pem:ro" --build-arg PIP_CA_FILE=/run/jobchain-build-ca.pem)
  fi
  # The base by its digest, not its tag: the build uses exactly the rootfs checked above.
  base_digest=$(bh images --digests --format '{{.Digest}}' "$base" | head -1)
  [ -n "$base_digest" ] || die "no digest for $base"
  bh bud --quiet --layers --pull=never --network host --isolation chroot "${ca_args[@]}" \
    --build-arg "BASE=$base@$base_digest" -t "$image" -f "$root/Dockerfile" "$root" > "$cache/image-build.log" 2>&1 ||
    { tail -30 "$cache/image-build.log" >&2; die "build failed; full log in $cache/image-build.log"; }
  bh tag "$image" "$image_version"
  step "built $image and $image_version"
  rm -f "$archive.tmp"
  bh push --quiet "$image" "oci-archive:$archive.tmp:$image" >/dev/null
  mv "$archive.tmp" "$archive"
  printf '%s\n' "$key" > "$archive.inputs"
  step "saved $archive ($(du -h "$archive" | cut -f1))"
fi

# 4. load into the local cluster, if it runs
if [ -S "$cluster_dir/containerd/containerd.sock" ]; then
  "$root/hack/import-image.sh" "$archive" "$image"
  "$root/hack/import-image.sh" "$archive" "$image_version"
  step "cluster has $image and $image_version"
else
  log "the local cluster is not running: not imported (later: hack/image-build.sh again)"
fi
log "done in $((SECONDS - t_all))s: $image, $archive"
