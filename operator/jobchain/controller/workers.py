"""Runs reconciles: at most one at a time per object, coalescing bursts of events.

Why: a node finishing produces several events (pod, Job, our own status write) within a
second. Each only means "look again"; running one reconcile per event would race on the
same execution. A poke while a reconcile runs marks the key dirty, and exactly one more
reconcile follows. The blocking Kubernetes client runs in a thread pool, so one slow
execution never stalls the others.

Fair between namespaces: a reconcile waits for a thread in a queue served one namespace at a
time in turn (`FairQueue`, round robin), not first come first served. A namespace with 1,000
runnable executions therefore delays another namespace's next reconcile by at most one pass
per busy namespace, spread over the threads, instead of by its 1,000 passes.

Tasks and timers start in an empty context (contextvars), not the poking handler's: kopf's
handler context holds the event's whole raw body, and a resync timer re-armed after every pass
would keep the first event's body for as long as the execution runs (tests/unit/test_pass_memory.py).

A memory budget bounds the passes running at once by their size, not only by the thread count:
each pass reserves `cost(key)` bytes (an estimate of what it holds while it runs, from the store's
size of the execution) and waits, in its turn, while the passes running hold too much for it to fit.
A pass larger than the whole budget runs alone. Sixteen passes of 500-node executions at once
peaked at 1.5 GiB, three times the chart's memory limit (docs/performance.md). Small passes (at
most a sixteenth of the budget: the usual ones) reserve nothing and never wait for it, nor
behind another namespace's large pass waiting for it: at most budget + threads x budget/16 at once.
Large passes start in the namespaces' turn: none passes one that waits for the budget.

The clock and the timer (`clock`, `later`) are passed in, and `drain()` awaits the reconciles in
flight, so the unit tests drive retries and wake-ups without sleeping.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
from collections import deque
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from typing import Any

from jobchain.controller import metrics

log = logging.getLogger(__name__)

Key = tuple[str, str]
RETRY_DELAYS = (1.0, 2.0, 5.0, 10.0, 30.0)


class FairQueue:
    """Keys waiting for a thread, handed out one namespace at a time in turn (round robin).

    Within a namespace, first come first served; a namespace with nothing waiting takes no turn.
    Pure: no clock, no loop (tests/unit/test_fairness.py)."""

    def __init__(self) -> None:
        self._waiting: dict[str, deque[Key]] = {}
        self._turns: deque[str] = deque()  # namespaces with keys waiting, next turn first

    def push(self, key: Key) -> None:
        queue = self._waiting.get(key[0])
        if queue is None:
            queue = self._waiting[key[0]] = deque()
            self._turns.append(key[0])
        queue.append(key)

    def pop_first(self, may_start: Callable[[Key], bool]) -> Key | None:
        """The next key in turn that `may_start`; a namespace whose next key may not start keeps its
        turn (and its order) and holds up no other namespace."""
        for position, namespace in enumerate(self._turns):
            queue = self._waiting[namespace]
            if may_start(queue[0]):
                del self._turns[position]
                key = queue.popleft()
                if queue:
                    self._turns.append(namespace)
                else:
                    del self._waiting[namespace]
                return key
        return None

    def pop(self) -> Key | None:
        if not self._turns:
            return None
        namespace = self._turns.popleft()
        queue = self._waiting[namespace]
        key = queue.popleft()
        if queue:
            self._turns.append(namespace)  # its next key waits for every other namespace's turn
        else:
            del self._waiting[namespace]
        return key

    def __len__(self) -> int:
        return sum(len(q) for q in self._waiting.values())


class Workers:
    def __init__(self, work: Callable[[Key], Any], workers: int = 8,
                 on_result: Callable[[Key, Any], datetime | None] | None = None,
                 gate: Callable[[], bool] = lambda: True,
                 clock: Callable[[], datetime] = lambda: datetime.now(UTC),
                 later: Callable[..., Any] | None = None,
                 budget: int | None = None, cost: Callable[[Key], int] = lambda key: 0) -> None:
        self._work = work
        self._budget = budget  # bytes the large passes running at once may hold (None: no bound)
        self._small = budget // 16 if budget is not None else 0  # a pass of at most this reserves nothing
        self._cost = cost  # bytes a pass of the key will hold while it runs (an estimate)
        self._reserved = 0  # bytes reserved by the passes running
        self._asks: dict[Key, int] = {}  # bytes each waiting key will reserve
        self._clock = clock
        # later(delay, callback, *args) -> a handle with cancel(); the running loop's call_later by default.
        self._later = later
        # False while this replica stands by (another holds the leader Lease): pokes are dropped
        # and no work starts; taking over pokes every known key again (controller.handlers).
        self._gate = gate
        self._on_result = on_result
        self._executor = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="reconcile")
        self._free = workers  # threads not handed to a reconcile
        self._ready = FairQueue()  # reconciles waiting for a thread
        self._grants: dict[Key, asyncio.Future[None]] = {}
        self._state: dict[Key, str] = {}  # "running" | "dirty"
        self._timers: dict[Key, Any] = {}
        self._failures: dict[Key, int] = {}
        self._backoff: dict[Key, Any] = {}
        self._tasks: set[asyncio.Task[None]] = set()

    def poke(self, key: Key) -> None:
        if not self._gate():
            return
        if key in self._backoff:
            return  # a retry is scheduled after a failure: it will look at everything new
        state = self._state.get(key)
        if state is not None:
            self._state[key] = "dirty"
            return
        self._state[key] = "running"
        # A context of its own: the caller's (kopf's handler context) holds the whole raw event.
        task = asyncio.get_running_loop().create_task(self._run(key), context=contextvars.Context())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def failures(self, key: Key) -> int:
        """How many reconciles of `key` failed in a row before the one now running."""
        return self._failures.get(key, 0)

    def wake_at(self, key: Key, moment: datetime) -> None:
        """Pokes `key` at `moment` (used for deadlines), replacing an earlier timer."""
        old = self._timers.pop(key, None)
        if old is not None:
            old.cancel()
        delay = max(0.0, (moment - self._clock()).total_seconds()) + 0.05
        self._timers[key] = self._call_later(delay, self.poke, key)

    def _call_later(self, delay: float, callback: Callable[..., Any], *args: Any) -> Any:
        if self._later is not None:
            return self._later(delay, callback, *args)
        return asyncio.get_running_loop().call_later(delay, callback, *args, context=contextvars.Context())

    async def drain(self) -> None:
        """Returns once no reconcile runs (timers set for later are not waited for)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    def _retry(self, key: Key) -> None:
        self._backoff.pop(key, None)
        self.poke(key)

    def forget(self, key: Key) -> None:
        retry = self._backoff.pop(key, None)
        if retry is not None:
            retry.cancel()
        timer = self._timers.pop(key, None)
        if timer is not None:
            timer.cancel()
        self._failures.pop(key, None)

    async def _run(self, key: Key) -> None:
        try:
            while True:
                self._state[key] = "running"
                if not self._gate():
                    break
                try:
                    result = await self._on_thread(key)
                except Exception:
                    if not self._gate():
                        log.info("reconcile of %s/%s stopped: this replica is no longer the active one", *key)
                        break
                    metrics.RECONCILE_ERRORS.inc()
                    count = self._failures.get(key, 0)
                    self._failures[key] = count + 1
                    delay = RETRY_DELAYS[min(count, len(RETRY_DELAYS) - 1)]
                    log.exception("reconcile of %s/%s failed; retrying in %ss", key[0], key[1], delay)
                    self._backoff[key] = self._call_later(delay, self._retry, key)
                    break  # events until the retry must not turn it into a hot loop
                else:
                    self._failures.pop(key, None)
                    if self._on_result is not None:
                        moment = self._on_result(key, result)
                        if moment is not None:
                            self.wake_at(key, moment)
                if self._state.get(key) != "dirty":
                    break
        finally:
            self._state.pop(key, None)

    async def _on_thread(self, key: Key) -> Any:
        """The reconcile of `key` on a thread of the pool, once the namespaces' turn gives it one."""
        cost = await self._acquire(key)
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, self._work, key)
        finally:
            self._release(cost)

    def _fits(self, cost: int) -> bool:
        """Whether a pass of `cost` bytes may start now: within the budget, or alone."""
        return (self._budget is None or cost == 0 or self._reserved == 0
                or self._reserved + cost <= self._budget)

    async def _acquire(self, key: Key) -> int:
        """Waits for a thread and its share of the budget, in the namespaces' turn; returns the bytes
        reserved, released by `_release` when the work returns."""
        cost = self._cost(key) if self._budget is not None else 0
        cost = cost if cost > self._small else 0
        if self._free > 0 and not len(self._ready) and self._fits(cost):
            self._free -= 1
            self._reserved += cost
            return cost
        grant: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._grants[key] = grant
        self._asks[key] = cost
        self._ready.push(key)
        self._dispatch()  # a thread may be free, the keys ahead waiting for the budget
        try:
            await grant
        except asyncio.CancelledError:
            if grant.done() and not grant.cancelled():
                self._release(cost)  # granted just as it was cancelled: hand the thread on
            raise
        return cost

    def _release(self, cost: int) -> None:
        """A finished reconcile gives back its thread and bytes; the next keys in turn that fit start."""
        self._free += 1
        self._reserved -= cost
        self._dispatch()

    def _may_start(self) -> Callable[[Key], bool]:
        """Asked of each namespace's next key in turn: small keys may start; large ones in turn while
        they fit, and none after a large one that does not (so it is not passed over for ever)."""
        blocked = False

        def may_start(key: Key) -> bool:
            nonlocal blocked
            if key not in self._grants or self._asks[key] == 0:
                return True
            if blocked or not self._fits(self._asks[key]):
                blocked = True
                return False
            return True

        return may_start

    def _dispatch(self) -> None:
        """Grants threads to waiting keys in the namespaces' turn while one is free; a key that does
        not fit the budget waits at the head of its namespace (its turn kept), the others go on."""
        while self._free > 0:
            key = self._ready.pop_first(self._may_start())
            if key is None:
                return
            grant = self._grants.get(key)
            if grant is None or grant.done():  # cancelled while waiting
                self._grants.pop(key, None)
                self._asks.pop(key, None)
                continue
            cost = self._asks[key]
            del self._grants[key]
            del self._asks[key]
            self._free -= 1
            self._reserved += cost
            grant.set_result(None)

    def shutdown(self) -> None:
        for timer in [*self._timers.values(), *self._backoff.values()]:
            timer.cancel()
        self._executor.shutdown(wait=False, cancel_futures=True)
