"""The queue of a Workflow (maxConcurrentExecutions) and retry from the failed node (spec.resumeFrom)."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from jobchain.api.models import ExecutionStatus
from jobchain.controller.admission_gate import waiting_for
from jobchain.controller.reconcile import reconcile_execution
from jobchain.engine.coordination.admission import Member, member_of, place
from jobchain.engine.execution.planner import plan
from jobchain.engine.execution.resume import problem, seed
from jobchain.engine.spec.render import ExecutionRef
from jobchain.k8s.store import Store
from tests.unit.builders import (
    NAMESPACE,
    T0,
    FakeCluster,
    chain,
    created_nodes,
    env_of,
    etl_run,
    execution,
    execution_body,
    job,
    node_status,
    observed,
    pass_of,
    phases,
    simulate,
    with_status,
)


def members(started: int, waiting: int, finished: int = 0) -> list[Member]:
    out = [Member(f"run-{i}", f"2026-11-28T10:00:0{i}Z", True, False) for i in range(started)]
    out += [Member(f"wait-{i}", f"2026-11-28T10:01:0{i}Z", False, False) for i in range(waiting)]
    out += [Member(f"done-{i}", "2026-11-28T09:00:00Z", True, True) for i in range(finished)]
    return out


def test_beyond_the_limit_executions_wait_in_creation_order_with_their_position() -> None:
    line = members(2, 3, finished=4)
    assert [place(f"wait-{i}", line, 2).message for i in range(3)] == [  # type: ignore[union-attr]
        "waiting: 2 of 2 running, position 1",
        "waiting: 2 of 2 running, position 2",
        "waiting: 2 of 2 running, position 3",
    ]
    assert place("run-0", line, 2) is None


def test_a_free_slot_goes_to_the_first_in_line_only() -> None:
    line = members(1, 3)
    assert place("wait-0", line, 2) is None
    assert place("wait-1", line, 2).position == 1  # type: ignore[union-attr]


def test_a_cancelled_waiting_execution_leaves_the_line() -> None:
    line = members(2, 3)
    line[2] = Member("wait-0", line[2].created, False, False, cancel=True)
    assert place("wait-2", line, 2).position == 2  # type: ignore[union-attr]


def test_only_executions_of_the_workflow_by_reference_are_members() -> None:
    body = {"metadata": {"name": "a", "creationTimestamp": "t"}, "spec": {"workflowRef": {"name": "etl"}},
            "status": {"phase": "Running", "workflowSpec": {"nodes": []}}}
    assert member_of(body, "etl") == Member("a", "t", True, False)
    assert member_of(body, "other") is None
    assert member_of({"metadata": {"name": "b"}, "spec": {"workflow": {"nodes": []}}}, "etl") is None


# ---- the queue in the operator, against a watch store that lags the API server -------------------
# At a cold start, or when many executions arrive at once, the store may not hold yet the executions
# created before this one, or this one's own cancel. The store may only make an execution wait; a
# start is decided from a consistent read (one LIST) of the namespace's executions.

def limited(limit: int = 2) -> dict[str, Any]:
    """The Workflow `etl`, at most `limit` executions at once."""
    return {"etl": {**chain("a").model_dump(mode="json", by_alias=True, exclude_none=True),
                    "maxConcurrentExecutions": limit}}


def cluster_of(limit: int, *bodies: dict[str, Any]) -> FakeCluster:
    cluster = FakeCluster(workflows=limited(limit))
    for body in bodies:
        cluster.executions[body["metadata"]["name"]] = body
    return cluster


def test_an_execution_whose_elders_the_store_has_not_received_yet_waits_behind_them() -> None:
    # Three created within one second (the name breaks the tie), one at a time. The store has seen only the last.
    cluster = cluster_of(1, etl_run("etl-b", "2026-11-28T10:00:00Z"), etl_run("etl-a", "2026-11-28T10:00:00Z"),
                         etl_run("etl-c", "2026-11-28T10:00:00Z"))
    cluster.deliver("etl-c")
    assert pass_of(cluster, "etl-c").phase == "Pending"
    assert [a for a in cluster.take_actions() if a[0] != "event"] == [
        ("list", "workflowexecutions"), ("patch-status", "workflowexecutions")]
    assert (cluster.status("etl-c").reason, cluster.status("etl-c").message) == (
        "Queued", "waiting: 0 of 1 running, position 2")
    assert not cluster.jobs
    # The watch catches up; the elders start in creation order, then name: etl-a, not etl-b.
    cluster.deliver("etl-a", "etl-b")
    assert pass_of(cluster, "etl-b").phase == "Pending"
    assert pass_of(cluster, "etl-a").phase == "Running"
    assert pass_of(cluster, "etl-c").phase == "Pending"
    assert cluster.status("etl-c").message == "waiting: 1 of 1 running, position 2"
    assert [j["metadata"]["labels"]["jobchain.dev/execution"] for j in cluster.jobs.values()] == ["etl-a"]


def test_running_executions_the_store_has_not_received_yet_hold_their_slots() -> None:
    cluster = cluster_of(2, etl_run("etl-1", "2026-11-28T10:00:00Z", started=True),
                         etl_run("etl-2", "2026-11-28T10:00:01Z", started=True),
                         etl_run("etl-3", "2026-11-28T10:00:02Z"))
    cluster.deliver("etl-3")  # e.g. right after the operator started
    assert pass_of(cluster, "etl-3").phase == "Pending"
    assert cluster.status("etl-3").message == "waiting: 2 of 2 running, position 1"
    assert not cluster.jobs


def test_a_cancel_the_store_has_not_received_yet_stops_the_start() -> None:
    cluster = cluster_of(2, etl_run("etl-1", "2026-11-28T10:00:00Z"))
    cluster.deliver("etl-1")
    cluster.executions["etl-1"]["spec"]["cancel"] = True  # its watch event is still on its way
    outcome = pass_of(cluster, "etl-1")
    assert (outcome.phase, outcome.wake_at) == ("Pending", T0)  # looked at again at once, from the newer copy
    assert cluster.take_actions() == [("list", "workflowexecutions")]
    assert pass_of(cluster, "etl-1").phase == "Cancelled"
    assert cluster.take_actions() == [("patch-status", "workflowexecutions"), ("event", "ExecutionCancelled")]
    assert not cluster.jobs


def test_a_cancel_received_while_the_pass_runs_is_not_overlooked() -> None:
    # Seen in CI: the pass read its execution, the cancel reached the store, and the queue, reading the
    # store, no longer counted the execution as waiting ("not the queue's business") and let it start.
    class CancelledMidPass(FakeCluster):
        def get_execution(self, namespace: str, name: str) -> dict[str, Any] | None:
            body = super().get_execution(namespace, name)
            self.executions[name]["spec"]["cancel"] = True
            self.deliver(name)
            return body

    cluster = CancelledMidPass(workflows=limited(2))
    cluster.executions["etl-1"] = etl_run("etl-1", "2026-11-28T10:00:00Z")
    cluster.deliver("etl-1")
    assert pass_of(cluster, "etl-1").phase == "Pending"
    assert not cluster.jobs


def test_an_execution_deleted_before_it_starts_is_not_started() -> None:
    cluster = cluster_of(2, etl_run("etl-1", "2026-11-28T10:00:00Z"))
    cluster.deliver("etl-1")
    del cluster.executions["etl-1"]
    assert pass_of(cluster, "etl-1").phase is None
    assert cluster.take_actions() == [("list", "workflowexecutions")]
    assert cluster.get_execution(NAMESPACE, "etl-1") is None  # nor does it stay in the store's queue


def test_the_api_server_is_read_only_to_start_an_execution_under_a_limit() -> None:
    # The store says wait: no read (a wait is safe; a free slot pokes the waiting again).
    cluster = cluster_of(1, etl_run("etl-1", "2026-11-28T10:00:00Z", started=True),
                         etl_run("etl-2", "2026-11-28T10:00:01Z"))
    cluster.deliver("etl-1", "etl-2")
    assert pass_of(cluster, "etl-2").phase == "Pending"
    assert ("list", "workflowexecutions") not in cluster.take_actions()
    # The store says start: one read, then the start. A started execution is never read again.
    cluster.executions["etl-1"]["status"]["phase"] = "Succeeded"
    cluster.deliver("etl-1")
    assert pass_of(cluster, "etl-2", 1).phase == "Running"
    assert cluster.take_actions()[:2] == [("list", "workflowexecutions"), ("create", "job", "a")]
    cluster.finish("a", "Succeeded", None, T0 + timedelta(seconds=2))
    assert pass_of(cluster, "etl-2", 2).phase == "Succeeded"
    assert ("list", "workflowexecutions") not in cluster.take_actions()
    # No limit: no read.
    free = FakeCluster(execution_body(chain("a")))
    reconcile_execution(free, NAMESPACE, "run-1", now=T0)
    assert ("list", "workflowexecutions") not in free.take_actions()


def test_when_the_queue_moves_the_waiting_are_looked_at_again_first_in_line_first() -> None:
    store = Store()
    queued = {"phase": "Pending", "reason": "Queued", "message": "waiting: 1 of 2 running, position 2"}
    for body in (etl_run("etl-3", "2026-11-28T10:00:02Z"), etl_run("etl-1", "2026-11-28T10:00:00Z", started=True),
                 {**etl_run("etl-2", "2026-11-28T10:00:01Z"), "status": queued}):
        store.put_execution(body)
    # One finished or was deleted: all that wait, a pass held them or not.
    assert waiting_for(store, NAMESPACE, "etl") == ["etl-2", "etl-3"]
    # One started: only those whose message tells a position (the others' first pass is still to come).
    assert waiting_for(store, NAMESPACE, "etl", held_only=True) == ["etl-2"]
    assert waiting_for(store, NAMESPACE, "other") == []


def failed_run() -> ExecutionStatus:
    """a -> b -> c -> d where c failed."""
    outputs = {"a": '{"n": 1}', "b": '{"n": 2}'}
    run = simulate(chain("a", "b", "c", "d"), lambda node, _m: ("Failed", None) if node == "c"
                   else ("Succeeded", outputs.get(node)))
    assert phases(run.status) == {"a": "Succeeded", "b": "Succeeded", "c": "Failed", "d": "Skipped"}
    return run.status


def test_resume_copies_the_succeeded_nodes_and_runs_the_rest_from_the_failed_one() -> None:
    old = failed_run()
    new = ExecutionStatus()
    seed(new, "first", old, T0 + timedelta(hours=1), ExecutionRef("second", NAMESPACE, "uid-second", "wf"))
    assert phases(new) == {"a": "Succeeded", "b": "Succeeded", "c": "Pending", "d": "Pending"}
    for name in ("a", "b"):
        copied, original = node_status(new, name), node_status(old, name)
        assert copied.reused and copied.output == original.output and copied.inputFrom == original.inputFrom
        assert copied.finishedAt == original.finishedAt and "first" in copied.message
    ex = execution(ref="wf", status=new, name="second")
    now = T0 + timedelta(hours=1, seconds=1)
    p = plan(ex, {}, now)
    assert created_nodes(p) == ["c"]
    assert env_of(p.create[0])["JOBCHAIN_INPUT"] == '{"n":2}'
    assert node_status(p.status, "c").inputFrom == "b"
    later = plan(with_status(ex, p.status), observed(job("c", "Succeeded", '{"n": 3}', finished_at=now,
                                                         execution_name="second")), now + timedelta(seconds=1))
    assert created_nodes(later) == ["d"]
    assert env_of(later.create[0])["JOBCHAIN_INPUT"] == '{"n":3}'


def test_resume_is_refused_for_a_missing_running_succeeded_or_never_started_execution() -> None:
    assert "no such execution" in (problem("x", None) or "")
    assert "still Running" in (problem("x", ExecutionStatus(phase="Running")) or "")
    assert "nothing that failed to retry" in (problem("x", ExecutionStatus(phase="Succeeded")) or "")
    never_started = ExecutionStatus(phase="Failed", reason="WorkflowNotFound")
    assert "failed before it started" in (problem("x", never_started) or "")
    assert problem("x", failed_run()) is None
