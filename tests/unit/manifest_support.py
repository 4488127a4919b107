"""Rendering the install manifests for unit tests: kustomize (manifests/) and helm template
(charts/jobchain) with the kubectl and helm that hack/build-tools.sh builds, skip marks for where
they are not built, and picking objects out of the rendered documents by kind.
"""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[2]
CRDS = ROOT / "crds"
CHART = ROOT / "charts" / "jobchain"


VERSIONS = dict(
    line.split("=", 1)
    for line in (ROOT / "hack" / "versions.env").read_text().splitlines()
    if "=" in line and not line.startswith("#")
)
# helm template renders for Kubernetes 1.20 unless told, and the chart's kubeVersion asks for
# more: render for the version the project builds and tests against.
KUBE_VERSION = VERSIONS["KUBE_VERSION"]


def built_tool(name: str) -> Path | None:
    versions = VERSIONS
    cache = Path(os.environ.get("JOBCHAIN_CACHE", Path.home() / ".cache" / "jobchain"))
    path = cache / f"k8s-{versions['KUBE_VERSION']}" / "bin" / name
    return path if path.is_file() else None


KUBECTL = built_tool("kubectl")
HELM = built_tool("helm")
needs_kubectl = pytest.mark.skipif(KUBECTL is None, reason="kubectl not built: run hack/build-tools.sh")
needs_helm = pytest.mark.skipif(HELM is None, reason="helm not built: run hack/build-tools.sh")


def run_tool(*args: str | Path) -> str:
    done = subprocess.run([str(a) for a in args], capture_output=True, text=True, timeout=120, check=False)
    assert done.returncode == 0, f"{' '.join(map(str, args))} failed:\n{done.stderr}"
    return done.stdout


def yaml_docs(text: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(text) if d]


def kustomize(path: str) -> list[dict[str, Any]]:
    assert KUBECTL is not None
    return yaml_docs(run_tool(KUBECTL, "kustomize", ROOT / path))


def helm_template(*sets: str, namespace: str = "jobchain-system") -> list[dict[str, Any]]:
    assert HELM is not None
    args: list[str] = []
    for s in sets:
        args += ["--set", s]
    return yaml_docs(run_tool(HELM, "template", "jobchain", CHART, "--namespace", namespace,
                              "--kube-version", KUBE_VERSION, *args))


def only(docs: Iterable[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def of_kind(docs: Iterable[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind]
