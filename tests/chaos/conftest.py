"""Fixtures of the chaos tier: the e2e tier's cluster, a namespace and an operator of its own.

The chaos tier kills the operator and restarts parts of the control plane, so it never shares
an operator with the end-to-end tier: its operator watches only `jc-chaos-<session>-*`.
Every test collected here gets the ``chaos`` marker (``pytest -m chaos``).
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client

from tests.e2e.conftest import api, kubeconfig, operator_account  # noqa: F401  (fixtures shared with the e2e tier)
from tests.e2e.support import SESSION, Objects, OperatorAccount, OperatorProcess, create_namespace

CHAOS_DIR = Path(__file__).resolve().parent
CHAOS_PREFIX = f"jc-chaos-{SESSION}-"


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    for item in items:
        if CHAOS_DIR in Path(str(item.path)).resolve().parents:
            item.add_marker(pytest.mark.chaos)


@pytest.fixture
def chaos_namespace(api: client.ApiClient) -> Iterator[str]:  # noqa: F811
    core = client.CoreV1Api(api)
    name = f"{CHAOS_PREFIX}{secrets.token_hex(3)}"
    create_namespace(core, name)
    yield name
    core.delete_namespace(name, body=client.V1DeleteOptions(propagation_policy="Background"))


@pytest.fixture
def chaos_operator(operator_account: OperatorAccount, tmp_path: Path) -> Iterator[OperatorProcess]:  # noqa: F811
    """The operator as its ServiceAccount, with exactly the shipped RBAC (as in the e2e tier)."""
    proc = OperatorProcess(str(operator_account.path), tmp_path, namespace_pattern=CHAOS_PREFIX + "*")
    proc.start()
    yield proc
    proc.stop()
    print(f"\noperator log: {proc.log_path}")


@pytest.fixture
def chaos_objects(api: client.ApiClient, chaos_namespace: str) -> Objects:  # noqa: F811
    return Objects(api, chaos_namespace)
