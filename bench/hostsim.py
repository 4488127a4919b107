"""The operator's own process on the host, without a cluster: kopf's event processing, our handlers,
the store, the 16 pass threads and the real Kubernetes client, against an API server and a kubelet
simulated in the same process. What the host benchmarks (`bench/memory.py`, `bench/handoff.py`) share.

Why: the cluster benchmarks measure the operator among everything else on a loaded machine; these
measure what the operator itself holds and spends, the same way on any machine, in seconds.

What is real: every watch event goes through kopf's own per-object workers and
`process_resource_event` (its per-object memories, diff-base building, handler matching and
invocation) into the operator's handlers (`controller/handlers.py`), which fill the store and poke
the scheduler; passes run `reconcile_execution` on the scheduler's 16 threads and send their
requests through the Kubernetes client (request serialisation, response decoding).
What is simulated: the HTTP transport (`rest_client.request` answers from memory after `latency`
seconds, sleeping as a thread waiting on a socket does), the API server's objects (Jobs get uid,
resourceVersion, defaults and managedFields as a real one adds them), and the kubelet and Job
controller (each Job gets one pod that goes Pending, Running, terminated, Succeeded, with the Job's
status following), with bodies the size real ones have. kopf's watch connections (aiohttp) are
not: events are handed to kopf's per-object queues directly. kopf's internals used here are
private (`kopf._core`): this is a benchmark, pinned to the kopf of requirements.lock.
"""

from __future__ import annotations

import argparse
import asyncio
import copy
import functools
import itertools
import json
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "operator"))

import kopf  # noqa: E402
from kopf._cogs.structs import ephemera, references  # noqa: E402
from kopf._core.actions import lifecycles  # noqa: E402
from kopf._core.engines import indexing  # noqa: E402
from kopf._core.intents import registries  # noqa: E402
from kopf._core.reactor import inventory, processing, queueing  # noqa: E402
from kubernetes import client  # noqa: E402
from kubernetes.client import rest  # noqa: E402

NAMESPACE = "bench"
SCRIPT = "echo '{}' > $JOBCHAIN_OUTPUT"


_uids = itertools.count(1)


def _uid() -> str:
    """A unique id shaped like the API server's (uuid4 would read /dev/urandom on every call)."""
    return f"00000000-0000-4000-8000-{next(_uids):012d}"


def stamp(moment: float | None = None) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(moment or time.time()))


def chain(name: str, nodes: int, env: int = 0) -> dict[str, Any]:
    """A WorkflowExecution of `nodes` busybox nodes in a chain, its workflow inline (as bench/common);
    each node with `env` entries of its own (distinct values: nothing shared between copies)."""
    steps = [{"name": f"n{i}", "script": SCRIPT, **({"next": [{"node": f"n{i + 1}"}]} if i + 1 < nodes else {}),
              **({"env": [{"name": f"E{k:02d}", "value": f"{(i * env + k) % 4096:03x}"} for k in range(env)]}
                 if env else {})}
             for i in range(nodes)]
    return {"apiVersion": "jobchain.dev/v1alpha1", "kind": "WorkflowExecution",
            "metadata": {"name": name, "namespace": NAMESPACE},
            "spec": {"workflow": {"defaults": {"image": "busybox:1.36"}, "nodes": steps}}}


def _managed(manager: str, operation: str, fields: dict[str, Any], subresource: str | None = None) -> dict[str, Any]:
    entry = {"manager": manager, "operation": operation, "apiVersion": "v1", "time": stamp(),
             "fieldsType": "FieldsV1", "fieldsV1": fields}
    if subresource:
        entry["subresource"] = subresource
    return entry


def _fields_of(obj: Any) -> Any:
    """A managedFields fieldsV1 tree of `obj` (as large as the API server's, roughly)."""
    if isinstance(obj, dict):
        return {f"f:{k}": _fields_of(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return {f"k:{{\"name\":\"{v.get('name', i)}\"}}" if isinstance(v, dict) else f"v:{json.dumps(v)}":
                _fields_of(v) for i, v in enumerate(obj)}
    return {}


class FakeResponse:
    """What urllib3 returns, as far as the Kubernetes client reads it."""

    def __init__(self, status: int, body: Any, reason: str = "OK") -> None:
        self.status = status
        self.reason = reason
        self.data = body if isinstance(body, bytes) else json.dumps(body).encode()
        self.headers = {"content-type": "application/json"}

    def release_conn(self) -> None:
        pass


@dataclass
class SimulatedCluster:
    """The API server's objects and the simulated kubelet, Job controller and watches."""

    loop: asyncio.AbstractEventLoop
    deliver: Callable[[str, dict[str, Any]], None]  # (plural, watch event): into kopf's queues
    latency: float = 0.005  # seconds the API server takes to answer a request
    run_seconds: float = 1.0  # a node's container from Running to terminated
    rv: itertools.count = field(default_factory=lambda: itertools.count(1000))
    # Held as JSON text (as etcd holds them): the simulation's own memory stays out of the figures.
    executions: dict[str, bytes] = field(default_factory=dict)
    phases: dict[str, str] = field(default_factory=dict)
    jobs: dict[str, bytes] = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)
    requests: dict[tuple[str, str], int] = field(default_factory=dict)
    created: dict[str, float] = field(default_factory=dict)  # Job name -> monotonic time its create returned
    terminated: dict[str, float] = field(default_factory=dict)  # Job name -> its pod's terminated event delivered

    def _next(self) -> str:
        return str(next(self.rv))

    # ---- the transport ------------------------------------------------------------------
    def request(self, method: str, url: str, headers: Any = None, body: Any = None, post_params: Any = None,
                _request_timeout: Any = None) -> rest.RESTResponse:
        time.sleep(self.latency)
        parsed = urlparse(url)
        parts = [p for p in parsed.path.split("/") if p]
        payload = json.loads(body if isinstance(body, str | bytes) else json.dumps(body))  # as sent
        with self.lock:  # held for dict operations only: the event loop takes it too
            status, answer = self._answer(method, parts, parse_qs(parsed.query), payload)
        return rest.RESTResponse(FakeResponse(status, answer))

    def _answer(self, method: str, parts: list[str], query: dict[str, list[str]], body: Any) -> tuple[int, Any]:
        rest_ = parts[2:] if parts[0] == "api" else parts[3:]
        resource = rest_[2]  # rest_[1]: the namespace (one)
        name = rest_[3] if len(rest_) > 3 else None
        sub = rest_[4] if len(rest_) > 4 else ""
        key = (method, resource + (f"/{sub}" if sub else ""))
        self.requests[key] = self.requests.get(key, 0) + 1
        if resource == "jobs" and method == "POST":
            return self._create_job(body)
        if resource == "jobs" and method == "GET" and name:
            job = self.jobs.get(name or "")
            return (200, job) if job else (404, {"kind": "Status", "code": 404, "message": "not found"})
        if resource in ("jobs", "pods") and method == "GET":
            return 200, {"kind": "List", "apiVersion": "v1", "metadata": {"resourceVersion": self._next()},
                         "items": [json.loads(j) for j in self.jobs.values()] if resource == "jobs" else []}
        if resource == "workflowexecutions" and sub == "status" and method == "PATCH":
            return self._patch_status(str(name), body)
        if resource == "events" and method == "POST":
            return 201, {**body, "metadata": {**body["metadata"], "name": body["metadata"]["generateName"] + "x",
                                              "uid": _uid(), "resourceVersion": self._next()}}
        raise AssertionError(f"the simulated API server does not answer {method} {'/'.join(parts)}")

    # ---- executions -----------------------------------------------------------------------
    def create_execution(self, body: dict[str, Any]) -> None:
        body = copy.deepcopy(body)
        meta = body["metadata"]
        meta.update(uid=_uid(), resourceVersion=self._next(), generation=1, creationTimestamp=stamp())
        meta["managedFields"] = [_managed("kubectl-create", "Update", _fields_of({"spec": body["spec"]}))]
        self.executions[meta["name"]] = json.dumps(body).encode()
        self.phases[meta["name"]] = ""
        self.deliver("workflowexecutions", {"type": "ADDED", "object": json.loads(self.executions[meta["name"]])})

    def _patch_status(self, name: str, ops: list[dict[str, Any]]) -> tuple[int, Any]:
        body = json.loads(self.executions[name])
        for op in ops:
            assert op["op"] == "add" and op["path"] == "/status", op
            body["status"] = op["value"]
        meta = body["metadata"]
        meta["resourceVersion"] = self._next()
        meta["managedFields"] = [meta["managedFields"][0],
                                 _managed("jobchain", "Update", _fields_of({"status": body["status"]}), "status")]
        text = json.dumps(body).encode()
        self.executions[name] = text
        self.phases[name] = body["status"].get("phase") or ""
        self.loop.call_soon_threadsafe(self.deliver, "workflowexecutions",
                                       {"type": "MODIFIED", "object": json.loads(text)})
        return 200, text

    # ---- Jobs and their pods ------------------------------------------------------------------
    def _create_job(self, manifest: dict[str, Any]) -> tuple[int, Any]:
        meta = manifest["metadata"]
        if meta["name"] in self.jobs:
            return 409, {"kind": "Status", "code": 409, "reason": "AlreadyExists", "message": "exists"}
        job = copy.deepcopy(manifest)
        uid = _uid()
        job["metadata"].update(uid=uid, resourceVersion=self._next(), generation=1, creationTimestamp=stamp())
        job["metadata"]["managedFields"] = [_managed("jobchain", "Update", _fields_of({"spec": job["spec"]}))]
        spec = job["spec"]
        spec.update(completions=1, parallelism=1, completionMode="NonIndexed", suspend=False,
                    podReplacementPolicy="TerminatingOrFailed", manualSelector=False,
                    selector={"matchLabels": {"batch.kubernetes.io/controller-uid": uid}})
        labels = spec["template"].setdefault("metadata", {}).setdefault("labels", {})
        labels.update({"batch.kubernetes.io/controller-uid": uid, "batch.kubernetes.io/job-name": meta["name"],
                       "controller-uid": uid, "job-name": meta["name"]})
        pod_spec = spec["template"]["spec"]
        pod_spec.update(dnsPolicy="ClusterFirst", schedulerName="default-scheduler", securityContext={},
                        terminationGracePeriodSeconds=30)
        for container in pod_spec["containers"]:
            container.setdefault("imagePullPolicy", "IfNotPresent")
            container.setdefault("resources", {})
        job["status"] = {}
        text = json.dumps(job).encode()
        self.jobs[meta["name"]] = text
        self.created[meta["name"]] = time.monotonic()
        self.loop.call_soon_threadsafe(self._job_created, job)
        return 201, text

    def _job_created(self, job: dict[str, Any]) -> None:
        self.deliver("jobs", {"type": "ADDED", "object": json.loads(json.dumps(job))})
        pod = self._pod(job)
        steps: list[tuple[float, Callable[[], None]]] = [
            (0.02, lambda: self._pod_event(pod, "ADDED", "Pending", None)),
            (0.05, lambda: self._pod_event(pod, "MODIFIED", "Pending", {"waiting": {"reason": "ContainerCreating"}})),
            (0.06, lambda: self._job_event(job, {"active": 1, "ready": 0, "startTime": stamp()})),
            (0.3, lambda: self._pod_event(pod, "MODIFIED", "Running", {"running": {"startedAt": stamp()}})),
            (0.32, lambda: self._job_event(job, {"active": 1, "ready": 1, "startTime": stamp()})),
            (0.3 + self.run_seconds, lambda: self._terminated(job, pod)),
            (1.3 + self.run_seconds, lambda: self._pod_event(pod, "MODIFIED", "Succeeded", self._done())),
            (2.3 + self.run_seconds, lambda: self._job_event(job, self._complete())),
        ]
        for delay, step in steps:
            self.loop.call_later(delay, step)

    def _done(self) -> dict[str, Any]:
        return {"terminated": {"exitCode": 0, "reason": "Completed", "message": "{}\n", "startedAt": stamp(),
                               "finishedAt": stamp(),
                               "containerID": "containerd://" + _uid().replace('-', '') * 2}}

    def _terminated(self, job: dict[str, Any], pod: dict[str, Any]) -> None:
        self.terminated[job["metadata"]["name"]] = time.monotonic()
        self._pod_event(pod, "MODIFIED", "Running", self._done())

    def _complete(self) -> dict[str, Any]:
        now = stamp()
        return {"succeeded": 1, "ready": 0, "startTime": now, "completionTime": now, "uncountedTerminatedPods": {},
                "conditions": [{"type": t, "status": "True", "lastProbeTime": now, "lastTransitionTime": now,
                                "reason": r, "message": m} for t, r, m in (
                    ("SuccessCriteriaMet", "CompletionsReached", "Reached expected number of succeeded pods"),
                    ("Complete", "CompletionsReached", "Reached expected number of succeeded pods"))]}

    def _job_event(self, job: dict[str, Any], status: dict[str, Any]) -> None:
        job = {**job, "metadata": {**job["metadata"], "managedFields": list(job["metadata"]["managedFields"])}}
        job["status"] = status
        job["metadata"]["resourceVersion"] = self._next()
        job["metadata"]["managedFields"].append(
            _managed("kube-controller-manager", "Update", _fields_of({"status": status}), "status"))
        text = json.dumps(job).encode()
        with self.lock:
            self.jobs[job["metadata"]["name"]] = text
        self.deliver("jobs", {"type": "MODIFIED", "object": json.loads(text)})

    def _pod(self, job: dict[str, Any]) -> dict[str, Any]:
        template = job["spec"]["template"]
        name = job["metadata"]["name"] + "-" + _uid()[-5:]
        spec = copy.deepcopy(template["spec"])
        spec.update(nodeName="jobchain-control-plane", serviceAccountName="default", serviceAccount="default",
                    enableServiceLinks=True, preemptionPolicy="PreemptLowerPriority", priority=0,
                    tolerations=[{"key": f"node.kubernetes.io/{k}", "operator": "Exists", "effect": "NoExecute",
                                  "tolerationSeconds": 300} for k in ("not-ready", "unreachable")])
        token = {"name": "kube-api-access-" + _uid()[-5:], "projected": {"defaultMode": 420, "sources": [
            {"serviceAccountToken": {"expirationSeconds": 3607, "path": "token"}},
            {"configMap": {"name": "kube-root-ca.crt", "items": [{"key": "ca.crt", "path": "ca.crt"}]}},
            {"downwardAPI": {"items": [{"path": "namespace", "fieldRef": {"apiVersion": "v1",
                                                                          "fieldPath": "metadata.namespace"}}]}}]}}
        spec.setdefault("volumes", []).append(token)
        for container in spec["containers"]:
            container.setdefault("volumeMounts", []).append(
                {"name": token["name"], "readOnly": True, "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount"})
        meta = copy.deepcopy(template.get("metadata") or {})
        meta.update(name=name, namespace=job["metadata"]["namespace"], uid=_uid(),
                    generateName=job["metadata"]["name"] + "-", creationTimestamp=stamp(),
                    ownerReferences=[{"apiVersion": "batch/v1", "kind": "Job", "name": job["metadata"]["name"],
                                      "uid": job["metadata"]["uid"], "controller": True,
                                      "blockOwnerDeletion": True}],
                    finalizers=["batch.kubernetes.io/job-tracking"])
        meta["managedFields"] = [_managed("kube-controller-manager", "Update", _fields_of({"spec": spec}))]
        return {"apiVersion": "v1", "kind": "Pod", "metadata": meta, "spec": spec, "status": {}}

    def _pod_event(self, pod: dict[str, Any], type_: str, phase: str, state: dict[str, Any] | None) -> None:
        pod["metadata"]["resourceVersion"] = self._next()
        now = stamp()
        status: dict[str, Any] = {"phase": phase, "qosClass": "BestEffort"}
        if state is not None:
            status.update(hostIP="172.18.0.2", hostIPs=[{"ip": "172.18.0.2"}], podIP="10.244.0.17",
                          podIPs=[{"ip": "10.244.0.17"}], startTime=now)
            status["conditions"] = [{"type": t, "status": "True", "lastProbeTime": None, "lastTransitionTime": now}
                                    for t in ("PodReadyToStartContainers", "Initialized", "Ready",
                                              "ContainersReady", "PodScheduled")]
            status["containerStatuses"] = [{
                "name": "main", "state": state, "lastState": {}, "ready": "running" in state,
                "restartCount": 0, "image": "docker.io/library/busybox:1.36",
                "imageID": "docker.io/library/busybox@sha256:" + "ab" * 32, "started": "running" in state,
                "volumeMounts": [{"name": "x", "mountPath": "/var/run/secrets/kubernetes.io/serviceaccount",
                                  "readOnly": True, "recursiveReadOnly": "Disabled"}]}]
        pod["status"] = status
        pod["metadata"]["managedFields"] = [pod["metadata"]["managedFields"][0],
                                            _managed("kubelet", "Update", _fields_of({"status": status}), "status")]
        self.deliver("pods", {"type": type_, "object": json.loads(json.dumps(pod))})  # as the watch parses it


class Kopf:
    """kopf's per-object workers and event processing, fed by the simulated watches."""

    def __init__(self, settings: kopf.OperatorSettings) -> None:
        self.registry = registries.get_default_registry()
        self.settings = settings
        self.memories = inventory.ResourceMemories()
        self.indexers = indexing.OperatorIndexers()
        self.indexers.ensure(self.registry._indexing.get_all_handlers())
        self.streams: dict[Any, queueing.Stream] = {}
        self.signaller = asyncio.Condition()
        self.tasks: set[asyncio.Task[None]] = set()
        self.resources = {
            "workflowexecutions": references.Resource("jobchain.dev", "v1alpha1", "workflowexecutions",
                                                      kind="WorkflowExecution", namespaced=True),
            "jobs": references.Resource("batch", "v1", "jobs", kind="Job", namespaced=True),
            "pods": references.Resource("", "v1", "pods", kind="Pod", namespaced=True),
        }
        memo = ephemera.AnyMemo(ephemera.Memo())
        self.event_cpu: list[float] = []  # CPU seconds of kopf's processing + our handler, per event
        self.processor = functools.partial(
            self._timed, lifecycle=lifecycles.get_default_lifecycle(), registry=self.registry,
            settings=settings, indexers=self.indexers, memories=self.memories, memobase=memo,
            event_queue=asyncio.Queue())

    async def _timed(self, **kwargs: Any) -> Any:
        began = time.thread_time()  # the event loop's thread: other tasks run only at a real await
        try:
            return await processing.process_resource_event(**kwargs)
        finally:
            self.event_cpu.append(time.thread_time() - began)

    def deliver(self, plural: str, event: dict[str, Any]) -> None:
        """As kopf's watcher does with an event: into the object's queue, a worker if it has none."""
        resource = self.resources[plural]
        key = (resource, queueing.get_uid(event))  # type: ignore[arg-type]
        stream = self.streams.get(key)
        if stream is None:
            stream = self.streams[key] = queueing.Stream(backlog=asyncio.Queue(), pressure=asyncio.Event())
            task = asyncio.get_running_loop().create_task(queueing.worker(
                signaller=self.signaller, processor=functools.partial(self.processor, resource=resource),
                settings=self.settings, streams=self.streams, key=key))
            self.tasks.add(task)
            task.add_done_callback(self.tasks.discard)
        stream.pressure.set()
        stream.backlog.put_nowait(event)  # type: ignore[arg-type]


def arguments(executions: int, run_seconds: float) -> argparse.ArgumentParser:
    """The options every host benchmark shares: the load and the simulated cluster's speed."""
    parser = argparse.ArgumentParser()
    parser.add_argument("--executions", type=int, default=executions)
    parser.add_argument("--nodes", type=int, default=5)
    parser.add_argument("--latency", type=float, default=0.005, help="seconds the API server takes per request")
    parser.add_argument("--run-seconds", type=float, default=run_seconds,
                        help="a node's container from Running to done")
    return parser


def rss_mib(field_name: str = "VmRSS") -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field_name + ":"):
                return int(line.split()[1]) / 1024
    return 0.0


@dataclass
class Run:
    cluster: SimulatedCluster
    kopf: Kopf
    runtime: Any
    wall: float
    succeeded: int
    handoffs: list[float]  # terminated pod event delivered -> next Job's create returned, seconds
    metric: list[float]  # jobchain_handoff_operator_seconds as the operator observed it
    passes: list[float]  # seconds per pass (reconcile_execution), on its thread
    pass_cpu: list[float] = field(default_factory=list)  # CPU seconds of each pass (its thread's)
    cpu: float = 0.0  # CPU seconds of the whole process (all threads) during the run


async def run(executions: int, nodes: int, latency: float = 0.005, run_seconds: float = 1.0,
              timeout: float = 900.0, on_tick: Callable[[Run], None] | None = None, env: int = 0) -> Run:
    """Starts the operator's handlers on this loop, creates `executions` chains of `nodes` at once,
    and returns when all have finished (or after `timeout` seconds)."""
    from jobchain.controller import handlers, metrics, reconcile

    loop = asyncio.get_running_loop()
    box: dict[str, Kopf] = {}
    cluster = SimulatedCluster(loop, lambda plural, event: box["kopf"].deliver(plural, event), latency, run_seconds)

    def fake_connect(pool_size: int | None = None) -> client.ApiClient:
        api = client.ApiClient(client.Configuration(host="http://simulated"))
        api.rest_client.request = cluster.request  # type: ignore[method-assign]
        return api

    handlers.connect = fake_connect  # type: ignore[attr-defined]
    settings = kopf.OperatorSettings()
    await handlers.configure(settings=settings)
    box["kopf"] = Kopf(settings)
    rt = handlers.runtime()
    rt.store.mark_warm(NAMESPACE)  # the first listing: an empty namespace

    metric: list[float] = []
    observe = metrics.HANDOFF_OPERATOR.observe
    metrics.HANDOFF_OPERATOR.observe = lambda value: (metric.append(value), observe(value))[1]  # type: ignore
    passes: list[float] = []
    original = reconcile.reconcile_execution

    pass_cpu: list[float] = []

    def timed(*args: Any, **kwargs: Any) -> Any:
        began, cpu = time.perf_counter(), time.thread_time()
        try:
            return original(*args, **kwargs)
        finally:
            passes.append(time.perf_counter() - began)
            pass_cpu.append(time.thread_time() - cpu)

    reconcile.reconcile_execution = timed  # type: ignore[assignment]
    names = [f"run-{i:04d}" for i in range(executions)]
    began, cpu = time.monotonic(), time.process_time()
    for name in names:
        cluster.create_execution(chain(name, nodes, env))
    result = Run(cluster, box["kopf"], rt, 0.0, 0, [], metric, passes, pass_cpu)
    while time.monotonic() - began < timeout:
        await asyncio.sleep(0.5)
        done = [n for n in names if cluster.phases[n] in ("Succeeded", "Failed")]
        result.succeeded = sum(1 for n in done if cluster.phases[n] == "Succeeded")
        if on_tick is not None:
            on_tick(result)
        if len(done) == len(names):
            break
    result.wall = time.monotonic() - began
    # Passes still running hold what they read: what is measured after this is what stays held.
    # No new pass starts meanwhile (a resync every minute would otherwise keep large ones coming).
    rt.executions._gate = lambda: False
    await rt.executions.drain()
    result.cpu = time.process_time() - cpu
    reconcile.reconcile_execution = original
    metrics.HANDOFF_OPERATOR.observe = observe  # type: ignore[method-assign]
    # The operator's share as delivered: the terminated pod event handed to kopf -> the next Job's
    # create returned (its name is the next node's, derived like the operator derives it).
    from jobchain.engine.spec.render import job_name
    for name in names:
        for i in range(nodes - 1):
            seen = cluster.terminated.get(job_name(name, f"n{i}"))
            created = cluster.created.get(job_name(name, f"n{i + 1}"))
            if seen is not None and created is not None:
                result.handoffs.append(created - seen)
    return result
