#!/usr/bin/env bash
# Imports a container image into the local cluster's containerd (namespace k8s.io), where
# the kubelet finds it. There is no registry: this is how any image gets onto the node.
#
#   hack/import-image.sh ARCHIVE_OR_OCI_DIR [NAME]
#
# ARCHIVE_OR_OCI_DIR: an OCI image layout (directory, or a tar of one, e.g. from
#   `skopeo copy ... oci-archive:x.tar`, `podman save --format oci-archive`, `buildah push
#   IMG oci-archive:x.tar`, hack/images/oci-image.py) or a `docker save` archive.
# NAME: the image name pods will use, e.g. localhost/jobchain-operator:dev. Optional when
#   the archive names its image itself (io.containerd.image.name annotation, or RepoTags).
# Pods must use `imagePullPolicy: IfNotPresent` (or Never) for such images: never `Always`,
# and not a `:latest` tag without an explicit pull policy.
# Skips the import when the same names already point at the same digest.
set -euo pipefail
JC_SCRIPT=import-image
# shellcheck source=lib-cluster.sh
source "$(cd "$(dirname "$0")" && pwd)/lib-cluster.sh"

[ $# -ge 1 ] && [ $# -le 2 ] || { sed -n '2,16p' "$0" | sed 's/^# \{0,1\}//'; exit 2; }
src=$1 name=${2:-}
[ -e "$src" ] || jc_die "no such file or directory: $src"
ctr --address "$JC_CTRD_SOCK" version >/dev/null 2>&1 ||
  jc_die "the local cluster's containerd is not running ($JC_CTRD_SOCK): run hack/cluster-up.sh first"

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
if [ -d "$src" ]; then
  dir=$src
else
  mkdir "$work/x"
  tar -xf "$src" -C "$work/x" || jc_die "$src is not a tar archive"
  dir=$work/x
fi

# Writes $work/import.tar (the layout, with NAME set if given) and prints "NAME DIGEST"
# lines for OCI layouts whose names and digests are known before importing.
py=$(command -v /usr/bin/python3 || command -v python3)
"$py" - "$dir" "$name" "$work/import.tar" > "$work/expect" <<'PY'
import json, os, sys, tarfile
src, name, out = sys.argv[1], sys.argv[2], sys.argv[3]
replace = {}
expect = []
if os.path.exists(os.path.join(src, "index.json")):
    index = json.load(open(os.path.join(src, "index.json")))
    mans = index.get("manifests") or []
    if not mans:
        sys.exit("import-image: index.json lists no manifest")
    if name:
        # name the first manifest (or image index); drop names on the others
        for m in mans:
            (m.get("annotations") or {}).pop("io.containerd.image.name", None)
        mans[0].setdefault("annotations", {})["io.containerd.image.name"] = name
        index["manifests"] = mans
        replace["index.json"] = json.dumps(index).encode()
    for m in mans:
        n = (m.get("annotations") or {}).get("io.containerd.image.name")
        if n:
            expect.append(f"{n} {m['digest']}")
    if not expect:
        sys.exit("import-image: the layout names no image (no io.containerd.image.name): give NAME")
elif os.path.exists(os.path.join(src, "manifest.json")):
    manifest = json.load(open(os.path.join(src, "manifest.json")))
    if name:
        manifest[0]["RepoTags"] = [name]
        replace["manifest.json"] = json.dumps(manifest).encode()
    elif not manifest[0].get("RepoTags"):
        sys.exit("import-image: the docker archive names no image (no RepoTags): give NAME")
else:
    sys.exit("import-image: neither an OCI layout (index.json) nor a docker archive (manifest.json)")
import io
with tarfile.open(out, "w") as tar:
    for dirpath, dirnames, filenames in os.walk(src):
        dirnames.sort()
        for f in sorted(filenames):
            p = os.path.join(dirpath, f)
            rel = os.path.relpath(p, src)
            if rel in replace:
                info = tarfile.TarInfo(rel)
                info.size = len(replace[rel])
                tar.addfile(info, io.BytesIO(replace[rel]))
            else:
                tar.add(p, arcname=rel)
print("\n".join(expect))
PY

if [ -s "$work/expect" ]; then
  have=$(jc_ctr images ls 2>/dev/null | awk 'NR > 1 {print $1, $3}')
  missing=0
  while read -r n d; do
    grep -qxF "$n $d" <<<"$have" || missing=1
  done < "$work/expect"
  if [ $missing = 0 ]; then
    jc_log "already imported: $(awk '{print $1}' "$work/expect" | paste -sd' ')"
    exit 0
  fi
fi
jc_ctr images import "$work/import.tar" >/dev/null
names=$(awk '{print $1}' "$work/expect" | paste -sd' ')
jc_log "imported $src${name:+ as $name}${names:+ ($names)}"
