"""Retry (spec.resumeFrom) of a failed forEach node: only the items that did not succeed run again;
the Succeeded ones are carried over with their outputs, as Argo's retry does."""

from __future__ import annotations

import json
from datetime import timedelta

from jobchain.api.models import ExecutionStatus
from jobchain.engine.execution.planner import plan
from jobchain.engine.execution.resume import seed, wanted_outputs
from jobchain.engine.spec.render import ExecutionRef
from tests.unit.builders import (
    EXECUTION,
    NAMESPACE,
    T0,
    created_nodes,
    execution,
    job,
    node,
    node_status,
    observed,
    phases,
    simulate,
    spec,
    with_status,
)

WORKFLOW = spec(node("list", "each"), node("each", "publish", forEach="[0, 1, 2, 3]"), node("publish"),
                parallelism=4)


def failed_run() -> ExecutionStatus:
    run = simulate(WORKFLOW, lambda n, _m: ("Failed", None) if n in ("each#1", "each#3")
                   else ("Succeeded", json.dumps({"from": n})))
    each = node_status(run.status, "each")
    assert each.phase == "Failed" and each.items is not None and each.items.succeeded == 2
    return run.status


def test_a_retry_reruns_only_the_items_that_did_not_succeed() -> None:
    retry = ExecutionStatus()
    later = T0 + timedelta(hours=1)
    seed(retry, "first", failed_run(), later, ExecutionRef("second", NAMESPACE, "uid-second", "wf"))
    assert phases(retry) == {"list": "Succeeded", "each": "Pending", "publish": "Pending"}
    ex = execution(ref="wf", status=retry, name="second")
    p = plan(ex, {}, later)
    assert created_nodes(p) == ["each#1", "each#3"]
    each = node_status(p.status, "each")
    assert each.items is not None and (each.items.succeeded, each.items.running) == (2, 2)
    done = observed(*(job(k, "Succeeded", json.dumps({"again": k}), finished_at=later, execution_name="second")
                      for k in ("each#1", "each#3")))
    p = plan(with_status(ex, p.status), done, later + timedelta(seconds=1))
    each = node_status(p.status, "each")
    assert each.phase == "Succeeded"
    assert each.output == [{"from": "each#0"}, {"again": "each#1"}, {"from": "each#2"}, {"again": "each#3"}]
    assert created_nodes(p) == ["publish"]


def test_a_carried_items_output_kept_whole_is_copied_into_the_retrys_own_config_map() -> None:
    big = {"rows": list(range(12000))}  # ~60 KB: over an item's share of status, kept in its ConfigMap
    run = simulate(WORKFLOW, lambda n, _m: ("Failed", None) if n == "each#1"
                   else ("Succeeded", json.dumps(big if n == "each#0" else {"from": n})))
    source = run.status
    assert node_status(source, "each").itemResults[0].outputBytes is not None  # type: ignore[index]
    outputs = {key: run.cluster.config_maps[ref.configMap]
               for key, ref in wanted_outputs(EXECUTION, source).items()}
    assert outputs.get("each#0") == big
    retry = ExecutionStatus()
    made = seed(retry, EXECUTION, source, T0 + timedelta(hours=1),
                ExecutionRef("second", NAMESPACE, "uid-second", "wf"), outputs)
    [config_map] = made
    assert config_map["metadata"]["name"].startswith("second-")
    assert config_map["metadata"]["ownerReferences"][0]["uid"] == "uid-second"
    assert json.loads(config_map["data"]["output.json"]) == big
