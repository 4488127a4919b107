"""How long a quiet namespace waits for a pass thread while another namespace holds 1,000 runnable executions.

Run: .venv/bin/python bench/fairness.py [--busy 1000] [--threads 16] [--pass-ms 20] [--seconds 20] [--fifo]
The operator's scheduler (controller/workers.py, its 16 threads and its queue) is real; the passes
are simulated: each holds its thread for --pass-ms (a pass's time, sleeping as one waiting on the API
server does). Every busy execution is runnable again as soon as its pass ends (a poke arrives during
each pass), so the busy namespace always has --busy keys waiting. A quiet namespace's execution is
poked every 100 ms (its pod finished); the figure is the time from that poke to its pass starting,
and its handoff (that wait plus its own pass). --fifo hands threads out first come, first served, as
before the namespaces took turns. Asserts nothing.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "operator"))

from figures import quantiles

from jobchain.controller.workers import Key, Workers


class FirstComeFirstServed:
    """The queue as it was: one line for every namespace."""

    def __init__(self) -> None:
        self._line: collections.deque[Key] = collections.deque()

    def push(self, key: Key) -> None:
        self._line.append(key)

    def pop(self) -> Key | None:
        return self._line.popleft() if self._line else None

    def __len__(self) -> int:
        return len(self._line)


async def measure(busy: int, threads: int, pass_seconds: float, seconds: float, fifo: bool) -> dict[str, Any]:
    poked: dict[Key, float] = {}
    waits: list[float] = []
    lock = threading.Lock()
    passes = [0]

    def work(key: Key) -> None:
        started = time.monotonic()
        if key[0] == "quiet":
            with lock:
                waits.append(started - poked.pop(key))
        time.sleep(pass_seconds)
        passes[0] += 1

    sched: Workers

    def after(key: Key, _result: Any) -> None:
        if key[0] == "busy":
            sched.poke(key)  # its next pod event: runnable again at once
        return None

    sched = Workers(work, workers=threads, on_result=after)
    if fifo:
        sched._ready = FirstComeFirstServed()  # type: ignore[assignment]
    for i in range(busy):
        sched.poke(("busy", f"run-{i:04d}"))
    began = time.monotonic()
    i = 0
    while time.monotonic() - began < seconds:
        await asyncio.sleep(0.1)
        key = ("quiet", f"q-{i}")
        poked[key] = time.monotonic()
        sched.poke(key)
        i += 1
    sched.shutdown()
    return {"waits": waits, "unserved": len(poked), "passes": passes[0]}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--busy", type=int, default=1000)
    parser.add_argument("--threads", type=int, default=16)
    parser.add_argument("--pass-ms", type=float, default=20.0)
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--fifo", action="store_true")
    args = parser.parse_args()
    result = asyncio.run(measure(args.busy, args.threads, args.pass_ms / 1000, args.seconds, args.fifo))
    order = "first come first served" if args.fifo else "namespaces in turn"
    waits = result["waits"]
    print(f"RESULT fairness ({order}), {args.busy} runnable executions in one namespace, {args.threads} threads, "
          f"{args.pass_ms:.0f} ms passes, {args.seconds:.0f}s: {result['passes']} passes")
    print(f"  quiet namespace, poke -> its pass starts: {quantiles(waits)}; "
          f"never served within the run: {result['unserved']}")
    print(f"  quiet namespace's handoff (that wait + its pass): {quantiles([w + args.pass_ms / 1000 for w in waits])}")


if __name__ == "__main__":
    main()
