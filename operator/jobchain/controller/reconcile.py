"""One reconcile of a WorkflowExecution or a Workflow: read, ask the engine, apply, write status once.

Synchronous on purpose: it runs in a worker thread (the Kubernetes client blocks), one at
a time per object (see `scheduler`). Order of side effects: Jobs are created before status
is written, so a crash in between leaves a Job that the next reconcile adopts (the planner
sees it as that node's Job) rather than a status that names a Job which never existed.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from typing import Any

from pydantic import ValidationError

from jobchain.api.errors import describe_validation_error
from jobchain.api.models import (
    TERMINAL_EXECUTION_PHASES,
    ExecutionPhase,
    ExecutionStatus,
    NodePhase,
    OutputSource,
    WorkflowExecutionSpec,
    WorkflowSpec,
    WorkflowStatus,
)
from jobchain.controller import admission_gate as queue
from jobchain.controller import metrics
from jobchain.engine.execution import pod_refusal, resume
from jobchain.engine.execution import status as st
from jobchain.engine.execution.events import events_between
from jobchain.engine.execution.planner import (
    ExecutionInput,
    WorkflowLookup,
    expires_at,
    parse_time,
    plan,
    record_refusals,
)
from jobchain.engine.execution.types import ObservedJob
from jobchain.engine.schedules.decide import ANNOTATION_SCHEDULED_TIME
from jobchain.engine.spec.outputs import DEFAULT_OUTPUT_LIMIT
from jobchain.engine.spec.render import LABEL_NODE
from jobchain.engine.spec.secrets import redact, secret_refs
from jobchain.engine.spec.validation import validate_workflow
from jobchain.engine.timefmt import iso
from jobchain.k8s.api import EXECUTIONS, WORKFLOWS
from jobchain.k8s.cluster import OperatorCluster
from jobchain.k8s.observe import NodeToRead
from jobchain.k8s.writes import JobRefused

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Outcome:
    phase: str | None  # None: the execution is gone
    wake_at: datetime | None = None


def dump_status(status: ExecutionStatus) -> dict[str, Any]:
    """Status as written (replacing the whole status): unset fields left out, outputs exactly as
    they are (a null inside an output is data and is kept)."""
    data = status.model_dump(mode="json", by_alias=True, exclude_none=True, exclude={"nodes", "workflowSpec"})
    data["nodes"] = [n.model_dump(mode="json", by_alias=True, exclude_none=True) for n in status.nodes]
    if status.workflowSpec is not None:
        data["workflowSpec"] = status.workflowSpec.model_dump(mode="json", by_alias=True, exclude_none=True)
    return data


def utc_stamp(value: Any) -> str | None:
    """A Kubernetes timestamp as status stores them."""
    moment = parse_time(str(value)) if value else None
    return iso(moment) if moment else None


def status_patch(old: ExecutionStatus, new: ExecutionStatus) -> list[dict[str, Any]] | None:
    """The JSON patch that writes `new` over `old` (the whole status), None when nothing changed."""
    data = dump_status(new)
    if data == dump_status(old):
        return None
    return [{"op": "add", "path": "/status", "value": data}]


def _lookup(cluster: OperatorCluster, namespace: str, spec: WorkflowExecutionSpec) -> WorkflowLookup | None:
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
    running = {n.name: n for n in status.nodes if n.phase == NodePhase.RUNNING}
    wanted = []
    for n in workflow.nodes:
        if n.name in finished:
            continue
        node = running.get(n.name)
        items = node.itemResults or [] if node is not None else []
        wanted.append(NodeToRead(
            n.name, OutputSource(n.output.from_), node.jobName if node is not None else None,
            item_jobs=tuple(e.jobName for e in items if e.phase == NodePhase.RUNNING and e.jobName),
            items_done=frozenset(e.index for e in items if e.phase != NodePhase.RUNNING),
        ))
    return wanted


def _record_metrics(old: ExecutionStatus, new: ExecutionStatus, created: list[dict[str, Any]],
                    now: datetime, finished_seen: dict[str, float],
                    created_at: dict[str, tuple[float, float]]) -> None:
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
        # The operator's own share: the event that finished the predecessor received -> this
        # Job's create returned (monotonic clock), for a predecessor that finished in this pass.
        source_name = (started.inputFrom if started else None) or ""
        seen = finished_seen.get(source_name)
        times = created_at.get(job["metadata"]["name"])
        if seen is not None and times is not None and before.get(source_name) in (
            None, NodePhase.PENDING, NodePhase.RUNNING,
        ):
            metrics.HANDOFF_OPERATOR.observe(max(0.0, times[1] - seen))
            metrics.HANDOFF_BEFORE_CREATE.observe(max(0.0, times[0] - seen))


def refuse(cluster: OperatorCluster, body: dict[str, Any], old: ExecutionStatus, reason: str, message: str,
           at: datetime) -> Outcome:
    """Fails an execution before it runs anything (once: a finished one is left as it is)."""
    if old.phase in TERMINAL_EXECUTION_PHASES:
        return Outcome(str(old.phase))
    failed = old.model_copy(deep=True)
    st.finish(failed, ExecutionPhase.FAILED, reason, message, at)
    st.summarize(failed, body["metadata"].get("generation"), at)
    _write(cluster, body, old, failed)
    return Outcome(str(failed.phase))


def _without_secrets(cluster: OperatorCluster, namespace: str, spec: WorkflowExecutionSpec,
                     observed: dict[str, ObservedJob]) -> dict[str, ObservedJob]:
    """Observed results with the values of the execution's secret params redacted from what is kept
    (failure messages with log tails, outputs), before anything reaches status or Events."""
    refs = secret_refs(spec)
    if not refs or not any(o.message or o.raw_output for o in observed.values()):
        return observed
    values = cluster.secret_values(namespace, refs.values())
    out = {}
    for node, seen in observed.items():
        if values is None and (seen.message or seen.raw_output):
            note = "(withheld: the operator could not read this execution's secret params to redact them)"
            seen = replace(seen, message=note if seen.message else "", raw_output=note if seen.raw_output else None)
        elif values:
            seen = replace(seen, message=redact(seen.message, values) or "", raw_output=redact(seen.raw_output, values))
        out[node] = seen
    return out


def _whole_outputs(cluster: OperatorCluster, namespace: str, name: str, status: ExecutionStatus) -> dict[str, Any]:
    """The whole values of outputs kept in ConfigMaps (status holds previews), for edges and inputs:
    of nodes, and of the items of forEach nodes still running (keyed node#index).
    One that is gone (deleted by hand) is left out: the planner then has only the preview."""
    found: dict[str, Any] = {}
    for key, ref in st.output_refs(status, name).items():
        ok, value = cluster.output_value(namespace, ref.configMap, ref.key)
        if ok:
            found[key] = value
        else:
            log.warning("%s: the output of %s, kept in ConfigMap %s, is gone", namespace, key, ref.configMap)
    return found


def reconcile_execution(cluster: OperatorCluster, namespace: str, name: str, output_limit: int = DEFAULT_OUTPUT_LIMIT,
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
    old = ExecutionStatus.model_validate(body.get("status") or {})
    if operator_namespace and namespace == operator_namespace:
        # Its pods could run as the operator's own ServiceAccount and borrow its rights.
        return refuse(cluster, body, old, "RefusedNamespace",
                      f"executions are not run in {namespace!r}, the jobchain operator's own namespace: its "
                      "ServiceAccount's rights must not be reachable by a workflow's pods. Create the execution "
                      "in another namespace", now or datetime.now(UTC))
    try:
        spec = WorkflowExecutionSpec.model_validate(body.get("spec") or {})
    except ValidationError as exc:
        return refuse(cluster, body, old, "InvalidSpec",
                      "spec is invalid: " + "; ".join(describe_validation_error(exc, "spec")), now or datetime.now(UTC))

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
    began = time.monotonic()
    lookup = _lookup(cluster, namespace, spec) if old.workflowSpec is None else None
    # Under a Workflow's maxConcurrentExecutions, an execution about to start waits for a slot; the
    # decision and the status write that takes the slot happen under the queue's lock, and a start
    # is decided from the API server's executions, not the store's (which can lag: `controller.admission_gate`).
    with queue.slot(cluster, body, spec, lookup) as admission:
        if admission.gone:
            return Outcome(None)
        if admission.changed:  # e.g. cancelled: the next pass, at once, starts from the newer copy
            return Outcome(str(old.phase), now)
        if admission.waiting is not None:
            return hold(cluster, body, old, queue.QUEUED, admission.waiting.message, now)
        if old.workflowSpec is None and spec.resumeFrom is not None and not spec.cancel:
            return resume_pass(cluster, body, old, spec.resumeFrom.name, now)
        return _plan_pass(cluster, body, spec, old, lookup, now, output_limit, began)


def hold(cluster: OperatorCluster, body: dict[str, Any], old: ExecutionStatus, reason: str, message: str,
         at: datetime) -> Outcome:
    """Keeps the execution Pending with a reason (Queued); it is looked at again when a slot frees up."""
    new = old.model_copy(deep=True)
    st.hold(new, reason, message, at)
    st.summarize(new, body["metadata"].get("generation"), at)
    _write(cluster, body, old, new)
    return Outcome(str(new.phase))


def resume_pass(cluster: OperatorCluster, body: dict[str, Any], old: ExecutionStatus, source_name: str,
                at: datetime) -> Outcome:
    """The first pass of a retry (spec.resumeFrom): takes the snapshot of the execution it resumes and
    copies its Succeeded nodes; the next pass plans the rest as usual."""
    meta = body["metadata"]
    source_body = cluster.get_execution(meta["namespace"], source_name)
    source = ExecutionStatus.model_validate(source_body.get("status") or {}) if source_body else None
    problem = resume.problem(source_name, source)
    if problem is not None or source is None:
        return refuse(cluster, body, old, "InvalidResume", problem or "", at)
    new = old.model_copy(deep=True)
    resume.seed(new, source_name, source, at)
    st.summarize(new, meta.get("generation"), at)
    _write(cluster, body, old, new)
    log.info("%s/%s: resumes %s, reusing %s", meta["namespace"], meta["name"], source_name,
             [n.name for n in new.nodes if n.reused])
    return Outcome(str(new.phase), at)  # plan the rest at once


def _plan_pass(cluster: OperatorCluster, body: dict[str, Any], spec: WorkflowExecutionSpec, old: ExecutionStatus,
               lookup: WorkflowLookup | None, now: datetime, output_limit: int, began: float) -> Outcome:
    meta = body["metadata"]
    namespace, name = meta["namespace"], meta["name"]
    workflow = old.workflowSpec or spec.workflow or (lookup.spec if lookup else None)
    observation = cluster.observer.observe(namespace, name, meta["uid"], _to_read(workflow, old),
                                           started=old.workflowSpec is not None)
    observed = _without_secrets(cluster, namespace, spec, observation.jobs)
    execution = ExecutionInput(name, namespace, meta["uid"], meta.get("generation", 1), spec, old,
                               created=utc_stamp(meta.get("creationTimestamp")),
                               scheduled_time=(meta.get("annotations") or {}).get(ANNOTATION_SCHEDULED_TIME),
                               outputs=_whole_outputs(cluster, namespace, name, old))
    result = plan(execution, observed, now, lookup, output_limit)
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
        except JobRefused as exc:  # the user's node spec, not a passing fault: fail the node
            refused[job["metadata"]["labels"][LABEL_NODE]] = str(exc)
    for job_name in result.delete:
        cluster.writer.delete_job(namespace, job_name)
    new = result.status
    if refused:
        record_refusals(new, refused, now)
    # A refused node's failure is routed by the next pass, at once.
    wake_at = now if refused else (result.wake_at or expires_at(spec, new))
    # A Job without a pod: are its pods refused (engine pod_refusal)? Look again when that is due; for
    # Jobs created in this pass, when their pods should be there (their own watch event, echoing the
    # create, pokes nothing, and pods that are refused send none).
    recheck = observation.recheck_at
    if result.create and not refused:
        first = now + timedelta(seconds=pod_refusal.FIRST_LOOK + 0.5)
        recheck = min(recheck, first) if recheck else first
    if recheck is not None and not refused:
        wake_at = min(wake_at, recheck) if wake_at else recheck
    _write(cluster, body, old, new)
    created = [j for j in result.create if j["metadata"]["labels"][LABEL_NODE] not in refused]
    _record_metrics(old, new, created, now, observation.finished_seen, created_at)
    if result.create or result.delete or new.phase != old.phase:
        log.info("%s/%s: %s %s, created %s, deleted %s (read+plan %.0f ms, writes %.0f ms)", namespace, name,
                 new.phase, new.progress, [j["metadata"]["name"] for j in result.create], result.delete,
                 (planned - began) * 1000, (time.monotonic() - planned) * 1000)
    return Outcome(str(new.phase), wake_at)


def _write(cluster: OperatorCluster, body: dict[str, Any], old: ExecutionStatus, new: ExecutionStatus) -> None:
    """Writes the new status if it differs, then posts the Events its changes mean. Events come
    after the write: a write that fails posts nothing, and the retry derives them again."""
    meta = body["metadata"]
    patch = status_patch(old, new)
    if patch is not None:
        written = cluster.writer.json_patch_status(EXECUTIONS, meta["namespace"], meta["name"], patch)
        cluster.store.put_execution(written, own=True)  # the next pass plans from what was written
    for event in events_between(old, new):
        cluster.writer.event(body, "WorkflowExecution", event.type, event.reason, event.message)


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
    return st.workflow_ready(old, generation, node_count, problems, now)


def reconcile_workflow(cluster: OperatorCluster, body: dict[str, Any]) -> None:
    meta = body["metadata"]
    new = workflow_status(body, datetime.now(UTC))
    old = WorkflowStatus.model_validate(body.get("status") or {})
    if new.model_dump(mode="json") != old.model_dump(mode="json"):
        cluster.writer.patch_status(WORKFLOWS, meta["namespace"], meta["name"], new.model_dump(mode="json"))
        if new.conditions[0].status == "False" and (not old.conditions or old.conditions[0].status != "False"):
            cluster.writer.event(body, "Workflow", "Warning", "InvalidWorkflow", new.conditions[0].message)
