"""Approval gates: nodes that run no Job and wait for a decision in spec.approvals.

Why every time is taken from status: a gate is reached at the time its predecessors finished
(`decided_at`, as a skip is), and times out at that time plus approval.timeoutSeconds, so a
pass replayed after a lost status write reaches and times out the gate exactly as the first
did. A decision in spec has no time: whenever a pass sees one for a waiting gate, the gate is
decided by it (the user's explicit request wins over a timeout that no pass recorded yet).
Also a pass that stops the run (a cancel, the deadline) takes a decision it sees first: a Job
started after an approval whose status write was lost is then explained by the approval.
A decision present before the gate is reached decides it as soon as it is reached, also by a pass
that may start nothing (the pass that reached it first may have lost its write after starting the
nodes behind it). One that
disagrees with a gate already decided is ignored; the gate's status names it once
(`ignoredDecision`), from which a single Warning Event is derived.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from jobchain.api.models import (
    ApprovalDecision,
    ExecutionStatus,
    NodePhase,
    NodeStatus,
    WaitingGate,
    WorkflowExecutionSpec,
    WorkflowSpec,
)
from jobchain.engine.execution import status as st
from jobchain.engine.timefmt import iso, parse_time

if TYPE_CHECKING:
    from jobchain.engine.execution.planner import _Run

APPROVED = "Approved"
DENIED = "Denied"
TIMED_OUT = "ApprovalTimeout"
_AGREES = {APPROVED: ApprovalDecision.APPROVE, DENIED: ApprovalDecision.DENY}


def is_gate(workflow: WorkflowSpec, name: str) -> bool:
    return any(n.name == name and n.approval is not None for n in workflow.nodes)


def deadline_of(workflow: WorkflowSpec, node: NodeStatus) -> datetime | None:
    """When a waiting gate times out, from when it was reached (its startedAt) and its timeoutSeconds."""
    spec = next((n for n in workflow.nodes if n.name == node.name), None)
    since = parse_time(node.startedAt)
    if spec is None or spec.approval is None or spec.approval.timeoutSeconds is None or since is None:
        return None
    return since + timedelta(seconds=spec.approval.timeoutSeconds)


def reach(run: _Run, node: NodeStatus, source: str | None, *, may_wait: bool) -> bool | None:
    """The gate's incoming edges held: it waits, stamped with when that was decided. False when a
    decision given earlier (or its timeout, already over) decides it at once (its out-edges are
    decided: the caller looks again). A pass that may not start nodes (a stop, a cancel, the
    deadline, a condition error) still makes that decision, as it makes skips: the pass that reached
    the gate may have lost its status write after starting the nodes behind it. Only a gate that
    would wait is left Pending by such a pass (None), to be cancelled with the rest."""
    at = run.decided_at(run.graph.incoming[node.name], run.nodes())
    if not may_wait and not _decided_when_reached(run, node, at):
        return None
    run.mark(node, NodePhase.WAITING, at, "", inputFrom=source, startedAt=at)
    return not decide(run, node, decisions=True, until=run.gates_until)


def _decided_when_reached(run: _Run, node: NodeStatus, at: str) -> bool:
    if node.name in run.execution.spec.approvals:
        return True
    deadline = deadline_of(run.workflow, node.model_copy(update={"startedAt": at}))
    return deadline is not None and deadline <= run.gates_until


def decide(run: _Run, node: NodeStatus, *, decisions: bool, until: datetime) -> bool:
    """Decides a waiting gate by its decision in spec (when `decisions`) or by its timeout (when its
    deadline is not after `until`). True when it was decided."""
    if node.phase != NodePhase.WAITING:
        return False
    given = run.execution.spec.approvals.get(node.name) if decisions else None
    if given is not None:
        # Stamped with the time the gate was reached: a decision in spec carries no time of its own,
        # and the pass's clock would differ in a pass replayed after a lost write (which predecessor
        # finished last, the input of a node after several, must not change with it).
        at = node.startedAt or run.now
        said = f": {given.message}" if given.message else ""
        if given.decision == ApprovalDecision.APPROVE:
            run.mark(node, NodePhase.SUCCEEDED, at, f"approved{said}", reason=APPROVED,
                     output={"approved": True, "message": given.message or ""})
        else:
            run.mark(node, NodePhase.FAILED, at, f"denied{said}", reason=DENIED)
        return True
    deadline = deadline_of(run.workflow, node)
    if deadline is not None and deadline <= until:
        run.mark(node, NodePhase.FAILED, deadline, "no decision within approval.timeoutSeconds "
                 f"({int((deadline - (parse_time(node.startedAt) or deadline)).total_seconds())}s)",
                 reason=TIMED_OUT)
        return True
    return False


def decide_waiting(run: _Run, *, decisions: bool, until: datetime) -> None:
    for node in run.status.nodes:
        decide(run, node, decisions=decisions, until=until)


def note_ignored(status: ExecutionStatus, spec: WorkflowExecutionSpec) -> None:
    """Marks the decisions in spec that came after their gate was decided otherwise (ignored)."""
    for node in status.nodes:
        given = spec.approvals.get(node.name)
        if given is None or node.reason not in (APPROVED, DENIED, TIMED_OUT):
            continue
        if _AGREES.get(node.reason) != given.decision:
            st.ignore_decision(node, str(given.decision))


def next_deadline(run: _Run) -> datetime | None:
    """The earliest deadline of a waiting gate: when a pass must look again without any event."""
    deadlines = [deadline_of(run.workflow, n) for n in run.status.nodes if n.phase == NodePhase.WAITING]
    return min((d for d in deadlines if d is not None), default=None)


def waiting(status: ExecutionStatus) -> list[WaitingGate] | None:
    """status.waiting: the gates waiting for a decision, with what they ask and until when."""
    if status.workflowSpec is None:
        return None
    specs = {n.name: n for n in status.workflowSpec.nodes}
    gates = []
    for node in status.nodes:
        spec = specs.get(node.name)
        if node.phase != NodePhase.WAITING or spec is None or spec.approval is None:
            continue
        deadline = deadline_of(status.workflowSpec, node)
        gates.append(WaitingGate(name=node.name, message=spec.approval.message or "", since=node.startedAt,
                                 deadline=iso(deadline) if deadline else None))
    return gates or None
