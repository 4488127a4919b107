"""The one Kubernetes access layer (k8s.api): configuration as kubectl loads it, shared by the
operator and the CLI, and the CLI's translation of its failures into one line."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from jobchain.api import vocabulary
from jobchain.cli import cluster as cli_cluster
from jobchain.cli.errors import CliError
from jobchain.engine.spec.render import execution_selector
from jobchain.k8s import api
from jobchain.k8s.writes import ForeignJobError, JobRefused

from .fakes import fake_writer, job_to_create


def kubeconfig(tmp_path: Path) -> Path:
    path = tmp_path / "config"
    path.write_text(yaml.safe_dump({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:6443"}},
                     {"name": "d", "cluster": {"server": "https://127.0.0.2:6443"}}],
        "users": [{"name": "u", "user": {"token": "t"}}],
        "contexts": [{"name": "one", "context": {"cluster": "c", "user": "u", "namespace": "team-a"}},
                     {"name": "two", "context": {"cluster": "d", "user": "u"}}],
        "current-context": "one",
    }))
    return path


@pytest.fixture(autouse=True)
def no_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("KUBECONFIG", raising=False)
    monkeypatch.delenv("KUBERNETES_SERVICE_HOST", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path / "home"))


def test_the_current_context_and_its_namespace(tmp_path: Path) -> None:
    loaded = api.load(str(kubeconfig(tmp_path)))
    assert loaded.api.configuration.host == "https://127.0.0.1:6443"
    assert loaded.namespace == "team-a"


def test_a_named_context_without_a_namespace_means_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig(tmp_path)))
    loaded = api.load(context="two")
    assert (loaded.api.configuration.host, loaded.namespace) == ("https://127.0.0.2:6443", "default")


def test_the_operator_outside_a_pod_uses_the_kubeconfig(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KUBECONFIG", str(kubeconfig(tmp_path)))
    assert api.connect().configuration.host == "https://127.0.0.1:6443"


def test_cli_errors_say_what_to_do(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(CliError) as missing:
        cli_cluster.connect(str(tmp_path / "nope"))
    assert missing.value.code == 4
    assert "nope (--kubeconfig) does not exist; point KUBECONFIG or --kubeconfig" in missing.value.message
    with pytest.raises(CliError) as context:
        cli_cluster.connect(str(kubeconfig(tmp_path)), context="three")
    assert context.value.code == 3
    assert "context 'three' not found" in context.value.message and "(contexts: one, two)" in context.value.message


def test_the_cli_binds_the_context_namespace_unless_told(tmp_path: Path) -> None:
    path = str(kubeconfig(tmp_path))
    assert cli_cluster.connect(path).namespace == "team-a"
    assert cli_cluster.connect(path, namespace="other").namespace == "other"
    assert cli_cluster.connect(path).api.configuration.retries == 2  # fail fast when the server is down


def test_one_set_of_names_and_selectors() -> None:
    assert cli_cluster.EXECUTIONS is vocabulary.EXECUTIONS
    assert api.node_selector("etl-x", "load") == f"{execution_selector('etl-x')},jobchain.dev/node=load"


def test_the_cli_retries_a_busy_server_then_says_so(tmp_path: Path) -> None:
    """A 429 while a CRD is re-applied ("storage is (re)initializing") is waited out, as kubectl does."""
    from kubernetes.client.exceptions import ApiException

    slept: list[float] = []
    cluster = cli_cluster.connect(str(kubeconfig(tmp_path)))
    cluster.sleep = slept.append
    answers = [429, 429, None]

    def call() -> str:
        status = answers.pop(0)
        if status is not None:
            exc = ApiException(status=status, reason="Too Many Requests")
            exc.headers = {"Retry-After": "2"}
            exc.body = '{"kind": "Status", "message": "storage is (re)initializing"}'
            raise exc
        return "created"

    assert cluster._call("workflowexecutions", None, call) == "created"
    assert slept == [2.0, 2.0]

    def busy() -> str:
        raise ApiException(status=429, reason="Too Many Requests")

    slept.clear()
    with pytest.raises(CliError) as caught:
        cluster._call("workflowexecutions", None, busy)
    assert caught.value.code == 4 and "429" in caught.value.message
    assert sum(slept) == cli_cluster.BUSY_SECONDS


# ---- the operator's writes of built-in resources: plain dicts on the wire (issue 10) ----------

def test_a_job_is_created_and_returned_as_a_plain_dict() -> None:
    sent: list[tuple[str, str, object]] = []
    written = {**job_to_create(), "status": {},
               "metadata": {**job_to_create()["metadata"], "uid": "job-uid"}}  # type: ignore[dict-item]
    created = fake_writer([(201, written)], sent).create_job(job_to_create())
    assert created == written and type(created) is dict
    assert sent[0][:2] == ("POST", "/apis/batch/v1/namespaces/ns/jobs")
    assert sent[0][2]["metadata"]["annotations"]["jobchain.dev/created-by"]  # type: ignore[index]


def test_an_existing_job_of_the_same_execution_is_adopted_and_a_foreign_one_refused() -> None:
    sent: list[tuple[str, str, object]] = []
    conflict = (409, {"kind": "Status", "code": 409, "message": "exists"})
    assert fake_writer([conflict, (200, job_to_create())], sent).create_job(job_to_create()) == job_to_create()
    assert [s[:2] for s in sent] == [("POST", "/apis/batch/v1/namespaces/ns/jobs"),
                                     ("GET", "/apis/batch/v1/namespaces/ns/jobs/run-1-a")]
    with pytest.raises(ForeignJobError):
        fake_writer([conflict, (200, job_to_create("older"))], []).create_job(job_to_create())
    with pytest.raises(JobRefused, match="template is invalid"):
        fake_writer([(422, {"message": "spec.template is invalid"})], []).create_job(job_to_create())


def test_a_job_of_our_name_made_by_someone_else_fails_the_node_instead_of_a_retry_for_ever() -> None:
    """An older execution's Job is garbage-collected soon (retry); one with no such owner never is."""
    conflict = (409, {"kind": "Status", "code": 409, "message": "exists"})
    unowned = {**job_to_create(), "metadata": {"name": "run-1-a", "namespace": "ns"}}
    with pytest.raises(JobRefused, match="was not made by an execution of this name"):
        fake_writer([conflict, (200, unowned)], []).create_job(job_to_create())


def test_an_event_is_posted_as_the_api_server_reads_it() -> None:
    sent: list[tuple[str, str, object]] = []
    writer = fake_writer([(201, {})], sent)
    writer.event({"metadata": {"name": "run-1", "namespace": "ns", "uid": "u"}}, "WorkflowExecution", "Normal",
                 "NodeSucceeded", "node a succeeded")
    method, path, body = sent[0]
    assert (method, path) == ("POST", "/api/v1/namespaces/ns/events")
    assert body["involvedObject"] == {"apiVersion": "jobchain.dev/v1alpha1", "kind": "WorkflowExecution",  # type: ignore[index]
                                      "name": "run-1", "namespace": "ns", "uid": "u"}
    assert body["reason"] == "NodeSucceeded" and body["metadata"] == {"generateName": "run-1.", "namespace": "ns"}  # type: ignore[index]


def test_whole_outputs_are_cached_by_size_so_a_large_fan_out_reads_each_once(monkeypatch: pytest.MonkeyPatch) -> None:

    from kubernetes import client as k8s_client

    from jobchain.k8s import cluster as k8s_cluster

    reads: list[str] = []

    class ConfigMaps:
        def __init__(self, _api: object) -> None:
            pass

        def read_namespaced_config_map(self, name: str, namespace: str) -> dict[str, object]:
            reads.append(name)
            return {"metadata": {"ownerReferences": [{"uid": "u"}]},
                    "data": {"output.json": '"' + name + "x" * 100 + '"'}}

    monkeypatch.setattr(k8s_cluster, "Builtins", ConfigMaps)
    monkeypatch.setattr(k8s_cluster, "OUTPUT_CACHE_BYTES", 330_000)  # 3,000 of these are 322,890 bytes
    cluster = k8s_cluster.OperatorCluster(k8s_client.ApiClient())
    for _ in range(3):  # three passes over 3,000 item outputs of ~110 bytes
        for i in range(3000):
            found, value = cluster.output_value("ns", f"cm-{i}", "output.json", "u")
            assert found and value.startswith(f"cm-{i}x")
    assert len(reads) == 3000
    for i in range(3000, 3100):  # past the budget, the oldest go first
        cluster.output_value("ns", f"cm-{i}", "output.json", "u")
    cluster.output_value("ns", "cm-0", "output.json", "u")
    assert reads[-1] == "cm-0"
