"""Issue 23: mistakes caught before anything runs, on the local cluster. A Workflow with a mistake
is not Ready, saying where and what to do; what only the cluster knows (a quantity's syntax, a
field its version lacks) comes from a dry run of the node's Job with strict field validation,
made by the operator with the rights it ships with."""

from __future__ import annotations

import copy
from typing import Any

import pytest
from kubernetes import client

from jobchain.api.models import WorkflowSpec
from jobchain.engine.spec.trial_jobs import trial_jobs
from jobchain.k8s.writes import Writer
from tests.e2e.support import Objects, kubectl, wait_for, workflow

pytestmark = pytest.mark.usefixtures("operator")


def _ready(objects: Objects, name: str) -> dict[str, Any]:
    def settled() -> dict[str, Any] | None:
        obj = objects.workflow(name)
        status = obj.get("status") or {}
        conditions = status.get("conditions") or []
        if status.get("observedGeneration") == obj["metadata"]["generation"] and conditions:
            return dict(conditions[0])
        return None

    found: dict[str, Any] = wait_for(settled, 60, f"Workflow {name} to be validated")
    return found


def test_a_when_that_is_not_a_bool_and_a_misspelt_pod_field_make_the_workflow_not_ready(objects: Objects) -> None:
    objects.create(workflow("typo", [
        {"name": "count", "script": "echo 1", "next": [{"node": "load", "type": "condition", "when": "output.n + 1"}]},
        {"name": "load", "script": "true", "podTemplate": {"spec": {"nodeSelektor": {"disk": "ssd"}}}},
    ]))
    ready = _ready(objects, "typo")
    assert (ready["status"], ready["reason"]) == ("False", "InvalidWorkflow")
    assert "spec.nodes[0].next[0].when: CEL `when` gives a number, not a bool" in ready["message"]
    assert ("spec.nodes[1].podTemplate.spec.nodeSelektor: unknown field 'nodeSelektor' "
            "(did you mean 'nodeSelector'?)") in ready["message"]


def test_a_value_only_the_api_server_refuses_is_found_by_the_dry_run(objects: Objects) -> None:
    objects.create(workflow("sizes", [
        {"name": "a", "script": "true", "next": [{"node": "b"}]},
        {"name": "b", "script": "true", "resources": {"requests": {"cpu": "lots"}}},
    ]))
    ready = _ready(objects, "sizes")
    assert (ready["status"], ready["reason"]) == ("False", "InvalidWorkflow")
    assert ready["message"].startswith("spec.nodes[1]: the API server refuses this node's Job (a dry run with "
                                       "strict field validation): ")
    assert "quantities must match the regular expression" in ready["message"]
    assert objects.jobs("jobchain-dry-run") == []  # a dry run stores nothing

    objects.custom.patch_namespaced_custom_object(
        "jobchain.dev", "v1alpha1", objects.namespace, "workflows", "sizes",
        {"spec": {"nodes": [{"name": "a", "script": "true", "next": [{"node": "b"}]},
                            {"name": "b", "script": "true", "resources": {"requests": {"cpu": "100m"}}}]}})
    fixed = _ready(objects, "sizes")
    assert (fixed["status"], fixed["reason"]) == ("True", "Valid")


def test_the_dry_run_refuses_an_unknown_field_by_its_path(api: client.ApiClient, objects: Objects) -> None:
    spec = WorkflowSpec.model_validate(workflow("strict", [
        {"name": "a", "script": "true", "resources": {"requests": {"cpu": "100m"}}}])["spec"])
    [(path, job)] = trial_jobs("strict", objects.namespace, spec)
    assert path == "spec.nodes[0]"
    writer = Writer(api)
    assert writer.dry_run_job(copy.deepcopy(job)) is None
    job["spec"]["template"]["spec"]["nodeSelektor"] = {"disk": "ssd"}
    refused = writer.dry_run_job(job)
    assert refused is not None and 'unknown field "spec.template.spec.nodeSelektor"' in refused, refused


@pytest.mark.usefixtures("current_crds")
def test_kubectl_get_wide_shows_the_reason_not_the_message(kubeconfig: str, objects: Objects) -> None:
    objects.create(workflow("columns", [{"name": "a", "script": "true", "next": [{"node": "laod"}]}]))
    assert _ready(objects, "columns")["reason"] == "InvalidWorkflow"
    printed = kubectl(kubeconfig, "-n", objects.namespace, "get", "jcwf", "columns", "-o", "wide").splitlines()
    assert printed[0].split() == ["NAME", "NODES", "READY", "REASON", "AGE"]
    assert printed[1].split()[:4] == ["columns", "1", "False", "InvalidWorkflow"]
