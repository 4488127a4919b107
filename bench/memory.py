"""What the operator holds in memory with E executions x N nodes created at once, on the host alone.

Run: .venv/bin/python bench/memory.py --executions 500 --nodes 5 [--tracemalloc]
The largest workflow within the limits, per execution (docs/performance.md, "One tenant's memory"):
     .venv/bin/python bench/memory.py --executions 40 --nodes 500 --env 100 --timeout 60
Prints the process's resident memory (after start, peak, at the end), what the store and kopf's
per-object memories hold (deep sizes), and with --tracemalloc the lines that hold the most at the
peak of traced memory; with --objects, after the passes end and `gc`, the live objects by type and
pymalloc's arenas (what is held, told from memory freed but kept by the allocator). Asserts
nothing. See bench/hostsim.py for what is real and what is simulated; the simulation keeps its own
objects as JSON text, and says how much that is. Measured once the passes in flight have ended.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import gc
import sys
import time
import tracemalloc
from collections.abc import Iterable
from typing import Any

import hostsim  # type: ignore[import-not-found]
from figures import quantiles  # type: ignore[import-not-found]


def deep_size(objects: Iterable[Any]) -> int:
    """Bytes held by `objects` and everything they reach (each object counted once)."""
    seen: set[int] = set()
    stack = list(objects)
    total = 0
    while stack:
        obj = stack.pop()
        if id(obj) in seen or isinstance(obj, type):
            continue
        seen.add(id(obj))
        total += sys.getsizeof(obj)
        if isinstance(obj, dict):
            stack.extend(obj.keys())
            stack.extend(obj.values())
        elif isinstance(obj, list | tuple | set | frozenset):
            stack.extend(obj)
        elif hasattr(obj, "__dict__"):
            stack.append(vars(obj))
        elif hasattr(obj, "__slots__"):
            stack.extend(getattr(obj, s) for s in obj.__slots__ if hasattr(obj, s))
    return total


def _print_held_objects() -> None:
    """What the live Python objects are, by type (count, shallow bytes), and pymalloc's arenas:
    tells objects still held from memory freed but kept by the allocator (fragmentation)."""
    gc.collect()
    by_type: dict[str, list[int]] = {}
    for obj in gc.get_objects():
        entry = by_type.setdefault(type(obj).__name__, [0, 0])
        entry[0] += 1
        entry[1] += sys.getsizeof(obj)
    print("  live objects tracked by gc, by type (count, shallow MiB):")
    for name, (count, size) in sorted(by_type.items(), key=lambda kv: -kv[1][1])[:12]:
        print(f"    {size / 2**20:7.2f} MiB {count:8d}  {name}")
    sys._debugmallocstats()


def _trimmed_rss() -> float:
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    return float(hostsim.rss_mib())


def main() -> None:
    parser = hostsim.arguments(executions=500, run_seconds=0.5)
    parser.add_argument("--tracemalloc", action="store_true", help="also trace allocations (slower)")
    parser.add_argument("--objects", action="store_true",
                        help="at the end: live objects by type, and pymalloc's arenas (on stderr)")
    parser.add_argument("--env", type=int, default=0, help="env entries of each node (100: the limit)")
    parser.add_argument("--timeout", type=float, default=900.0, help="stop after this many seconds")
    args = parser.parse_args()

    from jobchain.controller import handlers  # noqa: F401  (registers the handlers, as the operator does)
    from jobchain.controller.main import _few_malloc_arenas

    _few_malloc_arenas()
    gc.collect()
    start = hostsim.rss_mib()
    peak_traced = [0]
    if args.tracemalloc:
        tracemalloc.start(1)
    snapshot: list[tracemalloc.Snapshot] = []
    snapshot_at = [0]

    def tick(run: hostsim.Run) -> None:
        # A snapshot near the peak: taken when what is traced now grew a tenth past the last one.
        if args.tracemalloc:
            current, peak = tracemalloc.get_traced_memory()
            peak_traced[0] = max(peak_traced[0], peak)
            if current > 1.1 * snapshot_at[0]:
                snapshot_at[0] = current
                snapshot[:] = [tracemalloc.take_snapshot()]

    began = time.time()
    run = asyncio.run(hostsim.run(args.executions, args.nodes, args.latency, args.run_seconds, on_tick=tick,
                                  timeout=args.timeout, env=args.env))
    end = hostsim.rss_mib()
    gc.collect()
    store = run.runtime.store
    store_bytes = deep_size([store._executions, store._jobs, store._jobs_of, store._pods, store._pods_of,
                             store._finished_seen, store._own_versions])
    kopf_bytes = deep_size([run.kopf.memories._items])
    sim_bytes = sum(len(v) for v in [*run.cluster.executions.values(), *run.cluster.jobs.values()])
    print(f"RESULT host, {args.executions} executions x {args.nodes} nodes at once: {run.succeeded}/{args.executions} "
          f"Succeeded in {run.wall:.1f}s (wall {time.time() - began:.1f}s); RSS after start {start:.1f} MiB, "
          f"peak {hostsim.rss_mib('VmHWM'):.1f} MiB, at the end {end:.1f} MiB")
    trimmed = _trimmed_rss()
    print(f"  RSS at the end after gc and malloc_trim (what is still held, not freed-and-kept): {trimmed:.1f} MiB")
    print(f"  store: {store.sizes()}, {store_bytes / 2**20:.1f} MiB deep; kopf's per-object memories: "
          f"{len(run.kopf.memories._items)} objects, {kopf_bytes / 2**20:.1f} MiB deep; "
          f"the simulation's own objects (JSON text) {sim_bytes / 2**20:.1f} MiB")
    print(f"  passes: {len(run.passes)}, {quantiles(run.passes)}; CPU of the process {run.cpu:.1f}s, "
          f"{run.cpu / (args.executions * args.nodes) * 1000:.1f} ms per node")
    if args.objects:
        _print_held_objects()
    held = trimmed - start - sim_bytes / 2**20
    print(f"  per execution: {held / args.executions:.2f} MiB of RSS held (after malloc_trim, less the "
          f"simulation's own text), {store_bytes / 2**20 / args.executions:.2f} MiB in the store")
    if snapshot:
        print(f"  traced peak {peak_traced[0] / 2**20:.1f} MiB; the lines holding most when "
              f"{snapshot_at[0] / 2**20:.1f} MiB were traced:")
        for stat in snapshot[0].statistics("lineno")[:25]:
            frame = stat.traceback[0]
            print(f"    {stat.size / 2**20:7.2f} MiB {stat.count:8d} blocks  {frame.filename}:{frame.lineno}")


if __name__ == "__main__":
    main()
