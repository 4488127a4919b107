"""The admission policies that bound what a step and a run may touch, as shipped (kustomize base
and chart), and the operator's check at start that they are in force. Their CEL is evaluated by
the API server in tests/e2e/test_admission_policies.py."""

from __future__ import annotations

import json
from typing import Any

import pytest
import yaml

from jobchain.controller import policy_check

from .manifest_support import ROOT, helm_template, needs_helm, of_kind

STEP, RUN = "jobchain-step-own-pod", "jobchain-run-rights"


def base(file: str) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all((ROOT / "manifests/base" / file).read_text()) if d]


def named(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found: dict[str, Any] = next(d for d in of_kind(docs, kind) if d["metadata"]["name"] == name)
    return found


def test_the_step_policy_covers_every_pod_and_knows_a_step_by_the_roles_marker() -> None:
    policy = named(base("step-policy.yaml"), "ValidatingAdmissionPolicy", STEP)["spec"]
    assert "objectSelector" not in policy["matchConstraints"]
    assert policy["matchConstraints"]["resourceRules"][0]["resources"] == ["pods", "pods/*"]
    step_role = named(base("rbac-users.yaml"), "ClusterRole", "jobchain-step")
    assert {"apiGroups": ["jobchain.dev"], "resources": ["steps"], "verbs": ["set-output"]} in step_role["rules"]
    condition = " ".join(c["expression"] for c in policy["matchConditions"])
    assert "resource('steps')" in condition and "check('set-output')" in condition
    # a token bound to no pod is refused, not skipped
    assert not any("pod-uid" in c["expression"] for c in policy["matchConditions"])
    assert policy["validations"][0]["expression"] == "'authentication.kubernetes.io/pod-uid' in request.userInfo.extra"
    assert {v["reason"] for v in policy["validations"]} == {"Forbidden"}


def test_no_shipped_user_role_holds_the_step_marker_but_jobchain_step() -> None:
    for role in of_kind(base("rbac-users.yaml") + base("rbac.yaml"), "ClusterRole"):
        if role["metadata"]["name"] != "jobchain-step":
            assert not any("steps" in r.get("resources", []) for r in role["rules"]), role["metadata"]["name"]


def test_kustomize_base_ships_the_run_policy_bound_to_deny() -> None:
    assert "run-policy.yaml" in (ROOT / "manifests/base/kustomization.yaml").read_text()
    docs = base("run-policy.yaml")
    binding = named(docs, "ValidatingAdmissionPolicyBinding", RUN)["spec"]
    assert binding == {"policyName": RUN, "validationActions": ["Deny"]}
    policy = named(docs, "ValidatingAdmissionPolicy", RUN)["spec"]
    assert policy["matchConstraints"]["resourceRules"][0]["resources"] == [
        "workflows", "workflowexecutions", "workflowschedules"]
    text = json.dumps(policy)
    assert "resource('serviceaccounts')" in text and "check('use')" in text
    assert "resource('privileged')" in text


@needs_helm
@pytest.mark.parametrize("file,name", [("step-policy.yaml", STEP), ("run-policy.yaml", RUN)])
def test_the_chart_ships_the_same_policies_on_by_default(file: str, name: str) -> None:
    docs = helm_template()
    for kind in ("ValidatingAdmissionPolicy", "ValidatingAdmissionPolicyBinding"):
        assert named(docs, kind, name)["spec"] == named(base(file), kind, name)["spec"], (kind, name)
    assert RUN not in {d["metadata"]["name"] for d in of_kind(helm_template("runPolicy.enabled=false"),
                                                               "ValidatingAdmissionPolicy")}


@needs_helm
def test_the_chart_can_allow_only_executions_of_referenced_workflows() -> None:
    policy = named(helm_template("runPolicy.referencedWorkflowsOnly=true"), "ValidatingAdmissionPolicy", RUN)
    shipped = named(base("run-policy.yaml"), "ValidatingAdmissionPolicy", RUN)
    extra = policy["spec"]["validations"][len(shipped["spec"]["validations"]):]
    assert [v["expression"] for v in extra] == [
        "request.resource.resource == 'workflows' || variables.specs.size() == 0"]


@needs_helm
def test_the_chart_grants_secrets_only_in_the_listed_namespaces() -> None:
    docs = helm_template("rbac.secretNamespaces={team-a,team-b}")
    for role in of_kind(docs, "ClusterRole"):
        assert not any("secrets" in r["resources"] for r in role["rules"]), role["metadata"]["name"]
    secret_roles = {(d["metadata"]["namespace"], d["metadata"]["name"]) for d in of_kind(docs, "Role")
                    if any("secrets" in r["resources"] for r in d["rules"])}
    assert secret_roles == {("team-a", "jobchain-secrets"), ("team-b", "jobchain-secrets")}
    watched = helm_template("watchNamespaces={team-a,team-c}", "rbac.secretNamespaces={team-a}")
    assert {d["metadata"]["namespace"] for d in of_kind(watched, "Role")
            if any("secrets" in r["resources"] for r in d["rules"])} == {"team-a"}


# ---- the operator's check at start -------------------------------------------------------------

BOUND = {"spec": {"policyName": STEP, "validationActions": ["Deny"]}}


def test_an_installed_and_bound_policy_is_in_force() -> None:
    assert policy_check.policy_problems(STEP, {"spec": {}}, BOUND) == []


def test_a_missing_policy_says_how_to_install_it() -> None:
    [problem] = policy_check.policy_problems(STEP, None, None)
    assert problem.startswith(f"ValidatingAdmissionPolicy {STEP} is not installed")
    assert "stepPolicy.enabled" in problem and "1.30+" in problem


@pytest.mark.parametrize("binding", [None, {"spec": {"policyName": STEP, "validationActions": ["Audit"]}},
                                     {"spec": {"policyName": "other", "validationActions": ["Deny"]}}])
def test_a_policy_not_bound_to_deny_refuses_nothing(binding: dict[str, Any] | None) -> None:
    [problem] = policy_check.policy_problems(STEP, {"spec": {}}, binding)
    assert "not bound with validationActions [Deny]" in problem


def test_type_check_warnings_of_the_api_server_are_reported() -> None:
    policy = {"status": {"typeChecking": {"expressionWarnings": [
        {"fieldRef": "spec.validations[0].expression", "warning": "undefined field 'x'"}]}}}
    [problem] = policy_check.policy_problems(STEP, policy, BOUND)
    assert "spec.validations[0].expression: undefined field 'x'" in problem


@pytest.mark.parametrize("minor,problem", [("29", True), ("30", False), ("34+", False)])
def test_kubernetes_before_1_30_is_reported(minor: str, problem: bool) -> None:
    said = policy_check.version_problem({"major": "1", "minor": minor, "gitVersion": f"v1.{minor}.0"})
    assert (said is not None) == problem
    if said:
        assert said.startswith("Kubernetes v1.29.0 has no ValidatingAdmissionPolicy v1")
