"""The reconcile workers: one reconcile at a time per object, bursts coalesced, failures retried later.

No sleeps: a reconcile blocks on an event the test releases, `drain()` awaits the reconciles in
flight, and timers (retries, wake-ups) go to a fake the test fires by hand."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from jobchain.controller import workers as scheduling
from jobchain.controller.workers import Key, Workers

KEY: Key = ("ns", "ex")
T0 = datetime(2026, 12, 7, 12, 0, tzinfo=UTC)


class Work:
    """A reconcile that waits for `release` (set unless `hold`), and records how many ran at once."""

    def __init__(self, fail_times: int = 0, hold: bool = False, meet: int = 0) -> None:
        self.calls = 0
        self.active = 0
        self.most_active = 0
        self.fail_times = fail_times
        self.started = threading.Event()
        self.release = threading.Event()
        if not hold:
            self.release.set()
        # meet > 1: every reconcile waits until that many run at once (they fail if they never do)
        self.barrier = threading.Barrier(meet) if meet > 1 else None
        self.lock = threading.Lock()

    def __call__(self, key: Key) -> str:
        with self.lock:
            self.calls += 1
            self.active += 1
            self.most_active = max(self.most_active, self.active)
        self.started.set()
        try:
            if self.barrier is not None:
                self.barrier.wait(timeout=30)
            self.release.wait(timeout=30)
            if self.calls <= self.fail_times:
                raise RuntimeError("API server unavailable")
            return "Running"
        finally:
            with self.lock:
                self.active -= 1


class Timers:
    """A fake `later`: records (delay, callback, args); the test fires them."""

    class Handle:
        def __init__(self, owner: Timers, entry: list[Any]) -> None:
            self.owner, self.entry = owner, entry

        def cancel(self) -> None:
            if self.entry in self.owner.pending:
                self.owner.pending.remove(self.entry)

    def __init__(self) -> None:
        self.pending: list[list[Any]] = []

    def later(self, delay: float, callback: Callable[..., Any], *args: Any) -> Timers.Handle:
        entry = [delay, callback, args]
        self.pending.append(entry)
        return Timers.Handle(self, entry)

    def delays(self) -> list[float]:
        return [e[0] for e in self.pending]

    def fire(self) -> None:
        due, self.pending = self.pending, []
        for _, callback, args in due:
            callback(*args)


async def wait_for(event: threading.Event) -> None:
    assert await asyncio.get_running_loop().run_in_executor(None, event.wait, 30)


def test_a_burst_of_pokes_during_a_reconcile_runs_exactly_one_more() -> None:
    work = Work(hold=True)

    async def main() -> None:
        workers = Workers(work)
        workers.poke(KEY)
        await wait_for(work.started)  # the reconcile has read the state by now
        for _ in range(20):  # pod, Job and status events of one node finishing
            workers.poke(KEY)
        work.release.set()
        await workers.drain()
        workers.shutdown()

    asyncio.run(main())
    assert work.most_active == 1
    assert work.calls == 2  # the first, and one for everything that arrived while it ran


def test_pokes_before_the_reconcile_starts_need_no_second_one() -> None:
    work = Work()

    async def main() -> None:
        workers = Workers(work)
        for _ in range(20):
            workers.poke(KEY)
        await workers.drain()
        workers.shutdown()

    asyncio.run(main())
    assert work.calls == 1


def test_different_objects_run_in_parallel() -> None:
    work = Work(meet=4)  # each reconcile waits until all four run at once

    async def main() -> None:
        workers = Workers(work, workers=4)
        for i in range(4):
            workers.poke(("ns", f"ex-{i}"))
        await workers.drain()
        workers.shutdown()

    asyncio.run(main())
    assert work.calls == 4 and work.most_active == 4  # one slow execution does not hold up the others


def test_a_failure_is_retried_after_a_delay_not_in_a_hot_loop(monkeypatch: Any) -> None:
    monkeypatch.setattr(scheduling, "RETRY_DELAYS", (1.0,))
    work = Work(fail_times=1)
    timers = Timers()

    async def main() -> None:
        workers = Workers(work, later=timers.later)
        workers.poke(KEY)
        await workers.drain()
        assert (work.calls, workers.failures(KEY), timers.delays()) == (1, 1, [1.0])
        for _ in range(10):  # events arriving while the retry waits do not run it early
            workers.poke(KEY)
        await workers.drain()
        assert work.calls == 1
        timers.fire()  # the retry's moment
        await workers.drain()
        assert (work.calls, workers.failures(KEY)) == (2, 0)  # it ran, succeeded, and the count reset
        workers.shutdown()

    asyncio.run(main())


def test_wake_at_pokes_at_the_given_moment() -> None:
    work = Work()
    results: list[str] = []
    timers = Timers()

    async def main() -> None:
        workers = Workers(work, on_result=lambda key, result: results.append(result) and None,
                          clock=lambda: T0, later=timers.later)
        workers.wake_at(KEY, T0 + timedelta(seconds=0.6))
        assert timers.delays() == [0.65]  # the moment, and a little after (never before)
        await workers.drain()
        assert work.calls == 0
        workers.wake_at(KEY, T0 + timedelta(seconds=2))  # a later moment replaces the earlier timer
        assert timers.delays() == [2.05]
        timers.fire()
        await workers.drain()
        workers.shutdown()

    asyncio.run(main())
    assert work.calls == 1 and results == ["Running"]
