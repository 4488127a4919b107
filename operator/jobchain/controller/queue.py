"""Feeds the workflow queue (`engine.queue`) from the watch store, and keeps its decisions from racing.

The answer comes from the executions the store holds, so it survives a restart. What memory adds
is only mutual exclusion: passes of different executions run in parallel threads, and two of the
same Workflow deciding "a slot is free" at once would both start. So the decision and the status
write that takes the slot happen under one lock per (namespace, Workflow); the write is put into
the store before the lock is released, so the next decision counts it.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager

from jobchain.api.models import WorkflowExecutionSpec
from jobchain.engine.queue import Waiting, member_of, place, waiting_line
from jobchain.engine.types import WorkflowLookup
from jobchain.k8s.store import Store

_guard = threading.Lock()
_locks: dict[tuple[str, str], threading.Lock] = {}


def _lock(namespace: str, workflow: str) -> threading.Lock:
    with _guard:
        return _locks.setdefault((namespace, workflow), threading.Lock())


@contextmanager
def slot(store: Store, namespace: str, name: str, spec: WorkflowExecutionSpec,
         lookup: WorkflowLookup | None) -> Iterator[Waiting | None]:
    """Yields how the execution waits, or None when it may go on (no limit, or a slot is free).
    Held for the whole pass of an execution that is about to start under a limit."""
    limit = lookup.spec.maxConcurrentExecutions if lookup is not None and lookup.spec is not None else None
    if limit is None or spec.workflowRef is None or spec.cancel:
        yield None
        return
    workflow = spec.workflowRef.name
    with _lock(namespace, workflow):
        members = [m for b in store.executions_in(namespace) if (m := member_of(b, workflow)) is not None]
        yield place(name, members, limit)


def waiting_for(store: Store, namespace: str, workflow: str) -> list[str]:
    """The executions waiting in the queue of a Workflow (to look at them when a slot frees up)."""
    members = [m for b in store.executions_in(namespace) if (m := member_of(b, workflow)) is not None]
    return [m.name for m in waiting_line(members)]
