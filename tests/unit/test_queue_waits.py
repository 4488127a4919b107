"""Waiting in a Workflow's queue (maxConcurrentExecutions): the wait counts against the execution's
timeoutSeconds, and a change of the Workflow (its limit raised or removed) looks at the queue at once."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from types import SimpleNamespace
from typing import Any

import pytest

from jobchain.controller import handlers
from jobchain.controller.reconcile import reconcile_execution
from jobchain.k8s.store import Store
from tests.unit.builders import NAMESPACE, T0, FakeCluster, chain, etl_run

CREATED = "2026-01-01T12:00:00Z"  # T0


def etl(name: str, started: bool = False, **fields: Any) -> dict[str, Any]:
    return etl_run(name, CREATED, started, **fields)


def queue_of_one(*bodies: dict[str, Any]) -> FakeCluster:
    cluster = FakeCluster(workflows={"etl": {**chain("a").model_dump(mode="json", by_alias=True, exclude_none=True),
                                             "maxConcurrentExecutions": 1}})
    for body in bodies:
        cluster.executions[body["metadata"]["name"]] = body
    return cluster


def test_a_queued_execution_fails_when_its_timeout_passes_while_it_waits() -> None:
    cluster = queue_of_one(etl("etl-1", started=True), etl("etl-2", timeoutSeconds=60))
    held = reconcile_execution(cluster, NAMESPACE, "etl-2", now=T0 + timedelta(seconds=5))  # type: ignore[arg-type]
    assert (held.phase, cluster.status("etl-2").reason) == ("Pending", "Queued")
    assert held.wake_at == T0 + timedelta(seconds=60)  # looked at again when the deadline comes
    late = reconcile_execution(cluster, NAMESPACE, "etl-2", now=T0 + timedelta(seconds=60))  # type: ignore[arg-type]
    status = cluster.status("etl-2")
    assert (late.phase, status.phase, status.reason) == ("Failed", "Failed", "DeadlineExceeded")
    assert "spec.timeoutSeconds (60s)" in status.message and "queue" in status.message


def test_a_queued_execution_without_a_timeout_waits_on() -> None:
    cluster = queue_of_one(etl("etl-1", started=True), etl("etl-2"))
    held = reconcile_execution(cluster, NAMESPACE, "etl-2", now=T0 + timedelta(days=30))  # type: ignore[arg-type]
    assert (held.phase, held.wake_at, cluster.status("etl-2").reason) == ("Pending", None, "Queued")


@pytest.fixture
def runtime(monkeypatch: pytest.MonkeyPatch) -> SimpleNamespace:
    poked: list[tuple[str, str]] = []
    rt = SimpleNamespace(store=Store(), seen_workflows=set(), poked=poked,
                         workflows=SimpleNamespace(poke=lambda key: None),
                         executions=SimpleNamespace(poke=poked.append))
    monkeypatch.setattr(handlers, "_runtime", rt)
    return rt


def test_raising_a_workflows_limit_looks_at_its_queued_executions_at_once(runtime: SimpleNamespace) -> None:
    queued = {"phase": "Pending", "reason": "Queued", "message": "waiting: 1 of 1 running, position 1"}
    runtime.store.put_execution(etl("etl-1", started=True))
    runtime.store.put_execution({**etl("etl-2"), "status": queued})
    event = {"type": "MODIFIED", "object": {"metadata": {"name": "etl", "namespace": NAMESPACE}}}
    asyncio.run(handlers.workflow_changed(event=event, namespace=NAMESPACE, name="etl"))  # type: ignore[arg-type]
    assert runtime.poked == [(NAMESPACE, "etl-2")]
