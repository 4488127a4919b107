"""reconcile_execution against a fake cluster that records every write (sample-controller's
expected-actions style): for each scenario, the Jobs created and deleted, the status written
and the Events posted, in order. Status is stored as the API server would store it, so the
next reconcile reads what a real one would."""

from __future__ import annotations

from datetime import timedelta

import pytest

from jobchain.controller.reconcile import reconcile_execution
from jobchain.engine.spec.render import job_name

from .builders import EXECUTION, NAMESPACE, T0, FakeCluster, WriteFailed, chain, execution_body, node, spec

A, B = job_name(EXECUTION, "a"), job_name(EXECUTION, "b")


def reconcile(cluster: FakeCluster, seconds: float = 0) -> str | None:
    return reconcile_execution(cluster, NAMESPACE, EXECUTION, now=T0 + timedelta(seconds=seconds)).phase


def test_start_creates_the_first_job_then_writes_status_then_posts_events() -> None:
    cluster = FakeCluster(execution_body(chain("a", "b")))
    assert reconcile(cluster) == "Running"
    assert cluster.take_actions() == [
        ("create", "job", "a"), ("patch-status", "workflowexecutions"),
        ("event", "ExecutionStarted"), ("event", "NodeStarted"),
    ]
    assert cluster.status().running == "a"


def test_a_finished_node_starts_the_next_job() -> None:
    cluster = FakeCluster(execution_body(chain("a", "b")))
    reconcile(cluster)
    cluster.take_actions()
    cluster.finish("a", "Succeeded", '{"n": 1}', T0 + timedelta(seconds=1))
    reconcile(cluster, 1)
    assert cluster.take_actions() == [
        ("create", "job", "b"), ("patch-status", "workflowexecutions"),
        ("event", "NodeSucceeded"), ("event", "NodeStarted"),
    ]
    cluster.finish("b", "Succeeded", None, T0 + timedelta(seconds=2))
    assert reconcile(cluster, 2) == "Succeeded"
    assert cluster.take_actions() == [
        ("patch-status", "workflowexecutions"), ("event", "NodeSucceeded"), ("event", "ExecutionSucceeded"),
    ]
    # Nothing changed: nothing is written.
    reconcile(cluster, 3)
    assert cluster.take_actions() == []


def test_a_refused_job_fails_its_node_and_the_next_pass_routes_the_failure() -> None:
    cluster = FakeCluster(execution_body(chain("a", "b")))
    cluster.refuse["a"] = 'Job.batch "x" is invalid: spec.template.spec.containers[0].image: Required value'
    outcome = reconcile_execution(cluster, NAMESPACE, EXECUTION, now=T0)
    assert outcome.wake_at == T0  # routed at once
    assert cluster.take_actions() == [
        ("create", "job", "a"), ("patch-status", "workflowexecutions"),
        ("event", "ExecutionStarted"), ("event", "NodeFailed"),
    ]
    a = cluster.status().nodes[0]
    assert (a.phase, a.jobName) == ("Failed", None)
    assert "Kubernetes refused the node's Job" in a.message
    assert reconcile(cluster, 1) == "Failed"
    assert cluster.take_actions() == [("patch-status", "workflowexecutions"), ("event", "ExecutionFailed")]


def test_an_invalid_spec_fails_the_execution_with_its_problems() -> None:
    body = execution_body(chain("a"), timeoutSeconds="soon")
    cluster = FakeCluster(body)
    assert reconcile(cluster) == "Failed"
    assert cluster.take_actions() == [("patch-status", "workflowexecutions"), ("event", "ExecutionFailed")]
    status = cluster.status()
    assert status.reason == "InvalidSpec"
    assert "spec.timeoutSeconds" in status.message
    assert status.conditions[0].status == "False"
    reconcile(cluster, 1)
    assert cluster.take_actions() == []


def test_cancel_deletes_the_running_job() -> None:
    cluster = FakeCluster(execution_body(chain("a", "b")))
    reconcile(cluster)
    cluster.take_actions()
    cluster.executions[EXECUTION]["spec"]["cancel"] = True
    assert reconcile(cluster, 1) == "Cancelled"
    assert cluster.take_actions() == [
        ("delete", "job", A), ("patch-status", "workflowexecutions"), ("event", "ExecutionCancelled"),
    ]


def test_ttl_deletes_the_finished_execution() -> None:
    cluster = FakeCluster(execution_body(chain("a"), ttlSecondsAfterFinished=30))
    reconcile(cluster)
    cluster.finish("a", "Succeeded", None, T0 + timedelta(seconds=1))
    reconcile(cluster, 1)
    cluster.take_actions()
    outcome = reconcile_execution(cluster, NAMESPACE, EXECUTION, now=T0 + timedelta(seconds=10))
    assert outcome.wake_at == T0 + timedelta(seconds=31)
    assert cluster.take_actions() == []
    assert reconcile(cluster, 31) is None
    assert cluster.take_actions() == [("delete", "workflowexecution", EXECUTION)]


def test_a_status_write_that_fails_posts_no_event_and_the_retry_adopts_the_job() -> None:
    cluster = FakeCluster(execution_body(chain("a", "b")))
    cluster.fail_status_writes = 1
    with pytest.raises(WriteFailed):
        reconcile(cluster)
    assert cluster.take_actions() == [("create", "job", "a"), ("patch-status", "workflowexecutions")]
    assert cluster.status().phase == "Pending"
    # The retry finds the Job (adopts it: no second Job), writes, and only now tells the user.
    assert reconcile(cluster, 1) == "Running"
    assert cluster.take_actions() == [
        ("patch-status", "workflowexecutions"), ("event", "ExecutionStarted"), ("event", "NodeStarted"),
    ]
    assert list(cluster.jobs) == [A]


def test_5_null_members_of_an_output_survive_the_status_write() -> None:
    workflow = spec(node("a", "b"), node("b", script="echo $(nodes.a.output.result)"))
    cluster = FakeCluster(execution_body(workflow))
    reconcile(cluster)
    cluster.finish("a", "Succeeded", '{"result": null, "n": 1}', T0 + timedelta(seconds=1))
    reconcile(cluster, 1)
    assert cluster.status().nodes[0].output == {"result": None, "n": 1}
    # A later pass reads status back from the API server: b's reference still resolves.
    cluster.finish("b", "Succeeded", None, T0 + timedelta(seconds=2))
    assert reconcile(cluster, 2) == "Succeeded"
    assert cluster.status().nodes[0].output == {"result": None, "n": 1}
    assert B in cluster.jobs
