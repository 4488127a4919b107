"""The Kubernetes Events of a reconcile, derived from the status before and after it.

Why derived and not collected while planning: an Event then says exactly what the written
status says happened. A Job planned and dropped in the same pass (a cancel arriving at once)
never shows as started, a refusal by the API server shows as the node's failure, and no
Event ever has to be found again and removed by its text. Metrics are derived the same way
(controller.reconcile).
"""

from __future__ import annotations

from jobchain.api.models import (
    FINISHED_NODE_PHASES,
    TERMINAL_EXECUTION_PHASES,
    ExecutionPhase,
    ExecutionStatus,
    NodePhase,
)
from jobchain.engine.execution.types import Event


def events_between(old: ExecutionStatus, new: ExecutionStatus) -> list[Event]:
    """What happened between two statuses of one execution, in the order a user would tell it."""
    events: list[Event] = []
    if old.phase != ExecutionPhase.RUNNING and new.phase == ExecutionPhase.RUNNING and old.workflowSpec is None:
        events.append(Event("Normal", "ExecutionStarted",
                            f"Started workflow {new.workflowName!r} with {len(new.nodes)} node(s)"))
    before = {n.name: n.phase for n in old.nodes}
    for node in new.nodes:
        was = before.get(node.name, NodePhase.PENDING)
        if was in FINISHED_NODE_PHASES or was == node.phase:
            continue
        if node.phase == NodePhase.WAITING:
            events.append(Event("Normal", "ApprovalRequested", _requested(new, node.name)))
        elif node.phase == NodePhase.RUNNING:
            how = f"{node.items.total} item(s), one Job each" if node.items is not None else f"Job {node.jobName}"
            events.append(Event("Normal", "NodeStarted", f"Started node {node.name} as {how}"))
        elif node.phase == NodePhase.SUCCEEDED:
            events.append(Event("Normal", "NodeSucceeded", f"Node {node.name} succeeded"))
        elif node.phase == NodePhase.FAILED:
            events.append(Event("Warning", "NodeFailed", f"Node {node.name} failed: {node.message or 'failed'}"))
    ignored_before = {n.name: n.ignoredDecision for n in old.nodes}
    for node in new.nodes:
        if node.ignoredDecision and node.ignoredDecision != ignored_before.get(node.name):
            events.append(Event("Warning", "ApprovalIgnored", f"Gate {node.name} was decided already "
                                f"({node.reason}); the later decision {node.ignoredDecision!r} in spec.approvals "
                                "is ignored"))
    if old.phase not in TERMINAL_EXECUTION_PHASES and new.phase in TERMINAL_EXECUTION_PHASES:
        kind = "Normal" if new.phase == ExecutionPhase.SUCCEEDED else "Warning"
        events.append(Event(kind, f"Execution{new.phase}", new.message))
    return events


def _requested(status: ExecutionStatus, name: str) -> str:
    gate = next((g for g in status.waiting or [] if g.name == name), None)
    asked = f": {gate.message}" if gate and gate.message else ""
    until = f" (times out at {gate.deadline})" if gate and gate.deadline else ""
    return (f"Node {name} waits for approval{asked}{until}; decide with `jobchain approve|deny EXECUTION {name}` "
            f"or set spec.approvals.{name}.decision")
