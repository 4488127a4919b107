"""The queue of a Workflow with `maxConcurrentExecutions`: may this execution start now, or where does it wait?

Pure, and derived from the executions of the workflow as the cluster holds them, never from memory:
after a restart the same executions give the same answer (which copy of them is read, the watch
store or the API server, is `controller.admission_gate`'s choice). An
execution holds a slot from the moment its Workflow snapshot is taken (it is Running) until it
finishes; the others wait in creation order (name breaks ties). A cancelled one leaves the queue.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from jobchain.api.models import TERMINAL_EXECUTION_PHASES

QUEUED = "Queued"  # the reason of an execution held waiting


@dataclass(frozen=True)
class Member:
    """One execution of the workflow, as far as the queue cares."""

    name: str
    created: str  # creationTimestamp
    started: bool  # its Workflow snapshot is taken: it holds a slot
    finished: bool
    cancel: bool = False


@dataclass(frozen=True)
class Waiting:
    running: int
    limit: int
    position: int  # 1: the next to start

    @property
    def message(self) -> str:
        return f"waiting: {self.running} of {self.limit} running, position {self.position}"


@dataclass(frozen=True)
class Admission:
    """What the queue says of an execution about to start (the planner acts on it)."""

    waiting: Waiting | None = None  # how it waits; None: it may go on
    changed: bool = False  # the API server holds a newer spec of it (a cancel not delivered yet): look again
    gone: bool = False  # the API server no longer holds it


def member_of(body: dict[str, Any], workflow: str) -> Member | None:
    """The execution as a queue member, if it runs `workflow` by workflowRef."""
    spec = body.get("spec") or {}
    if spec.get("workflow") is not None or (spec.get("workflowRef") or {}).get("name") != workflow:
        return None
    meta = body.get("metadata") or {}
    status = body.get("status") or {}
    finished = status.get("phase") in TERMINAL_EXECUTION_PHASES or bool(meta.get("deletionTimestamp"))
    return Member(meta.get("name", ""), meta.get("creationTimestamp") or "", status.get("workflowSpec") is not None,
                  finished, bool(spec.get("cancel")))


def waiting_line(members: list[Member]) -> list[Member]:
    """The executions waiting for a slot, first in line first."""
    line = [m for m in members if not m.started and not m.finished and not m.cancel]
    return sorted(line, key=lambda m: (m.created, m.name))


def place(name: str, members: list[Member], limit: int) -> Waiting | None:
    """None when `name` may start now; else how it waits."""
    running = sum(1 for m in members if m.started and not m.finished)
    line = [m.name for m in waiting_line(members)]
    if name not in line:
        return None  # started already, finished or cancelled: not the queue's business
    index = line.index(name)
    if index < limit - running:
        return None
    return Waiting(running, limit, index + 1 - max(0, limit - running))
