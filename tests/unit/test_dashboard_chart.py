"""The chart's dashboard (`dashboard.enabled`), rendered with helm as an installing user gets it."""

from __future__ import annotations

from typing import Any

from tests.unit.manifest_support import helm_template, needs_helm


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
    # Reads, and the two reviews that store nothing (who a viewer is, what they may see);
    # tests/unit/test_dashboard_rbac.py holds the rules to the code's calls, both ways.
    writes = {(g, r) for rule in role["rules"] for g in rule["apiGroups"] for r in rule["resources"]
              if set(rule["verbs"]) - {"get", "list", "watch"}}
    assert writes == {("authentication.k8s.io", "tokenreviews"), ("authorization.k8s.io", "subjectaccessreviews")}
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
    name = deployment["metadata"]["name"]
    assert container["args"] == ["dashboard", "--address=0.0.0.0", "--port=9000", "--viewer-auth=token",
                                 f"--allowed-host={name}", f"--allowed-host={name}.jobchain-system",
                                 f"--allowed-host={name}.jobchain-system.svc"]
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


@needs_helm
def test_no_pod_reaches_the_dashboard_unless_allowed() -> None:
    docs = helm_template("dashboard.enabled=true")
    (deployment,) = _dashboard(docs, "Deployment")
    (policy,) = _dashboard(docs, "NetworkPolicy")
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= labels.items()
    assert policy["spec"]["policyTypes"] == ["Ingress"] and policy["spec"]["ingress"] == []
    proxied = helm_template("dashboard.enabled=true", "dashboard.auth.mode=proxy",
                            "dashboard.allowFrom[0].podSelector.matchLabels.app=oauth2-proxy",
                            "dashboard.allowedHosts[0]=jobs.example.com")
    (policy,) = _dashboard(proxied, "NetworkPolicy")
    assert policy["spec"]["ingress"] == [{"from": [{"podSelector": {"matchLabels": {"app": "oauth2-proxy"}}}],
                                          "ports": [{"port": 8090, "protocol": "TCP"}]}]
    (deployment,) = _dashboard(proxied, "Deployment")
    args = deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert "--viewer-auth=proxy" in args and "--allowed-host=jobs.example.com" in args
