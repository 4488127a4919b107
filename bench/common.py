"""What the cluster benchmarks share: the cluster, an operator process of their own, the machine's
load, the operator's metrics, and the API server's request counters.

The operator runs as a host process from this checkout (as in the e2e tier), watching only the
benchmark's namespaces, so a benchmark never acts on another session's objects.
"""

from __future__ import annotations

import os
import re
import resource
import secrets
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from kubernetes import client, config  # noqa: E402
from tests.e2e import support  # noqa: E402
from tests.e2e.support import OperatorProcess, install_crds  # noqa: E402

KUBECONFIG = os.environ.get("KUBECONFIG", "/var/lib/jobchain-cluster/kubeconfig")
BUSYBOX = "busybox:1.36"


def api_client() -> client.ApiClient:
    return config.new_client_from_config(config_file=KUBECONFIG)


def load() -> str:
    """The machine's load averages (1, 5, 15 min) and core count, printed with every figure."""
    one, five, fifteen = os.getloadavg()
    return f"load {one:.2f} {five:.2f} {fifteen:.2f} on {os.cpu_count()} cores"


def machine() -> str:
    mem = 0
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemTotal:"):
                mem = int(line.split()[1]) // 1024 // 1024
    kernel = os.uname().release
    return f"{os.cpu_count()} cores, {mem} GiB, Linux {kernel}"


def say(text: str) -> None:
    print(f"[{time.strftime('%H:%M:%S', time.gmtime())}Z] {text}", flush=True)


def create_namespace(core: client.CoreV1Api, name: str) -> None:
    """A benchmark's namespace (labelled as one), once pods can be created in it."""
    support.create_namespace(core, name, labels={"jobchain.dev/bench": "true"})


@contextmanager
def operator(prefix: str) -> Iterator[OperatorProcess]:
    """The CRDs installed and an operator of this checkout watching namespaces `prefix*`.

    Create the namespaces it is to watch before: kopf lists the namespaces once at start, then
    watches from a second listing whose items it skips, so a namespace created between the two (a
    moment after the health endpoint answers) is never watched. Two benchmark runs of 29 November
    created theirs then, and their operator sat idle until the timeout (docs/performance.md)."""
    install_crds(KUBECONFIG)
    # Without kopf's per-handler debug lines, as deployed (they cost CPU); JC_BENCH_VERBOSE=1 for them.
    proc = OperatorProcess(KUBECONFIG, Path(tempfile.mkdtemp(prefix="jc-bench-")), namespace_pattern=prefix + "*",
                           verbose=bool(os.environ.get("JC_BENCH_VERBOSE")))
    proc.start()
    try:
        yield proc
    finally:
        proc.stop()
        say(f"operator log: {proc.log_path}")


def bench_prefix() -> str:
    return f"jc-bench-{secrets.token_hex(2)}-"


def peak_rss_mib(pid: int) -> float:
    """The process's peak resident set (VmHWM), in MiB."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def rss_mib(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return 0.0


def own_peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


# ---- Prometheus text ---------------------------------------------------------------------

def histogram(text: str, name: str) -> list[tuple[float, float]]:
    """(upper bound, cumulative count) of a histogram in Prometheus text format."""
    buckets = []
    for le, value in re.findall(rf'^{name}_bucket\{{le="([^"]+)"\}} (\S+)$', text, re.M):
        buckets.append((float("inf") if le == "+Inf" else float(le), float(value)))
    return sorted(buckets)


def quantile(buckets: list[tuple[float, float]], q: float) -> float | None:
    """The q-quantile from cumulative buckets, interpolated linearly inside a bucket (as PromQL)."""
    if not buckets or buckets[-1][1] == 0:
        return None
    total = buckets[-1][1]
    rank = q * total
    lower, below = 0.0, 0.0
    for bound, count in buckets:
        if count >= rank:
            if bound == float("inf"):
                return lower
            inside = count - below
            return lower + (bound - lower) * ((rank - below) / inside if inside else 1.0)
        lower, below = bound, count
    return lower


def subtract(after: list[tuple[float, float]], before: list[tuple[float, float]]) -> list[tuple[float, float]]:
    old = dict(before)
    return [(le, count - old.get(le, 0.0)) for le, count in after]


# ---- the API server's own request counters ------------------------------------------------

REQUEST = re.compile(r'^apiserver_request_total\{([^}]*)\} (\S+)$', re.M)


def apiserver_metrics() -> str:
    """The API server's /metrics, as text: read once before a run and once after it."""
    return subprocess.run(
        [_kubectl(), "--kubeconfig", KUBECONFIG, "get", "--raw", "/metrics"],
        capture_output=True, text=True, check=True, timeout=60,
    ).stdout


def apiserver_requests(text: str) -> Counter[tuple[str, str, str]]:
    """apiserver_request_total by (verb, resource, subresource), summed over codes and scopes, from
    `apiserver_metrics()`.

    The counter has no client label: the benchmark runs on a shared cluster, so it is read before
    and after, the other clients' share is kept small by the benchmark's own quiet (it watches,
    it does not poll), and the benchmarks print these counts beside the operator's own.
    """
    counts: Counter[tuple[str, str, str]] = Counter()
    for labels, value in REQUEST.findall(text):
        fields = dict(re.findall(r'(\w+)="([^"]*)"', labels))
        verb = VERBS.get(fields.get("verb", ""), fields.get("verb", "").lower())
        counts[(verb, fields.get("resource", ""), fields.get("subresource", ""))] += float(value)
    return counts


DURATION = re.compile(r'^apiserver_request_duration_seconds_bucket\{([^}]*)\} (\S+)$', re.M)


def apiserver_latency(text: str, verb: str, resource: str) -> list[tuple[float, float]]:
    """The API server's own time for (verb, resource) requests, as cumulative buckets (le, count),
    from `apiserver_metrics()`: apiserver_request_duration_seconds, summed over scopes. Read before
    and after a run and `subtract`ed, it tells the server's part of a client's round trip from the
    client's."""
    buckets: Counter[float] = Counter()
    for labels, value in DURATION.findall(text):
        fields = dict(re.findall(r'(\w+)="([^"]*)"', labels))
        if fields.get("verb") == verb and fields.get("resource") == resource and not fields.get("subresource"):
            le = fields["le"]
            buckets[float("inf") if le == "+Inf" else float(le)] += float(value)
    return sorted(buckets.items())


# The API server's verbs, named as the operator's own counter names them.
VERBS = {"GET": "get", "LIST": "list", "WATCH": "watch", "POST": "create", "PUT": "update", "PATCH": "patch",
         "DELETE": "delete", "DELETECOLLECTION": "deletecollection", "APPLY": "apply"}


def _kubectl() -> str:
    from tests.e2e.support import tool

    return tool("kubectl")


def custom(api: client.ApiClient) -> client.CustomObjectsApi:
    return client.CustomObjectsApi(api)


def inline_chain(name: str, nodes: int, script: str) -> dict[str, Any]:
    """A WorkflowExecution running `nodes` busybox nodes in a chain, its workflow inline."""
    steps = [{"name": f"n{i}", "script": script, **({"next": [{"node": f"n{i + 1}"}]} if i + 1 < nodes else {})}
             for i in range(nodes)]
    return {"apiVersion": "jobchain.dev/v1alpha1", "kind": "WorkflowExecution", "metadata": {"name": name},
            # No node timeout: with more executions than the kubelet runs pods at once (maxPods),
            # a pod may wait in the scheduler's queue for many minutes, and a Job's deadline counts that.
            "spec": {"workflow": {"defaults": {"image": BUSYBOX}, "nodes": steps}}}


def watch_events(list_call: Any, *args: Any, **kwargs: Any) -> Iterator[dict[str, Any]]:
    """Watch events, forever: a watch the API server ends or refuses for a moment (another client
    re-applying a CRD makes it answer 429 "storage is (re)initializing") is opened again, from the
    current state. The caller stops by leaving the loop."""
    from kubernetes import watch

    while True:
        stream = watch.Watch()
        try:
            yield from stream.stream(list_call, *args, timeout_seconds=300, **kwargs)
        except client.ApiException as exc:
            if exc.status not in (410, 429, 500, 503, 504):
                raise
            time.sleep(1)
        except OSError:
            time.sleep(1)
        finally:
            stream.stop()
