"""forEach after a lost status write: the pass replayed decides what the first one did.

A stop (a condition error here) deletes the running item Jobs; when its status write is lost, the
next pass finds items Running in status whose Jobs are gone. It must stop again the same way, not
take the deleted Jobs for ones deleted outside jobchain and fail the items and the node.
"""

from __future__ import annotations

from datetime import timedelta

from jobchain.engine.execution.planner import plan

from .builders import T0, FakeOperatorCluster, edge, execution, node, node_status, spec, with_status


def stopped_by_a_condition_error() -> tuple[object, object, FakeOperatorCluster]:
    wf = spec(node("check", edge("after", "condition", "output.ok")), node("after"),
              node("each", forEach="[1, 2, 3]", script="sleep 60"), parallelism=4)
    ex = execution(wf)
    cluster = FakeOperatorCluster()
    first = plan(ex, cluster.observed(), T0)
    cluster.apply(first)
    assert node_status(first.status, "each").items is not None
    cluster.finish("check", "Succeeded", '{"v": 1}', T0 + timedelta(seconds=1))  # no `ok`: the condition errs
    return ex, first, cluster


def test_a_replayed_condition_error_stop_cancels_the_items_as_the_first_pass_did() -> None:
    ex, first, cluster = stopped_by_a_condition_error()
    running = with_status(ex, first.status)  # type: ignore[arg-type]
    stop = plan(running, cluster.observed(), T0 + timedelta(seconds=2))
    assert stop.status.reason == "ConditionError"
    assert node_status(stop.status, "each").phase == "Cancelled"
    cluster.apply(stop)  # the item Jobs are deleted ... and the status write is lost
    replay = plan(running, cluster.observed(), T0 + timedelta(seconds=3))
    each = node_status(replay.status, "each")
    assert replay.status.reason == "ConditionError", replay.status.message
    assert each.phase == "Cancelled", each.message
    assert [str(e.phase) for e in each.itemResults or []] == ["Cancelled"] * 3
    assert not any("disappeared" in (e.message or "") for e in each.itemResults or [])


def test_item_jobs_deleted_outside_jobchain_still_fail_their_items() -> None:
    wf = spec(node("each", forEach="[1, 2]", script="sleep 60"), parallelism=2)
    ex = execution(wf)
    cluster = FakeOperatorCluster()
    first = plan(ex, cluster.observed(), T0)
    cluster.apply(first)
    cluster.jobs.clear()  # someone deleted the Jobs
    after = plan(with_status(ex, first.status), cluster.observed(), T0 + timedelta(seconds=1))
    each = node_status(after.status, "each")
    assert each.phase == "Failed" and after.status.reason == "NodeFailed"
    assert all("disappeared" in (e.message or "") for e in each.itemResults or [])
