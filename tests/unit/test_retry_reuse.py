"""Retry (spec.resumeFrom): what is reused. A node is copied only when nothing upstream of it runs
again, and a copied output kept whole in a ConfigMap reaches the retry's next node whole."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

from jobchain.api.models import ExecutionStatus
from jobchain.engine.execution.resume import seed
from jobchain.engine.spec.render import ExecutionRef
from tests.unit.builders import (
    NAMESPACE,
    T0,
    FakeCluster,
    edge,
    execution_body,
    node,
    pass_of,
    phases,
    simulate,
    spec,
)

RETRY = ExecutionRef("second", NAMESPACE, "uid-second", "wf")


def retried(source: ExecutionStatus) -> ExecutionStatus:
    new = ExecutionStatus()
    seed(new, "first", source, T0 + timedelta(hours=1), RETRY)
    return new


def test_a_cleanup_after_always_runs_again_after_the_setup_that_runs_again() -> None:
    # setup fails, cleanup (always) runs and succeeds: the retry runs setup again, so cleanup too.
    workflow = spec(node("setup", edge("cleanup", "always")), node("cleanup"))
    source = simulate(workflow, {"setup": ("Failed", None)}).status
    assert phases(source) == {"setup": "Failed", "cleanup": "Succeeded"}
    assert phases(retried(source)) == {"setup": "Pending", "cleanup": "Pending"}


def test_a_failure_handler_is_decided_again_when_its_node_runs_again() -> None:
    workflow = spec(node("build", "deploy", edge("alert", "failure")), node("deploy"), node("alert"))
    source = simulate(workflow, {"build": ("Failed", None)}).status
    assert phases(source) == {"build": "Failed", "deploy": "Skipped", "alert": "Succeeded"}
    assert phases(retried(source))["alert"] == "Pending"


def test_a_join_below_a_node_that_runs_again_runs_again_and_the_rest_is_reused() -> None:
    # a -> b -> d, a -> c -> d (d once both): c failed after d? No: d waits for c. Here e hangs off b
    # alone and is reused; d below c runs again.
    workflow = spec(node("a", "b", "c"), node("b", "e"), node("c", "d"), node("d"), node("e"))
    source = simulate(workflow, {"c": ("Failed", None)}).status
    assert phases(source) == {"a": "Succeeded", "b": "Succeeded", "c": "Failed", "d": "Skipped", "e": "Succeeded"}
    assert phases(retried(source)) == {"a": "Succeeded", "b": "Succeeded", "c": "Pending", "d": "Pending",
                                       "e": "Succeeded"}


BIG = {"rows": [{"id": i, "name": f"row-{i:05d}"} for i in range(1600)]}  # ~40 KB of JSON


def named(body: dict[str, Any], name: str) -> dict[str, Any]:
    body["metadata"].update(name=name, uid=f"uid-{name}")
    return body


def test_a_reused_output_kept_whole_reaches_the_retrys_next_node_whole() -> None:
    # extract's 40 KB output is kept whole in a ConfigMap (status holds a 32 KiB preview); load
    # failed. The retry reuses extract: load must be given the whole object, from a ConfigMap of
    # the retry's own, and load's condition must see the whole value too.
    workflow = spec(node("extract", edge("load", "condition", when="size(output.rows) == 1600")), node("load"))
    cluster = FakeCluster(named(execution_body(workflow), "first"))
    pass_of(cluster, "first", 0)
    cluster.finish("extract", "Succeeded", json.dumps(BIG), T0 + timedelta(seconds=1))
    pass_of(cluster, "first", 1)
    cluster.finish("load", "Failed", None, T0 + timedelta(seconds=2))
    pass_of(cluster, "first", 2)
    first = cluster.status("first")
    assert first.phase == "Failed" and first.nodes[0].outputRef is not None and first.nodes[0].outputTruncated

    cluster.seen, cluster.jobs = {}, {}
    cluster.executions["second"] = named(execution_body(spec_={"resumeFrom": {"name": "first"}}), "second")
    pass_of(cluster, "second", 10)  # pins the execution resumed (status.resumedFrom)
    pass_of(cluster, "second", 10)  # seeds the retry
    pass_of(cluster, "second", 11)  # plans the rest
    second = cluster.status("second")
    assert phases(second) == {"extract": "Succeeded", "load": "Running"}
    ref = second.nodes[0].outputRef
    assert ref is not None and ref.configMap.startswith("second-")
    assert cluster.output_value(NAMESPACE, ref.configMap, ref.key, "uid-second") == (True, BIG)
    [load] = [j for j in cluster.jobs.values() if j["metadata"]["labels"]["jobchain.dev/node"] == "load"]
    volumes = load["spec"]["template"]["spec"].get("volumes") or []
    assert [v["configMap"]["name"] for v in volumes if "configMap" in v] == [ref.configMap]
