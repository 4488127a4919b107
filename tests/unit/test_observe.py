"""How Jobs and pods (as `kubectl get -o json` shows them) are read: finished or not, which pod, what output."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import unquote

import pytest
from kubernetes import client
from kubernetes.client.rest import RESTResponse

from jobchain.api.models import OutputSource
from jobchain.engine.execution.planner import JobState
from jobchain.engine.execution.types import NodeToRead
from jobchain.k8s.observe import Observer, interpret_job, log_text, observed_job, output_of
from jobchain.k8s.store import Store

from .fakes import NoApi, k8s_job, k8s_pod, pod


def job(backoff: int = 0, conditions: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"metadata": {"name": "ex-a-1234"}, "spec": {"backoffLimit": backoff},
            "status": {"conditions": conditions or [], "completionTime": "2026-11-27T12:00:09Z"}}


@pytest.mark.parametrize(
    ("backoff", "conditions", "pods", "state", "pod_name", "retries"),
    [
        (0, [], [pod("p1", "Running")], JobState.RUNNING, None, 0),
        # The pod's own state decides before the Job controller updates the Job (~1 s later).
        (0, [], [pod("p1", "Succeeded", 0)], JobState.SUCCEEDED, "p1", 0),
        (0, [], [pod("p1", "Failed", 2)], JobState.FAILED, "p1", 0),
        # With retries left, a failed pod is not the end.
        (2, [], [pod("p1", "Failed", 1)], JobState.RUNNING, None, 1),
        (2, [], [pod("p1", "Failed", 1), pod("p2", "Succeeded", 0)], JobState.SUCCEEDED, "p2", 1),
        (1, [], [pod("p1", "Failed", 1), pod("p2", "Failed", 1)], JobState.FAILED, "p2", 1),
        # The Job's own verdict, even without pods (deadline before a pod started).
        (0, [{"type": "Failed", "status": "True", "reason": "DeadlineExceeded", "message": "too slow"}], [],
         JobState.FAILED, None, 0),
        (0, [{"type": "Complete", "status": "True"}], [pod("p1", "Succeeded", 0)], JobState.SUCCEEDED, "p1", 0),
        (0, [{"type": "Failed", "status": "False"}], [pod("p1", "Running")], JobState.RUNNING, None, 0),
    ],
)
def test_a_job_and_its_pods_read_as_its_state_pod_and_retries(
        backoff: int, conditions: list[dict[str, Any]], pods: list[dict[str, Any]], state: JobState,
        pod_name: str | None, retries: int) -> None:
    result = interpret_job(job(backoff, conditions), pods)
    assert result.state == state
    assert (result.pod["metadata"]["name"] if result.pod else None) == pod_name
    assert result.retries == retries


@pytest.mark.parametrize("stamp", ["2026-11-27T12:00:08Z", "2026-11-27T12:00:08+00:00", "2026-11-27T13:00:08+01:00"])
def test_times_are_stored_in_one_format(stamp: str) -> None:
    p = pod("p1", "Succeeded", 0)
    p["status"]["containerStatuses"][0]["state"]["terminated"]["finishedAt"] = stamp
    seen = observed_job("a", job(), interpret_job(job(), [p]), None, None)
    assert seen.finished_at == "2026-11-27T12:00:08Z"


def test_deadline_message_names_the_reason() -> None:
    j = job(0, [{"type": "Failed", "status": "True", "reason": "DeadlineExceeded", "message": "too slow"}])
    seen = observed_job("a", j, interpret_job(j, []), None, None)
    assert seen.state == JobState.FAILED and seen.message == "DeadlineExceeded: too slow"
    assert seen.finished_at == "2026-11-27T12:00:09Z"


def test_failed_node_message_has_exit_code_and_log_tail() -> None:
    p = pod("p1", "Failed", 3)
    seen = observed_job("a", job(), interpret_job(job(), [p]), None, "disk full")
    assert seen.exit_code == 3 and seen.pod_name == "p1"
    assert seen.message == "exit code 3; last log lines: disk full"


def test_oom_kill_is_named() -> None:
    p = pod("p1", "Failed", 137)
    p["status"]["containerStatuses"][0]["state"]["terminated"]["reason"] = "OOMKilled"
    seen = observed_job("a", job(), interpret_job(job(), [p]), None, None)
    assert "exit code 137 (OOMKilled)" in seen.message


@pytest.mark.parametrize(
    ("source", "p", "log", "expected"),
    [
        (OutputSource.TERMINATION_MESSAGE, pod("p", "Succeeded", 0, message='{"a": 1}'), None, ('{"a": 1}', "")),
        (OutputSource.TERMINATION_MESSAGE, pod("p", "Succeeded", 0), None, (None, "")),
        (OutputSource.ANNOTATION, pod("p", "Succeeded", 0, annotations={"jobchain.dev/output": "x"}), None, ("x", "")),
        (OutputSource.ANNOTATION, pod("p", "Succeeded", 0), None, (None, "")),
        (OutputSource.LOGS, pod("p", "Succeeded", 0), "line\n", ("line\n", "")),
        (OutputSource.LOGS, pod("p", "Succeeded", 0), None, (None, "the pod log could not be read")),
    ],
)
def test_each_output_source_reads_the_output_from_its_own_place(
        source: OutputSource, p: dict[str, Any], log: str | None, expected: tuple[str | None, str]) -> None:
    assert output_of(p, source, lambda size: log) == expected


# ---- the node's container decides, whatever the pod phase and the Job say (issue 10) --------

def with_container(p: dict[str, Any], name: str, state: dict[str, Any]) -> dict[str, Any]:
    p["status"].setdefault("containerStatuses", []).append({"name": name, "state": state})
    return p


@pytest.mark.parametrize(
    ("backoff", "job_status", "pods", "state", "pod_name", "retries"),
    [
        # The first update that shows the container terminated still says Pending or Running.
        (0, {}, [pod("p1", "Pending", 0)], JobState.SUCCEEDED, "p1", 0),
        (0, {}, [pod("p1", "Running", 0)], JobState.SUCCEEDED, "p1", 0),
        (0, {}, [pod("p1", "Running", 4)], JobState.FAILED, "p1", 0),
        # A failed attempt with a retry left is not the end, whatever the phase says.
        (1, {}, [pod("p1", "Running", 4)], JobState.RUNNING, None, 1),
        # An extra container from podTemplate still running does not hold the node back...
        (0, {}, [with_container(pod("p1", "Running", 0), "sidecar", {"running": {}})], JobState.SUCCEEDED, "p1", 0),
        # ...and an extra or init container that ended does not finish it.
        (0, {}, [with_container(pod("p1", "Running"), "sidecar", {"terminated": {"exitCode": 0}})],
         JobState.RUNNING, None, 0),
        # A pod that failed without the node's container terminating: evicted, an init container failed.
        (0, {}, [{"metadata": {"name": "p1"}, "status": {"phase": "Failed", "reason": "Evicted"}}],
         JobState.FAILED, "p1", 0),
        (1, {}, [{"metadata": {"name": "p1"}, "status": {"phase": "Failed", "reason": "Evicted"}},
                 pod("p2", "Pending", 0)], JobState.SUCCEEDED, "p2", 1),
        # A pod deleted before it finished is gone from the watch; the Job controller counted it.
        (0, {"failed": 1}, [], JobState.FAILED, None, 0),
        (1, {"failed": 1}, [pod("p2", "Running")], JobState.RUNNING, None, 1),
        # The Job's own verdict when no pod says anything.
        (0, {"conditions": [{"type": "Complete", "status": "True"}]}, [], JobState.SUCCEEDED, None, 0),
    ],
)
def test_the_node_container_decides(backoff: int, job_status: dict[str, Any], pods: list[dict[str, Any]],
                                    state: JobState, pod_name: str | None, retries: int) -> None:
    j = job(backoff)
    j["status"].update(job_status)
    result = interpret_job(j, pods)
    assert result.state == state
    assert (result.pod["metadata"]["name"] if result.pod else None) == pod_name
    assert result.retries == retries


def test_an_evicted_pod_is_named_in_the_message() -> None:
    p = {"metadata": {"name": "p1"}, "status": {"phase": "Failed", "reason": "Evicted", "message": "low on memory"}}
    seen = observed_job("a", job(), interpret_job(job(), [p]), None, None)
    assert seen.state == JobState.FAILED and seen.message == "pod Evicted: low on memory"


# ---- log tails (issue 8, defects 9 and 10) -------------------------------------------------

def test_a_log_that_is_not_utf8_is_read_with_replacement_characters() -> None:
    assert log_text(b"disk \xff\xfe full\n", 2048) == "disk \ufffd\ufffd full"


def test_a_log_tail_keeps_the_end_and_cuts_at_a_character() -> None:
    data = ("é" * 100 + "RESULT").encode()
    text = log_text(data, 7)  # cuts into the last "é" (2 bytes): its half is dropped
    assert text == "RESULT"


class _Urllib3Response:
    """What urllib3 returns: the log's bytes as the kubelet sent them."""

    def __init__(self, data: bytes) -> None:
        self.data, self.status, self.reason = data, 200, "OK"
        self.headers = {"content-type": "text/plain"}


def test_log_tail_of_a_log_that_is_not_utf8_does_not_raise(monkeypatch: pytest.MonkeyPatch) -> None:
    # The real client, with only the transport replaced: the client itself decodes as UTF-8
    # unless told not to, which raised UnicodeDecodeError and failed every pass of the execution.
    api = client.ApiClient(client.Configuration(host="http://127.0.0.1:1"))
    log = b"ok\n\xff\xfe exit 3\n"
    monkeypatch.setattr(api.rest_client, "request", lambda *a, **k: RESTResponse(_Urllib3Response(log)))
    observer = Observer(api, Store())
    tail = observer.log_tail({"metadata": {"name": "p1", "namespace": "ns"}}, 2048)
    assert tail == "ok\n\ufffd\ufffd exit 3"


# ---- reading from the store (issue 10; issue 8 defect 7) ---------------------------------

def test_a_finished_nodes_job_whose_pod_has_finished_is_not_running() -> None:
    # The last node finished: the Job controller has not yet said Complete (about a second
    # late). The Job must not be seen as still running, or it is deleted with its pod and log
    # when the execution ends (`jobchain logs` then finds nothing).
    store = Store()
    store.put_job(k8s_job("last", "job-uid", active=1))
    store.put_pod(k8s_pod("last-abc", "job-uid", "Running", 0))
    seen = NoApi(store).observe("ns", "run-1", "ex-uid", [])
    assert seen.jobs["last"].state != JobState.RUNNING


def test_a_pod_counts_only_for_the_job_that_owns_it() -> None:
    store = Store()
    store.put_job(k8s_job("a", "job-uid"))
    store.put_pod(k8s_pod("stray", "another-job-uid", "Succeeded", 0))  # same labels, another owner
    seen = NoApi(store).observe("ns", "run-1", "ex-uid", [NodeToRead("a", OutputSource.TERMINATION_MESSAGE)])
    assert seen.jobs["a"].state == JobState.RUNNING


def test_a_job_of_an_older_execution_of_the_same_name_is_ignored() -> None:
    store = Store()
    store.put_job(k8s_job("a", "job-uid", execution_uid="older"))
    seen = NoApi(store).observe("ns", "run-1", "ex-uid", [NodeToRead("a", OutputSource.TERMINATION_MESSAGE)])
    assert seen.jobs == {}


def test_finished_node_output_and_the_time_it_was_seen() -> None:
    store = Store(clock=lambda: 42.0)
    store.put_job(k8s_job("a", "job-uid"))
    store.put_pod(k8s_pod("a-x", "job-uid", "Pending", 0))
    seen = NoApi(store).observe("ns", "run-1", "ex-uid", [NodeToRead("a", OutputSource.TERMINATION_MESSAGE)])
    assert seen.jobs["a"].state == JobState.SUCCEEDED and seen.jobs["a"].raw_output == "{}"
    assert seen.finished_seen == {"a": 42.0}


def test_a_running_nodes_job_missing_from_the_store_is_confirmed_with_the_api_server() -> None:
    asked: list[str] = []

    class Confirming(NoApi):
        def confirm_job(self, namespace: str, name: str, uid: str) -> dict[str, Any] | None:
            asked.append(name)
            return k8s_job("a", "job-uid")

    seen = Confirming(Store()).observe("ns", "run-1", "ex-uid",
                                       [NodeToRead("a", OutputSource.TERMINATION_MESSAGE, "run-1-a")])
    assert asked == ["run-1-a"] and seen.jobs["a"].state == JobState.RUNNING


def test_the_first_pass_in_a_namespace_lists_its_jobs_and_pods_once(monkeypatch: pytest.MonkeyPatch) -> None:
    # After a restart the watches deliver in no set order: the execution's event may come
    # before its Jobs'. Read then, a Job missing from the store would look deleted.
    lists: list[str] = []
    items = {"jobs": [k8s_job("a", "job-uid")], "pods": [k8s_pod("a-x", "job-uid", "Running", 0)]}

    def request(method: str, url: str, *args: Any, **kwargs: Any) -> RESTResponse:
        # The real client, with only the transport replaced: the lists come back as plain dicts.
        lists.append(f"{method} {unquote(url.split('/namespaces/')[1])}")
        kind = url.split("?")[0].rsplit("/", 1)[1]
        return RESTResponse(_Urllib3Response(json.dumps({"items": items[kind]}).encode()))

    api = client.ApiClient(client.Configuration(host="http://127.0.0.1:1"))
    monkeypatch.setattr(api.rest_client, "request", request)
    observer = Observer(api, Store())
    wanted = [NodeToRead("a", OutputSource.TERMINATION_MESSAGE, "run-1-a")]
    first = observer.observe("ns", "run-1", "ex-uid", wanted)
    again = observer.observe("ns", "run-1", "ex-uid", wanted)
    assert first.jobs["a"].state == again.jobs["a"].state == JobState.SUCCEEDED
    assert lists == ["GET ns/jobs?labelSelector=app.kubernetes.io/managed-by=jobchain",
                     "GET ns/pods?labelSelector=app.kubernetes.io/managed-by=jobchain"]
