"""kopf registrations, and nothing else: every handler only says "look at this object again".

Why event handlers and not kopf's create/update state machine: the engine decides from
the whole current state, so any change (the execution, one of its Jobs, one of its pods)
just triggers a reconcile. Nothing is stored in the objects by kopf (no finalizers, no
progress annotations), so deleting an execution is never blocked by the operator. The
resync the scheduler keeps for a running execution is a safety net for missed events only: it
never decides when a node starts.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import kopf

from jobchain.api.models import GROUP, TERMINAL_EXECUTION_PHASES, VERSION
from jobchain.controller import reconcile
from jobchain.controller.metrics import EXECUTIONS_RUNNING
from jobchain.controller.scheduler import Key, Scheduler
from jobchain.engine.outputs import DEFAULT_OUTPUT_LIMIT
from jobchain.engine.render import ANNOTATION_EXECUTION, LABEL_MANAGED_BY, MANAGED_BY
from jobchain.k8s.cluster import Cluster, connect
from jobchain.k8s.writes import describe

log = logging.getLogger(__name__)

RESYNC_SECONDS = 60.0
FAILURES_BEFORE_EVENT = 3
OURS = {LABEL_MANAGED_BY: MANAGED_BY}


class Runtime:
    def __init__(self) -> None:
        self.cluster = Cluster(connect())
        self.output_limit = int(os.environ.get("JOBCHAIN_OUTPUT_LIMIT_BYTES", DEFAULT_OUTPUT_LIMIT))
        # Set from the downward API in the shipped Deployment: executions there are refused.
        self.operator_namespace = os.environ.get("JOBCHAIN_OPERATOR_NAMESPACE") or None
        self.running: set[Key] = set()
        self.executions = Scheduler(self._reconcile_execution, on_result=self._after_execution)
        self.workflows = Scheduler(self._reconcile_workflow, workers=2)

    def _reconcile_execution(self, key: Key) -> reconcile.Outcome:
        try:
            return reconcile.reconcile_execution(self.cluster, key[0], key[1], self.output_limit,
                                                 operator_namespace=self.operator_namespace)
        except Exception as exc:
            # Retried with backoff by the scheduler; after a few failures in a row, say so where
            # the user looks (kubectl describe), not only in the operator's log.
            if self.executions.failures(key) + 1 == FAILURES_BEFORE_EVENT:
                self.cluster.writer.event(
                    {"metadata": {"namespace": key[0], "name": key[1]}}, "WorkflowExecution", "Warning",
                    "ReconcileError", f"the operator cannot act on this execution and keeps retrying: {describe(exc)}",
                )
            raise

    def _after_execution(self, key: Key, outcome: reconcile.Outcome) -> datetime | None:
        finished = outcome.phase in (None, *TERMINAL_EXECUTION_PHASES)
        if finished:
            self.running.discard(key)
        elif outcome.phase == "Running":
            self.running.add(key)
        EXECUTIONS_RUNNING.set(len(self.running))
        if finished:
            return outcome.wake_at  # a time to live, if any
        # A look again within RESYNC_SECONDS even without events: a safety net for a missed
        # watch event only. Kept in the scheduler, not as a kopf timer: kopf guards timers
        # with a finalizer, which would block deleting an execution while no operator runs.
        resync = datetime.now(UTC) + timedelta(seconds=RESYNC_SECONDS)
        return min(outcome.wake_at, resync) if outcome.wake_at else resync

    def _reconcile_workflow(self, key: Key) -> None:
        body = self.cluster.get_workflow(*key)
        if body is not None:
            reconcile.reconcile_workflow(self.cluster, body)


_runtime: Runtime | None = None


def runtime() -> Runtime:
    assert _runtime is not None, "the operator's startup handler has not run"
    return _runtime


@kopf.on.startup()
async def configure(settings: kopf.OperatorSettings, **_: Any) -> None:
    global _runtime
    # Our own Events say what happened; kopf's log lines would only repeat them.
    settings.posting.enabled = False
    # Watches that silently stop delivering are a known failure of long-lived connections:
    # ask the server to end each watch after a while, and reconnect.
    settings.watching.server_timeout = 270
    settings.watching.client_timeout = 300
    settings.watching.connect_timeout = 30
    settings.persistence.finalizer = "jobchain.dev/kopf-finalizer"  # never added: no on.delete handlers
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix="jobchain.dev")
    settings.persistence.diffbase_storage = kopf.AnnotationsDiffBaseStorage(prefix="jobchain.dev")
    _runtime = Runtime()


@kopf.on.cleanup()
async def cleanup(**_: Any) -> None:
    if _runtime is not None:
        _runtime.executions.shutdown()
        _runtime.workflows.shutdown()


@kopf.on.event(GROUP, VERSION, "workflowexecutions")
async def execution_changed(event: kopf.RawEvent, namespace: str | None, name: str, **_: Any) -> None:
    key = (namespace or "", name)
    if event.get("type") == "DELETED":
        runtime().executions.forget(key)
        runtime().running.discard(key)
        EXECUTIONS_RUNNING.set(len(runtime().running))
        return
    runtime().executions.poke(key)


def _owner(body: Mapping[str, Any]) -> str | None:
    meta = body.get("metadata", {})
    for ref in meta.get("ownerReferences") or []:
        if ref.get("kind") == "WorkflowExecution" and ref.get("apiVersion", "").startswith(f"{GROUP}/"):
            return str(ref["name"])
    name = (meta.get("annotations") or {}).get(ANNOTATION_EXECUTION)
    return str(name) if name else None


@kopf.on.event("batch", "v1", "jobs", labels=OURS)
async def job_changed(body: kopf.Body, namespace: str | None, **_: Any) -> None:
    owner = _owner(body)
    if owner and namespace:
        runtime().executions.poke((namespace, owner))


@kopf.on.event("", "v1", "pods", labels=OURS)
async def pod_changed(body: kopf.Body, namespace: str | None, **_: Any) -> None:
    # A pod's terminated state is visible about a second before the Job controller reports it.
    status = body.get("status") or {}
    terminated = status.get("phase") in ("Succeeded", "Failed") or any(
        (s.get("state") or {}).get("terminated") for s in status.get("containerStatuses") or []
    )
    owner = _owner(body)
    if terminated and owner and namespace:
        runtime().executions.poke((namespace, owner))


@kopf.on.event(GROUP, VERSION, "workflows")
async def workflow_changed(event: kopf.RawEvent, namespace: str | None, name: str, **_: Any) -> None:
    if event.get("type") != "DELETED":
        runtime().workflows.poke((namespace or "", name))
