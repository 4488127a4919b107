"""The finally nodes of an execution (spec.finally): when they run, what they see, how the run ends.

Why a second phase rather than edges: an `always` edge to a notifier turns a failed run green,
because the run's phase is decided from the nodes. Here the main graph's outcome is recorded in
status (`status.outcome`) the moment it ends, and the execution ends with that phase whatever
the finally nodes do, except that a failed finally node fails a run that had Succeeded.

The outcome is written before any finally Job exists: the pass that records it starts none
(it asks for another pass at once), so a pass replayed after a lost status write decides the
outcome again from the same status, and a finally Job is only ever created by a pass that read
the outcome from status. The finally nodes' time (`finallyTimeoutSeconds`) counts from
`outcome.endedAt`, a time taken from the nodes' own finish stamps, never from the pass.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

from jobchain.api.models import (
    FINISHED_NODE_PHASES,
    ExecutionPhase,
    ExecutionStatus,
    NodePhase,
    NodeStatus,
    Outcome,
    WorkflowSpec,
)
from jobchain.engine.timefmt import iso, parse_time

STOPPED = "Stopped"
FINALLY_FAILED = "FinallyFailed"


def with_finally(spec: WorkflowSpec) -> WorkflowSpec:
    """The spec with its finally nodes after the main ones, as one list of nodes: the planner's
    graph, its declaration order and the Jobs to observe then cover both (no edge leads from a
    main node into a finally node: validation refuses it)."""
    if not spec.finally_:
        return spec
    return spec.model_copy(update={"nodes": [*spec.nodes, *spec.finally_], "finally_": []})


def main_nodes(status: ExecutionStatus) -> list[NodeStatus]:
    return [n for n in status.nodes if not n.finally_]


def finally_nodes(status: ExecutionStatus) -> list[NodeStatus]:
    return [n for n in status.nodes if n.finally_]


def main_outcome(status: ExecutionStatus, phase: ExecutionPhase, reason: str, message: str,
                 at: datetime) -> Outcome:
    """The main graph's outcome, ended when its last node finished (`at` when none did)."""
    main = main_nodes(status)
    stamps = [n.finishedAt for n in main if n.finishedAt]
    return Outcome(phase=phase, reason=reason, message=message,
                   failedNodes=[n.name for n in main if n.phase == NodePhase.FAILED],
                   endedAt=max(stamps) if stamps else iso(at))


def jobs_running(nodes: list[NodeStatus]) -> bool:
    """Whether a Job of these nodes runs (a forEach node Running with no item running has none)."""
    return any(n.phase == NodePhase.RUNNING and (n.items is None or n.items.running > 0) for n in nodes)


def deadline(spec: WorkflowSpec, outcome: Outcome, now: datetime) -> datetime:
    """When the finally nodes' time is over: finallyTimeoutSeconds after the main graph ended."""
    ended = parse_time(outcome.endedAt) or now
    return ended + timedelta(seconds=spec.finallyTimeoutSeconds)


def scope_values(outcome: Outcome | None) -> dict[str, Any] | None:
    """What $(execution.phase), $(execution.reason) and $(execution.failedNodes) resolve to."""
    if outcome is None:
        return None
    return {"phase": str(outcome.phase), "reason": outcome.reason, "failedNodes": list(outcome.failedNodes)}


def final(outcome: Outcome, status: ExecutionStatus, unhandled: list[str],
          late: int | None = None) -> tuple[ExecutionPhase, str, str]:
    """The execution's end once the finally nodes are done: the main graph's phase, reason and
    message; a run that had Succeeded Fails (FinallyFailed) when a finally node failed unhandled
    or they ran past their time (`late`: finallyTimeoutSeconds)."""
    done = [n for n in finally_nodes(status) if n.phase in FINISHED_NODE_PHASES]
    note = ""
    if late is not None:
        note = f"finally nodes ran past finallyTimeoutSeconds ({late}s)"
    elif unhandled:
        note = f"finally node(s) {', '.join(unhandled[:3])}{' and more' if len(unhandled) > 3 else ''} failed"
    if note and outcome.phase == ExecutionPhase.SUCCEEDED:
        return ExecutionPhase.FAILED, FINALLY_FAILED, f"{outcome.message}; {note}"
    message = f"{outcome.message}; {note}" if note else f"{outcome.message}; {len(done)} finally node(s) done"
    return ExecutionPhase(outcome.phase), outcome.reason, message
