"""One reconcile of a WorkflowExecution or a Workflow: read, ask the engine, apply, write status once.

No decision is made here: whether a pass goes on, what it reads, holds, resumes, refuses,
deletes and plans is the engine's (`engine.execution.passes` and `plan()`); this module reads
what they name, applies the Plan they return and writes its status.

Synchronous on purpose: it runs in a worker thread (the Kubernetes client blocks), one at
a time per object (see `scheduler`). Order of side effects: Jobs are created before status
is written, so a crash in between leaves a Job that the next reconcile adopts (the planner
sees it as that node's Job) rather than a status that names a Job which never existed.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from jobchain.api.models import ExecutionStatus, WorkflowStatus
from jobchain.api.vocabulary import ANNOTATION_SCHEDULED_TIME, EXECUTIONS, KIND_EXECUTION, KIND_WORKFLOW, WORKFLOWS
from jobchain.controller import admission_gate as queue
from jobchain.controller import metrics
from jobchain.engine.execution import passes
from jobchain.engine.execution.events import events_between
from jobchain.engine.execution.planner import ExecutionInput, Plan, plan
from jobchain.engine.execution.status import output_refs
from jobchain.engine.execution.status_write import status_patch
from jobchain.engine.execution.types import ResumeSource
from jobchain.engine.spec.outputs import DEFAULT_OUTPUT_LIMIT
from jobchain.engine.spec.render import key_of
from jobchain.engine.timefmt import utc_stamp
from jobchain.k8s.cluster import ExecutionCluster
from jobchain.k8s.writes import ForgedOutputError, JobRefused

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    phase: str | None  # None: the execution is gone
    wake_at: datetime | None = None
    waiting: int = 0  # approval gates waiting for a decision (status.waiting)


def reconcile_execution(cluster: ExecutionCluster, namespace: str, name: str, output_limit: int = DEFAULT_OUTPUT_LIMIT,
                        now: datetime | None = None, operator_namespace: str | None = None) -> Outcome:
    """One pass over the execution as the store holds it.

    The store is never older than what the last pass wrote (its status write and Job creates
    are written through, and an older watch event never replaces a newer copy), and passes of
    one execution never overlap (see `scheduler`): so a pass never plans from a status older
    than one already written, and status never goes backwards.
    """
    body = cluster.get_execution(namespace, name)
    if body is None:
        return Outcome(None)
    began, now = time.monotonic(), now or datetime.now(UTC)
    meta = body["metadata"]
    old = ExecutionStatus.model_validate(body.get("status") or {})
    spec = passes.intake(namespace, operator_namespace, body.get("spec") or {}, old, meta.get("generation"), now)
    if isinstance(spec, Plan):
        return _apply(cluster, body, old, spec, now)
    settled = passes.finished(spec, old, now)
    if settled is not None:
        return _apply(cluster, body, old, settled, now)
    workflow_name = passes.workflow_to_read(spec, old)
    lookup = passes.lookup_of(workflow_name, cluster.get_workflow(namespace, workflow_name)) if workflow_name else None
    # Under a Workflow's maxConcurrentExecutions, an execution about to start waits for a slot; the
    # decision and the status write that takes the slot happen under the queue's lock, and a start
    # is decided from the API server's executions, not the store's (which can lag: `controller.admission_gate`).
    with queue.slot(cluster, body, spec, lookup) as admission:
        source_name = passes.resume_from(spec, old)
        resume_source = _resume_source(cluster, namespace, source_name) if source_name else None
        workflow = passes.running_workflow(spec, old, lookup)
        observation = cluster.observer.observe(namespace, name, meta["uid"], passes.to_read(workflow, old),
                                               started=old.workflowSpec is not None)
        refs = passes.secrets_to_read(spec, observation.jobs)
        observed = passes.without_secrets(observation.jobs, cluster.secret_values(namespace, refs)) if refs \
            else observation.jobs
        try:
            execution = ExecutionInput(name, namespace, meta["uid"], meta.get("generation", 1), spec, old,
                                       created=utc_stamp(meta.get("creationTimestamp")),
                                       scheduled_time=(meta.get("annotations") or {}).get(ANNOTATION_SCHEDULED_TIME),
                                       outputs=_whole_outputs(cluster, namespace, name, meta["uid"], old))
            result = plan(execution, observed, now, lookup, output_limit, admission=admission,
                          resume_source=resume_source)
            return _apply(cluster, body, old, result, now, began, observation.finished_seen,
                          observation.recheck_at)
        except ForgedOutputError as exc:  # no forged value is passed on: the engine stops the execution
            return _apply(cluster, body, old, passes.forged_output(old, meta.get("generation"), str(exc), now), now)


def _resume_source(cluster: ExecutionCluster, namespace: str, name: str) -> ResumeSource:
    """The execution a retry resumes, with the whole outputs it may copy (read from its ConfigMaps)."""
    body = cluster.get_execution(namespace, name)
    if body is None:
        return ResumeSource(name, None)
    status = ExecutionStatus.model_validate(body.get("status") or {})
    outputs = {}
    for key, ref in passes.outputs_to_copy(name, status).items():
        ok, value = cluster.output_value(namespace, ref.configMap, ref.key, body["metadata"]["uid"], ref.sha256)
        if ok:
            outputs[key] = value
    return ResumeSource(name, status, outputs)


def _whole_outputs(cluster: ExecutionCluster, namespace: str, name: str, uid: str,
                   status: ExecutionStatus) -> dict[str, Any]:
    """The whole values of outputs kept in ConfigMaps (status holds previews), for edges and inputs:
    of nodes, and of the items of forEach nodes still running (keyed node#index).
    One that is gone (deleted by hand) is left out: the planner then has only the preview."""
    found: dict[str, Any] = {}
    for key, ref in output_refs(status, name).items():
        try:
            ok, value = cluster.output_value(namespace, ref.configMap, ref.key, uid, ref.sha256)
        except ForgedOutputError as exc:
            raise ForgedOutputError(f"the output of node {key}: {exc}") from None
        if ok:
            found[key] = value
        else:
            log.warning("%s: the output of %s, kept in ConfigMap %s, is gone", namespace, key, ref.configMap)
    return found


def _apply(cluster: ExecutionCluster, body: dict[str, Any], old: ExecutionStatus, result: Plan, now: datetime,
           began: float | None = None, finished_seen: dict[str, float] | None = None,
           recheck_at: datetime | None = None) -> Outcome:
    """Does what the plan says (ConfigMaps, then Jobs, then status, then Events); refusals by the
    API server go back to the engine (`passes.after_apply`) before status is written."""
    meta = body["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    if result.gone:
        return Outcome(None)
    for config_map in result.config_maps:  # before the status that names them, and the Jobs that mount them
        cluster.writer.create_config_map(config_map)
    planned = time.monotonic()
    refused: dict[str, str] = {}
    created_at: dict[str, tuple[float, float]] = {}  # Job name -> (create sent, create returned)
    for job in result.create:
        try:
            sent = time.monotonic()
            cluster.store.put_job(cluster.writer.create_job(job))
            created_at[job["metadata"]["name"]] = (sent, time.monotonic())
        except JobRefused as exc:  # the user's node spec, not a passing fault: the engine fails it
            refused[str(key_of(job))] = str(exc)  # the node, or node#index of a forEach item
    for job_name in result.delete:
        cluster.writer.delete_job(namespace, job_name)
    result = passes.after_apply(result, refused, now, recheck_at)
    new = result.status
    _write(cluster, body, old, new)
    if result.delete_execution:
        cluster.delete_execution(namespace, name)
        log.info("%s/%s: deleted: its ttlSecondsAfterFinished is over", namespace, name)
        return Outcome(None)
    created = [j for j in result.create if str(key_of(j)) not in refused]
    metrics.record_pass(old, new, created, now, finished_seen or {}, created_at)
    if result.create or result.delete or new.phase != old.phase:
        log.info("%s/%s: %s %s, created %s, deleted %s (read+plan %.0f ms, writes %.0f ms)", namespace, name,
                 new.phase, new.progress, [j["metadata"]["name"] for j in result.create], result.delete,
                 (planned - (began or planned)) * 1000, (time.monotonic() - planned) * 1000)
    return Outcome(str(new.phase), result.wake_at, waiting=len(new.waiting or []))


def _write(cluster: ExecutionCluster, body: dict[str, Any], old: ExecutionStatus, new: ExecutionStatus) -> None:
    """Writes the new status if it differs, then posts the Events its changes mean. Events come
    after the write: a write that fails posts nothing, and the retry derives them again."""
    meta = body["metadata"]
    patch = status_patch(old, new)
    if patch is not None:
        written = cluster.writer.json_patch_status(EXECUTIONS, meta["namespace"], meta["name"], patch)
        cluster.store.put_execution(written, own=True)  # the next pass plans from what was written
    for event in events_between(old, new):
        cluster.writer.event(body, KIND_EXECUTION, event.type, event.reason, event.message)


def reconcile_workflow(cluster: ExecutionCluster, body: dict[str, Any]) -> None:
    meta = body["metadata"]
    new = passes.workflow_status(body, datetime.now(UTC))
    old = WorkflowStatus.model_validate(body.get("status") or {})
    if new.model_dump(mode="json") != old.model_dump(mode="json"):
        cluster.writer.patch_status(WORKFLOWS, meta["namespace"], meta["name"], new.model_dump(mode="json"))
        event = passes.workflow_event(old, new)
        if event is not None:
            cluster.writer.event(body, KIND_WORKFLOW, event.type, event.reason, event.message)
