"""The chart's dashboard (`dashboard.enabled`), rendered with helm as an installing user gets it."""

from __future__ import annotations

from typing import Any

from tests.unit.test_manifests import helm_template, needs_helm


def _dashboard(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d["kind"] == kind and d["metadata"]["name"].endswith("-dashboard")]


@needs_helm
def test_the_dashboard_is_off_by_default() -> None:
    docs = helm_template()
    assert not [d for d in docs if d["metadata"]["name"].endswith("-dashboard")]


@needs_helm
def test_the_dashboard_can_only_read_and_runs_locked_down() -> None:
    docs = helm_template("dashboard.enabled=true", "dashboard.port=9000")
    (role,) = _dashboard(docs, "ClusterRole")
    verbs = {verb for rule in role["rules"] for verb in rule["verbs"]}
    assert verbs == {"get", "list", "watch"}
    resources = {(group, res) for rule in role["rules"] for group in rule["apiGroups"] for res in rule["resources"]}
    assert resources == {("jobchain.dev", "workflows"), ("jobchain.dev", "workflowexecutions"),
                         ("batch", "jobs"), ("", "pods"), ("", "pods/log")}
    (binding,) = _dashboard(docs, "ClusterRoleBinding")
    (account,) = _dashboard(docs, "ServiceAccount")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": account["metadata"]["name"],
                                    "namespace": "jobchain-system"}]
    (deployment,) = _dashboard(docs, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    assert pod["serviceAccountName"] == account["metadata"]["name"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (container,) = pod["containers"]
    assert container["command"] == ["jobchain"]
    assert container["args"] == ["dashboard", "--address=0.0.0.0", "--port=9000"]
    assert container["securityContext"]["readOnlyRootFilesystem"] is True
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert container["securityContext"]["capabilities"] == {"drop": ["ALL"]}
    assert container["readinessProbe"]["httpGet"]["path"] == "/healthz"
    (service,) = _dashboard(docs, "Service")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    # The operator's Deployment must never adopt the dashboard's pod, nor the reverse.
    operator = next(d for d in docs if d["kind"] == "Deployment" and d is not deployment)
    assert not operator["spec"]["selector"]["matchLabels"].items() <= labels.items()
    operator_labels = operator["spec"]["template"]["metadata"]["labels"]
    assert not deployment["spec"]["selector"]["matchLabels"].items() <= operator_labels.items()
