"""The operator's share of a handoff with E executions in flight, on the host alone, and where it goes.

Run: .venv/bin/python bench/handoff.py --executions 100 --nodes 5 [--profile]
Prints the share two ways: as the operator's metric sees it (jobchain_handoff_operator_seconds: from
its handler receiving the pod event to the next Job's create returning) and as delivered (from the
event being handed to kopf's queue, so kopf's own processing and the event loop's queue count too),
and the time per pass. --profile adds cProfile of the passes (all 16 threads, summed) and of the
event loop. Asserts nothing. See bench/hostsim.py for what is real and what is simulated.
"""

from __future__ import annotations

import asyncio
import cProfile
import io
import pstats
import threading
import time
from typing import Any

import hostsim  # type: ignore[import-not-found]
from figures import quantiles  # type: ignore[import-not-found]


def main() -> None:
    parser = hostsim.arguments(executions=100, run_seconds=1.0)
    parser.add_argument("--profile", action="store_true")
    parser.add_argument("--top", type=int, default=30)
    args = parser.parse_args()

    from jobchain.controller import handlers, reconcile  # noqa: F401  (registers the handlers)
    from jobchain.controller.main import _few_malloc_arenas

    _few_malloc_arenas()
    passes_profile: list[pstats.Stats] = []
    lock = threading.Lock()
    if args.profile:
        original = reconcile.reconcile_execution

        def profiled(*a: Any, **kw: Any) -> Any:
            profile = cProfile.Profile()
            try:
                return profile.runcall(original, *a, **kw)
            finally:
                with lock:
                    if passes_profile:
                        passes_profile[0].add(profile)
                    else:
                        passes_profile.append(pstats.Stats(profile))

        reconcile.reconcile_execution = profiled  # type: ignore[assignment]
    loop_profile = cProfile.Profile() if args.profile else None
    began = time.time()
    if loop_profile is not None:
        loop_profile.enable()
    run = asyncio.run(hostsim.run(args.executions, args.nodes, args.latency, args.run_seconds))
    if loop_profile is not None:
        loop_profile.disable()
    print(f"RESULT host, {args.executions} executions x {args.nodes} nodes at once, API latency "
          f"{args.latency * 1000:.0f} ms: {run.succeeded}/{args.executions} Succeeded in {run.wall:.1f}s "
          f"(wall {time.time() - began:.1f}s){' [profiled]' if args.profile else ''}")
    print(f"  operator share as delivered: {quantiles(run.handoffs)}")
    print(f"  operator share, metric:      {quantiles(run.metric)}")
    print(f"  passes:                      {quantiles(run.passes)}")
    print(f"  CPU per pass (its thread):   {quantiles(run.pass_cpu)}, "
          f"mean {sum(run.pass_cpu) / max(1, len(run.pass_cpu)) * 1000:.2f} ms")
    cpu = run.kopf.event_cpu
    print(f"  CPU per watch event (kopf's processing and the handler, on the event loop): "
          f"{quantiles(cpu)}, mean {sum(cpu) / max(1, len(cpu)) * 1000:.2f} ms")
    print(f"  CPU of the process (every thread, the simulation's share included): {run.cpu:.1f}s, "
          f"{run.cpu / (args.executions * args.nodes) * 1000:.1f} ms per node")
    requests = ", ".join(f"{m} {r} {n / (args.executions * args.nodes):.2f}"
                         for (m, r), n in sorted(run.cluster.requests.items()))
    print(f"  requests per node: {requests}")
    for title, stats in (("passes (16 threads, summed)", passes_profile[0] if passes_profile else None),
                         ("event loop", pstats.Stats(loop_profile) if loop_profile else None)):
        if stats is None:
            continue
        out = io.StringIO()
        stats.stream = out  # type: ignore[attr-defined]
        stats.sort_stats("tottime").print_stats(args.top)
        print(f"--- profile: {title}, by own time")
        print("\n".join(line for line in out.getvalue().splitlines()[6:] if line.strip()))


if __name__ == "__main__":
    main()
