"""Helpers of the end-to-end tier: the operator as a real process, kubectl, and waiting on objects.

The operator runs as a host process against the cluster (the same code as in the image),
so that a test can kill it with SIGKILL and start it again, as a crashed pod would be.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from kubernetes import client
from prometheus_client.parser import text_string_to_metric_families

from jobchain.api.vocabulary import GROUP, VERSION

ROOT = Path(__file__).resolve().parents[2]
# The host operator watches only the namespaces of this test session (jc-e2e-<session>-*), so
# that neither an operator installed by the install tests (in jc-install-* namespaces) nor the
# operator of another test session running at the same time ever acts on the same objects.
SESSION = secrets.token_hex(2)
E2E_NAMESPACE_PREFIX = f"jc-e2e-{SESSION}-"


def tool(name: str) -> str:
    """A binary built by hack/build-tools.sh (kubectl, helm), else from PATH."""
    versions = dict(
        line.split("=", 1) for line in (ROOT / "hack/versions.env").read_text().splitlines()
        if "=" in line and not line.startswith("#")
    )
    cache = Path(os.environ.get("JOBCHAIN_CACHE", Path.home() / ".cache/jobchain"))
    built = cache / f"k8s-{versions['KUBE_VERSION']}" / "bin" / name
    return str(built) if built.exists() else name


def kubectl(kubeconfig: str, *args: str, input_text: str | None = None, check: bool = True) -> str:
    result = subprocess.run(
        [tool("kubectl"), "--kubeconfig", kubeconfig, *args],
        input=input_text, capture_output=True, text=True, timeout=120,
    )
    if check and result.returncode != 0:
        raise AssertionError(f"kubectl {' '.join(args)} failed: {result.stderr.strip()}")
    return result.stdout


def install_crds(kubeconfig: str) -> None:
    kubectl(kubeconfig, "apply", "--server-side", "--force-conflicts", "-f", str(ROOT / "crds"))
    for crd in ("workflows.jobchain.dev", "workflowexecutions.jobchain.dev", "workflowschedules.jobchain.dev"):
        kubectl(kubeconfig, "wait", "--for=condition=Established", f"crd/{crd}", "--timeout=60s")


def reinstall_crds(kubeconfig: str, objects: Objects) -> None:
    """Applies this tree's CRDs again and waits until their resources are served.

    The cluster is shared: a test session of another tree may have applied CRDs without the fields a
    test needs since this session started (the API server then drops those fields). A CRD that
    changes makes the API server answer 429 "storage is (re)initializing" for a moment: wait it out.
    """
    install_crds(kubeconfig)

    def served() -> bool:
        try:
            for plural in ("workflows", "workflowexecutions", "workflowschedules"):
                objects.custom.list_namespaced_custom_object(GROUP, VERSION, objects.namespace, plural, limit=1)
        except client.ApiException as exc:
            if exc.status in (404, 429, 503):
                return False
            raise
        return True

    wait_for(served, 60, "the jobchain.dev resources to be served after applying the CRDs")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


# The operator's own namespace in this session: its ServiceAccount lives here, and the operator
# is told it is its namespace (executions here are refused). It matches the watched pattern, so
# the refusal is what keeps an execution here from running, not the watch.
OPERATOR_NAMESPACE = f"{E2E_NAMESPACE_PREFIX}system"
OPERATOR_SA = "jobchain-operator"
# Cluster-scoped objects of manifests/base that the session creates under its own name, so
# that sessions (and the install tests, which apply the real names) never share them.
SESSION_COPIES = ("ClusterRole", "ClusterRoleBinding", "ValidatingAdmissionPolicy",
                  "ValidatingAdmissionPolicyBinding")


# The admission policies manifests/base ships; the operator checks at start that they are in force.
POLICY_FILES = ("step-policy.yaml", "run-policy.yaml")


def session_policies() -> str:
    """JOBCHAIN_ADMISSION_POLICIES for an operator of this session: the names of its copies."""
    return ",".join(session_name(d["metadata"]["name"]) for d in shipped_docs(*POLICY_FILES)
                    if d["kind"] == "ValidatingAdmissionPolicy")


def shipped_docs(*files: str) -> list[dict[str, Any]]:
    """The documents of manifests/base files, as kustomize would apply them (no transforms used)."""
    return [d for f in files for d in yaml.safe_load_all((ROOT / "manifests/base" / f).read_text()) if d]


def session_name(name: str) -> str:
    return f"jc-e2e-{SESSION}-{name}"


class OperatorAccount:
    """The operator's ServiceAccount, bound to exactly the RBAC manifests/base ships, and a
    kubeconfig that authenticates as it: the host operator runs with the rights a real install
    gives, so a missing right fails a test and cluster-admin hides nothing.

    Cluster-scoped objects (the ClusterRoles, their bindings, the step admission policy) are
    created as session copies: same rules, names prefixed with jc-e2e-<session>-.
    """

    def __init__(self, admin_kubeconfig: str, folder: Path) -> None:
        self.admin = admin_kubeconfig
        self.path = folder / "operator.kubeconfig"
        self.created: list[tuple[str, str]] = []  # (kind, name) of cluster-scoped copies

    def objects(self) -> list[dict[str, Any]]:
        docs = shipped_docs("rbac.yaml", "rbac-users.yaml", *POLICY_FILES)
        out: list[dict[str, Any]] = []
        for doc in docs:
            doc = dict(doc)
            if doc["kind"] not in SESSION_COPIES:
                continue
            doc["metadata"] = {**doc["metadata"], "name": session_name(doc["metadata"]["name"])}
            if "roleRef" in doc:
                doc["roleRef"] = {**doc["roleRef"], "name": session_name(doc["roleRef"]["name"])}
            if "subjects" in doc:
                doc["subjects"] = [{**s, "namespace": OPERATOR_NAMESPACE} for s in doc["subjects"]]
            spec = doc.get("spec") or {}
            if "policyName" in spec:
                doc["spec"] = {**spec, "policyName": session_name(spec["policyName"])}
            if doc["kind"] == "ValidatingAdmissionPolicy":
                # The session's copy judges the session's namespaces only: other sessions (and the
                # cluster's own controllers) never meet it, whatever it says.
                mine = f"request.namespace.startsWith('{E2E_NAMESPACE_PREFIX}')"
                doc["spec"] = {**spec, "matchConditions": [
                    {"name": "this-e2e-session", "expression": mine}, *spec.get("matchConditions", [])]}
            out.append(doc)
        return out

    def create(self) -> str:
        """Creates the namespace, ServiceAccount and RBAC; writes and returns the kubeconfig."""
        kubectl(self.admin, "create", "namespace", OPERATOR_NAMESPACE)
        kubectl(self.admin, "-n", OPERATOR_NAMESPACE, "create", "serviceaccount", OPERATOR_SA)
        for doc in self.objects():
            kubectl(self.admin, "apply", "--server-side", "-f", "-", input_text=yaml.safe_dump(doc))
            self.created.append((doc["kind"], doc["metadata"]["name"]))
        token = kubectl(self.admin, "-n", OPERATOR_NAMESPACE, "create", "token", OPERATOR_SA,
                        "--duration=12h").strip()
        admin = yaml.safe_load(Path(self.admin).read_text())
        context = next(c for c in admin["contexts"] if c["name"] == admin["current-context"])["context"]
        cluster = next(c for c in admin["clusters"] if c["name"] == context["cluster"])
        self.path.write_text(yaml.safe_dump({
            "apiVersion": "v1", "kind": "Config", "clusters": [cluster],
            "users": [{"name": OPERATOR_SA, "user": {"token": token}}],
            "contexts": [{"name": OPERATOR_SA, "context": {"cluster": cluster["name"], "user": OPERATOR_SA}}],
            "current-context": OPERATOR_SA,
        }))
        self.path.chmod(0o600)
        return str(self.path)

    def delete(self) -> None:
        for kind, name in reversed(self.created):
            kubectl(self.admin, "delete", kind.lower(), name, "--ignore-not-found", "--wait=false", check=False)
        kubectl(self.admin, "delete", "namespace", OPERATOR_NAMESPACE, "--ignore-not-found", "--wait=false",
                check=False)


class OperatorProcess:
    """`python -m jobchain.controller` with its output in a log file."""

    def __init__(self, kubeconfig: str, log_dir: Path, metrics_port: int = 0, health_port: int = 0,
                 namespace_pattern: str = E2E_NAMESPACE_PREFIX + "*", verbose: bool = True) -> None:
        self.kubeconfig = kubeconfig
        self.namespace_pattern = namespace_pattern
        self.verbose = verbose
        self.log_path = log_dir / "operator.log"
        self.metrics_port = metrics_port or free_port()
        self.health_port = health_port or free_port()
        self.proc: subprocess.Popen[bytes] | None = None

    def start(self, wait: bool = True) -> None:
        """Starts the operator; with `wait`, until its health endpoint answers."""
        if self.running():
            if wait:
                wait_for(lambda: self._healthy(), timeout=60, what="operator health endpoint")
            return
        env = {**os.environ, "KUBECONFIG": self.kubeconfig, "JOBCHAIN_OPERATOR_NAMESPACE": OPERATOR_NAMESPACE,
               "JOBCHAIN_ADMISSION_POLICIES": session_policies()}
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "jobchain.controller", "--namespace", self.namespace_pattern,
             "--metrics-port", str(self.metrics_port), "--health-port", str(self.health_port),
             "--bind-address", "127.0.0.1", *(["--verbose"] if self.verbose else [])],
            env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT,
        )
        if wait:
            wait_for(lambda: self._healthy(), timeout=60, what="operator health endpoint")

    def _healthy(self) -> bool:
        import urllib.request

        if self.proc is None or self.proc.poll() is not None:
            raise AssertionError(f"operator exited; see {self.log_path}:\n{self.tail()}")
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.health_port}/healthz", timeout=2) as resp:
                return bool(resp.status == 200)
        except OSError:
            return False

    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None

    def kill(self) -> None:
        """SIGKILL, as an OOM kill or a node crash would."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=30)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=30)

    def metrics(self) -> str:
        import urllib.request

        with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as resp:
            return str(resp.read().decode())

    def tail(self, lines: int = 60) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""


def create_namespace(core: client.CoreV1Api, name: str, labels: dict[str, str] | None = None) -> None:
    """Creates a namespace for a test and returns once pods can be created in it: they are refused
    until the service-account controller has made its default ServiceAccount."""
    core.create_namespace(client.V1Namespace(metadata=client.V1ObjectMeta(name=name, labels=labels)))
    deadline = time.monotonic() + 60
    while True:
        try:
            core.read_namespaced_service_account("default", name)
            return
        except client.ApiException as e:
            if e.status != 404 or time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def wait_for(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.5) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {what}")
        time.sleep(interval)


class Objects:
    """Creating and reading our custom resources in one namespace."""

    def __init__(self, api: client.ApiClient, namespace: str) -> None:
        self.custom = client.CustomObjectsApi(api)
        self.batch = client.BatchV1Api(api)
        self.core = client.CoreV1Api(api)
        self.namespace = namespace

    def create(self, manifest: dict[str, Any] | str) -> dict[str, Any]:
        body = yaml.safe_load(manifest) if isinstance(manifest, str) else manifest
        plural = {"Workflow": "workflows", "WorkflowExecution": "workflowexecutions",
                  "WorkflowSchedule": "workflowschedules"}[body["kind"]]
        created: dict[str, Any] = self.custom.create_namespaced_custom_object(
            GROUP, VERSION, self.namespace, plural, body)
        return created

    def execution(self, name: str) -> dict[str, Any]:
        obj: dict[str, Any] = self.custom.get_namespaced_custom_object(
            GROUP, VERSION, self.namespace, "workflowexecutions", name)
        return obj

    def workflow(self, name: str) -> dict[str, Any]:
        obj: dict[str, Any] = self.custom.get_namespaced_custom_object(
            GROUP, VERSION, self.namespace, "workflows", name)
        return obj

    def patch_execution(self, name: str, patch: dict[str, Any]) -> None:
        self.custom.patch_namespaced_custom_object(GROUP, VERSION, self.namespace, "workflowexecutions", name, patch)

    def wait_phase(self, name: str, phases: tuple[str, ...] = ("Succeeded", "Failed", "Cancelled"),
                   timeout: float = 120) -> dict[str, Any]:
        def done() -> dict[str, Any] | None:
            obj = self.execution(name)
            return obj if (obj.get("status") or {}).get("phase") in phases else None

        try:
            result: dict[str, Any] = wait_for(done, timeout, f"execution {name} to reach {phases}")
        except AssertionError as exc:
            status = (self.execution(name).get("status") or {})
            raise AssertionError(f"{exc}; status: {yaml.safe_dump(status)}") from None
        return result

    def run(self, workflow: str, params: dict[str, str] | None = None, timeout: float = 120,
            **spec: Any) -> dict[str, Any]:
        created = self.create({
            "apiVersion": f"{GROUP}/{VERSION}", "kind": "WorkflowExecution",
            "metadata": {"generateName": f"{workflow}-"},
            "spec": {"workflowRef": {"name": workflow}, "params": params or {}, **spec},
        })
        return self.wait_phase(created["metadata"]["name"], timeout=timeout)

    def jobs(self, execution: str) -> list[client.V1Job]:
        items: list[client.V1Job] = self.batch.list_namespaced_job(
            self.namespace, label_selector=f"jobchain.dev/execution={execution}").items
        return items

    def events(self, name: str) -> list[client.CoreV1Event]:
        items: list[client.CoreV1Event] = self.core.list_namespaced_event(
            self.namespace, field_selector=f"involvedObject.name={name}").items
        return items


BUSYBOX = "busybox:1.36"


def workflow(name: str, nodes: list[dict[str, Any]], **spec: Any) -> dict[str, Any]:
    """A Workflow manifest of busybox nodes (with a 120 s node timeout unless `defaults` says else)."""
    return {
        "apiVersion": f"{GROUP}/{VERSION}",
        "kind": "Workflow",
        "metadata": {"name": name},
        "spec": {"defaults": {"image": BUSYBOX, "timeoutSeconds": 120}, "nodes": nodes, **spec},
    }


def nodes(execution: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {n["name"]: n for n in execution["status"]["nodes"]}


def command(kubeconfig: str, namespace: str, *args: str) -> list[str]:
    return [sys.executable, "-m", "jobchain.cli.main", "--kubeconfig", kubeconfig, "-n", namespace, *args]


def jobchain(kubeconfig: str, namespace: str, *args: str, timeout: float = 180) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k != "JOBCHAIN_DEBUG"}
    return subprocess.run(command(kubeconfig, namespace, *args), capture_output=True, text=True, timeout=timeout,
                          env=env, check=False)


def no_traceback(result: subprocess.CompletedProcess[str]) -> None:
    assert "Traceback" not in result.stderr, result.stderr


# Installing with Helm (tests/e2e/test_install.py, test_replicas.py, tests/browser/test_in_cluster.py)
CHART = ROOT / "charts" / "jobchain"
# JOBCHAIN_E2E_IMAGE_TAG: another tag of the same build (e.g. one only this checkout's build
# carries, when several checkouts share one cluster and each rebuilds :dev).
IMAGE_REPOSITORY, IMAGE_TAG = "localhost/jobchain-operator", os.environ.get("JOBCHAIN_E2E_IMAGE_TAG", "dev")
REPLICAS = 2  # the chart's default: one active, one standby


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


def install_metrics(install: Install) -> list[tuple[str, dict[str, str], float]]:
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


def operator_metrics(operator: OperatorProcess) -> list[tuple[str, dict[str, str], float]]:
    """Samples of the e2e operator host process's /metrics (its --metrics-port), for metric_total."""
    return [(s.name, s.labels, s.value) for family in text_string_to_metric_families(operator.metrics())
            for s in family.samples]


def metric_total(samples: list[tuple[str, dict[str, str], float]], name: str, **labels: str) -> float | None:
    """Sum of the samples NAME{LABELS...}; None when the operator exports no such sample."""
    values = [v for n, ls, v in samples if n == name and labels.items() <= ls.items()]
    return sum(values) if values else None


# A dashboard viewer in namespace NS: a ServiceAccount that may read executions, workflows and their
# pods' logs there (tests/e2e/test_dashboard_viewers.py, tests/browser/test_in_cluster.py).
DASHBOARD_VIEWER = """
apiVersion: v1
kind: ServiceAccount
metadata: {name: viewer, namespace: NS}
---
apiVersion: rbac.authorization.k8s.io/v1
kind: Role
metadata: {name: jobchain-viewer, namespace: NS}
rules:
- apiGroups: [jobchain.dev]
  resources: [workflows, workflowexecutions]
  verbs: [get, list, watch]
- apiGroups: [""]
  resources: [pods, pods/log]
  verbs: [get, list]
---
apiVersion: rbac.authorization.k8s.io/v1
kind: RoleBinding
metadata: {name: jobchain-viewer, namespace: NS}
roleRef: {apiGroup: rbac.authorization.k8s.io, kind: Role, name: jobchain-viewer}
subjects:
- {kind: ServiceAccount, name: viewer, namespace: NS}
"""
