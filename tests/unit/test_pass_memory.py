"""What the reconcile workers hold for executions: nothing of the event that poked one, between its
passes; and no more passes of large executions at once than the memory budget holds.

Why: kopf runs each handler in a context (contextvars) that holds the handler's cause, and the
cause holds the whole raw body of the event (a 500-node execution with its managedFields: tens of
MiB as Python objects). A task or timer started from a handler copies that context; a pass's
resync timer, re-armed after every pass, would keep the first event's body for as long as the
execution runs (docs/performance.md, "memory per execution"). And sixteen passes of such executions at once
peaked at 1.5 GiB, three times the chart's memory limit: the budget bounds them by size, while
small passes (the usual ones) run sixteen at once as before.
"""

from __future__ import annotations

import asyncio
import contextvars
import gc
import json
import threading
import weakref
from datetime import UTC, datetime, timedelta
from typing import Any

from jobchain.controller import handlers, reconcile
from jobchain.controller.workers import Key, Workers
from jobchain.k8s.store import Store
from tests.unit.test_store_footprint import big_execution

KEY: Key = ("ns", "ex")
MIB = 1024 * 1024
CAUSE: contextvars.ContextVar[object] = contextvars.ContextVar("cause")  # as kopf's cause_var holds the body


class Body(dict[str, object]):
    """A raw event body (weakly referenceable, so the test can tell whether anything keeps it)."""


def test_the_resync_timer_does_not_keep_the_body_of_the_event_that_poked_the_execution() -> None:
    calls: list[Key] = []

    def work(key: Key) -> str:
        calls.append(key)
        return "Running"

    async def main() -> weakref.ref[Body]:
        # A resync a minute later, on the loop's own timer (as the operator runs).
        workers = Workers(work, on_result=lambda _key, _result: datetime.now(UTC) + timedelta(seconds=60))

        async def handler() -> weakref.ref[Body]:  # kopf's on.event handler, its cause in the context
            body = Body(spec={"workflow": {"nodes": ["..."] * 1000}})
            CAUSE.set(body)
            workers.poke(KEY)
            return weakref.ref(body)

        held = await asyncio.get_running_loop().create_task(handler(), context=contextvars.Context())
        await workers.drain()
        gc.collect()
        assert calls == [KEY] and len(workers._timers) == 1  # the pass ran; its resync is armed
        assert held() is None, "the pass's resync timer keeps the poking event's body alive"
        workers.shutdown()
        return held

    asyncio.run(main())


class Held:
    """A pass that blocks until the test releases it, counting how many run at once."""

    def __init__(self) -> None:
        self.release = threading.Event()
        self.lock = threading.Lock()
        self.active = self.most_active = self.calls = 0

    def __call__(self, key: Key) -> str:
        with self.lock:
            self.calls += 1
            self.active += 1
            self.most_active = max(self.most_active, self.active)
        try:
            assert self.release.wait(timeout=30)
            return "Running"
        finally:
            with self.lock:
                self.active -= 1


async def settle() -> None:
    """Lets the tasks the pokes started reach their thread or their place in the queue (no clock)."""
    for _ in range(50):
        await asyncio.sleep(0)


def running(workers: Workers, threads: int) -> int:
    return threads - workers._free


def test_large_passes_run_only_as_many_at_once_as_the_memory_budget_holds() -> None:
    work = Held()
    costs = {("a", f"big-{i}"): 40 * MIB for i in range(6)}

    async def main() -> None:
        workers = Workers(work, workers=16, budget=100 * MIB, cost=costs.__getitem__)
        for key in costs:
            workers.poke(key)
        await settle()
        assert running(workers, 16) == 2  # 2 x 40 MiB fit in 100 MiB; a third would not
        work.release.set()
        await workers.drain()
        workers.shutdown()

    asyncio.run(main())
    assert work.calls == 6 and work.most_active == 2  # all ran, never more than two at once


def test_a_pass_larger_than_the_budget_runs_alone_and_the_others_follow() -> None:
    work = Held()
    costs = {("a", "huge"): 150 * MIB, ("a", "m1"): 20 * MIB, ("b", "m2"): 20 * MIB, ("c", "m3"): 20 * MIB}

    async def main() -> None:
        workers = Workers(work, workers=16, budget=100 * MIB, cost=costs.__getitem__)
        for key in costs:
            workers.poke(key)
        await settle()
        assert running(workers, 16) == 1  # the huge one alone: it is never refused for good
        work.release.set()
        await workers.drain()
        workers.shutdown()

    asyncio.run(main())
    assert work.calls == 4 and work.most_active in (1, 3)  # the huge one alone, then the three others


def test_a_quiet_namespace_is_not_held_up_behind_a_large_pass_waiting_for_the_budget() -> None:
    work = Held()
    costs = {("busy", "big-1"): 60 * MIB, ("busy", "big-2"): 60 * MIB, ("quiet", "small"): 64 * 1024}

    async def main() -> None:
        workers = Workers(work, workers=16, budget=100 * MIB, cost=costs.__getitem__)
        for key in costs:  # big-2 waits for big-1 (120 MiB would not fit); the quiet one comes after it
            workers.poke(key)
        await settle()
        assert running(workers, 16) == 2  # big-1 and the quiet namespace's pass, at once
        work.release.set()
        await workers.drain()
        workers.shutdown()

    asyncio.run(main())
    assert work.calls == 3


def test_a_large_pass_waiting_for_the_budget_is_not_passed_over_by_other_large_ones() -> None:
    work = Held()
    costs = {("b", "m1"): 60 * MIB, ("a", "big"): 80 * MIB, ("c", "m2"): 30 * MIB}

    async def main() -> None:
        workers = Workers(work, workers=16, budget=100 * MIB, cost=costs.__getitem__)
        for key in costs:  # big waits for m1 (140 MiB would not fit); m2 would fit, but comes after big
            workers.poke(key)
        await settle()
        assert running(workers, 16) == 1
        work.release.set()
        await workers.drain()
        workers.shutdown()

    asyncio.run(main())
    assert work.calls == 3


def test_small_passes_never_wait_for_the_budget() -> None:
    work = Held()
    keys = [(f"ns-{i}", "small") for i in range(16)]

    async def main() -> None:
        workers = Workers(work, workers=16, budget=100 * MIB, cost=lambda key: 64 * 1024)
        for key in keys:
            workers.poke(key)
        await settle()
        assert running(workers, 16) == 16
        work.release.set()
        await workers.drain()
        workers.shutdown()

    asyncio.run(main())
    assert work.calls == 16


def test_the_store_sizes_an_execution_by_its_bulk_for_the_budget() -> None:
    store = Store()
    body = big_execution()
    store.put_execution(body)
    status = body["status"]
    text = json.dumps({"status": {"workflowSpec": status["workflowSpec"], "nodes": status["nodes"]}},
                      separators=(",", ":"))
    assert store.execution_bytes("tenant", "big-1") == len(text.encode()) > MIB  # ~1.5 MB: the largest
    store.drop_execution("tenant", "big-1")
    assert store.execution_bytes("tenant", "big-1") == 0


def test_after_a_pass_of_a_large_execution_the_freed_heap_goes_back_to_the_system(monkeypatch: Any) -> None:
    # glibc keeps what a pass freed: without a trim the operator's RSS stayed at the largest pass's peak.
    store = Store()
    store.put_execution(big_execution())
    store.put_execution({"metadata": {"namespace": "tenant", "name": "small", "uid": "u-s", "resourceVersion": "1"},
                         "spec": {"workflow": {"nodes": [{"name": "a", "image": "busybox", "script": "true"}]}}})
    runtime = handlers.Runtime.__new__(handlers.Runtime)  # only what a pass uses: no API client
    runtime.store, runtime.cluster, runtime.output_limit, runtime.operator_namespace = store, None, 1024, None
    trims: list[Key] = []
    passed: list[str] = []
    monkeypatch.setattr(handlers.reconcile, "reconcile_execution",
                        lambda _cluster, _ns, name, *_a, **_k: passed.append(name) or reconcile.Outcome("Running"))
    monkeypatch.setattr(handlers, "release_free_heap", lambda: trims.append(KEY))
    runtime._reconcile_execution(("tenant", "small"))
    assert passed == ["small"] and trims == []  # a small pass frees little: no trim
    runtime._reconcile_execution(("tenant", "big-1"))
    assert passed == ["small", "big-1"] and trims == [KEY]
