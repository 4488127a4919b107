"""How Jobs and pods (as `kubectl get -o json` shows them) are read: finished or not, which pod, what output."""

from __future__ import annotations

from typing import Any

import pytest

from jobchain.api.models import OutputSource
from jobchain.engine.planner import JobState
from jobchain.k8s.observe import interpret_job, observed_job, output_of


def job(backoff: int = 0, conditions: list[dict[str, Any]] | None = None) -> dict[str, Any]:
    return {"metadata": {"name": "ex-a-1234"}, "spec": {"backoffLimit": backoff},
            "status": {"conditions": conditions or [], "completionTime": "2026-11-27T12:00:09Z"}}


def pod(name: str, phase: str, exit_code: int | None = None, message: str | None = None,
        annotations: dict[str, str] | None = None) -> dict[str, Any]:
    state: dict[str, Any] = {"running": {}}
    if exit_code is not None:
        state = {"terminated": {"exitCode": exit_code, "finishedAt": "2026-11-27T12:00:08Z",
                                "reason": "Completed" if exit_code == 0 else "Error",
                                **({"message": message} if message is not None else {})}}
    return {"metadata": {"name": name, "annotations": annotations or {}},
            "status": {"phase": phase, "containerStatuses": [{"name": "main", "state": state}]}}


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
def test_interpret_job(backoff: int, conditions: list[dict[str, Any]], pods: list[dict[str, Any]],
                       state: JobState, pod_name: str | None, retries: int) -> None:
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
def test_output_sources(source: OutputSource, p: dict[str, Any], log: str | None,
                        expected: tuple[str | None, str]) -> None:
    assert output_of(p, source, lambda size: log) == expected
