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
                 later: Callable[..., Any] | None = None) -> None:
        self._work = work
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
        await self._acquire(key)
        try:
            return await asyncio.get_running_loop().run_in_executor(self._executor, self._work, key)
        finally:
            self._release()

    async def _acquire(self, key: Key) -> None:
        """Waits for a thread, in the namespaces' turn; released by `_release` when the work returns."""
        if self._free > 0 and not len(self._ready):
            self._free -= 1
            return
        grant: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._grants[key] = grant
        self._ready.push(key)
        try:
            await grant
        except asyncio.CancelledError:
            if grant.done() and not grant.cancelled():
                self._release()  # granted just as it was cancelled: hand the thread on
            raise

    def _release(self) -> None:
        """The thread of a finished reconcile goes to the next key in turn, else back to the pool."""
        while (key := self._ready.pop()) is not None:
            grant = self._grants.pop(key, None)
            if grant is not None and not grant.done():
                grant.set_result(None)
                return
        self._free += 1

    def shutdown(self) -> None:
        for timer in [*self._timers.values(), *self._backoff.values()]:
            timer.cancel()
        self._executor.shutdown(wait=False, cancel_futures=True)
