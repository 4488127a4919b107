"""The dashboard with viewers on a real cluster: each sees only what the API server says they may.

The dashboard runs as the cluster's admin (as the in-cluster one runs as a ServiceAccount that may
read every namespace) with `--viewer-auth token`; the viewer is a ServiceAccount with a Role in one
namespace only, and its token is a real one (`kubectl create token`): the TokenReview and the
SubjectAccessReviews are the API server's own answers, nothing is mocked.
"""

from __future__ import annotations

import json
import secrets
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from tests.browser.support import Dashboard
from tests.e2e.support import DASHBOARD_VIEWER, create_namespace, free_port, install_crds, kubectl

pytestmark = pytest.mark.e2e

def _execution(namespace: str, name: str) -> dict[str, Any]:
    return {"apiVersion": "jobchain.dev/v1alpha1", "kind": "WorkflowExecution",
            "metadata": {"name": name, "namespace": namespace}, "spec": {"workflowRef": {"name": "absent"}}}


def _get(url: str, headers: dict[str, str]) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read() or b"{}")


@pytest.fixture
def theirs(api: client.ApiClient, namespace: str) -> Iterator[str]:
    core = client.CoreV1Api(api)
    name = f"{namespace}-b"
    create_namespace(core, name, labels={"jobchain.dev/e2e": "true"})
    yield name
    core.delete_namespace(name, body=client.V1DeleteOptions(propagation_policy="Background"))


def test_a_viewer_without_rights_to_a_namespace_sees_nothing_of_it(
        kubeconfig: str, api: client.ApiClient, namespace: str, theirs: str, tmp_path: Path) -> None:
    install_crds(kubeconfig)
    custom = client.CustomObjectsApi(api)
    for ns, name in ((namespace, "mine"), (theirs, "theirs")):
        custom.create_namespaced_custom_object("jobchain.dev", "v1alpha1", ns, "workflowexecutions",
                                               _execution(ns, name))
    kubectl(kubeconfig, "apply", "-f", "-", input_text=DASHBOARD_VIEWER.replace("NS", namespace))
    token = kubectl(kubeconfig, "create", "token", "viewer", "-n", namespace, "--duration=10m").strip()
    dashboard = Dashboard([sys.executable, "-m", "jobchain.cli.main", "--kubeconfig", kubeconfig, "dashboard",
                           "--port", str(free_port()), "--viewer-auth", "token"], tmp_path / "dashboard.log")
    dashboard.start()
    try:
        viewer = {"Authorization": f"Bearer {token}"}
        status, rows = _get(dashboard.url + f"api/executions?namespace={namespace}", viewer)
        assert status == 200 and [r["name"] for r in rows["items"]] == ["mine"]
        status, everything = _get(dashboard.url + "api/executions", viewer)
        names = {r["namespace"] for r in everything["items"]}
        assert status == 200 and namespace in names and theirs not in names
        status, info = _get(dashboard.url + "api/info", viewer)
        assert namespace in info["namespaces"] and theirs not in info["namespaces"]
        assert "kube-system" not in info["namespaces"]
        status, refused = _get(dashboard.url + f"api/executions/{theirs}/theirs", viewer)
        assert status == 403 and f"may not get workflowexecutions in namespace {theirs!r}" in refused["error"]
        status, _ = _get(dashboard.url + "api/logs/kube-system/x/n", viewer)
        assert status == 403
        status, body = _get(dashboard.url + "api/executions", {"Authorization": f"Bearer {secrets.token_hex(16)}"})
        assert status == 401 and "not accepted" in body["error"]
        status, body = _get(dashboard.url + "api/executions", {"Host": "rebound.example:80", **viewer})
        assert status == 403 and "not allowed" in body["error"]
    finally:
        dashboard.stop()
