"""kopf registrations, and nothing else: every handler keeps the store current and says "look at
this execution again" when the change can matter.

Why event handlers and not kopf's create/update state machine: the engine decides from
the whole current state, so any change (the execution, one of its Jobs, one of its pods)
just triggers a reconcile. Nothing is stored in the objects by kopf (no finalizers, no
progress annotations), so deleting an execution is never blocked by the operator. The
resync the scheduler keeps for a running execution is a safety net for missed events only: it
never decides when a node starts.

The store is what passes read instead of the API server (`k8s/store.py`; a namespace's Jobs and
pods are listed once before its first pass, so a cold store is never read). An event only pokes
when it can change a decision: a node's container newly terminated, a Job's verdict or failure
count changed, an execution changed by someone else than our own status write. Everything else
would be a pass that decides nothing.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

import kopf

from jobchain.api.models import FINISHED_NODE_PHASES, TERMINAL_EXECUTION_PHASES
from jobchain.api.vocabulary import (
    EXECUTIONS,
    GROUP,
    KIND_EXECUTION,
    KOPF_FINALIZER,
    LABEL_MANAGED_BY,
    LABEL_NODE,
    LABEL_SCHEDULE,
    MANAGED_BY,
    SCHEDULES,
    VERSION,
    WORKFLOWS,
)
from jobchain.controller import admission_gate as queue
from jobchain.controller import election_loop as leader
from jobchain.controller import policy_check, reconcile
from jobchain.controller import schedule_pass as schedules
from jobchain.controller.main import release_free_heap
from jobchain.controller.metrics import APPROVALS_WAITING, EXECUTIONS_RUNNING, STORE_OBJECTS
from jobchain.controller.workers import Key, Workers
from jobchain.engine.spec.outputs import DEFAULT_OUTPUT_LIMIT
from jobchain.k8s.cluster import OperatorCluster, connect
from jobchain.k8s.errors import describe
from jobchain.k8s.request_counter import count_requests
from jobchain.k8s.store import Store, execution_of

log = logging.getLogger(__name__)

RESYNC_SECONDS = 60.0
# Passes wait on the API server, not the CPU: enough threads that a node's handoff never queues
# behind other executions' writes when a hundred run at once.
WORKERS = 16
EVENT_THREADS = 2
# What the passes running at once may hold, and what a pass holds per byte of its execution's bulk
# as JSON text (the unpacked body, the validated WorkflowSpec, the plan, the status written with
# its snapshot, and the API responses parsed: ~100 times the text, from the peaks bench/memory.py
# measured with and without a bound on the passes at once). With the chart's 512 MiB limit
# and ~75 MiB for the process itself, 192 MiB leaves room for kopf's events, parsed whole.
PASS_MEMORY_BUDGET = int(os.environ.get("JOBCHAIN_PASS_MEMORY_BUDGET_BYTES", 192 * 1024 * 1024))
PASS_BYTES_PER_JSON_BYTE = 100
# After a pass estimated to hold at least this much, the freed heap goes back to the system.
TRIM_AFTER_BYTES = 32 * 1024 * 1024
FAILURES_BEFORE_EVENT = 3
OURS = {LABEL_MANAGED_BY: MANAGED_BY}
FINISHED = {str(p) for p in FINISHED_NODE_PHASES}


class Runtime:
    def __init__(self) -> None:
        self.store = Store()
        api = connect(pool_size=WORKERS + EVENT_THREADS + 4)
        count_requests(api)
        self.cluster = OperatorCluster(api, self.store, event_threads=EVENT_THREADS)
        # Two replicas, one active (controller/leader.py): the standby's watches keep the store
        # warm, but its schedulers start nothing and its writer refuses every write.
        self.leadership = leader.Leadership(leader.SETTINGS, api)
        self.cluster.writer.guard = self.leadership.check
        self.cluster.writer.identity = self.leadership.identity
        self.seen_executions: set[Key] = set()
        self.seen_workflows: set[Key] = set()
        self.output_limit = int(os.environ.get("JOBCHAIN_OUTPUT_LIMIT_BYTES", DEFAULT_OUTPUT_LIMIT))
        # Set from the downward API in the shipped Deployment: executions there are refused.
        self.operator_namespace = os.environ.get("JOBCHAIN_OPERATOR_NAMESPACE") or None
        self.running: set[Key] = set()
        self.waiting: dict[Key, int] = {}  # executions with approval gates waiting -> how many
        self.executions = Workers(self._reconcile_execution, workers=WORKERS, on_result=self._after_execution,
                                    gate=self.leadership.acting, budget=PASS_MEMORY_BUDGET, cost=self.pass_cost)
        self.workflows = Workers(self._reconcile_workflow, workers=2, gate=self.leadership.acting)
        self.schedules = Workers(self._reconcile_schedule, workers=2, on_result=lambda _key, wake: wake,
                                   gate=self.leadership.acting)
        self.seen_schedules: set[Key] = set()

    def pass_cost(self, key: Key) -> int:
        """The bytes a pass of this execution will hold while it runs (an estimate, for the budget)."""
        return self.store.execution_bytes(*key) * PASS_BYTES_PER_JSON_BYTE

    def start_leading(self, loop: asyncio.AbstractEventLoop) -> None:
        """Runs the election; on taking over, looks again at every execution, workflow and schedule seen."""
        def resume() -> None:
            for key in list(self.seen_executions):
                self.executions.poke(key)
            for key in list(self.seen_workflows):
                self.workflows.poke(key)
            for key in list(self.seen_schedules):
                self.schedules.poke(key)

        def on_started() -> None:
            loop.call_soon_threadsafe(resume)

        self.leadership.on_started = on_started
        self.leadership.start()

    def _reconcile_execution(self, key: Key) -> reconcile.Outcome:
        large = self.pass_cost(key) >= TRIM_AFTER_BYTES
        try:
            return reconcile.reconcile_execution(self.cluster, key[0], key[1], self.output_limit,
                                                 operator_namespace=self.operator_namespace)
        except Exception as exc:
            # Retried with backoff by the scheduler; after a few failures in a row, say so where
            # the user looks (kubectl describe), not only in the operator's log.
            if self.executions.failures(key) + 1 == FAILURES_BEFORE_EVENT:
                self.cluster.writer.event(
                    {"metadata": {"namespace": key[0], "name": key[1]}}, KIND_EXECUTION, "Warning",
                    "ReconcileError", f"the operator cannot act on this execution and keeps retrying: {describe(exc)}",
                )
            raise
        finally:
            if large:  # what the pass held is free now: give it back, not only to the next pass
                release_free_heap()

    def _after_execution(self, key: Key, outcome: reconcile.Outcome) -> datetime | None:
        finished = outcome.phase in (None, *TERMINAL_EXECUTION_PHASES)
        if finished:
            self.running.discard(key)
            self.queue_moved(key[0], self.store.execution(*key))
        elif outcome.phase == "Running":
            if key not in self.running:
                # It took a slot: those queued behind it now show a count and a position that are out of date.
                self.queue_moved(key[0], self.store.execution(*key), held_only=True)
            self.running.add(key)
        EXECUTIONS_RUNNING.set(len(self.running))
        self.count_waiting(key, 0 if finished else outcome.waiting)
        if finished:
            return outcome.wake_at  # a time to live, if any
        # A look again within RESYNC_SECONDS even without events: a safety net for a missed
        # watch event only. Kept in the scheduler, not as a kopf timer: kopf guards timers
        # with a finalizer, which would block deleting an execution while no operator runs.
        resync = datetime.now(UTC) + timedelta(seconds=RESYNC_SECONDS)
        return min(outcome.wake_at, resync) if outcome.wake_at else resync

    def count_waiting(self, key: Key, gates: int) -> None:
        """jobchain_approvals_waiting: the gates waiting in each execution held, summed."""
        if gates:
            self.waiting[key] = gates
        else:
            self.waiting.pop(key, None)
        APPROVALS_WAITING.set(sum(self.waiting.values()))

    def queue_moved(self, namespace: str, body: dict[str, Any] | None, held_only: bool = False) -> None:
        """An execution finished, was deleted (a slot may be free) or started (the positions moved):
        look at those waiting in its Workflow's queue again (`held_only`: those held as Queued)."""
        workflow = ((body or {}).get("spec") or {}).get("workflowRef") or {}
        if workflow.get("name"):
            for name in queue.waiting_for(self.store, namespace, str(workflow["name"]), held_only):
                self.executions.poke((namespace, name))

    def _reconcile_schedule(self, key: Key) -> datetime | None:
        return schedules.reconcile_schedule(self.cluster, *key)

    def _reconcile_workflow(self, key: Key) -> None:
        body = self.cluster.get_workflow(*key)
        if body is not None:
            reconcile.reconcile_workflow(self.cluster, body)


_runtime: Runtime | None = None


def runtime() -> Runtime:
    assert _runtime is not None, "the operator's startup handler has not run"
    return _runtime


class NoDiffBase(kopf.DiffBaseStorage):
    """kopf's diff base, never built and never stored.

    Why: kopf builds the "essence" of every object on every watch event (a deep copy of the whole
    body, managedFields and status included) to find the changes its on.create/update/field handlers
    would see, whether or not any such handler exists. The operator registers none (only on.event
    and index handlers, which get no diff; tests/unit/test_handlers.py keeps it so): the copy was
    pure cost, about half of kopf's own time per event on the event loop that also receives the
    event that finishes a node.
    """

    def build(self, *, body: kopf.Body, extra_fields: Any = None) -> kopf.BodyEssence:
        return kopf.BodyEssence()

    def fetch(self, *, body: kopf.Body) -> kopf.BodyEssence | None:
        return None

    def store(self, *, body: kopf.Body, patch: kopf.Patch, essence: kopf.BodyEssence) -> None:
        return None


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
    settings.persistence.finalizer = KOPF_FINALIZER  # never added: no on.delete handlers
    settings.persistence.progress_storage = kopf.AnnotationsProgressStorage(prefix=GROUP)
    settings.persistence.diffbase_storage = NoDiffBase()
    _runtime = Runtime()
    # A few reads; said loudly when a policy bounding steps and runs is missing (never fatal).
    await asyncio.get_running_loop().run_in_executor(None, policy_check.check, _runtime.cluster.api)
    _runtime.start_leading(asyncio.get_running_loop())


@kopf.on.cleanup()
async def cleanup(**_: Any) -> None:
    if _runtime is not None:
        # First stop acting and hand the Lease over (a standby takes it within its retry period),
        # then stop the workers: a write still in flight is refused by the writer's guard.
        _runtime.leadership.release()
        _runtime.executions.shutdown()
        _runtime.workflows.shutdown()
        _runtime.schedules.shutdown()


def _raw(body: Mapping[str, Any]) -> dict[str, Any]:
    return {k: body[k] for k in body}


def _count_store() -> None:
    for kind, count in runtime().store.sizes().items():
        STORE_OBJECTS.labels(kind).set(count)


@kopf.on.event(GROUP, VERSION, EXECUTIONS)
async def execution_changed(event: kopf.RawEvent, namespace: str | None, name: str, **_: Any) -> None:
    key = (namespace or "", name)
    rt = runtime()
    schedule = ((event["object"].get("metadata") or {}).get("labels") or {}).get(LABEL_SCHEDULE)
    if schedule:  # its schedule counts it (active, history, last success), our own writes included
        rt.schedules.poke((key[0], str(schedule)))
    if event.get("type") == "DELETED":
        rt.seen_executions.discard(key)
        rt.executions.forget(key)
        rt.running.discard(key)
        rt.count_waiting(key, 0)
        rt.store.drop_execution(*key, uid=(event["object"].get("metadata") or {}).get("uid"))
        rt.queue_moved(key[0], dict(event["object"]))
        EXECUTIONS_RUNNING.set(len(rt.running))
        _count_store()
        return
    rt.seen_executions.add(key)
    obj = dict(event["object"])
    if rt.store.is_own_write(obj):
        return  # the echo of our own status write: the pass that wrote it decided everything
    rt.store.put_execution(obj)
    rt.executions.poke(key)


@kopf.on.event("batch", "v1", "jobs", labels=OURS)
async def job_changed(event: kopf.RawEvent, body: kopf.Body, namespace: str | None, **_: Any) -> None:
    rt = runtime()
    if event.get("type") == "DELETED":
        rt.store.drop_job(_raw(body))
        _count_store()
        changed = True  # a running node's Job gone is news
    else:
        changed = rt.store.put_job(_raw(body))
    owner = execution_of(_raw(body))
    if changed and owner and namespace and not _recorded_finished(namespace, owner, body):
        rt.executions.poke((namespace, owner))


def _recorded_finished(namespace: str, execution: str, job: Mapping[str, Any]) -> bool:
    """Whether status already has the Job's node finished, while the execution runs on: the Job
    controller's Complete condition, a second after the pod said so, has nothing left to decide."""
    held = runtime().store.execution(namespace, execution)
    status = (held or {}).get("status") or {}
    if status.get("phase") != "Running":
        return False
    node = ((job.get("metadata") or {}).get("labels") or {}).get(LABEL_NODE)
    return any(n.get("name") == node and n.get("phase") in FINISHED for n in status.get("nodes") or [])


@kopf.on.event("", "v1", "pods", labels=OURS)
async def pod_changed(event: kopf.RawEvent, body: kopf.Body, namespace: str | None, **_: Any) -> None:
    # A pod's node container is seen terminated seconds before the Job controller reports it.
    rt = runtime()
    if event.get("type") == "DELETED":
        rt.store.drop_pod(_raw(body))
        _count_store()
        return  # the Job controller counts a pod deleted before it finished: the Job event says it
    changed = rt.store.put_pod(_raw(body))
    owner = execution_of(_raw(body))
    if changed and owner and namespace:
        rt.executions.poke((namespace, owner))


@kopf.on.event(GROUP, VERSION, WORKFLOWS)
async def workflow_changed(event: kopf.RawEvent, namespace: str | None, name: str, **_: Any) -> None:
    key = (namespace or "", name)
    rt = runtime()
    if event.get("type") == "DELETED":
        rt.seen_workflows.discard(key)
    else:
        rt.seen_workflows.add(key)
        rt.workflows.poke(key)
    # Its maxConcurrentExecutions raised or removed (or the Workflow gone): those waiting in its queue
    # are looked at now, not at their next resync.
    for waiting in queue.waiting_for(rt.store, key[0], name):
        rt.executions.poke((key[0], waiting))


@kopf.index(GROUP, VERSION, SCHEDULES)
async def index_schedule(body: kopf.Body, **_: Any) -> None:
    runtime().store.put_schedule(_raw(body))


@kopf.on.event(GROUP, VERSION, SCHEDULES)
async def schedule_changed(event: kopf.RawEvent, body: kopf.Body, namespace: str | None, name: str,
                           **_: Any) -> None:
    rt = runtime()
    key = (namespace or "", name)
    if event.get("type") == "DELETED":
        rt.seen_schedules.discard(key)
        rt.schedules.forget(key)
        rt.store.drop_schedule(*key)  # its executions follow through their ownerReferences
        return
    rt.store.put_schedule(_raw(body))
    rt.seen_schedules.add(key)
    rt.schedules.poke(key)
