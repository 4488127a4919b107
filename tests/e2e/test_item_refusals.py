"""Defect 8 on a real cluster: an admission policy refuses one forEach item's Job; that item fails
with the API server's words, the other items run (within parallelism) and their results are kept."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from jobchain.api.vocabulary import LABEL_ITEM
from tests.e2e.support import Objects, nodes, wait_for, workflow

pytestmark = pytest.mark.usefixtures("current_crds", "operator")


@pytest.fixture
def refuse_item_1(api: client.ApiClient, namespace: str) -> Iterator[None]:
    """A ValidatingAdmissionPolicy, bound to this test's namespace only, that refuses the Job of
    item 1 (as a site's policy or webhook would refuse a Job it does not like)."""
    admission = client.AdmissionregistrationV1Api(api)
    name = f"jobchain-e2e-refuse-item-{namespace}"[:63]
    policy: dict[str, Any] = {
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicy",
        "metadata": {"name": name},
        "spec": {
            "failurePolicy": "Fail",
            "matchConstraints": {"resourceRules": [{"apiGroups": ["batch"], "apiVersions": ["v1"],
                                                    "operations": ["CREATE"], "resources": ["jobs"]}]},
            "validations": [{
                "expression": f"!has(object.metadata.labels) || !('{LABEL_ITEM}' in object.metadata.labels) || "
                              f"object.metadata.labels['{LABEL_ITEM}'] != '1'",
                "message": "item 1 may not run here (e2e policy)", "reason": "Invalid",
            }],
        },
    }
    binding: dict[str, Any] = {
        "apiVersion": "admissionregistration.k8s.io/v1", "kind": "ValidatingAdmissionPolicyBinding",
        "metadata": {"name": name},
        "spec": {"policyName": name, "validationActions": ["Deny"],
                 "matchResources": {"namespaceSelector": {"matchLabels": {
                     "kubernetes.io/metadata.name": namespace}}}},
    }
    admission.create_validating_admission_policy(policy)
    admission.create_validating_admission_policy_binding(binding)
    batch = client.BatchV1Api(api)
    probe = client.V1Job(
        metadata=client.V1ObjectMeta(name="probe", labels={LABEL_ITEM: "1"}),
        spec=client.V1JobSpec(template=client.V1PodTemplateSpec(spec=client.V1PodSpec(
            restart_policy="Never", containers=[client.V1Container(name="c", image="busybox")]))))

    def enforced() -> bool:
        try:
            batch.create_namespaced_job(namespace, probe, dry_run="All")
        except ApiException as exc:
            return exc.status == 422
        return False

    try:
        wait_for(enforced, 60, "the policy to be enforced")
        yield
    finally:
        admission.delete_validating_admission_policy_binding(name)
        admission.delete_validating_admission_policy(name)


@pytest.mark.usefixtures("refuse_item_1")
def test_a_refused_item_fails_alone_and_the_others_run_to_the_end(objects: Objects) -> None:
    objects.create(workflow("items-refused", [
        {"name": "each", "forEach": "[0, 1, 2, 3, 4]", "script": 'echo "$(item)" > $JOBCHAIN_OUTPUT'},
    ], parallelism=3))
    done = objects.run("items-refused", timeout=600)
    each = nodes(done)["each"]
    print("each:", each["message"], each["items"])
    assert each["phase"] == "Failed"
    assert each["message"].startswith("item(s) 1 of 5 failed (#1: Kubernetes refused the item's Job"), each["message"]
    assert "ValidatingAdmissionPolicy" in each["itemResults"][1]["message"]  # the API server's words
    assert each["items"] == {"total": 5, "succeeded": 4, "failed": 1, "running": 0}
    assert each["output"] == [0, None, 2, 3, 4]  # every item that ran has its result recorded
    ran = sorted(int(j.metadata.labels[LABEL_ITEM]) for j in objects.jobs(done["metadata"]["name"]))
    assert ran == [0, 2, 3, 4]
