#!/usr/bin/env python3
"""Write a container image as an OCI image-layout archive, without a registry or Docker.

Each --layer is a directory whose contents become one image layer (in order). The output
is a tar of an OCI image layout (oci-layout, index.json, blobs/sha256/...) that
`ctr -n k8s.io images import` accepts; every --name becomes one image name through the
`io.containerd.image.name` annotation. The output is reproducible: the same inputs give
the same digests (fixed mtimes, owners 0:0, sorted entries), so importing it again is a no-op.

Example:
  oci-image.py --out busybox.tar --name docker.io/library/busybox:1.36 \
      --layer rootfs/ --cmd '["sh"]'
Prints the manifest digest on stdout.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import os
import platform
import stat
import tarfile

MTIME = int(os.environ.get("SOURCE_DATE_EPOCH", "0"))
ARCH = {"x86_64": "amd64", "aarch64": "arm64"}.get(platform.machine(), platform.machine())


def layer_tar(root: str) -> bytes:
    """An uncompressed tar of the tree under root, paths relative to it, normalized."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        entries = []
        for dirpath, dirnames, filenames in os.walk(root):
            dirnames.sort()
            for name in sorted(dirnames + filenames):
                entries.append(os.path.join(dirpath, name))
        for path in sorted(entries, key=lambda p: os.path.relpath(p, root)):
            rel = os.path.relpath(path, root)
            info = tar.gettarinfo(path, arcname=rel)
            info.uid = info.gid = 0
            info.uname = info.gname = ""
            info.mtime = MTIME
            if info.isreg():
                with open(path, "rb") as f:
                    tar.addfile(info, f)
            else:
                if stat.S_ISDIR(info.mode):
                    info.size = 0
                tar.addfile(info)
    return buf.getvalue()


def blob(blobs: dict[str, bytes], data: bytes) -> tuple[str, int]:
    digest = "sha256:" + hashlib.sha256(data).hexdigest()
    blobs[digest] = data
    return digest, len(data)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", required=True, help="archive to write (.tar)")
    ap.add_argument("--name", action="append", required=True, help="full image name, repeatable")
    ap.add_argument("--layer", action="append", required=True, help="directory -> one layer, repeatable")
    ap.add_argument("--entrypoint", help="JSON list")
    ap.add_argument("--cmd", help="JSON list")
    ap.add_argument("--env", action="append", default=[], help="K=V, repeatable")
    ap.add_argument("--workdir", default="/")
    args = ap.parse_args()

    blobs: dict[str, bytes] = {}
    layers, diff_ids, history = [], [], []
    for d in args.layer:
        raw = layer_tar(d)
        diff_ids.append("sha256:" + hashlib.sha256(raw).hexdigest())
        gz = gzip.compress(raw, compresslevel=6, mtime=0)
        digest, size = blob(blobs, gz)
        layers.append({"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip", "digest": digest, "size": size})
        history.append({"created": "1970-01-01T00:00:00Z", "created_by": f"oci-image.py layer {os.path.basename(os.path.normpath(d))}"})

    env = ["PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", *args.env]
    cfg: dict = {"Env": env, "WorkingDir": args.workdir}
    if args.entrypoint:
        cfg["Entrypoint"] = json.loads(args.entrypoint)
    if args.cmd:
        cfg["Cmd"] = json.loads(args.cmd)
    config = {
        "created": "1970-01-01T00:00:00Z",
        "architecture": ARCH,
        "os": "linux",
        "config": cfg,
        "rootfs": {"type": "layers", "diff_ids": diff_ids},
        "history": history,
    }
    cdigest, csize = blob(blobs, json.dumps(config, sort_keys=True).encode())
    manifest = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": cdigest, "size": csize},
        "layers": layers,
    }
    mdigest, msize = blob(blobs, json.dumps(manifest, sort_keys=True).encode())
    index = {
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [
            {
                "mediaType": "application/vnd.oci.image.manifest.v1+json",
                "digest": mdigest,
                "size": msize,
                "platform": {"architecture": ARCH, "os": "linux"},
                "annotations": {
                    "io.containerd.image.name": name,
                    "org.opencontainers.image.ref.name": name.rsplit(":", 1)[-1] if ":" in name.rsplit("/", 1)[-1] else "latest",
                },
            }
            for name in args.name
        ],
    }

    def add(tar: tarfile.TarFile, name: str, data: bytes) -> None:
        info = tarfile.TarInfo(name)
        info.size, info.mtime, info.mode = len(data), MTIME, 0o644
        tar.addfile(info, io.BytesIO(data))

    tmp = args.out + ".tmp"
    with tarfile.open(tmp, "w", format=tarfile.PAX_FORMAT) as tar:
        add(tar, "oci-layout", b'{"imageLayoutVersion":"1.0.0"}')
        add(tar, "index.json", json.dumps(index, sort_keys=True).encode())
        for digest, data in sorted(blobs.items()):
            add(tar, "blobs/sha256/" + digest.split(":", 1)[1], data)
    os.replace(tmp, args.out)
    print(mdigest)


if __name__ == "__main__":
    main()
