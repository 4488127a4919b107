"""Defect 8: a forEach item whose Job the API server refuses (an admission webhook, a quota) fails
that item only. The node goes on with its other items, within `parallelism`, and records every
result; before, the refusal was keyed by the node and failed the whole node while its other items
kept running, untracked."""

from __future__ import annotations

from datetime import timedelta

from jobchain.controller.reconcile import reconcile_execution

from .builders import EXECUTION, NAMESPACE, T0, FakeCluster, execution_body, node, spec

REFUSAL = 'admission webhook "quota.example.com" denied the request: exceeded quota: team-a'


def test_a_refused_item_fails_that_item_and_the_others_run_to_the_end_within_parallelism() -> None:
    cluster = FakeCluster(execution_body(spec(node("each", forEach="[0, 1, 2, 3, 4]"), parallelism=3)))
    cluster.refuse["each#1"] = REFUSAL
    outcome = reconcile_execution(cluster, NAMESPACE, EXECUTION, now=T0)
    each = cluster.status().nodes[0]
    assert each.phase == "Running"
    assert each.itemResults is not None
    assert {e.index: e.phase for e in each.itemResults} == {0: "Running", 1: "Failed", 2: "Running"}
    assert "Kubernetes refused the item's Job" in (each.itemResults[1].message or "")
    assert REFUSAL in (each.itemResults[1].message or "")
    assert outcome.wake_at == T0  # the freed slot is filled by the next pass, at once

    for second in range(1, 20):
        now = T0 + timedelta(seconds=second)
        for index in range(5):
            key = f"each#{index}"
            seen = cluster.seen.get(key)
            if seen is not None and seen.state == "Running":
                cluster.finish(key, "Succeeded", str(index), now)
        outcome = reconcile_execution(cluster, NAMESPACE, EXECUTION, now=now)
        running = sum(1 for s in cluster.seen.values() if s.state == "Running")
        assert running <= 3
        if outcome.phase in ("Succeeded", "Failed"):
            break
    each = cluster.status().nodes[0]
    assert each.phase == "Failed"
    assert each.message.startswith("item(s) 1 of 5 failed (#1: Kubernetes refused the item's Job")
    assert each.output == [0, None, 2, 3, 4]  # every Job that ran has its result recorded
    assert sorted(j["metadata"]["labels"]["jobchain.dev/item"] for j in cluster.jobs.values()) == ["0", "2", "3", "4"]
