"""The install manifests (manifests/ for kustomize, charts/jobchain for Helm) as users get them.

Renders them with the kubectl and helm that hack/build-tools.sh builds (skipped, with the
reason, where they are not built) and checks what an installing user would notice: what the
operator may do, that it runs locked down, that two replicas run with one active (the Lease), that the CRDs ship
unchanged and survive `helm uninstall`, and that chart values reach the operator's arguments.
The copies of crds/ inside manifests/ and the chart are compared without any binary.
"""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from .manifest_support import (
    CHART,
    CRDS,
    HELM,
    KUBE_VERSION,
    KUBECTL,
    ROOT,
    helm_template,
    kustomize,
    needs_helm,
    needs_kubectl,
    of_kind,
    only,
    run_tool,
    yaml_docs,
)

OPERATOR_SA = "jobchain-operator"


def grants(docs: list[dict[str, Any]], sa_name: str) -> dict[str | None, set[tuple[str, str, str]]]:
    """What ServiceAccount SA_NAME may do: scope (None = cluster-wide, or a namespace) ->
    {(apiGroup, resource, verb)}, from the rendered roles and bindings."""
    roles = {
        (d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"]): d
        for d in docs
        if d["kind"] in ("Role", "ClusterRole")
    }
    result: dict[str | None, set[tuple[str, str, str]]] = {}
    for binding in docs:
        if binding["kind"] not in ("RoleBinding", "ClusterRoleBinding"):
            continue
        if not any(s["kind"] == "ServiceAccount" and s["name"] == sa_name for s in binding["subjects"]):
            continue
        ref = binding["roleRef"]
        ns = binding["metadata"].get("namespace") if binding["kind"] == "RoleBinding" else None
        role = roles[(ref["kind"], ns if ref["kind"] == "Role" else None, ref["name"])]
        for rule in role["rules"]:
            for group in rule["apiGroups"]:
                for resource in rule["resources"]:
                    for verb in rule["verbs"]:
                        result.setdefault(ns, set()).add((group, resource, verb))
    return result


def _perms(*rules: tuple[str, str, str]) -> set[tuple[str, str, str]]:
    out = set()
    for group, resources, verbs in rules:
        for r in resources.split():
            for v in verbs.split():
                out.add((group, r, v))
    return out


# What the operator needs in each namespace it serves (issue 4), and nothing else.
NAMESPACED = _perms(
    ("jobchain.dev", "workflows", "get list watch"),
    ("jobchain.dev", "workflowexecutions", "list watch create patch delete"),
    ("jobchain.dev", "workflowschedules", "list watch"),
    ("jobchain.dev", "workflows/status workflowexecutions/status workflowschedules/status", "patch"),
    ("batch", "jobs", "get list watch create delete"),
    ("", "pods", "list watch"),
    ("", "pods/log", "get"),
    ("", "events", "create"),
    ("", "events", "list"),  # a Job's FailedCreate Events: its pods refused by admission
    ("", "secrets", "get"),
    ("", "configmaps", "get create"),
    ("", "serviceaccounts", "use"), ("jobchain.dev", "privileged", "use"),  # for the run policy
)
# The leader election Lease, in the operator's own namespace.
LEASE = _perms(("coordination.k8s.io", "leases", "create get update"))
# Cluster-scoped reads kopf makes to discover namespaces and resources.
DISCOVERY = _perms(
    ("", "namespaces", "list watch"), ("apiextensions.k8s.io", "customresourcedefinitions", "list watch"),
    ("admissionregistration.k8s.io", "validatingadmissionpolicies validatingadmissionpolicybindings", "get"),
)


def _crd_files(folder: Path) -> dict[str, str]:
    return {p.name: p.read_text() for p in sorted(folder.glob("*.yaml"))}


def _generated_crds() -> dict[str, dict[str, Any]]:
    return {d["metadata"]["name"]: d for p in sorted(CRDS.glob("*.yaml")) for d in yaml_docs(p.read_text())}


# --- copies of crds/ ------------------------------------------------------------------------


@pytest.mark.parametrize("copy", ["manifests/base/crds", "charts/jobchain/files/crds"])
def test_shipped_crds_are_the_generated_ones(copy: str) -> None:
    assert _crd_files(CRDS), "crds/ is empty"
    assert _crd_files(ROOT / copy) == _crd_files(CRDS), f"{copy} is stale: run hack/sync-manifests.sh"


# --- the operator Deployment, whichever way it is installed ----------------------------------


def assert_operator_deployment(deployment: dict[str, Any]) -> dict[str, Any]:
    """Two locked-down replicas with health probes, electing one active; returns its container."""
    spec = deployment["spec"]
    assert spec["replicas"] == 2, "one replica leaves a gap with no operator on every drain or upgrade"
    assert spec["strategy"] == {"type": "RollingUpdate", "rollingUpdate": {"maxSurge": 1, "maxUnavailable": 0}}
    pod = spec["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (container,) = pod["containers"]
    sc = container["securityContext"]
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["capabilities"]["drop"] == ["ALL"]
    assert sc["readOnlyRootFilesystem"] is True
    tmp = [m for m in container["volumeMounts"] if m["mountPath"] == "/tmp"]
    assert tmp, "with a read-only root filesystem, /tmp must be a volume"
    volume = next(v for v in pod["volumes"] if v["name"] == tmp[0]["name"])
    assert "emptyDir" in volume
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    for probe in ("livenessProbe", "readinessProbe"):
        get = container[probe]["httpGet"]
        assert get["path"] == "/healthz"
        assert ports.get(get["port"], get["port"]) == 8081
    assert ports["metrics"] == 8080
    assert container["resources"]["requests"]["cpu"] and container["resources"]["requests"]["memory"]
    assert container["imagePullPolicy"] == "IfNotPresent", "there is no registry to pull from"
    assert "--health-port=8081" in container["args"] and "--metrics-port=8080" in container["args"]
    assert "--leader-elect" in container["args"], "two replicas without leader election would both act"
    return container


def assert_disruption_budget(docs: list[dict[str, Any]], deployment: dict[str, Any]) -> None:
    pdb = only(docs, "PodDisruptionBudget")
    assert pdb["spec"]["minAvailable"] == 1
    assert pdb["metadata"]["namespace"] == deployment["metadata"]["namespace"]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()


def assert_metrics_service(docs: list[dict[str, Any]], deployment: dict[str, Any]) -> None:
    service = only(docs, "Service")
    assert [(p["port"], p["targetPort"]) for p in service["spec"]["ports"]] == [(8080, "metrics")]
    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items(), "the Service selects no operator pod"


# --- kustomize ------------------------------------------------------------------------------


@needs_kubectl
def test_kustomize_base_installs_a_cluster_wide_operator() -> None:
    docs = kustomize("manifests/base")
    namespace = only(docs, "Namespace")["metadata"]["name"]
    assert namespace == "jobchain-system"
    deployment = only(docs, "Deployment")
    assert deployment["metadata"]["namespace"] == namespace
    container = assert_operator_deployment(deployment)
    assert "--all-namespaces" in container["args"]
    assert container["image"].startswith("localhost/jobchain-operator:")
    assert_metrics_service(docs, deployment)
    assert_disruption_budget(docs, deployment)
    assert "--lease-name=jobchain-operator" in container["args"]
    assert grants(docs, OPERATOR_SA) == {None: NAMESPACED | DISCOVERY, namespace: LEASE}
    crds = {d["metadata"]["name"]: d for d in of_kind(docs, "CustomResourceDefinition")}
    assert crds.keys() == _generated_crds().keys()
    for name, crd in crds.items():
        assert crd["spec"] == _generated_crds()[name]["spec"]


@needs_kubectl
def test_kustomize_base_offers_the_step_and_user_roles() -> None:
    roles = {d["metadata"]["name"]: d for d in of_kind(kustomize("manifests/base"), "ClusterRole")}
    assert roles["jobchain-step"]["rules"] == [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "patch"]},
                                              {"apiGroups": ["jobchain.dev"], "resources": ["steps"],
                                               "verbs": ["set-output"]}]  # the step policy's marker
    assert roles["jobchain-edit"]["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-edit"] == "true"
    assert roles["jobchain-view"]["metadata"]["labels"]["rbac.authorization.k8s.io/aggregate-to-view"] == "true"


@needs_kubectl
def test_kustomize_namespaced_overlay_confines_the_operator_to_one_namespace() -> None:
    docs = kustomize("manifests/overlays/namespaced")
    container = assert_operator_deployment(only(docs, "Deployment"))
    assert "--all-namespaces" not in container["args"]
    assert "--namespace=jobchain-workflows" in container["args"]
    assert grants(docs, OPERATOR_SA) == {None: DISCOVERY, "jobchain-workflows": NAMESPACED,
                                         "jobchain-system": LEASE}
    assert "jobchain-workflows" in {d["metadata"]["name"] for d in of_kind(docs, "Namespace")}


# --- Helm -----------------------------------------------------------------------------------

VALUE_SETS = {
    "defaults": [],
    "namespaced": ["watchNamespaces={team-a,team-b}"],
    "no-crds-no-rbac": [
        "crds.install=false",
        "rbac.create=false",
        "serviceAccount.create=false",
        "serviceAccount.name=ops",
    ],
    "monitoring": [
        "metrics.serviceMonitor.enabled=true",
        "metrics.serviceMonitor.labels.release=prom",
        "logFormat=json",
        "logLevel=debug",
        "nodeSelector.disk=ssd",
    ],
}


@needs_helm
@pytest.mark.parametrize("name", VALUE_SETS)
def test_helm_lint_passes(name: str) -> None:
    assert HELM is not None
    args = [a for s in VALUE_SETS[name] for a in ("--set", s)]
    run_tool(HELM, "lint", "--strict", CHART, *args)


@needs_helm
def test_helm_defaults_install_a_cluster_wide_operator_and_keep_the_crds() -> None:
    docs = helm_template()
    deployment = only(docs, "Deployment")
    container = assert_operator_deployment(deployment)
    chart = yaml.safe_load((CHART / "Chart.yaml").read_text())
    assert chart["appVersion"] == "0.1.0"
    assert container["image"] == f"localhost/jobchain-operator:{chart['appVersion']}"
    assert "--all-namespaces" in container["args"] and "--log-format=plain" in container["args"]
    assert "--verbose" not in container["args"]
    assert_metrics_service(docs, deployment)
    assert_disruption_budget(docs, deployment)
    assert "--lease-name=jobchain" in container["args"] and "--lease-duration=12" in container["args"]
    sa = only(docs, "ServiceAccount")["metadata"]["name"]
    assert pod_sa(deployment) == sa
    assert grants(docs, sa) == {None: NAMESPACED | DISCOVERY, "jobchain-system": LEASE}
    crds = {d["metadata"]["name"]: d for d in of_kind(docs, "CustomResourceDefinition")}
    assert crds.keys() == _generated_crds().keys()
    for name, crd in crds.items():
        assert crd["metadata"]["annotations"]["helm.sh/resource-policy"] == "keep", name
        assert crd["spec"] == _generated_crds()[name]["spec"], f"{name}: the chart changed the CRD"


def pod_sa(deployment: dict[str, Any]) -> str:
    return str(deployment["spec"]["template"]["spec"]["serviceAccountName"])


@needs_helm
def test_helm_watch_namespaces_become_arguments_and_roles() -> None:
    docs = helm_template(*VALUE_SETS["namespaced"])
    container = assert_operator_deployment(only(docs, "Deployment"))
    assert "--all-namespaces" not in container["args"]
    assert [a for a in container["args"] if a.startswith("--namespace")] == [
        "--namespace=team-a",
        "--namespace=team-b",
    ]
    sa = only(docs, "ServiceAccount")["metadata"]["name"]
    assert grants(docs, sa) == {None: DISCOVERY, "team-a": NAMESPACED, "team-b": NAMESPACED, "jobchain-system": LEASE}


@needs_helm
def test_helm_can_leave_crds_rbac_and_service_account_to_someone_else() -> None:
    docs = helm_template(*VALUE_SETS["no-crds-no-rbac"])
    kinds = {d["kind"] for d in docs}
    assert kinds.isdisjoint(
        {"CustomResourceDefinition", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding", "ServiceAccount"}
    )
    assert pod_sa(only(docs, "Deployment")) == "ops"


@needs_helm
def test_helm_monitoring_and_logging_values_reach_the_operator() -> None:
    docs = helm_template(*VALUE_SETS["monitoring"])
    deployment = only(docs, "Deployment")
    container = assert_operator_deployment(deployment)
    assert "--log-format=json" in container["args"] and "--verbose" in container["args"]
    assert deployment["spec"]["template"]["spec"]["nodeSelector"] == {"disk": "ssd"}
    monitor = only(docs, "ServiceMonitor")
    assert monitor["metadata"]["labels"]["release"] == "prom"
    assert monitor["spec"]["endpoints"] == [{"port": "metrics", "path": "/metrics", "interval": "30s"}]
    service = only(docs, "Service")
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()


@needs_helm
def test_helm_metrics_can_be_turned_off() -> None:
    docs = helm_template("metrics.enabled=false")
    (container,) = only(docs, "Deployment")["spec"]["template"]["spec"]["containers"]
    assert "--metrics-port=0" in container["args"], "port 0 is how the operator is told to serve no metrics"
    assert [p["name"] for p in container["ports"]] == ["health"]
    assert not of_kind(docs, "Service")


@needs_helm
def test_helm_two_replicas_need_leader_election_and_one_replica_recreates() -> None:
    assert HELM is not None
    done = subprocess.run([str(HELM), "template", "x", str(CHART), "--kube-version", KUBE_VERSION,
                           "--set", "leaderElection.enabled=false"],
                          capture_output=True, text=True, timeout=60, check=False)
    assert done.returncode != 0 and "needs leaderElection.enabled" in done.stderr, done.stderr
    docs = helm_template("replicaCount=1", "leaderElection.enabled=false")
    deployment = only(docs, "Deployment")
    assert deployment["spec"]["replicas"] == 1 and deployment["spec"]["strategy"] == {"type": "Recreate"}
    assert "--leader-elect" not in deployment["spec"]["template"]["spec"]["containers"][0]["args"]
    assert not of_kind(docs, "PodDisruptionBudget"), "a budget of 1 of 1 would block every node drain"


@needs_helm
def test_helm_refuses_values_of_the_wrong_shape() -> None:
    assert HELM is not None
    for bad in ("logFormat=xml", "watchNamespaces=default", "image.pullPolicy=Sometimes"):
        done = subprocess.run(
            [str(HELM), "template", "x", str(CHART), "--kube-version", KUBE_VERSION, "--set", bad],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,
        )
        assert done.returncode != 0, f"--set {bad} was accepted"
        assert "values don't meet the specifications of the schema" in done.stderr, done.stderr


def test_the_built_kubectl_and_helm_run() -> None:
    """The render tests above need them: without them this skips on a developer's machine (saying
    why) and fails in CI (JOBCHAIN_REQUIRE_TOOLS, tests/conftest.py)."""
    if KUBECTL is None or HELM is None:
        pytest.skip("kubectl/helm not built: run hack/build-tools.sh (the render tests above were skipped)")
    for tool, args in ((KUBECTL, ["version", "--client"]), (HELM, ["version", "--short"])):
        done = subprocess.run([str(tool), *args], capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 0, f"{tool} {' '.join(args)}: {done.stderr}"
