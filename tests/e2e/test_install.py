"""User story: install jobchain as users do (kustomize or Helm), run workflows, upgrade, uninstall.

One Helm release for the whole module, in namespaces of its own (jc-install-*), watching only
its workloads namespace: the host operator of the other e2e modules watches jc-e2e-<session>-* only, so
exactly one operator acts on each namespace. The chart runs the locally built image
localhost/jobchain-operator:dev (hack/image-build.sh builds and loads it; pullPolicy Never so
a missing image fails at once instead of waiting on a registry that does not exist).
The tests run in file order: install -> metrics -> upgrade -> uninstall.
"""

from __future__ import annotations

import json
import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.e2e.support import (
    CHART,
    GROUP,
    REPLICAS,
    VERSION,
    Install,
    create_namespace,
    helm,
    install_metrics,
    kubectl,
    metric_total,
    wait_for,
)

ROOT = Path(__file__).resolve().parents[2]
CRD_NAMES = ("workflows.jobchain.dev", "workflowexecutions.jobchain.dev", "workflowschedules.jobchain.dev")


def _adopt_crds_into(install: Install) -> None:
    """CRDs applied earlier with kubectl (e.g. by the host operator's fixture) become part of
    the release, as Helm documents for adopting existing objects; otherwise install refuses."""
    ext = client.ApiextensionsV1Api(install.api)
    for name in CRD_NAMES:
        try:
            ext.read_custom_resource_definition(name)
        except ApiException as exc:
            if exc.status == 404:
                continue
            raise
        kubectl(install.kubeconfig, "label", "--overwrite", f"crd/{name}", "app.kubernetes.io/managed-by=Helm")
        kubectl(
            install.kubeconfig,
            "annotate",
            "--overwrite",
            f"crd/{name}",
            f"meta.helm.sh/release-name={install.release}",
            f"meta.helm.sh/release-namespace={install.system}",
        )


@pytest.fixture(scope="module")
def install(kubeconfig: str, api: client.ApiClient) -> Iterator[Install]:
    suffix = secrets.token_hex(3)
    inst = Install(kubeconfig, api, f"jc-install-sys-{suffix}", f"jc-install-{suffix}", f"jc-{suffix}")
    # The operator's namespace enforces the restricted Pod Security Standard, as
    # manifests/base does for jobchain-system: the chart's pod must be admitted there.
    create_namespace(client.CoreV1Api(api), inst.system, {"pod-security.kubernetes.io/enforce": "restricted"})
    create_namespace(client.CoreV1Api(api), inst.workloads)
    yield inst
    helm(kubeconfig, "uninstall", inst.release, "-n", inst.system, "--wait", check=False)
    core = client.CoreV1Api(api)
    for ns in (inst.workloads, inst.system):
        core.delete_namespace(ns, body=client.V1DeleteOptions(propagation_policy="Background"))


def _dry_run(kubeconfig: str, manifests: str) -> str:
    return kubectl(
        kubeconfig,
        "apply",
        "--server-side",
        "--force-conflicts",
        "--dry-run=server",
        "--field-manager=jobchain-e2e",
        "-f",
        "-",
        input_text=manifests,
    )


def test_rendered_manifests_are_accepted_by_the_api_server(install: Install) -> None:
    """Server-side dry-run of `kubectl kustomize` and of `helm template` with several value sets."""
    core = client.CoreV1Api(install.api)
    # The kustomize manifests put the operator in jobchain-system (and the overlay watches
    # jobchain-workflows): a dry-run of a namespaced object needs its namespace to exist.
    made: list[str] = []
    for ns in ("jobchain-system", "jobchain-workflows"):
        try:
            core.read_namespace(ns)
        except ApiException as exc:
            if exc.status != 404:
                raise
            create_namespace(client.CoreV1Api(install.api), ns)
            made.append(ns)
    try:
        for path in ("manifests/base", "manifests/overlays/namespaced"):
            rendered = kubectl(install.kubeconfig, "kustomize", str(ROOT / path))
            out = _dry_run(install.kubeconfig, rendered)
            assert "deployment.apps/jobchain-operator serverside-applied (server dry run)" in out, out
    finally:
        for ns in made:
            core.delete_namespace(ns)
    value_sets = [
        [],
        [f"watchNamespaces={{{install.workloads}}}"],
        ["crds.install=false", "rbac.create=false", "serviceAccount.create=false", "serviceAccount.name=default"],
        ["logFormat=json", "logLevel=debug", "metrics.enabled=false"],
    ]
    # helm template renders for Kubernetes 1.20 unless told; the chart's kubeVersion wants the cluster's
    server = json.loads(kubectl(install.kubeconfig, "version", "-o", "json"))["serverVersion"]["gitVersion"]
    for sets in value_sets:
        args = [a for s in sets for a in ("--set", s)]
        rendered = helm(install.kubeconfig, "template", "dry", str(CHART), "-n", install.system,
                        "--kube-version", server, *args)
        out = _dry_run(install.kubeconfig, rendered)
        assert "deployment.apps/dry-jobchain serverside-applied (server dry run)" in out, (sets, out)


def test_helm_install_runs_a_workflow(install: Install) -> None:
    _adopt_crds_into(install)
    helm(
        install.kubeconfig,
        "install",
        install.release,
        str(CHART),
        "-n",
        install.system,
        *install.helm_values(),
        "--wait",
        "--timeout",
        "3m",
    )
    pod, _standby = install.wait_operator_ready()
    (container,) = pod.spec.containers
    assert f"--namespace={install.workloads}" in container.args
    assert pod.spec.security_context.run_as_non_root is True
    for crd in CRD_NAMES:
        kubectl(install.kubeconfig, "wait", "--for=condition=Established", f"crd/{crd}", "--timeout=60s")

    name = install.create_execution(
        [
            {"name": "greet", "script": 'echo \'{"who": "world"}\' > $JOBCHAIN_OUTPUT', "next": [{"node": "answer"}]},
            {"name": "answer", "script": 'echo "hello, $(input.who)" > $JOBCHAIN_OUTPUT'},
        ]
    )
    done = install.wait_phase(name, {"Succeeded", "Failed", "Cancelled"})
    assert done["status"]["phase"] == "Succeeded", done["status"]
    outputs = {n["name"]: n.get("output") for n in done["status"]["nodes"]}
    assert outputs == {"greet": {"who": "world"}, "answer": "hello, world"}


def test_metrics_count_what_ran(install: Install) -> None:
    samples = [s for s in install_metrics(install) if s[0].startswith("jobchain_") and "le" not in s[1]]
    shown = "\n".join(f"{n}{ls} {v}" for n, ls, v in samples)
    assert (metric_total(samples, "jobchain_executions_started_total") or 0) >= 1, shown
    assert (metric_total(samples, "jobchain_executions_finished_total", phase="Succeeded") or 0) >= 1, shown
    assert (metric_total(samples, "jobchain_node_duration_seconds_count", phase="Succeeded") or 0) >= 2, shown
    assert (metric_total(samples, "jobchain_node_handoff_seconds_count") or 0) >= 1, shown
    assert metric_total(samples, "jobchain_executions_running") == 0, shown
    assert metric_total(samples, "jobchain_leader") == 1, f"exactly one active replica:\n{shown}"


def test_helm_upgrade_while_an_execution_runs(install: Install) -> None:
    before = install.wait_operator_ready()
    name = install.create_execution(
        [
            {"name": "slow", "script": "sleep 30; echo '{\"n\": 1}' > $JOBCHAIN_OUTPUT", "next": [{"node": "after"}]},
            {"name": "after", "script": "echo $(( $(input.n) + 1 )) > $JOBCHAIN_OUTPUT"},
        ]
    )
    running = install.wait_phase(name, {"Running", "Succeeded", "Failed"}, timeout=60)
    assert running["status"]["phase"] == "Running", running["status"]

    helm(
        install.kubeconfig,
        "upgrade",
        install.release,
        str(CHART),
        "-n",
        install.system,
        *install.helm_values("logFormat=json"),
        "--wait",
        "--timeout",
        "3m",
    )
    after = install.wait_operator_ready()
    old = {p.metadata.uid for p in before}
    assert not {p.metadata.uid for p in after} & old, "an old operator pod outlived the upgrade"
    assert all("--log-format=json" in p.spec.containers[0].args for p in after)
    assert install.execution(name)["status"]["phase"] == "Running", "the upgrade outlasted the execution"

    done = install.wait_phase(name, {"Succeeded", "Failed", "Cancelled"})
    assert done["status"]["phase"] == "Succeeded", done["status"]
    assert {n["name"]: n.get("output") for n in done["status"]["nodes"]}["after"] == 2
    assert len(install.operator_pods()) == REPLICAS


def test_helm_uninstall_keeps_crds_and_executions(install: Install) -> None:
    executions = client.CustomObjectsApi(install.api).list_namespaced_custom_object(
        GROUP, VERSION, install.workloads, "workflowexecutions"
    )["items"]
    assert len(executions) >= 2
    helm(install.kubeconfig, "uninstall", install.release, "-n", install.system, "--wait")
    apps = client.AppsV1Api(install.api)
    with pytest.raises(ApiException) as gone:
        apps.read_namespaced_deployment(install.deployment, install.system)
    assert gone.value.status == 404
    wait_for(lambda: not install.operator_pods(), timeout=60, what="the operator pod to go")
    ext = client.ApiextensionsV1Api(install.api)
    for crd in CRD_NAMES:
        ext.read_custom_resource_definition(crd)  # still there: helm.sh/resource-policy keep
    for obj in executions:
        kept = install.execution(obj["metadata"]["name"])
        assert kept["status"]["phase"] == "Succeeded"
    # the release's cluster-scoped RBAC is gone with it
    rbac = client.RbacAuthorizationV1Api(install.api)
    names = {r.metadata.name for r in rbac.list_cluster_role().items}
    assert f"{install.deployment}-discovery" not in names
