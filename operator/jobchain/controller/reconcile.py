"""One reconcile of a WorkflowExecution or a Workflow: read, ask the engine, apply, write status once.

Synchronous on purpose: it runs in a worker thread (the Kubernetes client blocks), one at
a time per object (see `scheduler`). Order of side effects: Jobs are created before status
is written, so a crash in between leaves a Job that the next reconcile adopts (the planner
sees it as that node's Job) rather than a status that names a Job which never existed.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from pydantic import ValidationError

from jobchain.api.errors import describe_validation_error
from jobchain.api.models import (
    TERMINAL_EXECUTION_PHASES,
    Condition,
    ExecutionPhase,
    ExecutionStatus,
    NodePhase,
    OutputSource,
    WorkflowExecutionSpec,
    WorkflowSpec,
    WorkflowStatus,
)
from jobchain.controller import metrics
from jobchain.engine.outputs import DEFAULT_OUTPUT_LIMIT
from jobchain.engine.planner import (
    ExecutionInput,
    WorkflowLookup,
    expires_at,
    iso,
    parse_time,
    plan,
    record_refusals,
)
from jobchain.engine.render import LABEL_NODE
from jobchain.engine.validation import validate_workflow
from jobchain.k8s.api import EXECUTIONS, WORKFLOWS
from jobchain.k8s.cluster import Cluster
from jobchain.k8s.observe import NodeToRead
from jobchain.k8s.writes import JobRefused

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    phase: str | None  # None: the execution is gone
    wake_at: datetime | None = None


def dump_status(status: ExecutionStatus) -> dict[str, Any]:
    """Status as a merge patch: top-level fields that became empty are sent as null (removed)."""
    data = status.model_dump(mode="json", by_alias=True, exclude={"nodes", "workflowSpec"})
    data["nodes"] = [n.model_dump(mode="json", by_alias=True, exclude_none=True) for n in status.nodes]
    data["workflowSpec"] = (
        status.workflowSpec.model_dump(mode="json", by_alias=True, exclude_none=True)
        if status.workflowSpec is not None else None
    )
    return data


def _lookup(cluster: Cluster, namespace: str, spec: WorkflowExecutionSpec) -> WorkflowLookup | None:
    if spec.workflowRef is None:
        return None
    name = spec.workflowRef.name
    obj = cluster.get_workflow(namespace, name)
    if obj is None:
        return WorkflowLookup(name, None, found=False)
    try:
        return WorkflowLookup(name, WorkflowSpec.model_validate(obj.get("spec") or {}))
    except ValidationError as exc:
        return WorkflowLookup(name, None, problems=tuple(describe_validation_error(exc, "spec")))


def _to_read(workflow: WorkflowSpec | None, status: ExecutionStatus) -> list[NodeToRead]:
    if workflow is None:
        return []
    finished = {n.name for n in status.nodes if n.phase not in (NodePhase.PENDING, NodePhase.RUNNING)}
    return [NodeToRead(n.name, OutputSource(n.output.from_)) for n in workflow.nodes if n.name not in finished]


def _record_metrics(old: ExecutionStatus, new: ExecutionStatus, created: list[dict[str, Any]],
                    now: datetime) -> None:
    if old.phase != ExecutionPhase.RUNNING and new.phase == ExecutionPhase.RUNNING:
        metrics.EXECUTIONS_STARTED.inc()
    if old.phase not in TERMINAL_EXECUTION_PHASES and new.phase in TERMINAL_EXECUTION_PHASES:
        metrics.EXECUTIONS_FINISHED.labels(str(new.phase), new.reason).inc()
    before = {n.name: n.phase for n in old.nodes}
    by_name = {n.name: n for n in new.nodes}
    for node in new.nodes:
        if before.get(node.name) in (None, NodePhase.PENDING, NodePhase.RUNNING) and node.phase in (
            NodePhase.SUCCEEDED, NodePhase.FAILED
        ):
            start, end = parse_time(node.startedAt), parse_time(node.finishedAt)
            if start and end:
                metrics.NODE_DURATION.labels(str(node.phase)).observe(max(0.0, (end - start).total_seconds()))
    for job in created:
        started = by_name.get(job["metadata"]["labels"][LABEL_NODE])
        source = by_name.get(started.inputFrom or "") if started else None
        finished = parse_time(source.finishedAt) if source else None
        if finished:
            metrics.NODE_HANDOFF.observe(max(0.0, (now - finished).total_seconds()))


def reconcile_execution(cluster: Cluster, namespace: str, name: str, output_limit: int = DEFAULT_OUTPUT_LIMIT,
                        now: datetime | None = None) -> Outcome:
    body = cluster.get_execution(namespace, name)
    if body is None:
        return Outcome(None)
    meta = body["metadata"]
    old = ExecutionStatus.model_validate(body.get("status") or {})
    try:
        spec = WorkflowExecutionSpec.model_validate(body.get("spec") or {})
    except ValidationError as exc:
        if old.phase in TERMINAL_EXECUTION_PHASES:
            return Outcome(str(old.phase))
        stamp = iso(now or datetime.now(UTC))
        failed = old.model_copy(update={
            "phase": ExecutionPhase.FAILED, "reason": "InvalidSpec", "startedAt": old.startedAt or stamp,
            "finishedAt": stamp,
            "message": "spec is invalid: " + "; ".join(describe_validation_error(exc, "spec")),
        })
        cluster.writer.patch_status(EXECUTIONS, namespace, name, dump_status(failed))
        cluster.writer.event(body, "WorkflowExecution", "Warning", "InvalidSpec", failed.message)
        return Outcome(str(failed.phase))

    now = now or datetime.now(UTC)
    if old.phase in TERMINAL_EXECUTION_PHASES and not old.running:
        # Finished, and no Job was left running: only its time to live is left to mind.
        expiry = expires_at(spec, old)
        if expiry is not None and now >= expiry:
            cluster.delete_execution(namespace, name)
            log.info("%s/%s: deleted, %ss after it finished (ttlSecondsAfterFinished)", namespace, name,
                     spec.ttlSecondsAfterFinished)
            return Outcome(None)
        return Outcome(str(old.phase), expiry)
    lookup = _lookup(cluster, namespace, spec) if old.workflowSpec is None and not spec.cancel else None
    workflow = old.workflowSpec or spec.workflow or (lookup.spec if lookup else None)
    observed = cluster.observer.observe(namespace, name, meta["uid"], _to_read(workflow, old))
    execution = ExecutionInput(name, namespace, meta["uid"], meta.get("generation", 1), spec, old)
    result = plan(execution, observed, now, lookup, output_limit)

    refused: dict[str, str] = {}
    for job in result.create:
        try:
            cluster.writer.create_job(job)
        except JobRefused as exc:  # the user's node spec, not a passing fault: fail the node
            refused[job["metadata"]["labels"][LABEL_NODE]] = str(exc)
    for job_name in result.delete:
        cluster.writer.delete_job(namespace, job_name)
    new = result.status
    if refused:
        result.events.extend(record_refusals(new, refused, now))
    # A refused node's failure is routed by the next pass, at once.
    wake_at = now if refused else (result.wake_at or expires_at(spec, new))
    patch = dump_status(new)
    if patch != dump_status(old):
        cluster.writer.patch_status(EXECUTIONS, namespace, name, patch)
    for event in result.events:
        cluster.writer.event(body, "WorkflowExecution", event.type, event.reason, event.message)
    created = [j for j in result.create if j["metadata"]["labels"][LABEL_NODE] not in refused]
    _record_metrics(old, new, created, now)
    if result.create or result.delete or result.events:
        log.info("%s/%s: %s %s, created %s, deleted %s", namespace, name, new.phase, new.progress,
                 [j["metadata"]["name"] for j in result.create], result.delete)
    return Outcome(str(new.phase), wake_at)


def workflow_status(body: dict[str, Any], now: datetime) -> WorkflowStatus:
    """The Ready condition of a Workflow: its spec parsed and validated as at execution start."""
    meta = body.get("metadata", {})
    generation = meta.get("generation")
    old = WorkflowStatus.model_validate(body.get("status") or {})
    node_count = None
    try:
        spec = WorkflowSpec.model_validate(body.get("spec") or {})
        node_count = len(spec.nodes)
        problems = [str(p) for p in validate_workflow(spec)]
    except ValidationError as exc:
        problems = describe_validation_error(exc, "spec")
    ready = Condition(
        type="Ready",
        status="False" if problems else "True",
        reason="InvalidWorkflow" if problems else "Valid",
        message="; ".join(problems) if problems else f"{node_count} node(s), valid",
        observedGeneration=generation,
    )
    previous = next((c for c in old.conditions if c.type == "Ready"), None)
    ready.lastTransitionTime = (
        previous.lastTransitionTime if previous and previous.status == ready.status else iso(now)
    )
    return WorkflowStatus(observedGeneration=generation, nodeCount=node_count, conditions=[ready])


def reconcile_workflow(cluster: Cluster, body: dict[str, Any]) -> None:
    meta = body["metadata"]
    new = workflow_status(body, datetime.now(UTC))
    old = WorkflowStatus.model_validate(body.get("status") or {})
    if new.model_dump(mode="json") != old.model_dump(mode="json"):
        cluster.writer.patch_status(WORKFLOWS, meta["namespace"], meta["name"], new.model_dump(mode="json"))
        if new.conditions[0].status == "False" and (not old.conditions or old.conditions[0].status != "False"):
            cluster.writer.event(body, "Workflow", "Warning", "InvalidWorkflow", new.conditions[0].message)
