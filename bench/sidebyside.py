"""Side by side: the physical floor of a chain of Jobs, and jobchain, on the same cluster in the same run.

The floor is the least any controller can do: a loop that watches pods and creates the next
Job the moment the previous pod's container is seen terminated, passing its termination
message on. jobchain runs the same chain as one inline execution. Rounds alternate (floor,
jobchain, floor, ...), so both see the same cluster and the same load. Each round's time runs
from just before the first create to the moment the end is seen on a watch: the last container
terminated for the floor, the execution's status Succeeded for jobchain (which includes writing
that status). Prints per-node seconds of each round, the medians and the ratio; asserts nothing.

Run: .venv/bin/python bench/sidebyside.py [--nodes 20] [--rounds 3]
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any

from common import (
    BUSYBOX,
    api_client,
    bench_prefix,
    create_namespace,
    histogram,
    inline_chain,
    load,
    machine,
    operator,
    quantile,
    say,
    subtract,
    watch_events,
)
from kubernetes import client

SCRIPT = 'echo "{}" > /dev/termination-log'


# ---- the floor: about 60 lines --------------------------------------------------------------

def floor_job(namespace: str, run: str, index: int, given: str) -> dict[str, Any]:
    """The same pod as a jobchain node's: busybox, one container, output in the termination message."""
    labels = {"floor-run": run, "floor-node": str(index)}
    container = {"name": "main", "image": BUSYBOX, "imagePullPolicy": "IfNotPresent",
                 "command": ["/bin/sh", "-c", SCRIPT], "env": [{"name": "INPUT", "value": given}],
                 "terminationMessagePath": "/dev/termination-log", "terminationMessagePolicy": "File"}
    return {"apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": f"{run}-{index}", "namespace": namespace, "labels": labels},
            "spec": {"backoffLimit": 0, "ttlSecondsAfterFinished": 60,
                     "template": {"metadata": {"labels": labels},
                                  "spec": {"restartPolicy": "Never", "containers": [container]}}}}


def floor_round(api: client.ApiClient, namespace: str, run: str, nodes: int) -> float:
    """Seconds from the first Job's create to the last node's container seen terminated."""
    batch, core = client.BatchV1Api(api), client.CoreV1Api(api)
    started = time.monotonic()
    batch.create_namespaced_job(namespace, floor_job(namespace, run, 0, ""))
    done: set[int] = set()
    for event in watch_events(core.list_namespaced_pod, namespace, label_selector=f"floor-run={run}"):
        pod = event["object"]
        index = int(pod.metadata.labels["floor-node"])
        term = next((s.state.terminated for s in pod.status.container_statuses or []
                     if s.name == "main" and s.state and s.state.terminated), None)
        if term is None or index in done:
            continue
        done.add(index)
        if term.exit_code != 0:
            raise RuntimeError(f"floor node {index} failed: exit code {term.exit_code}")
        if index + 1 == nodes:
            return time.monotonic() - started
        batch.create_namespaced_job(namespace, floor_job(namespace, run, index + 1, term.message or ""))
    raise AssertionError("unreachable")


# ---- jobchain: the same chain as one execution ----------------------------------------------

def jobchain_round(api: client.ApiClient, namespace: str, run: str, nodes: int) -> float:
    """Seconds from the execution's create to its status Succeeded seen on a watch."""
    custom = client.CustomObjectsApi(api)
    started = time.monotonic()
    custom.create_namespaced_custom_object("jobchain.dev", "v1alpha1", namespace, "workflowexecutions",
                                           inline_chain(run, nodes, SCRIPT))
    for event in watch_events(custom.list_namespaced_custom_object, "jobchain.dev", "v1alpha1", namespace,
                              "workflowexecutions", field_selector=f"metadata.name={run}"):
        phase = (event["object"].get("status") or {}).get("phase")
        if phase in ("Succeeded", "Failed", "Cancelled"):
            if phase != "Succeeded":
                raise RuntimeError(f"execution {run} ended {phase}: {event['object']['status'].get('message')}")
            return time.monotonic() - started
    raise AssertionError("unreachable")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--nodes", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    api = api_client()
    core = client.CoreV1Api(api)
    prefix = bench_prefix()
    floor_ns, chain_ns = prefix + "floor", prefix + "jobchain"
    say(f"machine: {machine()}; {load()}")
    create_namespace(core, floor_ns)
    create_namespace(core, chain_ns)  # before the operator starts (see common.operator)
    with operator(prefix + "jobchain") as proc:
        try:
            floors: list[float] = []
            chains: list[float] = []
            before = histogram(proc.metrics(), "jobchain_handoff_operator_seconds")
            before_0 = histogram(proc.metrics(), "jobchain_handoff_before_create_seconds")
            for r in range(args.rounds):
                floors.append(floor_round(api, floor_ns, f"f{r}", args.nodes))
                say(f"round {r + 1} floor:    {floors[-1]:6.2f}s, {floors[-1] / args.nodes:.3f}s per node; {load()}")
                chains.append(jobchain_round(api, chain_ns, f"c{r}", args.nodes))
                say(f"round {r + 1} jobchain: {chains[-1]:6.2f}s, {chains[-1] / args.nodes:.3f}s per node, "
                    f"ratio {chains[-1] / floors[-1]:.3f}; {load()}")
            share = subtract(histogram(proc.metrics(), "jobchain_handoff_operator_seconds"), before)
            before_create = subtract(histogram(proc.metrics(), "jobchain_handoff_before_create_seconds"), before_0)
        finally:
            core.delete_namespace(floor_ns)
            core.delete_namespace(chain_ns)
    floor_node = statistics.median(floors) / args.nodes
    chain_node = statistics.median(chains) / args.nodes
    ratios = [c / f for c, f in zip(chains, floors, strict=True)]
    p50, p99 = quantile(share, 0.5), quantile(share, 0.99)
    say(f"RESULT {args.nodes}-node chain, median of {args.rounds} alternating rounds: floor {floor_node:.3f}s "
        f"per node, jobchain {chain_node:.3f}s per node, ratio {chain_node / floor_node:.3f} "
        f"(median of per-round ratios {statistics.median(ratios):.3f}); operator share p50 "
        f"{(p50 or 0) * 1000:.0f} ms, p99 {(p99 or 0) * 1000:.0f} ms over {share[-1][1] if share else 0:.0f} "
        f"handoffs (before the create request: p50 {(quantile(before_create, 0.5) or 0) * 1000:.0f} ms, p99 "
        f"{(quantile(before_create, 0.99) or 0) * 1000:.0f} ms); {load()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
