"""The security parts of the install, as kustomize and Helm render them: the step admission
policy, the operator's namespace and bind address, the optional NetworkPolicy and namespace."""

from __future__ import annotations

from typing import Any

import yaml

from .manifest_support import ROOT, helm_template, kustomize, needs_helm, needs_kubectl, of_kind, only

POLICY = "jobchain-step-own-pod"


def container(docs: list[dict[str, Any]]) -> dict[str, Any]:
    c: dict[str, Any] = only(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    return c


def policy_specs(docs: list[dict[str, Any]]) -> tuple[Any, Any]:
    policy = next(d for d in of_kind(docs, "ValidatingAdmissionPolicy") if d["metadata"]["name"] == POLICY)
    binding = next(d for d in of_kind(docs, "ValidatingAdmissionPolicyBinding") if d["metadata"]["name"] == POLICY)
    return policy["spec"], binding["spec"]


def test_the_step_policy_admits_only_a_pods_own_token_and_denies_with_403() -> None:
    docs = list(yaml.safe_load_all((ROOT / "manifests/base/step-policy.yaml").read_text()))
    policy, binding = policy_specs(docs)
    assert binding == {"policyName": POLICY, "validationActions": ["Deny"]}
    assert "objectSelector" not in policy["matchConstraints"]  # every pod, not only jobchain's (finding 4)
    assert {v["reason"] for v in policy["validations"]} == {"Forbidden"}
    # Who it admits and whom it denies: its CEL evaluated in test_step_policy_cel.py.


@needs_kubectl
def test_kustomize_ships_the_policy_and_tells_the_operator_its_namespace() -> None:
    docs = kustomize("manifests/base")
    policy_specs(docs)
    c = container(docs)
    assert {"name": "JOBCHAIN_OPERATOR_NAMESPACE",
            "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}} in c["env"]
    assert "--bind-address=0.0.0.0" in c["args"]


@needs_helm
def test_helm_ships_the_same_policy_and_the_operator_namespace() -> None:
    docs = helm_template()
    kustomized = list(yaml.safe_load_all((ROOT / "manifests/base/step-policy.yaml").read_text()))
    assert policy_specs(docs) == policy_specs(kustomized)
    assert POLICY not in {d["metadata"]["name"] for d in of_kind(helm_template("stepPolicy.enabled=false"),
                                                                   "ValidatingAdmissionPolicy")}
    c = container(docs)
    assert {"name": "JOBCHAIN_OPERATOR_NAMESPACE",
            "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}} in c["env"]
    assert "--bind-address=127.0.0.1" in container(helm_template("bindAddress=127.0.0.1"))["args"]


@needs_helm
def test_helm_network_policy_is_off_by_default_and_admits_only_metrics_when_on() -> None:
    assert not of_kind(helm_template(), "NetworkPolicy")
    closed = only(helm_template("networkPolicy.enabled=true"), "NetworkPolicy")
    assert closed["spec"]["ingress"] == [] and closed["spec"]["policyTypes"] == ["Ingress"]
    docs = helm_template("networkPolicy.enabled=true",
                         "networkPolicy.metricsFrom[0].namespaceSelector.matchLabels.team=monitoring")
    policy = only(docs, "NetworkPolicy")
    pod_labels = only(docs, "Deployment")["spec"]["template"]["metadata"]["labels"]
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= pod_labels.items()
    assert policy["spec"]["ingress"] == [{
        "from": [{"namespaceSelector": {"matchLabels": {"team": "monitoring"}}}],
        "ports": [{"port": 8080, "protocol": "TCP"}],
    }]


@needs_helm
def test_helm_can_create_the_namespace_labelled_for_pod_security() -> None:
    assert not of_kind(helm_template(), "Namespace")
    namespace = only(helm_template("namespace.create=true", namespace="jobchain-system"), "Namespace")
    assert namespace["metadata"]["name"] == "jobchain-system"
    assert namespace["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"
