"""Every decision of a pass besides planning the nodes: whether it goes on at all, what it reads, and
what the API server's refusals found while applying a plan mean.

Why here and not in the controller: `plan()` is the state machine of an execution, and a state
machine split between the engine and the code doing I/O drifts (the controller once refused,
held, resumed and decided the time to live on its own). So the controller only reads what these
functions name, asks them (and `plan()`, which holds, resumes and refuses through `before_plan`),
applies the Plan they return and writes its status: a pass is read -> decide -> apply -> write,
and each decision is tested as a table of inputs and Plans, without a cluster.

The order of a pass: `intake` (the operator's own namespace, a spec that does not parse), then
`finished` (a finished execution: its time to live), then the reads (`workflow_to_read`,
`resume_from`, `to_read`, `secrets_to_read`), then `plan()`, then `after_apply`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError

from jobchain.api.errors import describe_validation_error
from jobchain.api.models import (
    TERMINAL_EXECUTION_PHASES,
    ExecutionPhase,
    ExecutionStatus,
    NodePhase,
    OutputRef,
    OutputSource,
    WorkflowExecutionSpec,
    WorkflowSpec,
    WorkflowStatus,
)
from jobchain.engine.coordination.admission import QUEUED, Admission
from jobchain.engine.execution import pod_refusal, rerun
from jobchain.engine.execution import resume as retry
from jobchain.engine.execution import status as st
from jobchain.engine.execution.finally_ import with_finally
from jobchain.engine.execution.lifecycle import expires_at, queue_deadline, record_refusals
from jobchain.engine.execution.types import (
    Event,
    ExecutionInput,
    NodeToRead,
    ObservedJob,
    Plan,
    ResumeSource,
    WorkflowLookup,
)
from jobchain.engine.spec.render import ExecutionRef
from jobchain.engine.spec.secrets import redact, secret_refs
from jobchain.engine.spec.validation import validate_workflow

WITHHELD = "(withheld: the operator could not read this execution's secret params to redact them)"


# ---- before anything is read ------------------------------------------------------------------

def refuse(status: ExecutionStatus, generation: int | None, reason: str, message: str, at: datetime) -> Plan:
    """Fails an execution before it runs anything (once: a finished one is left as it is)."""
    failed = status.model_copy(deep=True)
    if status.phase in TERMINAL_EXECUTION_PHASES:
        return Plan(failed)
    st.finish(failed, ExecutionPhase.FAILED, reason, message, at)
    st.summarize(failed, generation, at)
    return Plan(failed)


def forged_output(status: ExecutionStatus, generation: int | None, problem: str, at: datetime) -> Plan:
    """An output ConfigMap whose content is not what the operator wrote (`problem` says which): the
    execution fails there, and no forged value reaches a node or a condition."""
    return refuse(status, generation, "ForgedOutput", f"{problem}. Delete that ConfigMap and run the workflow "
                  "again; find out who may create ConfigMaps in this namespace", at)


def intake(namespace: str, operator_namespace: str | None, raw_spec: Mapping[str, Any], status: ExecutionStatus,
           generation: int | None, now: datetime) -> WorkflowExecutionSpec | Plan:
    """The spec to plan from (a retry's with what it inherits: `rerun.inherit`), or the Plan that
    refuses the execution: it is in the operator's own namespace (RefusedNamespace) or its spec
    does not parse (InvalidSpec)."""
    if operator_namespace and namespace == operator_namespace:
        # Its pods could run as the operator's own ServiceAccount and borrow its rights.
        return refuse(status, generation, "RefusedNamespace",
                      f"executions are not run in {namespace!r}, the jobchain operator's own namespace: its "
                      "ServiceAccount's rights must not be reachable by a workflow's pods. Create the execution "
                      "in another namespace", now)
    try:
        return rerun.inherit(WorkflowExecutionSpec.model_validate(raw_spec), status)
    except ValidationError as exc:
        return refuse(status, generation, "InvalidSpec",
                      "spec is invalid: " + "; ".join(describe_validation_error(exc, "spec")), now)


def finished(spec: WorkflowExecutionSpec, status: ExecutionStatus, now: datetime) -> Plan | None:
    """A finished execution with no Job left running: only its time to live is left to mind (a
    Plan that deletes it, or looks again when it expires). None: the pass goes on."""
    if status.phase not in TERMINAL_EXECUTION_PHASES or status.running:
        return None
    expiry = expires_at(spec, status)
    if expiry is not None and now >= expiry:
        return Plan(status.model_copy(deep=True), delete_execution=True)
    return Plan(status.model_copy(deep=True), wake_at=expiry)


# ---- what a pass reads ------------------------------------------------------------------------

def workflow_to_read(spec: WorkflowExecutionSpec, status: ExecutionStatus) -> str | None:
    """The Workflow to look up: the referenced one, only before the snapshot is taken."""
    if status.workflowSpec is not None or spec.workflowRef is None:
        return None
    return spec.workflowRef.name


def lookup_of(name: str, body: Mapping[str, Any] | None) -> WorkflowLookup:
    """The referenced Workflow as found (`body` None: there is none)."""
    if body is None:
        return WorkflowLookup(name, None, found=False)
    try:
        return WorkflowLookup(name, WorkflowSpec.model_validate(body.get("spec") or {}))
    except ValidationError as exc:
        return WorkflowLookup(name, None, problems=tuple(describe_validation_error(exc, "spec")))


def outputs_to_copy(source_name: str, source: ExecutionStatus) -> dict[str, OutputRef]:
    """The whole outputs (ConfigMaps) of the execution a retry resumes that it may copy: read them
    and hand them to `plan()` in the ResumeSource."""
    return retry.wanted_outputs(source_name, source)


def resume_from(spec: WorkflowExecutionSpec, status: ExecutionStatus) -> str | None:
    """The execution a retry's first pass copies (spec.resumeFrom), to be read; None if none is."""
    if status.workflowSpec is None and spec.resumeFrom is not None and not spec.cancel:
        return spec.resumeFrom.name
    return None


def running_workflow(spec: WorkflowExecutionSpec, status: ExecutionStatus,
                     lookup: WorkflowLookup | None) -> WorkflowSpec | None:
    """The spec the execution runs: its snapshot, else the one it is about to take."""
    return status.workflowSpec or spec.workflow or (lookup.spec if lookup else None)


def to_read(workflow: WorkflowSpec | None, status: ExecutionStatus) -> list[NodeToRead]:
    """The nodes whose Jobs are to be observed: those not finished in status."""
    if workflow is None:
        return []
    finished_nodes = {n.name for n in status.nodes if n.phase not in (NodePhase.PENDING, NodePhase.RUNNING)}
    running = {n.name: n for n in status.nodes if n.phase == NodePhase.RUNNING}
    wanted = []
    for n in with_finally(workflow).nodes:
        if n.name in finished_nodes:
            continue
        node = running.get(n.name)
        items = node.itemResults or [] if node is not None else []
        wanted.append(NodeToRead(
            n.name, OutputSource(n.output.from_), node.jobName if node is not None else None,
            item_jobs=tuple(e.jobName for e in items if e.phase == NodePhase.RUNNING and e.jobName),
            items_done=frozenset(e.index for e in items if e.phase != NodePhase.RUNNING),
        ))
    return wanted


def secrets_to_read(spec: WorkflowExecutionSpec, observed: Mapping[str, ObservedJob]) -> list[dict[str, Any]]:
    """The Secret keys of the execution's secret params, when an observed Job has text that may
    hold their values (a failure message with a log tail, an output); else none."""
    refs = secret_refs(spec)
    if not refs or not any(o.message or o.raw_output for o in observed.values()):
        return []
    return list(refs.values())


def without_secrets(observed: Mapping[str, ObservedJob], values: list[str] | None) -> dict[str, ObservedJob]:
    """Observed results with the secret values redacted from what is kept (failure messages with
    log tails, outputs), before anything reaches status or Events. `values` None: they could not
    be read, so no text is kept at all."""
    out = {}
    for node, seen in observed.items():
        if values is None and (seen.message or seen.raw_output):
            seen = replace(seen, message=WITHHELD if seen.message else "",
                           raw_output=WITHHELD if seen.raw_output else None)
        elif values:
            seen = replace(seen, message=redact(seen.message, values) or "", raw_output=redact(seen.raw_output, values))
        out[node] = seen
    return out


# ---- before the plan (called by plan()) -------------------------------------------------------

def hold(status: ExecutionStatus, generation: int | None, reason: str, message: str, at: datetime) -> Plan:
    """Keeps the execution Pending with a reason (Queued); it is looked at again when a slot frees up."""
    new = status.model_copy(deep=True)
    st.hold(new, reason, message, at)
    st.summarize(new, generation, at)
    return Plan(new)


def resume(execution: ExecutionInput, source: ResumeSource, at: datetime) -> Plan:
    """The first passes of a retry (spec.resumeFrom). The first pins the execution it resumes
    (status.resumedFrom: its uid and what the retry inherits, `engine.execution.rerun`) and does
    nothing else; the second, at once, checks it still is that execution, takes its snapshot and
    copies the nodes it may reuse (with their whole outputs, into ConfigMaps of its own); the next
    pass, at once, plans the rest as usual."""
    status, generation, spec = execution.status, execution.generation, execution.spec
    node = spec.resumeFrom.node if spec.resumeFrom else None
    pinned = status.resumedFrom
    problem = rerun.changed_problem(pinned, source.uid if source.status else None) if pinned else None
    problem = problem or retry.problem(source.name, source.status, node)
    if problem is None and pinned is None:
        problem = rerun.workflow_problem(spec, source.spec)
    if problem is None and source.status is not None and pinned is not None:
        problem = retry.secrets_problem(source.name, source.status, spec)
    if problem is not None or source.status is None:
        return refuse(status, generation, "InvalidResume", problem or "", at)
    if pinned is None:
        new = status.model_copy(deep=True)
        st.pin_resumed(new, rerun.pin(spec, source.uid or "", source.spec, source.status))
        st.summarize(new, generation, at)
        return Plan(new, wake_at=at)
    params = rerun.params_problem(spec, source.status)
    if params is not None:
        return refuse(status, generation, "InvalidParams", params, at)
    new = status.model_copy(deep=True)
    config_maps = retry.seed(new, source.name, source.status, at,
                             ExecutionRef(execution.name, execution.namespace, execution.uid, execution.name),
                             source.outputs, from_node=node, params=spec.params)
    st.summarize(new, generation, at)
    return Plan(new, config_maps=config_maps, wake_at=at)


def before_plan(execution: ExecutionInput, now: datetime, admission: Admission | None,
                resume_source: ResumeSource | None) -> Plan | None:
    """What the queue or a retry decides before any node is planned; None: plan the nodes.

    Gone from the API server: nothing to do. A newer copy there (a cancel not delivered yet): look
    again at once, from it. No free slot: held Queued. A retry's first pass: resumed (or refused)."""
    status = execution.status
    if admission is not None:
        if admission.gone:
            return Plan(status.model_copy(deep=True), gone=True)
        if admission.changed:
            return Plan(status.model_copy(deep=True), wake_at=now)
        if admission.waiting is not None:
            deadline = queue_deadline(execution.spec, execution.created)
            if deadline is not None and now >= deadline:
                return refuse(status, execution.generation, "DeadlineExceeded",
                              "the execution waited in its Workflow's queue (maxConcurrentExecutions) past "
                              f"spec.timeoutSeconds ({execution.spec.timeoutSeconds}s), which counts from its "
                              "creation; raise timeoutSeconds or the Workflow's maxConcurrentExecutions", now)
            return replace(hold(status, execution.generation, QUEUED, admission.waiting.message, now),
                           wake_at=deadline)
    source = resume_from(execution.spec, status)
    if source is not None:
        return resume(execution, resume_source or ResumeSource(source, None), now)
    return None


# ---- after the plan is applied ----------------------------------------------------------------

def after_apply(result: Plan, refused: Mapping[str, str], now: datetime,
                recheck_at: datetime | None = None) -> Plan:
    """The plan as applied: Jobs the API server refused (keyed by node, or node#index of an item)
    fail their node or item, and the next pass, at once, routes that failure.

    Otherwise, a Job without a pod may have its pods refused by admission (`pod_refusal`), which
    sends no event the operator sees: look again when that is due (`recheck_at`, from the observed
    Jobs), and for Jobs created now, when their pods should be there (the watch event echoing the
    create pokes nothing, and refused pods send none)."""
    if refused:
        record_refusals(result.status, refused, now)
        result.wake_at = now
        return result
    if result.create:
        first = now + timedelta(seconds=pod_refusal.FIRST_LOOK + 0.5)
        recheck_at = min(recheck_at, first) if recheck_at else first
    if recheck_at is not None:
        result.wake_at = min(result.wake_at, recheck_at) if result.wake_at else recheck_at
    return result


# ---- a Workflow -------------------------------------------------------------------------------

def workflow_status(body: Mapping[str, Any], now: datetime, refused: Sequence[str] = ()) -> WorkflowStatus:
    """The Ready condition of a Workflow: its spec parsed and validated as at execution start;
    `refused`: what the API server said of the nodes' Jobs in a dry run (see trial_jobs)."""
    meta = body.get("metadata", {})
    generation = meta.get("generation")
    old = WorkflowStatus.model_validate(body.get("status") or {})
    node_count = None
    try:
        spec = WorkflowSpec.model_validate(body.get("spec") or {})
        node_count = len(spec.nodes)
        problems = [str(p) for p in validate_workflow(spec)] + list(refused)
    except ValidationError as exc:
        problems = describe_validation_error(exc, "spec")
    return st.workflow_ready(old, generation, node_count, problems, now)


def workflow_event(old: WorkflowStatus, new: WorkflowStatus) -> Event | None:
    """The Warning a Workflow gets when it becomes not Ready (once, not on every pass)."""
    if new.conditions and new.conditions[0].status == "False" and (
        not old.conditions or old.conditions[0].status != "False"
    ):
        return Event("Warning", "InvalidWorkflow", new.conditions[0].message)
    return None
