"""The step admission policy (manifests/base/step-policy.yaml; test_security_manifests checks the
chart renders the same one) evaluated:
its CEL run with the cel library on the requests a step, another step and a person would send, so
the test says who is admitted and who gets 403, not which words the policy contains."""

from __future__ import annotations

import copy
from typing import Any

import celpy
import pytest
import yaml
from celpy import celtypes
from celpy.adapter import json_to_cel

from .manifest_support import ROOT

POLICY = ROOT / "manifests/base/step-policy.yaml"
OWN_UID = "uid-of-pod-a"
POD: dict[str, Any] = {"metadata": {"name": "run-1-a-x7k2p", "uid": OWN_UID,
                                    "labels": {"app.kubernetes.io/managed-by": "jobchain", "jobchain.dev/node": "a"},
                                    "ownerReferences": [{"kind": "Job", "name": "run-1-a", "uid": "job-uid"}],
                                    "annotations": {}},
                    "spec": {"containers": [{"name": "main", "image": "busybox:1.36"}]}}


def policy_spec() -> dict[str, Any]:
    doc = next(d for d in yaml.safe_load_all(POLICY.read_text()) if d["kind"] == "ValidatingAdmissionPolicy")
    spec: dict[str, Any] = doc["spec"]
    return spec


def evaluate(expression: str, request: dict[str, Any], old: dict[str, Any], new: dict[str, Any],
             variables: dict[str, Any] | None = None) -> Any:
    env = celpy.Environment()
    program = env.program(env.compile(expression))
    activation = {"request": json_to_cel(request), "oldObject": json_to_cel(old), "object": json_to_cel(new)}
    if variables is not None:
        activation["variables"] = celtypes.MapType({celtypes.StringType(k): v for k, v in variables.items()})
    return program.evaluate(activation)


def admitted(extra: dict[str, list[str]], new: dict[str, Any], step: bool = True,
             username: str = "system:serviceaccount:team:steps", sub_resource: str | None = None) -> bool | str:
    """True (admitted), or the message of the first validation that denies; a request the match
    conditions leave out is admitted without validations.

    `step`: what the policy's authorizer condition answers (does the requester hold the jobchain-step
    role's marker verb, and not every verb). The authorizer is the API server's RBAC, which the cel
    library does not have: tests/e2e/test_admission_policies.py runs that condition for real."""
    spec = policy_spec()
    request: dict[str, Any] = {"userInfo": {"username": username, "extra": extra}, "namespace": "team"}
    if sub_resource is not None:
        request["subResource"] = sub_resource
    for condition in spec["matchConditions"]:
        if "authorizer." in condition["expression"]:
            if not step:
                return True
        elif not evaluate(condition["expression"], request, POD, new):
            return True
    variables = {v["name"]: evaluate(v["expression"], request, POD, new) for v in spec.get("variables", [])}
    for v in spec["validations"]:
        assert v["reason"] == "Forbidden"  # the API server answers 403
        if not evaluate(v["expression"], request, POD, new, variables):
            return str(evaluate(v["messageExpression"], request, POD, new, variables)) if "messageExpression" in v \
                else " ".join(str(v["message"]).split())
    return True


def annotated(pod: dict[str, Any]) -> dict[str, Any]:
    new = copy.deepcopy(pod)
    new["metadata"]["annotations"]["jobchain.dev/output"] = '{"rows": 3}'
    return new


def test_a_step_may_annotate_its_own_pod() -> None:
    assert admitted({"authentication.kubernetes.io/pod-uid": [OWN_UID]}, annotated(POD)) is True


def test_a_step_may_not_annotate_another_pod() -> None:
    says = admitted({"authentication.kubernetes.io/pod-uid": ["uid-of-pod-b"]}, annotated(POD))
    assert says == "a jobchain step may change only its own pod, not run-1-a-x7k2p"


@pytest.mark.parametrize("change", ["label", "owner"])
def test_a_step_may_not_change_its_own_pods_labels_or_owners(change: str) -> None:
    new = annotated(POD)
    if change == "label":
        new["metadata"]["labels"]["jobchain.dev/node"] = "b"
    else:
        new["metadata"]["ownerReferences"] = []
    says = admitted({"authentication.kubernetes.io/pod-uid": [OWN_UID]}, new)
    assert says == ("a jobchain step may set the jobchain.dev/output annotation of its own pod, not change its "
                    "labels, owner references or finalizers")


def test_a_step_token_bound_to_no_pod_is_refused() -> None:
    says = admitted({}, annotated(POD))
    assert says == ("a jobchain step may change pods only with the token mounted in its own pod (this token is "
                    "bound to no pod)")


def test_a_step_may_set_no_other_annotation_and_not_the_spec() -> None:
    own = {"authentication.kubernetes.io/pod-uid": [OWN_UID]}
    other = annotated(POD)
    other["metadata"]["annotations"]["prometheus.io/scrape"] = "true"
    assert admitted(own, other) == ("a jobchain step may set the jobchain.dev/output annotation of its own pod, "
                                    "no other annotation")
    image = annotated(POD)
    image["spec"] = {"containers": [{"name": "main", "image": "evil"}]}
    assert admitted(own, image) == ("a jobchain step may set the jobchain.dev/output annotation of its own pod, "
                                    "not change its spec or status")
    assert admitted(own, annotated(POD), sub_resource="status") == (
        "a jobchain step may set the jobchain.dev/output annotation of its own pod, not change its spec or status")


def test_requests_of_people_and_of_accounts_that_are_not_steps_are_not_judged() -> None:
    new = annotated(POD)
    new["metadata"]["labels"] = {}
    assert admitted({}, new, username="alice") is True
    assert admitted({}, new, step=False) is True
