"""The Job a node gets: name, labels, owner, env, command, defaults, podTemplate, retries, deadline."""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from jobchain.api.models import WorkflowSpec
from jobchain.engine.spec.refs import Scope, UnresolvedReference
from jobchain.engine.spec.render import OUTPUT_WRAPPER, ExecutionRef, job_name, render_job

from .builders import env_of, node, spec

REF = ExecutionRef(name="run-1", namespace="team-a", uid="uid-123", workflow="etl")
SCOPE = Scope(params={"env": "prod"}, execution_name="run-1", namespace="team-a",
              input={"url": "http://x"}, has_input=True, outputs={"a": {"n": 1}})
DNS_1123 = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


def render(workflow: WorkflowSpec, name: str | None = None, scope: Scope = SCOPE) -> dict[str, Any]:
    target = next(n for n in workflow.nodes if n.name == (name or workflow.nodes[0].name))
    return render_job(REF, workflow, target, scope)


def container(job: dict[str, Any]) -> dict[str, Any]:
    c: dict[str, Any] = job["spec"]["template"]["spec"]["containers"][0]
    return c


# ---- names ---------------------------------------------------------------------------------

NAMES: list[tuple[str, str]] = [
    ("run-1", "build"),
    ("a" * 253, "b" * 63),
    ("nightly-2026-01-01-abcdef", "x" * 63),
    ("Run.With.Dots", "n"),
    ("x" * 40, "y" * 12),
]


@pytest.mark.parametrize(("execution", "node_name"), NAMES)
def test_job_name_is_a_short_deterministic_dns_name(execution: str, node_name: str) -> None:
    name = job_name(execution, node_name)
    assert len(name) <= 52
    assert DNS_1123.match(name), name
    assert name == job_name(execution, node_name)


def test_job_names_differ_per_node_and_per_execution_even_when_truncated() -> None:
    long_exec = "e" * 100
    names = {job_name(long_exec, f"{'n' * 60}{i}") for i in range(20)}
    names |= {job_name(f"{long_exec}{i}", "n") for i in range(20)}
    assert len(names) == 40


def test_job_names_of_different_executions_never_collide() -> None:
    # Executions "nightly" and "nightly-run" in one namespace must not fight over one Job name.
    assert job_name("nightly", "run-report") != job_name("nightly-run", "report")


def test_short_names_stay_readable() -> None:
    assert job_name("run-1", "build").startswith("run-1-build")


def test_rendered_job_uses_the_job_name() -> None:
    job = render(spec(node("build")))
    assert job["metadata"]["name"] == job_name("run-1", "build")
    assert job["metadata"]["namespace"] == "team-a"


# ---- labels and owner ----------------------------------------------------------------------

def test_labels_on_job_and_pod_identify_execution_node_workflow() -> None:
    job = render(spec(node("build")))
    expected = {
        "jobchain.dev/execution": "run-1",
        "jobchain.dev/node": "build",
        "jobchain.dev/workflow": "etl",
        "app.kubernetes.io/managed-by": "jobchain",
    }
    assert job["metadata"]["labels"] == expected
    assert job["spec"]["template"]["metadata"]["labels"] == expected


def test_labels_of_a_very_long_execution_name_are_valid_label_values() -> None:
    long_ref = ExecutionRef(name="x" * 200, namespace="n", uid="u", workflow="w" * 100)
    target = spec(node("a")).nodes[0]
    labels = render_job(long_ref, spec(node("a")), target, SCOPE)["metadata"]["labels"]
    for key in ("jobchain.dev/execution", "jobchain.dev/workflow"):
        assert len(labels[key]) <= 63
        assert re.match(r"^[A-Za-z0-9]([-A-Za-z0-9_.]*[A-Za-z0-9])?$", labels[key])


def test_owner_reference_points_at_the_execution_so_deleting_it_deletes_the_job() -> None:
    job = render(spec(node("a")))
    assert job["metadata"]["ownerReferences"] == [{
        "apiVersion": "jobchain.dev/v1alpha1",
        "kind": "WorkflowExecution",
        "name": "run-1",
        "uid": "uid-123",
        "controller": True,
        "blockOwnerDeletion": True,
    }]


# ---- env -----------------------------------------------------------------------------------

def test_env_gives_the_node_its_context() -> None:
    env = env_of(render(spec(node("a"))))
    assert env["JOBCHAIN_EXECUTION"] == "run-1"
    assert env["JOBCHAIN_NODE"] == "a"
    assert env["JOBCHAIN_OUTPUT"] == "/dev/termination-log"
    assert json.loads(env["JOBCHAIN_PARAMS"]) == {"env": "prod"}
    assert json.loads(env["JOBCHAIN_INPUT"]) == {"url": "http://x"}
    assert env["JOBCHAIN_POD_NAME"] == {"fieldRef": {"fieldPath": "metadata.name"}}
    assert env["JOBCHAIN_POD_NAMESPACE"] == {"fieldRef": {"fieldPath": "metadata.namespace"}}


def test_termination_message_is_the_output_file() -> None:
    c = container(render(spec(node("a"))))
    assert c["terminationMessagePath"] == "/dev/termination-log"
    assert c["terminationMessagePolicy"] == "File"


INPUTS: list[tuple[str, Scope, str]] = [
    ("no input for a start node", Scope(params={}, execution_name="r", namespace="n"), ""),
    ("string output is JSON-encoded", Scope(params={}, execution_name="r", namespace="n", input="hi",
                                            has_input=True), '"hi"'),
    ("null output of a predecessor", Scope(params={}, execution_name="r", namespace="n", input=None,
                                           has_input=True), "null"),
    ("list", Scope(params={}, execution_name="r", namespace="n", input=[1, 2], has_input=True), "[1,2]"),
]


@pytest.mark.parametrize(("scope", "expected"), [c[1:] for c in INPUTS], ids=[c[0] for c in INPUTS])
def test_jobchain_input_is_the_predecessors_output_as_json(scope: Scope, expected: str) -> None:
    assert env_of(render(spec(node("a")), scope=scope))["JOBCHAIN_INPUT"] == expected


def test_user_env_is_substituted_and_value_from_passed_as_is() -> None:
    secret = {"secretKeyRef": {"name": "creds", "key": "token"}}
    job = render(spec(node("a", env=[
        {"name": "TARGET", "value": "$(params.env)/$(input.url)"},
        {"name": "TOKEN", "valueFrom": secret},
        {"name": "LITERAL", "value": "$(HOME)"},
    ])))
    env = env_of(job)
    assert env["TARGET"] == "prod/http://x"
    assert env["TOKEN"] == secret
    assert env["LITERAL"] == "$(HOME)"
    names = [e["name"] for e in container(job)["env"]]
    assert names.index("TARGET") > names.index("JOBCHAIN_NODE")  # ours first, user's may refer to them


# ---- command -------------------------------------------------------------------------------

COMMANDS: list[tuple[str, dict[str, Any], dict[str, Any]]] = [
    ("script runs with /bin/sh -c (in the output wrapper), references as env var expansions, every $ kept "
     "from the kubelet",
     node("a", script="echo $(params.env) $(nodes.a.output.n)"),
     {"command": ["/bin/sh", "-c", OUTPUT_WRAPPER, "/bin/sh", "4096", "echo $${JOBCHAIN_REF_1} $${JOBCHAIN_REF_2}"]}),
    ("command and args, substituted",
     node("a", command=["deploy", "--env=$(params.env)"], args=["$(input.url)"]),
     {"command": ["deploy", "--env=prod"], "args": ["http://x"]}),
    ("args only keep the image entrypoint", node("a", args=["--verbose"]), {"args": ["--verbose"]}),
    ("command only", node("a", command=["true"]), {"command": ["true"]}),
]


@pytest.mark.parametrize(("node_body", "expected"), [c[1:] for c in COMMANDS], ids=[c[0] for c in COMMANDS])
def test_script_or_command_and_args(node_body: dict[str, Any], expected: dict[str, Any]) -> None:
    c = container(render(spec(node_body)))
    assert {k: c[k] for k in ("command", "args") if k in c} == expected


def test_unresolvable_reference_raises_naming_it() -> None:
    with pytest.raises(UnresolvedReference, match=r"\$\(input.nope\)"):
        render(spec(node("a", script="echo $(input.nope)")))


# ---- defaults, retries, deadline -----------------------------------------------------------

DEFAULTS = {"image": "alpine:3", "serviceAccountName": "runner", "timeoutSeconds": 600, "retries": 3}

SETTINGS: list[tuple[str, WorkflowSpec, dict[str, Any]]] = [
    ("no settings", spec(node("a")),
     {"image": "busybox", "sa": None, "backoffLimit": 0, "activeDeadlineSeconds": None}),
    ("defaults applied", spec(node("a", image=None), defaults=DEFAULTS),
     {"image": "alpine:3", "sa": "runner", "backoffLimit": 3, "activeDeadlineSeconds": 600}),
    ("node settings win", spec(node("a", image="app:2", serviceAccountName="own", timeoutSeconds=5, retries=1),
                               defaults=DEFAULTS),
     {"image": "app:2", "sa": "own", "backoffLimit": 1, "activeDeadlineSeconds": 5}),
    ("retries 0 on the node overrides the default", spec(node("a", retries=0), defaults=DEFAULTS),
     {"image": "busybox", "sa": "runner", "backoffLimit": 0, "activeDeadlineSeconds": 600}),
]


@pytest.mark.parametrize(("workflow", "expected"), [c[1:] for c in SETTINGS], ids=[c[0] for c in SETTINGS])
def test_defaults_retries_and_timeout_reach_the_job(workflow: WorkflowSpec, expected: dict[str, Any]) -> None:
    job = render(workflow)
    pod = job["spec"]["template"]["spec"]
    assert container(job)["image"] == expected["image"]
    assert pod.get("serviceAccountName") == expected["sa"]
    assert job["spec"]["backoffLimit"] == expected["backoffLimit"]
    assert job["spec"].get("activeDeadlineSeconds") == expected["activeDeadlineSeconds"]
    assert pod["restartPolicy"] == "Never"


def test_resources_are_passed_to_the_container() -> None:
    resources = {"limits": {"cpu": "1", "memory": "1Gi"}}
    assert container(render(spec(node("a", resources=resources))))["resources"] == resources


# ---- podTemplate ---------------------------------------------------------------------------

POD_TEMPLATE = {
    "metadata": {"labels": {"team": "data", "jobchain.dev/node": "spoofed"}, "annotations": {"a": "b"}},
    "spec": {
        "restartPolicy": "OnFailure",
        "nodeSelector": {"disk": "ssd"},
        "volumes": [{"name": "cache", "emptyDir": {}}],
        "containers": [{"name": "main", "volumeMounts": [{"name": "cache", "mountPath": "/cache"}]}],
        "tolerations": [{"key": "gpu", "operator": "Exists"}],
    },
}


def test_pod_template_is_merged_into_ours() -> None:
    workflow = spec(node("a", podTemplate=POD_TEMPLATE, env=[{"name": "X", "value": "1"}]))
    job = render(workflow)
    template = job["spec"]["template"]
    pod = template["spec"]
    assert pod["nodeSelector"] == {"disk": "ssd"}
    assert [v["name"] for v in pod["volumes"]] == ["jobchain-input", "cache"]  # the input file's, then theirs
    assert pod["volumes"][1] == {"name": "cache", "emptyDir": {}}
    assert pod["tolerations"] == [{"key": "gpu", "operator": "Exists"}]
    assert len(pod["containers"]) == 1
    main = pod["containers"][0]
    assert main["volumeMounts"][1:] == [{"name": "cache", "mountPath": "/cache"}]
    assert main["image"] == "busybox"
    assert env_of(job)["X"] == "1" and env_of(job)["JOBCHAIN_NODE"] == "a"
    assert template["metadata"]["labels"]["team"] == "data"
    assert template["metadata"]["annotations"]["a"] == "b"
    assert template["metadata"]["annotations"]["jobchain.dev/execution-uid"] == "uid-123"


def test_pod_template_cannot_break_what_the_operator_relies_on() -> None:
    template = render(spec(node("a", podTemplate=POD_TEMPLATE)))["spec"]["template"]
    assert template["metadata"]["labels"]["jobchain.dev/node"] == "a"
    assert template["spec"]["restartPolicy"] == "Never"


def test_pod_template_sidecar_is_added_next_to_main() -> None:
    sidecar = {"name": "proxy", "image": "envoy"}
    pod = render(spec(node("a", podTemplate={"spec": {"containers": [sidecar]}})))["spec"]["template"]["spec"]
    assert [c["name"] for c in pod["containers"]] == ["main", "proxy"]


def test_rendering_does_not_change_the_spec() -> None:
    workflow = spec(node("a", podTemplate=POD_TEMPLATE))
    before = workflow.model_dump()
    job = render(workflow)
    job["spec"]["template"]["spec"]["volumes"].append({"name": "x"})
    render(workflow)
    assert workflow.model_dump() == before
