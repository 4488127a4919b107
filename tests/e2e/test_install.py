"""User story: install jobchain as users do (kustomize or Helm), run workflows, upgrade, uninstall.

One Helm release for the whole module, in namespaces of its own (jc-install-*), watching only
its workloads namespace: the host operator of the other e2e modules watches jc-e2e-<session>-* only, so
exactly one operator acts on each namespace. The chart runs the locally built image
localhost/jobchain-operator:dev (hack/image-build.sh builds and loads it; pullPolicy Never so
a missing image fails at once instead of waiting on a registry that does not exist).
The tests run in file order: install -> metrics -> upgrade -> uninstall.
"""

from __future__ import annotations

import os
import secrets
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubernetes import client
from kubernetes.client.exceptions import ApiException
from prometheus_client.parser import text_string_to_metric_families

from tests.e2e.support import GROUP, VERSION, kubectl, tool, wait_for

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "charts" / "jobchain"
# JOBCHAIN_E2E_IMAGE_TAG: another tag of the same build (e.g. one only this checkout's build
# carries, when several checkouts share one cluster and each rebuilds :dev).
IMAGE_REPOSITORY, IMAGE_TAG = "localhost/jobchain-operator", os.environ.get("JOBCHAIN_E2E_IMAGE_TAG", "dev")
REPLICAS = 2  # the chart's default: one active, one standby
CRD_NAMES = ("workflows.jobchain.dev", "workflowexecutions.jobchain.dev", "workflowschedules.jobchain.dev")


def helm(kubeconfig: str, *args: str, check: bool = True, timeout: int = 300) -> str:
    done = subprocess.run(
        [tool("helm"), "--kubeconfig", kubeconfig, *args], capture_output=True, text=True, timeout=timeout
    )
    if check and done.returncode != 0:
        raise AssertionError(f"helm {' '.join(args)} failed: {done.stderr.strip()}")
    return done.stdout


@dataclass
class Install:
    kubeconfig: str
    api: client.ApiClient
    system: str  # the release's namespace: the operator runs here
    workloads: str  # the one namespace it watches
    release: str

    @property
    def deployment(self) -> str:
        return f"{self.release}-jobchain" if "jobchain" not in self.release else self.release

    def helm_values(self, *extra: str) -> list[str]:
        sets = [
            f"image.repository={IMAGE_REPOSITORY}",
            f"image.tag={IMAGE_TAG}",
            "image.pullPolicy=Never",
            f"watchNamespaces={{{self.workloads}}}",
            # the cluster-wide user roles and admission policies have fixed names: only
            # test_install_step_policy.py installs them (the other e2e modules run with session copies),
            # so no two releases, nor one a killed run left behind, ever claim the same objects
            "rbac.userRoles=false",
            "stepPolicy.enabled=false",
            "runPolicy.enabled=false",
            *extra,
        ]
        return [a for s in sets for a in ("--set", s)]

    def operator_pods(self) -> list[client.V1Pod]:
        pods = client.CoreV1Api(self.api).list_namespaced_pod(
            self.system, label_selector=f"app.kubernetes.io/instance={self.release}"
        )
        return [p for p in pods.items if p.metadata.deletion_timestamp is None]

    def wait_operator_ready(self, timeout: float = 180) -> list[client.V1Pod]:
        """Waits until exactly the chart's replicas run, all Ready (an update's old pods gone)."""
        def ready() -> list[client.V1Pod] | None:
            pods = self.operator_pods()
            for pod in pods:
                for cs in pod.status.container_statuses or []:
                    waiting = cs.state.waiting
                    if waiting and waiting.reason in ("ErrImageNeverPull", "ErrImagePull", "ImagePullBackOff"):
                        raise AssertionError(
                            f"the operator image {IMAGE_REPOSITORY}:{IMAGE_TAG} is not in the cluster "
                            f"({waiting.reason}): run hack/image-build.sh"
                        )
            ready_pods = [
                p for p in pods if any(c.type == "Ready" and c.status == "True" for c in p.status.conditions or [])
            ]
            return ready_pods if len(ready_pods) == REPLICAS and len(pods) == REPLICAS else None

        try:
            found: list[client.V1Pod] = wait_for(ready, timeout=timeout, what="the operator pods to be Ready",
                                                 interval=1)
        except AssertionError:
            logs = kubectl(
                self.kubeconfig, "-n", self.system, "logs", f"deploy/{self.deployment}", "--tail=40", check=False
            )
            raise AssertionError(f"operator not Ready; its log:\n{logs}") from None
        return found

    def create_execution(self, nodes: list[dict[str, Any]]) -> str:
        body = {
            "apiVersion": f"{GROUP}/{VERSION}",
            "kind": "WorkflowExecution",
            "metadata": {"generateName": "install-"},
            "spec": {"workflow": {"defaults": {"image": "busybox:1.36", "timeoutSeconds": 120}, "nodes": nodes}},
        }
        created = client.CustomObjectsApi(self.api).create_namespaced_custom_object(
            GROUP, VERSION, self.workloads, "workflowexecutions", body
        )
        return str(created["metadata"]["name"])

    def execution(self, name: str) -> dict[str, Any]:
        obj: dict[str, Any] = client.CustomObjectsApi(self.api).get_namespaced_custom_object(
            GROUP, VERSION, self.workloads, "workflowexecutions", name
        )
        return obj

    def wait_phase(self, name: str, phases: set[str], timeout: float = 180) -> dict[str, Any]:
        def reached() -> dict[str, Any] | None:
            obj = self.execution(name)
            return obj if (obj.get("status") or {}).get("phase") in phases else None

        try:
            found: dict[str, Any] = wait_for(reached, timeout=timeout, what=f"{name} to be {phases}", interval=0.5)
        except AssertionError:
            logs = kubectl(
                self.kubeconfig, "-n", self.system, "logs", f"deploy/{self.deployment}", "--tail=40", check=False
            )
            raise AssertionError(
                f"{name}: {yaml.safe_dump(self.execution(name).get('status'))}\noperator log:\n{logs}"
            ) from None
        return found


def _make_namespace(api: client.ApiClient, name: str, labels: dict[str, str] | None = None) -> None:
    core = client.CoreV1Api(api)
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name, labels=labels)))
    wait_for(lambda: _has_default_sa(core, name), timeout=60, what=f"the default ServiceAccount of {name}")


def _has_default_sa(core: client.CoreV1Api, namespace: str) -> bool:
    try:
        core.read_namespaced_service_account("default", namespace)
        return True
    except ApiException as exc:
        if exc.status != 404:
            raise
        return False


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
    _make_namespace(api, inst.system, {"pod-security.kubernetes.io/enforce": "restricted"})
    _make_namespace(api, inst.workloads)
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
            _make_namespace(install.api, ns)
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
    for sets in value_sets:
        args = [a for s in sets for a in ("--set", s)]
        rendered = helm(install.kubeconfig, "template", "dry", str(CHART), "-n", install.system, *args)
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


def _metrics(install: Install) -> list[tuple[str, dict[str, str], float]]:
    """Samples of every replica's /metrics (the active one counts; a standby's counters stay 0),
    read through the API server's pod proxy, and once through the Service to show it serves."""
    kubectl(install.kubeconfig, "get", "--raw",
            f"/api/v1/namespaces/{install.system}/services/http:{install.deployment}-metrics:metrics/proxy/metrics")
    samples = []
    for pod in install.operator_pods():
        text = kubectl(install.kubeconfig, "get", "--raw",
                       f"/api/v1/namespaces/{install.system}/pods/http:{pod.metadata.name}:8080/proxy/metrics")
        samples += [(s.name, s.labels, s.value) for family in text_string_to_metric_families(text)
                    for s in family.samples]
    return samples


def _total(samples: list[tuple[str, dict[str, str], float]], name: str, **labels: str) -> float | None:
    """Sum of the samples NAME{LABELS...}; None when the operator exports no such sample."""
    values = [v for n, ls, v in samples if n == name and labels.items() <= ls.items()]
    return sum(values) if values else None


def test_metrics_count_what_ran(install: Install) -> None:
    samples = [s for s in _metrics(install) if s[0].startswith("jobchain_") and "le" not in s[1]]
    shown = "\n".join(f"{n}{ls} {v}" for n, ls, v in samples)
    assert (_total(samples, "jobchain_executions_started_total") or 0) >= 1, shown
    assert (_total(samples, "jobchain_executions_finished_total", phase="Succeeded") or 0) >= 1, shown
    assert (_total(samples, "jobchain_node_duration_seconds_count", phase="Succeeded") or 0) >= 2, shown
    assert (_total(samples, "jobchain_node_handoff_seconds_count") or 0) >= 1, shown
    assert _total(samples, "jobchain_executions_running") == 0, shown
    assert _total(samples, "jobchain_leader") == 1, f"exactly one active replica:\n{shown}"


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
