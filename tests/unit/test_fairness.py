"""Namespaces take turns for the reconcile threads: a busy namespace cannot starve a quiet one.

Why: the threads were handed out first come, first served, so a namespace with 1,000 runnable
executions made a quiet namespace's handoff wait for all of their passes. The queue now serves
namespaces round robin; these tests check its order, the delay bound it gives (simulated on a
fake clock: no sleeps), and that the operator's scheduler really uses it.
"""

from __future__ import annotations

import asyncio
import heapq
import threading

from jobchain.controller import workers as scheduling
from jobchain.controller.workers import Key, Workers


def _drain(queue: scheduling.FairQueue) -> list[Key]:
    out = []
    while (key := queue.pop()) is not None:
        out.append(key)
    return out


def test_namespaces_take_turns_and_each_keeps_its_own_order() -> None:
    queue = scheduling.FairQueue()
    for i in range(4):
        queue.push(("busy", f"b{i}"))
    queue.push(("quiet", "q0"))
    queue.push(("other", "o0"))
    queue.push(("other", "o1"))
    assert len(queue) == 7
    assert _drain(queue) == [("busy", "b0"), ("quiet", "q0"), ("other", "o0"), ("busy", "b1"), ("other", "o1"),
                             ("busy", "b2"), ("busy", "b3")]
    assert len(queue) == 0 and queue.pop() is None


def _quiet_wait(threads: int, busy: int, pass_seconds: float, arrives: float) -> float:
    """Seconds the quiet namespace's key waits for a thread when it arrives at `arrives` while a
    namespace holds `busy` runnable keys, each pass taking pass_seconds (a simulated clock)."""
    queue = scheduling.FairQueue()
    for i in range(busy):
        queue.push(("busy", f"e{i}"))
    free_at = [0.0] * threads  # when each thread is next free
    heapq.heapify(free_at)
    pushed = False
    while True:
        now = heapq.heappop(free_at)
        if not pushed and now >= arrives:
            queue.push(("quiet", "q"))
            pushed = True
        key = queue.pop()
        if key == ("quiet", "q"):
            return now - arrives
        if key is None:
            assert not pushed, "the quiet key was never served"
            return 0.0  # the busy namespace was done before the quiet key came
        heapq.heappush(free_at, now + pass_seconds)


def test_a_quiet_namespace_waits_at_most_one_pass_behind_a_thousand_runnable_executions() -> None:
    # 16 threads, 1,000 runnable executions, 100 ms passes: first come first served, the quiet
    # namespace's key arriving at 1 s would wait for ~840 passes / 16 threads = ~5.3 s.
    assert _quiet_wait(threads=16, busy=1000, pass_seconds=0.1, arrives=1.0) <= 0.1
    assert _quiet_wait(threads=16, busy=1000, pass_seconds=0.1, arrives=1.05) <= 0.1


def test_the_scheduler_hands_the_next_thread_to_the_quiet_namespace() -> None:
    order: list[Key] = []
    started, release = threading.Event(), threading.Event()

    def work(key: Key) -> None:
        order.append(key)
        if key == ("busy", "e0"):
            started.set()
            release.wait(10)

    async def main() -> None:
        loop = asyncio.get_running_loop()
        sched = Workers(work, workers=1)
        sched.poke(("busy", "e0"))
        assert await loop.run_in_executor(None, started.wait, 10)
        for i in range(1, 6):
            sched.poke(("busy", f"e{i}"))
        sched.poke(("quiet", "q"))
        while len(sched._ready) < 6:  # each poke's task reaches the queue: a yield, no time passes
            await asyncio.sleep(0)
        release.set()
        while sched._tasks:
            await asyncio.gather(*list(sched._tasks))
        sched.shutdown()

    asyncio.run(main())
    assert order[:3] == [("busy", "e0"), ("busy", "e1"), ("quiet", "q")]
    assert len(order) == 7
