"""The reconcile scheduler: one reconcile at a time per object, bursts coalesced, failures retried later."""

from __future__ import annotations

import asyncio
import threading
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from jobchain.controller import workers as scheduling
from jobchain.controller.workers import Key, Workers

KEY: Key = ("ns", "ex")


class Work:
    """A reconcile that takes a little time and records how many ran at once."""

    def __init__(self, fail_times: int = 0, seconds: float = 0.05) -> None:
        self.calls = 0
        self.active = 0
        self.most_active = 0
        self.fail_times = fail_times
        self.seconds = seconds
        self.lock = threading.Lock()

    def __call__(self, key: Key) -> str:
        with self.lock:
            self.calls += 1
            self.active += 1
            self.most_active = max(self.most_active, self.active)
        try:
            time.sleep(self.seconds)
            if self.calls <= self.fail_times:
                raise RuntimeError("API server unavailable")
            return "Running"
        finally:
            with self.lock:
                self.active -= 1


async def settle(seconds: float) -> None:
    await asyncio.sleep(seconds)


def test_a_burst_of_pokes_during_a_reconcile_runs_exactly_one_more() -> None:
    work = Work(seconds=0.1)

    async def main() -> None:
        sched = Workers(work)
        sched.poke(KEY)
        await settle(0.03)  # the reconcile has read the state by now
        for _ in range(20):  # pod, Job and status events of one node finishing
            sched.poke(KEY)
        await settle(0.5)
        sched.shutdown()

    asyncio.run(main())
    assert work.most_active == 1
    assert work.calls == 2  # the first, and one for everything that arrived while it ran


def test_pokes_before_the_reconcile_starts_need_no_second_one() -> None:
    work = Work(seconds=0.05)

    async def main() -> None:
        sched = Workers(work)
        for _ in range(20):
            sched.poke(KEY)
        await settle(0.3)
        sched.shutdown()

    asyncio.run(main())
    assert work.calls == 1


def test_different_objects_run_in_parallel() -> None:
    work = Work(seconds=0.2)

    async def main() -> None:
        sched = Workers(work, workers=4)
        for i in range(4):
            sched.poke(("ns", f"ex-{i}"))
        await settle(0.5)
        sched.shutdown()

    asyncio.run(main())
    assert work.calls == 4 and work.most_active >= 2  # one slow execution does not hold up the others


def test_a_failure_is_retried_after_a_delay_not_in_a_hot_loop(monkeypatch: Any) -> None:
    monkeypatch.setattr(scheduling, "RETRY_DELAYS", (1.0,))
    work = Work(fail_times=1, seconds=0.01)

    async def main() -> None:
        sched = Workers(work)
        sched.poke(KEY)
        await settle(0.05)
        for _ in range(10):  # events arriving while the retry waits do not run it early
            sched.poke(KEY)
            await settle(0.005)
        calls_before_retry = work.calls
        failures_before_retry = sched.failures(KEY)
        await settle(1.5)
        assert (failures_before_retry, sched.failures(KEY)) == (1, 0)  # reset by the success
        sched.shutdown()
        assert calls_before_retry == 1

    asyncio.run(main())
    assert work.calls >= 2  # the retry ran and succeeded


def test_wake_at_pokes_at_the_given_moment() -> None:
    work = Work(seconds=0.0)
    results: list[str] = []

    async def main() -> None:
        sched = Workers(work, on_result=lambda key, result: results.append(result) and None)
        sched.wake_at(KEY, datetime.now(UTC) + timedelta(seconds=0.6))
        await settle(0.1)
        assert work.calls == 0
        await settle(1.0)
        sched.shutdown()

    asyncio.run(main())
    assert work.calls == 1 and results == ["Running"]
