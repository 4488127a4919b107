"""The watch store under every order of delivery: one execution name, deleted and created again
(a new uid), with our own status writes written through. kopf handles the events of one uid in
order but different uids apart, and a pass's write-through can land before or after any event.
Whatever the order, once everything is delivered the store holds what the API server holds: the
newest copy of the execution that exists, or nothing (a queue never counts a deleted execution)."""

from __future__ import annotations

from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from jobchain.k8s.store import Store

Delivery = tuple[str, str, dict[str, Any]]  # (stream, kind: event | DELETED | own, object)


@st.composite
def histories(draw: st.DrawFn) -> tuple[list[Delivery], dict[str, Any] | None]:
    """What the API server did to run-1 (creates, status writes by us or others, deletes), as the
    deliveries it causes, in a random order that keeps each uid's watch events in order; and the
    object it holds at the end."""
    rv = 0
    streams: dict[str, list[Delivery]] = {}
    own: list[Delivery] = []
    final: dict[str, Any] | None = None
    generations = draw(st.integers(1, 3))
    for generation in range(generations):
        uid = f"u{generation}"
        events = streams.setdefault(uid, [])
        for step in range(draw(st.integers(1, 4))):
            rv += 1
            obj = {"metadata": {"namespace": "ns", "name": "run-1", "uid": uid, "resourceVersion": str(rv)},
                   "spec": {"workflowRef": {"name": "wf"}}, "status": {"step": step}}
            events.append((uid, "event", obj))
            if step and draw(st.booleans()):  # our pass wrote it: its response is written through too
                own.append((f"own-{rv}", "own", obj))
            final = obj
        if generation < generations - 1 or draw(st.booleans()):
            rv += 1
            assert final is not None
            gone = {**final, "metadata": {**final["metadata"], "resourceVersion": str(rv)}}
            events.append((uid, "DELETED", gone))
            final = None
    queues = [list(q) for q in streams.values()] + [[d] for d in own]
    order: list[Delivery] = []
    while any(queues):
        live = [q for q in queues if q]
        order.append(draw(st.sampled_from(live)).pop(0))
    return order, final


def deliver(store: Store, delivery: Delivery) -> None:
    """As controller/handlers.execution_changed and controller/reconcile's write-through do."""
    _, kind, obj = delivery
    meta = obj["metadata"]
    if kind == "DELETED":
        store.drop_execution(meta["namespace"], meta["name"], uid=meta["uid"])
    elif kind == "own":
        store.put_execution(obj, own=True)
    elif not store.is_own_write(obj):
        store.put_execution(obj)


@settings(max_examples=300, deadline=None)
@given(histories())
def test_once_everything_is_delivered_the_store_holds_what_the_api_server_holds(
        history: tuple[list[Delivery], dict[str, Any] | None]) -> None:
    order, final = history
    store = Store()
    for delivery in order:
        deliver(store, delivery)
    held = store.execution("ns", "run-1")
    if final is None:
        assert held is None and store.executions_in("ns") == []
    else:
        assert held is not None and held["metadata"] == final["metadata"]
