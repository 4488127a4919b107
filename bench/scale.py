"""Scale: E executions of N chained nodes created at once, run by one operator.

Prints the wall time (first create to last execution finished), how many Succeeded, the
operator's peak RSS, API requests per node by verb and resource, and the operator's share of
each handoff (p50/p99 of jobchain_handoff_operator_seconds) beside the API server's own time for a
Job POST (apiserver_request_duration_seconds). Requests are counted twice: by the
API server (apiserver_request_total, before and after; it has no client label, so on a shared
cluster it includes the other clients' requests of the same kinds) and by the operator itself
(jobchain_api_requests_total: exactly its own reconciles' requests). Asserts nothing.

Run: .venv/bin/python bench/scale.py [--executions 500] [--nodes 5]
"""

from __future__ import annotations

import argparse
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from common import (
    api_client,
    apiserver_latency,
    apiserver_metrics,
    apiserver_requests,
    bench_prefix,
    create_namespace,
    histogram,
    inline_chain,
    load,
    machine,
    operator,
    peak_rss_mib,
    quantile,
    say,
    subtract,
    watch_events,
)
from kubernetes import client

SCRIPT = 'echo "{}" > /dev/termination-log'
READ_KINDS = ("workflowexecutions", "jobs", "pods")
TERMINAL = ("Succeeded", "Failed", "Cancelled")


def operator_requests(text: str) -> Counter[tuple[str, str, str]]:
    import re

    counts: Counter[tuple[str, str, str]] = Counter()
    for labels, value in re.findall(r'^jobchain_api_requests_total\{([^}]*)\} (\S+)$', text, re.M):
        fields = dict(re.findall(r'(\w+)="([^"]*)"', labels))
        counts[(fields["verb"], fields["resource"], fields["subresource"])] += float(value)
    return counts


def table(title: str, counts: Counter[tuple[str, str, str]], nodes: int) -> dict[str, float]:
    rows = sorted(((v, r, s), c) for (v, r, s), c in counts.items()
                  if c and r in (*READ_KINDS, "workflows", "events"))
    say(f"{title} (per node, {nodes} nodes):")
    for (verb, resource, sub), count in rows:
        say(f"  {verb:7s} {resource + ('/' + sub if sub else ''):28s} {count:8.0f}  {count / nodes:6.3f}")
    reads = sum(c for (v, r, s), c in counts.items() if v in ("get", "list") and r in READ_KINDS and s != "log")
    logs = sum(c for (v, r, s), c in counts.items() if r == "pods" and s == "log")
    patches = sum(c for (v, r, s), c in counts.items() if v == "patch" and r == "workflowexecutions" and s == "status")
    posts = sum(c for (v, r, s), c in counts.items() if v == "create" and r == "jobs")
    return {"reads": reads / nodes, "logs": logs / nodes, "patches": patches / nodes, "posts": posts / nodes}


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--executions", type=int, default=500)
    parser.add_argument("--nodes", type=int, default=5)
    args = parser.parse_args()
    api = api_client()
    core = client.CoreV1Api(api)
    custom = client.CustomObjectsApi(api)
    prefix = bench_prefix()
    namespace = prefix + "scale"
    total_nodes = args.executions * args.nodes
    say(f"machine: {machine()}; {load()}")
    create_namespace(core, namespace)  # before the operator starts (see common.operator)
    with operator(prefix) as proc:
        assert proc.proc is not None
        try:
            time.sleep(2)  # the operator's watches on the new namespace
            share_before = histogram(proc.metrics(), "jobchain_handoff_operator_seconds")
            before_create_0 = histogram(proc.metrics(), "jobchain_handoff_before_create_seconds")
            own_before = operator_requests(proc.metrics())
            server_text = apiserver_metrics()
            server_before = apiserver_requests(server_text)
            post_jobs_before = apiserver_latency(server_text, "POST", "jobs")
            names = [f"s{i:04d}" for i in range(args.executions)]
            started = time.monotonic()

            def create(name: str) -> Any:
                for _ in range(30):  # 429 while another client re-applies the CRD
                    try:
                        return custom.create_namespaced_custom_object("jobchain.dev", "v1alpha1", namespace,
                                                                      "workflowexecutions",
                                                                      inline_chain(name, args.nodes, SCRIPT))
                    except client.ApiException as exc:
                        if exc.status != 429:
                            raise
                        time.sleep(1)
                raise RuntimeError(f"could not create {name}")

            with ThreadPoolExecutor(8) as pool:
                list(pool.map(create, names))
            say(f"{args.executions} executions x {args.nodes} nodes created in {time.monotonic() - started:.1f}s; "
                f"{load()}")
            phases: dict[str, str] = {}
            last_report = time.monotonic()
            in_flight_max = 0
            for event in watch_events(custom.list_namespaced_custom_object, "jobchain.dev", "v1alpha1",
                                      namespace, "workflowexecutions"):
                obj = event["object"]
                phases[obj["metadata"]["name"]] = (obj.get("status") or {}).get("phase") or ""
                in_flight_max = max(in_flight_max, sum(p == "Running" for p in phases.values()))
                done = sum(p in TERMINAL for p in phases.values())
                if time.monotonic() - last_report > 30:
                    last_report = time.monotonic()
                    say(f"  {done}/{args.executions} finished, operator RSS peak "
                        f"{peak_rss_mib(proc.proc.pid):.0f} MiB; {load()}")
                if done == args.executions:
                    break
            wall = time.monotonic() - started
            server_text = apiserver_metrics()
            server_after = apiserver_requests(server_text)
            post_jobs = subtract(apiserver_latency(server_text, "POST", "jobs"), post_jobs_before)
            metrics = proc.metrics()
            rss = peak_rss_mib(proc.proc.pid)
        finally:
            core.delete_namespace(namespace)
    succeeded = sum(p == "Succeeded" for p in phases.values())
    share = subtract(histogram(metrics, "jobchain_handoff_operator_seconds"), share_before)
    p50, p99 = quantile(share, 0.5), quantile(share, 0.99)
    before_create = subtract(histogram(metrics, "jobchain_handoff_before_create_seconds"), before_create_0)
    b50, b99 = quantile(before_create, 0.5), quantile(before_create, 0.99)
    own = operator_requests(metrics)
    own.subtract(own_before)
    server = server_after.copy()
    server.subtract(server_before)
    mine = table("requests counted by the operator (its own only)", own, total_nodes)
    seen = table("requests counted by the API server (all clients of the cluster)", server, total_nodes)
    say(f"RESULT {args.executions} executions x {args.nodes} nodes created at once: wall {wall:.1f}s, "
        f"{succeeded}/{args.executions} Succeeded, up to {in_flight_max} Running at once, operator peak RSS "
        f"{rss:.0f} MiB; per node: reads (GET+LIST of {'/'.join(READ_KINDS)}) {mine['reads']:.3f} own / "
        f"{seen['reads']:.3f} API server, log reads {mine['logs']:.3f}, status PATCHes {mine['patches']:.3f} own / "
        f"{seen['patches']:.3f} API server, Job POSTs {mine['posts']:.3f} own / {seen['posts']:.3f} API server; "
        f"operator share p50 {(p50 or 0) * 1000:.0f} ms, p99 {(p99 or 0) * 1000:.0f} ms over "
        f"{share[-1][1] if share else 0:.0f} handoffs (before the create request is sent: p50 "
        f"{(b50 or 0) * 1000:.0f} ms, p99 {(b99 or 0) * 1000:.0f} ms; the API server's own time for a Job POST: "
        f"p50 {(quantile(post_jobs, 0.5) or 0) * 1000:.0f} ms, p99 {(quantile(post_jobs, 0.99) or 0) * 1000:.0f} ms); "
        f"{load()}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
