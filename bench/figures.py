"""How the benchmarks print a latency distribution (bench/fairness.py and bench/hostsim.py, which run
without a cluster and so do not import common.py)."""

from __future__ import annotations


def quantiles(values: list[float]) -> str:
    """p50, p99 and max of `values` (seconds) in milliseconds, with the count."""
    if not values:
        return "none"
    ordered = sorted(values)

    def q(p: float) -> float:
        return ordered[min(len(ordered) - 1, int(p * len(ordered)))] * 1000

    return f"p50 {q(0.5):.1f} ms, p99 {q(0.99):.1f} ms, max {ordered[-1] * 1000:.1f} ms (n={len(ordered)})"
