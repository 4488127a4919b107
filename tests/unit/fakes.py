"""Fakes of the cluster for unit tests that need no API server.

- the CLI: `FakeCluster`, the CLI's cluster calls (`ClusterCalls`) over dicts in memory, and
  `execution()`, a WorkflowExecution as the CLI reads it;
- the dashboard: `FakeClient`, its read-only client answering from a list or failing like a dead
  cluster, and `dashboard_execution()` of the ROUTING_SPEC workflow;
- the operator's Kubernetes layer: `pod()`, `k8s_job()` and `k8s_pod()` as the API server returns
  them, `NoApi`, an Observer that reads only its store, and `fake_writer()`, a Writer on the real
  client whose transport answers from a list (`FakeResponse`), with `job_to_create()` to send it.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from typing import Any

import urllib3
from kubernetes import client
from kubernetes.client.rest import RESTResponse

from jobchain.api.vocabulary import EXECUTIONS, WORKFLOWS
from jobchain.cli.cluster import CliCluster, ClusterCalls, LogNotReady
from jobchain.cli.errors import CliError
from jobchain.k8s.observe import Observer
from jobchain.k8s.store import Store
from jobchain.k8s.writes import Writer

# ---- the CLI ------------------------------------------------------------------------------
WORKFLOW = {
    "apiVersion": "jobchain.dev/v1alpha1",
    "kind": "Workflow",
    "metadata": {"name": "etl", "namespace": "ns"},
    "spec": {
        "params": [{"name": "size", "default": "1"}, {"name": "target"}],
        "defaults": {"image": "busybox:1.36"},
        "nodes": [{"name": "extract", "script": "echo hi", "next": [{"node": "load"}]},
                  {"name": "load", "script": "echo ok"}],
    },
}


def execution(name: str, phase: str, nodes: list[dict[str, Any]], **status: Any) -> dict[str, Any]:
    return {
        "apiVersion": "jobchain.dev/v1alpha1",
        "kind": "WorkflowExecution",
        "metadata": {"name": name, "namespace": "ns", "creationTimestamp": "2026-01-01T10:00:00Z",
                     "managedFields": [{"manager": "kubectl"}]},
        "spec": {"workflowRef": {"name": "etl"}},
        "status": {"phase": phase, "workflowName": "etl", "nodes": nodes, **status},
    }


class FakeCluster:
    """The real CliCluster's interface (`ClusterCalls`) over dicts in memory (no API client)."""

    def __init__(self) -> None:
        self.namespace = "ns"
        self.objects: dict[tuple[str, str], dict[str, Any]] = {(WORKFLOWS, "etl"): WORKFLOW}
        self.created: list[dict[str, Any]] = []
        self.patched: list[str] = []
        self.stopped: list[str] = []
        self.deleted: list[str] = []
        self.elsewhere: list[tuple[str, dict[str, Any]]] = []  # (plural, object) in other namespaces
        self.merge_patches: list[tuple[str, dict[str, Any]]] = []  # (execution, patch) of patch_execution
        self.frames: list[dict[str, Any]] = []  # what watch_execution yields
        self.pods: dict[str, list[str]] = {}  # node -> pod names
        self.logs: dict[str, str | None] = {}  # pod -> log (None: gone)

    def get(self, plural: str, name: str) -> dict[str, Any]:
        if (plural, name) not in self.objects:
            raise CliError(f"{plural} {name!r} not found")
        return self.objects[(plural, name)]

    def list_objects(self, plural: str) -> list[dict[str, Any]]:
        return [o for (p, _), o in self.objects.items() if p == plural]

    def list_selected(self, plural: str, selector: str | None, all_namespaces: bool) -> list[dict[str, Any]]:
        """Equality selectors only (`k=v,k2=v2`), enough for the tests; other namespaces live in
        `self.elsewhere`."""
        wanted = dict(part.split("=", 1) for part in selector.split(",")) if selector else {}
        items = self.list_objects(plural) + ([o for p, o in self.elsewhere if p == plural] if all_namespaces else [])
        return [o for o in items
                if all(((o.get("metadata") or {}).get("labels") or {}).get(k) == v for k, v in wanted.items())]

    def delete_execution(self, name: str) -> None:
        self.get(EXECUTIONS, name)
        del self.objects[(EXECUTIONS, name)]
        self.deleted.append(name)

    def create_execution(self, body: dict[str, Any]) -> dict[str, Any]:
        self.created.append(body)
        return {**body, "metadata": {"name": body["metadata"]["generateName"] + "x7k2p"}}

    def cancel_execution(self, name: str) -> dict[str, Any]:
        self.patched.append(name)
        return self.objects[(EXECUTIONS, name)]

    def stop_execution(self, name: str) -> dict[str, Any]:
        self.stopped.append(name)
        return self.objects[(EXECUTIONS, name)]

    def patch_execution(self, name: str, patch: dict[str, Any]) -> dict[str, Any]:
        self.merge_patches.append((name, patch))
        return self.objects[(EXECUTIONS, name)]

    def watch_execution(self, name: str) -> Iterator[dict[str, Any]]:
        yield from self.frames

    def node_pods(self, execution: str, node: str) -> list[dict[str, Any]]:
        return [{"metadata": {"name": pod}} for pod in self.pods.get(node, [])]

    def with_whole_outputs(self, execution: dict[str, Any]) -> dict[str, Any]:
        return execution  # (no output kept in a ConfigMap here)

    def read_log(self, pod: str) -> str | None:
        log = self.logs.get(pod)
        if log == "NOT-READY":
            raise LogNotReady("container main is waiting to start: ContainerCreating")
        return log

    def follow_log(self, pod: str) -> Iterator[str]:
        yield from (self.read_log(pod) or "").splitlines()


# Both satisfy the Protocol the commands take (checked by mypy: hack/test.sh runs it on this file).
_REAL: type[ClusterCalls] = CliCluster
_FAKE: type[ClusterCalls] = FakeCluster


# ---- the dashboard ------------------------------------------------------------------------
ROUTING_SPEC = {
    "params": [{"name": "rows", "default": "42"}],
    "defaults": {"image": "busybox:1.36"},
    "nodes": [
        {"name": "extract", "script": "x", "next": [
            {"node": "bulk-load", "type": "condition", "when": "output.rows > 10"},
            {"node": "small-load", "type": "condition", "when": "output.rows <= 10"},
            {"node": "alert", "type": "failure"},
        ]},
        {"name": "bulk-load", "script": "x", "next": [{"node": "done", "type": "always"}]},
        {"name": "small-load", "script": "x", "next": [{"node": "done", "type": "always"}]},
        {"name": "done", "join": "any", "script": "x"},
        {"name": "alert", "script": "x"},
    ],
}


def dashboard_execution(nodes: list[dict[str, Any]], phase: str = "Running",
                        name: str = "routing-abc") -> dict[str, Any]:
    return {
        "metadata": {"name": name, "namespace": "ns", "uid": "u1", "resourceVersion": "7",
                     "creationTimestamp": "2026-01-01T00:00:00Z"},
        "spec": {"workflowRef": {"name": "routing"}, "params": {"rows": "7"}},
        "status": {"phase": phase, "workflowName": "routing", "workflowSpec": ROUTING_SPEC, "params": {"rows": "7"},
                   "progress": "2/5", "nodes": nodes},
    }


class FakeClient:
    """Stands in for the read-only client: answers from a dict, or fails like a dead cluster."""

    host = "https://127.0.0.1:1"

    def __init__(self) -> None:
        self.down = True
        self.items: list[dict[str, Any]] = []
        self.lists = 0
        self.back = threading.Event()  # set when the cluster is reachable again: the hub's retry wait ends
        self.hang = threading.Event()  # a watch stays open until the test ends

    def list_objects(self, plural: str, namespace: str | None) -> dict[str, Any]:
        self.lists += 1
        if self.down:
            raise urllib3.exceptions.MaxRetryError(None, "/", OSError("Connection refused"))  # type: ignore[arg-type]
        return {"metadata": {"resourceVersion": "1"}, "items": list(self.items)}

    def watch(self, plural: str, namespace: str | None, version: str) -> Any:
        if self.down:
            raise urllib3.exceptions.ProtocolError("Connection reset")
        self.hang.wait(30)
        return iter(())

    def namespaces(self) -> list[str]:
        return ["ns", "other"]

    def get(self, plural: str, namespace: str, name: str) -> dict[str, Any] | None:
        return None

    def node_pods(self, namespace: str, execution: str, node: str) -> list[dict[str, Any]]:
        return [{"metadata": {"name": f"{execution}-{node}-pod"}}]

    def open_log_stream(self, namespace: str, pod: str) -> Any:
        raise AssertionError(f"followed pod {pod}")


# ---- the operator's Kubernetes layer: Jobs and pods as the API server returns them ----------
def pod(name: str, phase: str, exit_code: int | None = None, message: str | None = None,
        annotations: dict[str, str] | None = None) -> dict[str, Any]:
    state: dict[str, Any] = {"running": {}}
    if exit_code is not None:
        state = {"terminated": {"exitCode": exit_code, "finishedAt": "2026-11-27T12:00:08Z",
                                "reason": "Completed" if exit_code == 0 else "Error",
                                **({"message": message} if message is not None else {})}}
    return {"metadata": {"name": name, "annotations": annotations or {}},
            "status": {"phase": phase, "containerStatuses": [{"name": "main", "state": state}]}}


def k8s_job(node: str, uid: str, execution_uid: str = "ex-uid", **status: Any) -> dict[str, Any]:
    return {"metadata": {"name": f"run-1-{node}", "namespace": "ns", "uid": uid, "resourceVersion": "10",
                         "labels": {"jobchain.dev/node": node, "jobchain.dev/execution": "run-1"},
                         "annotations": {"jobchain.dev/execution": "run-1"},
                         "ownerReferences": [{"kind": "WorkflowExecution", "uid": execution_uid}]},
            "spec": {"backoffLimit": 0}, "status": status}


def k8s_pod(name: str, job_uid: str, phase: str, exit_code: int | None = None) -> dict[str, Any]:
    p = pod(name, phase, exit_code, message="{}" if exit_code == 0 else None)
    p["metadata"].update({"namespace": "ns", "uid": f"uid-{name}", "resourceVersion": "11",
                          "creationTimestamp": "2026-11-27T12:00:00Z",
                          "ownerReferences": [{"kind": "Job", "uid": job_uid, "controller": True}]})
    return p


class NoApi(Observer):
    """An observer whose API server must not be asked: everything is in the store."""

    def __init__(self, store: Store) -> None:
        super().__init__(client.ApiClient(client.Configuration(host="http://127.0.0.1:1")), store)
        store.mark_warm("ns")

    def confirm_job(self, namespace: str, name: str, uid: str) -> dict[str, Any] | None:
        raise AssertionError(f"asked the API server for Job {name}")


class FakeResponse:
    def __init__(self, status: int, body: object) -> None:
        self.status, self.reason, self.data = status, "", json.dumps(body).encode()
        self.headers = {"content-type": "application/json"}


def fake_writer(answers: list[tuple[int, object]], sent: list[tuple[str, str, object]]) -> Writer:
    """A Writer on the real client, with only the transport replaced by `answers` in order."""
    client_ = client.ApiClient(client.Configuration(host="http://127.0.0.1:1"))

    def request(method: str, url: str, headers: object = None, body: object = None, **_: object) -> RESTResponse:
        sent.append((method, url.split("127.0.0.1:1")[1], body))
        return RESTResponse(FakeResponse(*answers.pop(0)))

    client_.rest_client.request = request  # type: ignore[assignment]
    return Writer(client_)


def job_to_create(owner: str = "ex-uid") -> dict[str, object]:
    return {"metadata": {"name": "run-1-a", "namespace": "ns",
                         "ownerReferences": [{"kind": "WorkflowExecution", "name": "run-1", "uid": owner}]},
            "spec": {"template": {"spec": {"containers": [{"name": "main", "image": "busybox"}]}}}}
