"""What the reconcile workers keep of an execution between its passes: nothing of the event that poked it.

Why: kopf runs each handler in a context (contextvars) that holds the handler's cause, and the
cause holds the whole raw body of the event (a 500-node execution with its managedFields: tens of
MiB as Python objects). A task or timer started from a handler copies that context; a pass's
resync timer, re-armed after every pass, would keep the first event's body for as long as the
execution runs (docs/performance.md, "memory per execution").
"""

from __future__ import annotations

import asyncio
import contextvars
import gc
import weakref
from datetime import UTC, datetime, timedelta

from jobchain.controller.workers import Key, Workers

KEY: Key = ("ns", "ex")
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
