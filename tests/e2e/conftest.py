"""Fixtures of the end-to-end tier: a real Kubernetes cluster.

- ``kubeconfig`` (session): the path of a kubeconfig. ``$KUBECONFIG`` when set (any cluster,
  e.g. kind); otherwise the local single-node cluster started by ``hack/cluster-up.sh``
  (idempotent: reused when already running). Skips when that cannot run here (not Linux,
  not root); fails when cluster-up fails.
- ``api`` (session): a ``kubernetes.client.ApiClient`` for that cluster.
- ``namespace`` (function): a fresh namespace ``jc-e2e-<session>-<random>``, deleted afterwards.

Every test collected under tests/e2e gets the ``e2e`` marker (``pytest -m e2e``).
"""

from __future__ import annotations

import os
import platform
import secrets
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client, config

from tests.e2e.support import (
    E2E_NAMESPACE_PREFIX,
    Objects,
    OperatorAccount,
    OperatorProcess,
    create_namespace,
    install_crds,
    reinstall_crds,
)

ROOT = Path(__file__).resolve().parents[2]
E2E_DIR = Path(__file__).resolve().parent
CLUSTER_UP_TIMEOUT = 3600  # seconds; the first run builds Kubernetes from source


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if E2E_DIR in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.e2e)


@pytest.fixture(scope="session")
def kubeconfig() -> str:
    """Path of the kubeconfig of the cluster under test (see the module docstring)."""
    env = os.environ.get("KUBECONFIG")
    if env:
        return env.split(os.pathsep)[0]
    if platform.system() != "Linux":
        pytest.skip("the local cluster needs Linux; set KUBECONFIG to use another cluster (e.g. make kind-up)")
    if os.geteuid() != 0:
        pytest.skip("the local cluster needs root (sudo make cluster-up); or set KUBECONFIG to another cluster")
    proc = subprocess.run(
        ["bash", str(ROOT / "hack" / "cluster-up.sh")],
        capture_output=True,
        text=True,
        timeout=CLUSTER_UP_TIMEOUT,
    )
    if proc.returncode != 0:
        pytest.fail(f"hack/cluster-up.sh failed ({proc.returncode}):\n{proc.stderr[-6000:]}", pytrace=False)
    exports = [ln for ln in proc.stdout.splitlines() if ln.startswith("export KUBECONFIG=")]
    if not exports:
        pytest.fail(f"hack/cluster-up.sh printed no 'export KUBECONFIG=' line:\n{proc.stdout}", pytrace=False)
    path = exports[-1].split("=", 1)[1]
    # child processes (kubectl, the operator started by other fixtures) use the same cluster
    os.environ["KUBECONFIG"] = path
    return path


@pytest.fixture(scope="session")
def api(kubeconfig: str) -> Iterator[client.ApiClient]:
    """A Kubernetes API client for the cluster under test."""
    c = config.new_client_from_config(config_file=kubeconfig)
    yield c
    c.close()


def _fresh_namespace(api: client.ApiClient) -> Iterator[str]:
    core = client.CoreV1Api(api)
    name = f"{E2E_NAMESPACE_PREFIX}{secrets.token_hex(4)}"
    create_namespace(core, name, labels={"jobchain.dev/e2e": "true"})
    yield name
    core.delete_namespace(name, body=client.V1DeleteOptions(propagation_policy="Background"))


@pytest.fixture
def namespace(api: client.ApiClient) -> Iterator[str]:
    """A fresh namespace ``jc-e2e-<session>-<random>`` whose default SA exists; deleted afterwards."""
    yield from _fresh_namespace(api)


@pytest.fixture
def other_namespace(api: client.ApiClient) -> Iterator[str]:
    """A second fresh namespace, as `namespace` (another team's, where the test's team has no rights)."""
    yield from _fresh_namespace(api)


@pytest.fixture(scope="session")
def operator_account(kubeconfig: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[OperatorAccount]:
    """The operator's ServiceAccount with exactly the shipped RBAC (see OperatorAccount)."""
    install_crds(kubeconfig)
    account = OperatorAccount(kubeconfig, tmp_path_factory.mktemp("account"))
    try:
        account.create()
        yield account
    finally:
        account.delete()


@pytest.fixture(scope="session")
def operator_process(operator_account: OperatorAccount, tmp_path_factory: pytest.TempPathFactory,
                     ) -> Iterator[OperatorProcess]:
    """The operator running as a host process on this session's namespaces, as its ServiceAccount:
    with the rights manifests/base grants it, not the admin's."""
    proc = OperatorProcess(str(operator_account.path), tmp_path_factory.mktemp("operator"))
    proc.start()
    yield proc
    proc.stop()
    print(f"\noperator log: {proc.log_path}")


@pytest.fixture
def operator(operator_process: OperatorProcess) -> Iterator[OperatorProcess]:
    """The running operator; restarted if a test killed it.

    A test fails when the operator logged a traceback during it: a reconcile that raised
    was retried and may have hidden a bug behind the retry.
    """
    operator_process.start()
    offset = operator_process.log_path.stat().st_size
    yield operator_process
    operator_process.start()
    with operator_process.log_path.open(errors="replace") as log:
        log.seek(offset)
        text = log.read()
    if "Traceback" in text:
        start = text.index("Traceback")
        pytest.fail(f"the operator logged a traceback during this test:\n{text[max(0, start - 500):start + 3000]}")


@pytest.fixture
def objects(api: client.ApiClient, namespace: str) -> Objects:
    """Creating and reading jobchain objects in the test's namespace."""
    return Objects(api, namespace)


@pytest.fixture
def current_crds(kubeconfig: str, objects: Objects) -> None:
    """This tree's CRDs again right before the test, for modules whose CRD fields are new (forEach,
    schedules, queue): other sessions on the shared cluster apply CRDs without them (see reinstall_crds).
    Use it with ``pytestmark = pytest.mark.usefixtures("current_crds", "operator")``."""
    reinstall_crds(kubeconfig, objects)
