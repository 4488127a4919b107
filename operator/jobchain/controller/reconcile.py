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

import dataclasses
import json
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from jobchain.api.models import ExecutionStatus, WorkflowExecutionSpec, WorkflowSpec, WorkflowStatus
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
from jobchain.engine.spec.trial_jobs import trial_jobs
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
            outputs, forged = _whole_outputs(cluster, namespace, name, meta["uid"], old)
            execution = ExecutionInput(name, namespace, meta["uid"], meta.get("generation", 1), spec, old,
                                       created=utc_stamp(meta.get("creationTimestamp")),
                                       scheduled_time=(meta.get("annotations") or {}).get(ANNOTATION_SCHEDULED_TIME),
                                       outputs=outputs, forged=forged)
            # An output ConfigMap found forged when it is created fails its node: the pass is planned
            # again knowing it (nothing was created but the ConfigMaps before it), so that no Job starts
            # on the node's success. At most once per ConfigMap of the pass.
            while True:
                result = plan(execution, observed, now, lookup, output_limit, admission=admission,
                              resume_source=resume_source)
                try:
                    return _apply(cluster, body, old, result, now, began, observation.finished_seen,
                                  observation.recheck_at)
                except _ForgedAtCreate as found:
                    if found.key in execution.forged:
                        raise ForgedOutputError(found.problem) from None
                    execution = dataclasses.replace(execution, forged={**execution.forged, found.key: found.problem})
        except ForgedOutputError as exc:  # of a forEach item: no forged value is passed on, the execution stops
            return _apply(cluster, body, old, passes.forged_output(old, meta.get("generation"), str(exc), now), now)


class _ForgedAtCreate(Exception):
    """The output ConfigMap of a node exists, made by someone else with other content."""

    def __init__(self, key: str, problem: str) -> None:
        super().__init__(problem)
        self.key, self.problem = key, problem


def _resume_source(cluster: ExecutionCluster, namespace: str, name: str) -> ResumeSource:
    """The execution a retry resumes, with the whole outputs it may copy (read from its ConfigMaps)."""
    body = cluster.get_execution(namespace, name)
    if body is None:
        return ResumeSource(name, None)
    status = ExecutionStatus.model_validate(body.get("status") or {})
    try:
        spec: WorkflowExecutionSpec | None = WorkflowExecutionSpec.model_validate(body.get("spec") or {})
    except ValidationError:  # it was refused (InvalidSpec): nothing to inherit
        spec = None
    outputs = {}
    for key, ref in passes.outputs_to_copy(name, status).items():
        ok, value = cluster.output_value(namespace, ref.configMap, ref.key, body["metadata"]["uid"], ref.sha256)
        if ok:
            outputs[key] = value
    return ResumeSource(name, status, outputs, uid=body["metadata"].get("uid"), spec=spec)


def _whole_outputs(cluster: ExecutionCluster, namespace: str, name: str, uid: str,
                   status: ExecutionStatus) -> tuple[dict[str, Any], dict[str, str]]:
    """The whole values of outputs kept in ConfigMaps (status holds previews), for edges and inputs:
    of nodes, and of the items of forEach nodes still running (keyed node#index); and the nodes
    whose ConfigMap was found forged, with why (the engine fails them).
    One that is gone (deleted by hand) is left out: the planner then has only the preview."""
    found: dict[str, Any] = {}
    forged: dict[str, str] = {}
    for key, ref in output_refs(status, name).items():
        try:
            ok, value = cluster.output_value(namespace, ref.configMap, ref.key, uid, ref.sha256)
        except ForgedOutputError as exc:
            if "#" in key:  # an item's: its forEach node is still running (see the caller)
                raise ForgedOutputError(f"the output of node {key}: {exc}") from None
            forged[key] = f"its output was found forged: {exc}"
            log.warning("%s/%s: node %s: %s", namespace, name, key, forged[key])
            continue
        if ok:
            found[key] = value
        else:
            log.warning("%s: the output of %s, kept in ConfigMap %s, is gone", namespace, key, ref.configMap)
    return found, forged


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
        try:
            cluster.writer.create_config_map(config_map)
        except ForgedOutputError as exc:
            key = key_of(config_map)
            if key is None or "#" in key:
                raise
            raise _ForgedAtCreate(key, f"its output could not be kept: {exc}") from None
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
    now = datetime.now(UTC)
    new = passes.workflow_status(body, now)
    if new.conditions and new.conditions[0].status == "True":  # valid here: ask the cluster too
        refused = _dry_run(cluster, str(meta["name"]), str(meta["namespace"]), body)
        if refused:
            new = passes.workflow_status(body, now, refused)
    old = WorkflowStatus.model_validate(body.get("status") or {})
    if new.model_dump(mode="json") != old.model_dump(mode="json"):
        cluster.writer.patch_status(WORKFLOWS, meta["namespace"], meta["name"], new.model_dump(mode="json"))
        event = passes.workflow_event(old, new)
        if event is not None:
            cluster.writer.event(body, KIND_WORKFLOW, event.type, event.reason, event.message)


# Jobs already tried (the manifest as JSON -> the API server's answer): a Workflow is reconciled
# again after each status write and on every resync, and the same Job need not be asked again.
_TRIED: dict[str, str | None] = {}
_TRIED_MAX = 1024


def _dry_run(cluster: ExecutionCluster, name: str, namespace: str, body: dict[str, Any]) -> list[str]:
    """What the API server refuses in the Jobs of this (valid) Workflow's nodes, one problem per node."""
    refused = []
    for path, manifest in trial_jobs(name, namespace, WorkflowSpec.model_validate(body.get("spec") or {})):
        key = json.dumps(manifest, sort_keys=True)
        if key not in _TRIED:
            if len(_TRIED) >= _TRIED_MAX:
                _TRIED.clear()
            _TRIED[key] = cluster.writer.dry_run_job(manifest)
        answer = _TRIED[key]
        if answer is not None:
            refused.append(f"{path}: the API server refuses this node's Job (a dry run with strict field "
                           f"validation): {answer}; fix the node's podTemplate, resources or env valueFrom")
    return refused
