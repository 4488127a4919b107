"""Benchmark of step-to-step handoff on a real cluster: a chain of trivial nodes, timed end to end.

Prints figures; asserts nothing. Needs a cluster with the CRDs and a running operator that
watches the namespace (e.g. `make cluster-up`, then `python -m jobchain.controller -n 'jc-bench-*'`
with --metrics-port 18080), or let this script start the operator itself (the default).
Run: .venv/bin/python bench/handoff.py [--nodes 10] [--runs 3]

What it reports: the execution's wall time, the time per node (pod start + work + handoff),
and the operator's jobchain_node_handoff_seconds histogram (from a node's container finishing,
second resolution, to the next node's Job being created).
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from kubernetes import client, config
from tests.e2e.support import Objects, OperatorProcess, install_crds, wait_for


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--nodes", type=int, default=10)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    kubeconfig = os.environ.get("KUBECONFIG", "/var/lib/jobchain-cluster/kubeconfig")
    api = config.new_client_from_config(config_file=kubeconfig)
    install_crds(kubeconfig)
    namespace = f"jc-bench-{os.getpid()}"
    operator = OperatorProcess(kubeconfig, Path(tempfile.mkdtemp()), namespace_pattern=namespace)
    operator.start()
    core = client.CoreV1Api(api)
    core.create_namespace({"metadata": {"name": namespace}})
    wait_for(lambda: _has_default_sa(core, namespace), 60, "default service account")
    try:
        objects = Objects(api, namespace)
        nodes = [{"name": f"s{i}", "script": "echo $(( ${JOBCHAIN_INPUT:-0} + 1 )) > $JOBCHAIN_OUTPUT",
                  **({"next": [{"node": f"s{i + 1}"}]} if i + 1 < args.nodes else {})} for i in range(args.nodes)]
        objects.create({"apiVersion": "jobchain.dev/v1alpha1", "kind": "Workflow", "metadata": {"name": "chain"},
                        "spec": {"defaults": {"image": "busybox:1.36"}, "nodes": nodes}})
        walls = []
        for run in range(args.runs):
            start = time.monotonic()
            done = objects.run("chain", timeout=600)
            wall = time.monotonic() - start
            walls.append(wall)
            last = done["status"]["nodes"][-1]["output"]
            print(f"run {run + 1}: {done['status']['phase']} in {wall:.1f}s, "
                  f"{wall / args.nodes:.2f}s per node, last output {last}")
        print(f"{args.nodes} nodes x {args.runs} runs: median {statistics.median(walls):.1f}s, "
              f"{statistics.median(walls) / args.nodes:.2f}s per node (pod start + work + handoff)")
        metrics = operator.metrics()
        count = _metric(metrics, "jobchain_node_handoff_seconds_count")
        total = _metric(metrics, "jobchain_node_handoff_seconds_sum")
        if count:
            print(f"handoff (container finished -> next Job created, 1 s resolution): "
                  f"{count:.0f} handoffs, mean {total / count:.2f}s")
            for le, value in re.findall(r'jobchain_node_handoff_seconds_bucket\{le="([^"]+)"\} (\S+)', metrics):
                print(f"  <= {le:>5}s: {float(value):.0f}")
    finally:
        core.delete_namespace(namespace)
        operator.stop()
    return 0


def _has_default_sa(core: client.CoreV1Api, namespace: str) -> bool:
    try:
        core.read_namespaced_service_account("default", namespace)
        return True
    except client.ApiException:
        return False


def _metric(text: str, name: str) -> float:
    match = re.search(rf"^{name} (\S+)$", text, re.M)
    return float(match.group(1)) if match else 0.0


if __name__ == "__main__":
    sys.exit(main())
