"""A valid Workflow's nodes with pod fields are tried on the API server (dry run, strict fields)."""

from __future__ import annotations

from typing import Any

from jobchain.api.models import WorkflowStatus
from jobchain.controller import reconcile
from tests.unit.builders import FakeCluster, node

REFUSAL = 'Job.batch "x" is invalid: spec.template.spec.containers[0].resources.requests[cpu]: Invalid value: "lots"'


def _cluster(*nodes: dict[str, Any]) -> FakeCluster:
    reconcile._TRIED.clear()
    return FakeCluster(workflows={"etl": {"nodes": list(nodes)}})


def _ready(cluster: FakeCluster) -> Any:
    reconcile.reconcile_workflow(cluster, cluster.workflows["etl"])
    return WorkflowStatus.model_validate(cluster.workflows["etl"]["status"]).conditions[0]


def test_a_node_job_the_api_server_refuses_makes_the_workflow_not_ready() -> None:
    cluster = _cluster(node("a", "b"), node("b", resources={"requests": {"cpu": "lots"}}))
    cluster.refuse["b"] = REFUSAL
    ready = _ready(cluster)
    assert (ready.status, ready.reason) == ("False", "InvalidWorkflow")
    assert ready.message == (f"spec.nodes[1]: the API server refuses this node's Job (a dry run with strict field "
                             f"validation): {REFUSAL}; fix the node's podTemplate, resources or env valueFrom")
    assert ("dry-run", "job", "b") in cluster.actions


def test_only_nodes_with_pod_fields_are_tried_each_once() -> None:
    same = {"podTemplate": {"spec": {"nodeSelector": {"disk": "ssd"}}}}
    cluster = _cluster(node("a", "b"), node("b", "c", **same), node("c", **same))
    assert _ready(cluster).status == "True"
    _ready(cluster)  # reconciled again (its own status write): asked no more
    assert [a for a in cluster.actions if a[0] == "dry-run"] == [("dry-run", "job", "b")]


def test_an_invalid_workflow_is_not_tried() -> None:
    cluster = _cluster(node("a", "nowhere", resources={"requests": {"cpu": "1"}}))
    assert _ready(cluster).status == "False"
    assert not [a for a in cluster.actions if a[0] == "dry-run"]
