"""Feeds the workflow queue (`engine.coordination.admission`) from the cluster, and keeps its decisions from racing.

The answer comes from the executions the cluster holds, so it survives a restart. Two things
keep it right:
- Mutual exclusion: passes of different executions run in parallel threads, and two of the same
  Workflow deciding "a slot is free" at once would both start. So the decision and the status
  write that takes the slot happen under one lock per (namespace, Workflow); the write is put into
  the store before the lock is released, so the next decision counts it.
- A consistent view at admission: the watch store can lag the API server (at a cold start, or
  when many executions arrive at once, kopf delivers each object's events on its own), so it may
  not hold yet the executions created before this one, or this one's own cancel. Lag only ever
  hides members or changes, so a "wait" read from the store is safe (the execution is poked again
  when a slot frees up); a "start" is not: before an execution takes a slot, the executions of
  the namespace are listed once from the API server and the decision is made from that list.
  That is one LIST per start of an execution of a Workflow with a limit, and none otherwise.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from jobchain.api.models import WorkflowExecutionSpec
from jobchain.engine.coordination.admission import QUEUED, Admission, Member, member_of, place, waiting_line
from jobchain.engine.execution.types import WorkflowLookup
from jobchain.k8s.cluster import ExecutionCluster
from jobchain.k8s.store import Store

_guard = threading.Lock()
_locks: dict[tuple[str, str], threading.Lock] = {}


def _lock(namespace: str, workflow: str) -> threading.Lock:
    with _guard:
        return _locks.setdefault((namespace, workflow), threading.Lock())


def _members(bodies: list[dict[str, Any]], workflow: str) -> list[Member]:
    return [m for b in bodies if (m := member_of(b, workflow)) is not None]


@contextmanager
def slot(cluster: ExecutionCluster, body: dict[str, Any], spec: WorkflowExecutionSpec,
         lookup: WorkflowLookup | None) -> Iterator[Admission]:
    """Whether the execution (`body`, as the pass read it) may go on: no limit, or a slot is free.
    Held for the whole pass of an execution that is about to start under a limit."""
    limit = lookup.spec.maxConcurrentExecutions if lookup is not None and lookup.spec is not None else None
    if limit is None or spec.workflowRef is None or spec.cancel:
        yield Admission()
        return
    meta = body["metadata"]
    namespace, name, workflow = meta["namespace"], meta["name"], spec.workflowRef.name
    with _lock(namespace, workflow):
        # This execution as this pass read it, not as the store holds it by now: a decision about
        # one copy must not be acted on with another (a cancel received meanwhile is the next pass's).
        held = [b for b in cluster.store.executions_in(namespace) if _name(b) != name]
        waiting = place(name, _members([*held, body], workflow), limit)
        if waiting is not None:
            yield Admission(waiting)
            return
        listed = cluster.list_executions(namespace)
        own = next((b for b in listed if _name(b) == name), None)
        # Only this execution's copy goes into the store: one of another execution, put there after
        # its DELETED event was handled, would stay in the store's queue for good.
        if own is None:
            cluster.store.drop_execution(namespace, name)
            yield Admission(gone=True)
        elif (own.get("metadata") or {}).get("deletionTimestamp"):
            yield Admission(gone=True)
        elif any((own.get(part) or {}) != (body.get(part) or {}) for part in ("spec", "status")):
            cluster.store.put_execution(own)  # newer wins: the next pass reads it
            yield Admission(changed=True)
        else:
            yield Admission(place(name, _members(listed, workflow), limit))


__all__ = ["QUEUED", "Admission", "slot", "waiting_for"]


def _name(body: dict[str, Any]) -> str:
    return str((body.get("metadata") or {}).get("name") or "")


def waiting_for(store: Store, namespace: str, workflow: str, held_only: bool = False) -> list[str]:
    """The executions waiting in the queue of a Workflow, first in line first (to look at them again
    when the queue moves). `held_only`: only those a pass has held as Queued already."""
    bodies = [b for b in store.executions_in(namespace)
              if not held_only or (b.get("status") or {}).get("reason") == QUEUED]
    return [m.name for m in waiting_line(_members(bodies, workflow))]
