"""User story: deploy the dashboard with the chart (`dashboard.enabled=true`), reach it with
`kubectl port-forward` as docs/dashboard.md says, give it a viewer's token, and see the
executions of the namespace that viewer may read.

The release runs the locally built image (hack/image-build.sh; `make test` builds it before
this tier) in a namespace that enforces the restricted Pod Security Standard, so the pod
must be admitted as locked down as the docs claim.
"""

from __future__ import annotations

import re
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kubernetes import client

from tests.browser.support import wait_js
from tests.e2e.support import CHART, DASHBOARD_VIEWER, GROUP, VERSION, Objects, free_port, helm, kubectl, tool, wait_for


@pytest.fixture
def release(kubeconfig: str, api: client.ApiClient, tmp_path: Path) -> Iterator[tuple[str, str]]:
    core = client.CoreV1Api(api)
    suffix = secrets.token_hex(3)
    namespace, name = f"jc-dash-{suffix}", f"jcd-{suffix}"
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(
        name=namespace, labels={"pod-security.kubernetes.io/enforce": "restricted"})))
    try:
        helm(kubeconfig, "install", name, str(CHART), "-n", namespace,
             "--set", "dashboard.enabled=true", "--set", "crds.install=false", "--set", "rbac.userRoles=false",
             "--set", f"watchNamespaces={{{namespace}}}", "--set", "image.repository=localhost/jobchain-operator",
             "--set", "image.tag=dev", "--set", "image.pullPolicy=Never")
        yield namespace, f"{name}-jobchain-dashboard"
    finally:
        helm(kubeconfig, "uninstall", name, "-n", namespace, "--wait", check=False)
        core.delete_namespace(namespace, body=client.V1DeleteOptions(propagation_policy="Background"))


def test_the_chart_deploys_a_read_only_dashboard_reached_by_port_forward(
    browser: Any, kubeconfig: str, release: tuple[str, str], namespace: str, operator: Any, objects: Objects,
    tmp_path: Path,
) -> None:
    system, name = release
    try:
        kubectl(kubeconfig, "-n", system, "rollout", "status", f"deployment/{name}", "--timeout=110s")
    except (AssertionError, subprocess.TimeoutExpired):
        pods = kubectl(kubeconfig, "-n", system, "describe", "pods", check=False)
        log = kubectl(kubeconfig, "-n", system, "logs", f"deployment/{name}", "--tail=30", check=False)
        if "invalid choice: 'dashboard'" in log:
            pytest.fail("the image localhost/jobchain-operator:dev in the cluster was built from code without the "
                        "dashboard: run hack/image-build.sh from this checkout", pytrace=False)
        raise AssertionError(f"the dashboard did not become ready:\n{pods[-4000:]}\nits log:\n{log}") from None
    account = f"system:serviceaccount:{system}:{name}"
    can = {verb: kubectl(kubeconfig, "auth", "can-i", verb, "workflowexecutions.jobchain.dev", "-A",
                         f"--as={account}", check=False).strip() for verb in ("list", "watch", "create", "patch")}
    assert can == {"list": "yes", "watch": "yes", "create": "no", "patch": "no"}
    # The viewer: a ServiceAccount that may read executions in the test's namespace only.
    kubectl(kubeconfig, "apply", "-f", "-", input_text=DASHBOARD_VIEWER.replace("NS", namespace))
    token = kubectl(kubeconfig, "create", "token", "viewer", "-n", namespace, "--duration=10m").strip()

    port = free_port()
    log = (tmp_path / "port-forward.log").open("w")
    forward = subprocess.Popen([tool("kubectl"), "--kubeconfig", kubeconfig, "-n", system, "port-forward",
                                f"service/{name}", f"{port}:8090"], stdout=log, stderr=subprocess.STDOUT)
    try:
        wait_for(lambda: re.search(r"Forwarding from", (tmp_path / "port-forward.log").read_text()), 30,
                 "kubectl port-forward to listen")
        objects.create({
            "apiVersion": f"{GROUP}/{VERSION}", "kind": "Workflow", "metadata": {"name": "seen"},
            "spec": {"defaults": {"image": "busybox:1.36"}, "nodes": [{"name": "only", "script": "true"}]},
        })
        created = objects.create({
            "apiVersion": f"{GROUP}/{VERSION}", "kind": "WorkflowExecution",
            "metadata": {"generateName": "seen-"}, "spec": {"workflowRef": {"name": "seen"}},
        })["metadata"]["name"]
        driver = browser
        # The page asks for a token it lacks, and keeps it in this cookie: set it as the prompt would.
        driver.get(f"http://127.0.0.1:{port}/healthz")
        driver.add_cookie({"name": "jobchain-token", "value": token, "path": "/"})
        driver.get(f"http://127.0.0.1:{port}/#/?ns={namespace}")
        wait_js(driver, f"return !!document.querySelector(\"#executions tr[data-name='{created}']\")", 60,
                "an execution of another namespace in the in-cluster dashboard")
        wait_js(driver, f"return document.querySelector(\"#executions tr[data-name='{created}']\")"
                ".dataset.phase === 'Succeeded'", 120, "it to succeed there")
        assert driver.execute_script("return document.querySelector('#cluster').textContent") == "live"
    finally:
        forward.terminate()
        forward.wait(timeout=15)
