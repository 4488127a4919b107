"""Output ConfigMaps cannot be forged: their names and the execution's uid are readable, so anyone
who may create ConfigMaps could make `<job>-output` first, owned by the execution. Status records
the sha256 of every output kept whole; the operator adopts a ConfigMap only with exactly the
content it would write, reads one back only if the execution owns it and its digest matches, and
fails the node whose output it is otherwise, saying why, never passing a forged value on."""

from __future__ import annotations

import hashlib
import json
from datetime import timedelta
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from jobchain.controller.reconcile import reconcile_execution
from jobchain.engine.execution.planner import plan
from jobchain.engine.spec.render import ExecutionRef, output_config_map_name, render_output_config_map
from jobchain.k8s import cluster as cluster_module
from jobchain.k8s.cluster import OperatorCluster
from jobchain.k8s.writes import ForeignJobError, ForgedOutputError, Writer

from .builders import (
    EXECUTION,
    NAMESPACE,
    T0,
    FakeCluster,
    edge,
    execution,
    execution_body,
    job,
    node,
    node_status,
    observed,
    spec,
)

REF = ExecutionRef(name="run-1", namespace="team-a", uid="uid-123", workflow="etl")
BIG = json.dumps({"blob": "x" * 70000})


def test_status_records_the_sha256_of_an_output_kept_whole() -> None:
    ex = execution(spec(node("a", output={"from": "logs"})))
    p = plan(ex, observed(job("a", "Succeeded", BIG, finished_at=T0)), T0 + timedelta(seconds=1))
    ref = node_status(p.status, "a").outputRef
    assert ref is not None
    [config_map] = p.config_maps
    assert ref.sha256 == hashlib.sha256(config_map["data"][ref.key].encode()).hexdigest()


class FakeBuiltins:
    """The API server's ConfigMaps: `existing` is there already (made by someone before us)."""

    def __init__(self, existing: dict[str, Any] | None) -> None:
        self.existing = existing

    def create_namespaced_config_map(self, namespace: str, body: dict[str, Any]) -> None:
        if self.existing is not None:
            raise ApiException(status=409)
        self.existing = body

    def read_namespaced_config_map(self, name: str, namespace: str) -> dict[str, Any]:
        if self.existing is None:
            raise ApiException(status=404)
        return self.existing


def writer(existing: dict[str, Any] | None) -> Writer:
    w = Writer(None)  # type: ignore[arg-type]
    w.builtins = FakeBuiltins(existing)  # type: ignore[assignment]
    return w


def test_a_config_map_made_before_ours_with_other_content_is_not_adopted() -> None:
    ours = render_output_config_map(REF, "a", '{"real":true}')
    forged = json.loads(json.dumps(ours))
    forged["data"] = {key: '{"forged":true}' for key in ours["data"]}
    with pytest.raises(ForgedOutputError, match="created before the operator wrote it, with other content"):
        writer(forged).create_config_map(ours)


def test_our_own_config_map_from_a_retried_pass_is_adopted() -> None:
    ours = render_output_config_map(REF, "a", '{"real":true}')
    writer(json.loads(json.dumps(ours))).create_config_map(ours)  # no error


def read_back(monkeypatch: pytest.MonkeyPatch, stored: dict[str, Any], sha256: str | None) -> Any:
    monkeypatch.setattr(cluster_module, "Builtins", lambda api: FakeBuiltins(stored))
    cluster = OperatorCluster(client.ApiClient())  # no request leaves it: Builtins is the fake
    name = stored["metadata"]["name"]
    return cluster.output_value("team-a", name, "output.json", REF.uid, sha256)


def test_a_config_map_is_read_back_only_with_the_digest_status_recorded(monkeypatch: pytest.MonkeyPatch) -> None:
    ours = render_output_config_map(REF, "a", '{"real":true}')
    digest = hashlib.sha256(b'{"real":true}').hexdigest()
    assert read_back(monkeypatch, ours, digest) == (True, {"real": True})
    replaced = json.loads(json.dumps(ours))
    replaced["data"]["output.json"] = '{"forged":true}'
    with pytest.raises(ForgedOutputError, match="its sha256 differs"):
        read_back(monkeypatch, replaced, digest)
    foreign = json.loads(json.dumps(ours))
    foreign["metadata"]["ownerReferences"][0]["uid"] = "someone-else"
    with pytest.raises(ForgedOutputError, match="not owned by this execution"):
        read_back(monkeypatch, foreign, digest)


def test_an_output_replaced_after_it_was_written_fails_its_node_saying_why() -> None:
    cluster = FakeCluster(execution_body(spec(node("a", "b", output={"from": "logs"}), node("b"))))
    reconcile_execution(cluster, NAMESPACE, EXECUTION, now=T0)
    cluster.finish("a", "Succeeded", BIG, T0 + timedelta(seconds=1))
    reconcile_execution(cluster, NAMESPACE, EXECUTION, now=T0 + timedelta(seconds=1))
    ref = cluster.status().nodes[0].outputRef
    assert ref is not None and ref.sha256
    assert node_status(cluster.status(), "b").phase == "Running"  # started with the value a's pod wrote
    cluster.forged = {ref.configMap}  # type: ignore[attr-defined]
    outcome = reconcile_execution(cluster, NAMESPACE, EXECUTION, now=T0 + timedelta(seconds=2))
    assert outcome.phase == "Running"  # b runs on: it was handed the real value, before the forgery
    a = node_status(cluster.status(), "a")
    assert a.phase == "Failed" and a.output is None and a.outputRef is None
    assert f"its output was found forged: ConfigMap {NAMESPACE}/{ref.configMap}" in a.message
    assert "not passed on" in a.message
    cluster.finish("b", "Succeeded", '"done"', T0 + timedelta(seconds=3))
    outcome = reconcile_execution(cluster, NAMESPACE, EXECUTION, now=T0 + timedelta(seconds=3))
    status = cluster.status()
    assert (outcome.phase, status.reason) == ("Failed", "NodeFailed")
    assert "a: its output was found forged" in status.message
    # decided once: later passes (the ConfigMap still forged) change nothing
    before = cluster.status().model_dump()
    reconcile_execution(cluster, NAMESPACE, EXECUTION, now=T0 + timedelta(seconds=4))
    assert cluster.status().model_dump() == before


def test_an_output_configmap_made_first_by_someone_else_fails_its_node_and_routes_its_failure() -> None:
    cluster = FakeCluster(execution_body(spec(node("a", "b", edge("alert", "failure"), output={"from": "logs"}),
                                              node("b"), node("alert"))))
    reconcile_execution(cluster, NAMESPACE, EXECUTION, now=T0)
    cluster.forged = {output_config_map_name(EXECUTION, "a")}  # type: ignore[attr-defined]
    cluster.finish("a", "Succeeded", BIG, T0 + timedelta(seconds=1))
    for second in (1, 1, 2):  # the same pass replayed (its status write lost) decides the same
        reconcile_execution(cluster, NAMESPACE, EXECUTION, now=T0 + timedelta(seconds=second))
    status = cluster.status()
    a = node_status(status, "a")
    assert a.phase == "Failed" and a.outputRef is None and a.output is None
    assert "its output could not be kept" in a.message and "with other content" in a.message
    assert node_status(status, "b").phase == "Skipped"  # never started on a's success
    assert node_status(status, "alert").phase == "Running"  # the failure edge routes it
    assert output_config_map_name(EXECUTION, "a") not in getattr(cluster, "config_maps", {})


def test_a_config_map_made_first_with_no_execution_owner_is_refused_at_once_not_retried_for_ever() -> None:
    """The garbage collector removes what an older execution of the same name left; nothing removes a
    ConfigMap someone made with no such owner, so waiting for it would freeze the run."""
    ours = render_output_config_map(REF, "a", '{"real":true}')
    unowned = json.loads(json.dumps(ours))
    unowned["metadata"]["ownerReferences"] = []
    with pytest.raises(ForgedOutputError, match="was not made by an execution of this name"):
        writer(unowned).create_config_map(ours)
    older = json.loads(json.dumps(ours))
    older["metadata"]["ownerReferences"][0]["uid"] = "an-older-run"
    with pytest.raises(ForeignJobError, match="still being garbage-collected"):
        writer(older).create_config_map(ours)
