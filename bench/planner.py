"""Benchmark of the pure planner: time per plan() call and status size, for wide and long workflows.

Prints figures; asserts nothing. Run: .venv/bin/python bench/planner.py
Why: the operator calls plan() on every event of an execution, and the status it returns is
written to etcd, so both the time per call and the status size must stay small as workflows grow.
"""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

from jobchain.api.models import ExecutionStatus, WorkflowExecutionSpec, WorkflowSpec
from jobchain.engine.execution.planner import ExecutionInput, JobState, ObservedJob, WorkflowLookup, iso, plan


def chain(n: int, parallel: bool) -> WorkflowSpec:
    nodes = []
    for i in range(n):
        node: dict[str, object] = {"name": f"n{i}", "script": "echo hi > $JOBCHAIN_OUTPUT"}
        if not parallel and i + 1 < n:
            node["next"] = [{"node": f"n{i + 1}"}]
        nodes.append(node)
    return WorkflowSpec.model_validate(
        {"defaults": {"image": "busybox:1.36"}, "parallelism": 100 if parallel else 1, "nodes": nodes})


def run(n: int, parallel: bool, output_bytes: int) -> None:
    spec = chain(n, parallel)
    now = datetime(2026, 1, 1, tzinfo=UTC)
    status = ExecutionStatus()
    observed: dict[str, ObservedJob] = {}
    calls, spent = 0, 0.0
    payload = json.dumps({"blob": "x" * output_bytes})
    lookup = WorkflowLookup("bench", spec)
    while status.phase not in ("Succeeded", "Failed"):
        execution = ExecutionInput("bench", "default", "uid", 1, WorkflowExecutionSpec(workflowRef={"name": "bench"}),
                                   status)
        t0 = time.perf_counter()
        result = plan(execution, observed, now, lookup)
        spent += time.perf_counter() - t0
        calls += 1
        status = result.status
        for job in result.create:
            node = job["metadata"]["labels"]["jobchain.dev/node"]
            observed[node] = ObservedJob(node, job["metadata"]["name"], JobState.SUCCEEDED, "pod", 0, payload,
                                         finished_at=iso(now))
        now += timedelta(seconds=1)
    size = len(json.dumps(status.model_dump(mode="json")).encode())
    truncated = sum(1 for node in status.nodes if node.outputTruncated)
    print(f"{n:4d} nodes {'parallel' if parallel else 'chain   '} outputs {output_bytes:6d} B: "
          f"{calls:4d} plan() calls, {spent / calls * 1000:7.2f} ms/call, status {size / 1024:7.1f} KiB, "
          f"{truncated} outputs truncated, phase {status.phase}")


def fan_out(targets: int = 495, parallelism: int = 20) -> None:
    """`targets` condition edges (a third of them false) from five nodes (the schema allows 100 edges
    a node): the case that made one pass take seconds when every edge was evaluated again, with
    every output converted again to CEL."""
    sources = 5
    nodes: list[dict[str, object]] = [{
        "name": f"a{k}", "script": "echo", "next": [
            {"node": f"t{i}", "type": "condition", "when": f"output.n > {i % 3}"}
            for i in range(targets) if i % sources == k],
    } for k in range(sources)]
    nodes += [{"name": f"t{i}", "script": "echo"} for i in range(targets)]
    spec = WorkflowSpec.model_validate({"defaults": {"image": "busybox:1.36"}, "parallelism": parallelism,
                                        "nodes": nodes})
    now = datetime(2026, 1, 1, tzinfo=UTC)
    status = ExecutionStatus()
    observed: dict[str, ObservedJob] = {}
    times: list[float] = []
    lookup = WorkflowLookup("bench", spec)
    while status.phase not in ("Succeeded", "Failed"):
        execution = ExecutionInput("bench", "default", "uid", 1, WorkflowExecutionSpec(workflowRef={"name": "bench"}),
                                   status)
        t0 = time.perf_counter()
        result = plan(execution, observed, now, lookup)
        times.append(time.perf_counter() - t0)
        status = result.status
        for job in result.create:
            node = job["metadata"]["labels"]["jobchain.dev/node"]
            out = '{"n": 2}' if node.startswith("a") else None
            observed[node] = ObservedJob(node, job["metadata"]["name"], JobState.SUCCEEDED, "pod", 0, out,
                                         finished_at=iso(now))
        now += timedelta(seconds=1)
    print(f"   {sources} nodes with {targets} condition edges, parallelism {parallelism}: {len(times)} plan() calls, "
          f"{sum(times) / len(times) * 1000:7.2f} ms/call, slowest {max(times) * 1000:7.2f} ms, phase {status.phase}")


if __name__ == "__main__":
    fan_out()
    for n, parallel, out in [(10, False, 100), (100, False, 100), (500, False, 100), (500, True, 100),
                             (300, False, 30000), (500, True, 30000)]:
        run(n, parallel, out)
