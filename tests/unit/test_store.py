"""The watch store: never older than what it held, our own writes seen at once, signals only for news."""

from __future__ import annotations

from typing import Any

from jobchain.k8s.store import Store, rv_newer_or_same, trim_pod


def execution(rv: str, phase: str) -> dict[str, Any]:
    return {"metadata": {"namespace": "ns", "name": "run-1", "uid": "u", "resourceVersion": rv},
            "status": {"phase": phase}}


def test_an_older_copy_never_replaces_a_newer_one() -> None:
    # Our status write's response (rv 12) is kept; the watch event of an earlier change (rv 11),
    # arriving after it, must not bring the older status back.
    store = Store()
    assert store.put_execution(execution("12", "Running"), own=True)
    assert not store.put_execution(execution("11", "Pending"))
    held = store.execution("ns", "run-1")
    assert held is not None and held["status"]["phase"] == "Running"


def test_the_echo_of_our_own_write_is_recognised() -> None:
    store = Store()
    store.put_execution(execution("12", "Running"), own=True)
    assert store.is_own_write(execution("12", "Running"))
    assert not store.is_own_write(execution("13", "Running"))  # someone else changed it since


def test_resource_versions_compare_as_numbers() -> None:
    assert rv_newer_or_same("100", "99") and not rv_newer_or_same("99", "100")
    assert rv_newer_or_same("abc", "100")  # not etcd's: never stuck on an old copy


def job(rv: str, **status: Any) -> dict[str, Any]:
    return {"metadata": {"namespace": "ns", "name": "run-1-a", "uid": "job-uid", "resourceVersion": rv,
                         "annotations": {"jobchain.dev/execution": "run-1"}},
            "spec": {"backoffLimit": 0, "template": {"big": "x" * 1000}}, "status": status}


def test_a_job_signals_only_when_its_verdict_changes() -> None:
    store = Store()
    assert store.put_job(job("1"))  # new
    assert not store.put_job(job("2", active=1))  # a pod started: nothing to decide
    assert store.put_job(job("3", failed=1))  # a failed attempt
    assert store.put_job(job("4", failed=1, conditions=[{"type": "Complete", "status": "True"}]))
    assert [j["metadata"]["name"] for j in store.jobs("ns", "run-1")] == ["run-1-a"]
    assert "template" not in store.jobs("ns", "run-1")[0]["spec"]  # trimmed


def pod(rv: str, state: dict[str, Any], phase: str = "Running") -> dict[str, Any]:
    return {"metadata": {"namespace": "ns", "name": "p", "uid": "pod-uid", "resourceVersion": rv,
                         "ownerReferences": [{"kind": "Job", "uid": "job-uid", "controller": True}]},
            "spec": {"containers": [{"name": "main"}]},
            "status": {"phase": phase, "containerStatuses": [{"name": "main", "state": state},
                                                             {"name": "sidecar", "state": {"running": {}}}]}}


def test_a_pod_signals_once_when_the_node_container_terminates_and_the_moment_is_kept() -> None:
    times = iter([5.0, 9.0])
    store = Store(clock=lambda: next(times))
    assert not store.put_pod(pod("1", {"running": {}}))
    assert store.put_pod(pod("2", {"terminated": {"exitCode": 0}}))
    assert not store.put_pod(pod("3", {"terminated": {"exitCode": 0}}, phase="Succeeded"))
    assert store.finished_seen("pod-uid") == 5.0
    assert [p["metadata"]["name"] for p in store.pods("job-uid")] == ["p"]
    store.drop_pod(pod("3", {}))
    assert store.pods("job-uid") == [] and store.finished_seen("pod-uid") is None


def test_a_trimmed_pod_keeps_only_the_node_container() -> None:
    trimmed = trim_pod(pod("1", {"running": {}}))
    assert "spec" not in trimmed
    assert [c["name"] for c in trimmed["status"]["containerStatuses"]] == ["main"]


def test_requests_are_named_as_the_api_server_names_them() -> None:
    from jobchain.k8s.request_counter import request_kind

    base = "https://127.0.0.1:6443"
    assert request_kind("GET", f"{base}/api/v1/namespaces/ns/pods?labelSelector=a") == ("list", "pods", "")
    assert request_kind("GET", f"{base}/api/v1/namespaces/ns/pods/p1/log?tailLines=100") == ("get", "pods", "log")
    assert request_kind("POST", f"{base}/apis/batch/v1/namespaces/ns/jobs") == ("create", "jobs", "")
    assert request_kind("PATCH", f"{base}/apis/jobchain.dev/v1alpha1/namespaces/ns/workflowexecutions/x/status") == (
        "patch", "workflowexecutions", "status")
    assert request_kind("GET", f"{base}/apis/jobchain.dev/v1alpha1/namespaces/ns/workflows/wf") == (
        "get", "workflows", "")


def test_a_trimmed_job_and_pod_keep_what_passes_read_and_nothing_else() -> None:
    # Thousands are held at once: the Job controller's labels, managedFields, probe times and the
    # like are never read (issue 10's memory target).
    from jobchain.k8s.observe import interpret_job, observed_job
    from jobchain.k8s.store import trim_job

    owner = {"apiVersion": "batch/v1", "kind": "Job", "name": "run-1-a", "uid": "job-uid", "controller": True,
             "blockOwnerDeletion": True}
    labels = {"jobchain.dev/node": "a", "jobchain.dev/execution": "run-1", "batch.kubernetes.io/job-name": "run-1-a",
              "controller-uid": "job-uid"}
    full_pod = pod("2", {"terminated": {"exitCode": 3, "reason": "Error", "message": "out", "startedAt": "t0",
                                         "finishedAt": "2026-11-27T12:00:08Z", "containerID": "containerd://x"}},
                   phase="Failed")
    full_pod["metadata"].update(labels=labels, ownerReferences=[owner], managedFields=[{"manager": "kubelet"}])
    trimmed_pod = trim_pod(full_pod)
    assert trimmed_pod["metadata"]["labels"] == {"jobchain.dev/node": "a", "jobchain.dev/execution": "run-1"}
    assert trimmed_pod["metadata"]["ownerReferences"] == [{"kind": "Job", "uid": "job-uid", "controller": True}]
    assert trimmed_pod["status"]["containerStatuses"][0]["state"] == {"terminated": {
        "exitCode": 3, "reason": "Error", "message": "out", "finishedAt": "2026-11-27T12:00:08Z"}}
    assert trim_pod(pod("1", {"waiting": {"reason": "ContainerCreating"}}))["status"]["containerStatuses"][0] == {
        "name": "main", "state": {"waiting": {}}}

    failed = {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "message": "too many",
              "lastProbeTime": "t", "lastTransitionTime": "t"}
    full_job = job("5", failed=1, active=0, ready=0, startTime="t", completionTime=None, conditions=[failed],
                   uncountedTerminatedPods={})
    trimmed_job = trim_job(full_job)
    assert trimmed_job["status"] == {"failed": 1, "completionTime": None, "conditions": [
        {"type": "Failed", "status": "True", "reason": "BackoffLimitExceeded", "message": "too many"}]}
    # What a pass makes of them is the same as from the whole objects.
    assert observed_job("a", trimmed_job, interpret_job(trimmed_job, [trimmed_pod]), None, None) == \
        observed_job("a", full_job, interpret_job(full_job, [full_pod]), None, None)
