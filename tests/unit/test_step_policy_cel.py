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
from celpy.adapter import json_to_cel

from .manifest_support import ROOT

POLICY = ROOT / "manifests/base/step-policy.yaml"
OWN_UID = "uid-of-pod-a"
POD: dict[str, Any] = {"metadata": {"name": "run-1-a-x7k2p", "uid": OWN_UID,
                                    "labels": {"app.kubernetes.io/managed-by": "jobchain", "jobchain.dev/node": "a"},
                                    "ownerReferences": [{"kind": "Job", "name": "run-1-a", "uid": "job-uid"}],
                                    "annotations": {}}}


def policy_spec() -> dict[str, Any]:
    doc = next(d for d in yaml.safe_load_all(POLICY.read_text()) if d["kind"] == "ValidatingAdmissionPolicy")
    spec: dict[str, Any] = doc["spec"]
    return spec


def evaluate(expression: str, request: dict[str, Any], old: dict[str, Any], new: dict[str, Any]) -> Any:
    env = celpy.Environment()
    program = env.program(env.compile(expression))
    return program.evaluate({"request": json_to_cel(request), "oldObject": json_to_cel(old),
                             "object": json_to_cel(new)})


def admitted(extra: dict[str, list[str]], new: dict[str, Any]) -> bool | str:
    """True (admitted), or the message of the first validation that denies; a request the match
    conditions leave out is admitted without validations."""
    spec = policy_spec()
    request = {"userInfo": {"username": "someone", "extra": extra}}
    if not all(evaluate(c["expression"], request, POD, new) for c in spec["matchConditions"]):
        return True
    for v in spec["validations"]:
        assert v["reason"] == "Forbidden"  # the API server answers 403
        if not evaluate(v["expression"], request, POD, new):
            return str(evaluate(v["messageExpression"], request, POD, new)) if "messageExpression" in v \
                else str(v["message"])
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
    assert says == "a jobchain step may set annotations on its own pod, not change its labels or owner references"


def test_a_request_not_made_with_a_pod_token_is_not_judged() -> None:
    new = annotated(POD)
    new["metadata"]["labels"] = {}
    assert admitted({}, new) is True
