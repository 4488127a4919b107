#!/usr/bin/env bash
# Builds the images the local cluster needs, without any registry or Docker, as OCI
# image-layout archives in $JOBCHAIN_CACHE/images (default ~/.cache/jobchain/images):
#   busybox.tar          docker.io/library/busybox:1.36 and :latest  (Debian's busybox-static,
#                        every applet linked, /bin/sh, /tmp)
#   pause.tar            registry.k8s.io/pause:3.10  (pause.c, gcc -static; containerd's sandbox image)
#   jobchain-kubectl.tar localhost/jobchain-kubectl:dev  (busybox + the static kubectl at
#                        /usr/local/bin/kubectl, for workflow steps that annotate their own pod)
# Rebuilds an archive only when an input is newer. Prints nothing but the archive paths.
# Needs: busybox-static, gcc + libc6-dev (static libc), python3, and hack/build-tools.sh done.
set -euo pipefail
JC_SCRIPT=build-images
# shellcheck source=../lib-cluster.sh
source "$(cd "$(dirname "$0")/.." && pwd)/lib-cluster.sh"

here=$JC_HACK/images
out=$JC_IMAGES
mkdir -p "$out"
py=$(command -v /usr/bin/python3 || command -v python3)
busybox=$(command -v busybox || true)
[ -n "$busybox" ] && file -L "$busybox" | grep -q 'statically linked' ||
  busybox=/bin/busybox
file -L "$busybox" 2>/dev/null | grep -q 'statically linked' ||
  jc_die "a static busybox is needed (apt-get install busybox-static)"

# stale OUT INPUT...: true when OUT is missing or older than an input.
stale() { local o=$1 i; shift; [ -f "$o" ] || return 0; for i in "$@"; do [ "$i" -nt "$o" ] && return 0; done; return 1; }

tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT

busybox_rootfs() { # DIR
  local r=$1 link
  mkdir -p "$r"/{bin,sbin,usr/bin,usr/sbin,usr/local/bin,etc,root,home,var/tmp,proc,sys,dev}
  install -d -m 1777 "$r/tmp"
  chmod 1777 "$r/var/tmp"
  install -m 0755 "$busybox" "$r/bin/busybox"
  # `busybox --list-full` prints every applet with its usual path, e.g. bin/sh, usr/bin/env.
  while read -r link; do
    [ "$link" = bin/busybox ] && continue
    mkdir -p "$r/$(dirname "$link")"
    ln -sf /bin/busybox "$r/$link"
  done < <("$busybox" --list-full)
  [ -e "$r/bin/sh" ] || ln -s /bin/busybox "$r/bin/sh"
  printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' > "$r/etc/passwd"
  printf 'root:x:0:\nnogroup:x:65534:\n' > "$r/etc/group"
  : > "$r/etc/hosts"; : > "$r/etc/resolv.conf"   # the runtime bind-mounts its own
}

if stale "$out/busybox.tar" "$busybox" "$here/oci-image.py" "$0"; then
  busybox_rootfs "$tmp/busybox"
  "$py" "$here/oci-image.py" --out "$out/busybox.tar" --layer "$tmp/busybox" \
    --name "$JC_IMG_BUSYBOX" --name "$JC_IMG_BUSYBOX_LATEST" --cmd '["sh"]' >/dev/null
fi

if stale "$out/pause.tar" "$here/pause.c" "$here/oci-image.py" "$0"; then
  mkdir -p "$tmp/pause"
  gcc -static -Os -o "$tmp/pause/pause" "$here/pause.c" ||
    jc_die "building pause.c failed (apt-get install gcc libc6-dev)"
  strip "$tmp/pause/pause"
  "$py" "$here/oci-image.py" --out "$out/pause.tar" --layer "$tmp/pause" \
    --name "$JC_IMG_PAUSE" --entrypoint '["/pause"]' >/dev/null
fi

if stale "$out/jobchain-kubectl.tar" "$busybox" "$JC_BIN/kubectl" "$here/oci-image.py" "$0"; then
  [ -x "$JC_BIN/kubectl" ] || jc_die "kubectl is not built yet: run hack/build-tools.sh"
  file -L "$JC_BIN/kubectl" | grep -q 'statically linked' || jc_die "$JC_BIN/kubectl is not static"
  [ -d "$tmp/busybox" ] || busybox_rootfs "$tmp/busybox"
  mkdir -p "$tmp/kubectl/usr/local/bin"
  install -m 0755 "$JC_BIN/kubectl" "$tmp/kubectl/usr/local/bin/kubectl"
  "$py" "$here/oci-image.py" --out "$out/jobchain-kubectl.tar" --layer "$tmp/busybox" --layer "$tmp/kubectl" \
    --name "$JC_IMG_KUBECTL" --cmd '["sh"]' >/dev/null
fi

echo "$out/busybox.tar"
echo "$out/pause.tar"
echo "$out/jobchain-kubectl.tar"
