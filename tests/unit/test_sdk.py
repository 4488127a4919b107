"""jobchain.sdk without a cluster: the builder's shapes and errors, YAML round trips, lint = the CLI's lint."""

from __future__ import annotations

import re
import runpy
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from kubernetes import client

from jobchain.api import models
from jobchain.cli import yaml_input
from jobchain.cli.cluster import CliCluster
from jobchain.cli.lint import lint_paths
from jobchain.sdk import Approval, InvalidWorkflow, Node, Submitted, WaitTimeout, Workflow, param
from jobchain.sdk.runs import result_of

ROOT = Path(__file__).resolve().parents[2]
TRICKY = 'a $(params.x) ${HOME} $$ "double" \'single\' ünïcødé ✓\\n  trailing  \n2nd line\t'


def etl() -> Workflow:
    return (Workflow("etl", params=[param("rows", 10), param("who", TRICKY), "table"], image="busybox:1.36")
            .node("extract", script="echo one\necho two").then("load").then("alert", on="failure")
            .node("load", script="echo load", for_each="[1, 2]", maxParallel=2)
            .then("check", when="size(output) > 1").then("report", on="always")
            .node("check", approval="Ship it?")
            .node("report", command=["echo"], args=["$(nodes.load.output)"], env={"TABLE": "$(params.table)"})
            .node("alert", script="echo alert")
            .finally_node("notify", script="echo $(execution.phase)"))


def test_builder_gives_the_workflow_a_user_would_write() -> None:
    assert etl().to_dict() == {
        "apiVersion": "jobchain.dev/v1alpha1",
        "kind": "Workflow",
        "metadata": {"name": "etl"},
        "spec": {
            "params": [{"name": "rows", "type": "integer", "default": "10"},
                       {"name": "who", "default": TRICKY}, {"name": "table"}],
            "defaults": {"image": "busybox:1.36"},
            "nodes": [
                {"name": "extract", "script": "echo one\necho two",
                 "next": [{"node": "load"}, {"node": "alert", "type": "failure"}]},
                {"name": "load", "script": "echo load", "forEach": "[1, 2]", "maxParallel": 2,
                 "next": [{"node": "check", "type": "condition", "when": "size(output) > 1"},
                          {"node": "report", "type": "always"}]},
                {"name": "check", "approval": {"message": "Ship it?"}},
                {"name": "report", "command": ["echo"], "args": ["$(nodes.load.output)"],
                 "env": [{"name": "TABLE", "value": "$(params.table)"}]},
                {"name": "alert", "script": "echo alert"},
            ],
            "finally": [{"name": "notify", "script": "echo $(execution.phase)"}],
        },
    }


def test_yaml_round_trips_byte_for_byte_through_the_loader_and_the_models() -> None:
    wf = etl()
    text = wf.to_yaml()
    assert text.startswith("apiVersion: jobchain.dev/v1alpha1\nkind: Workflow\n")
    [loaded] = list(yaml_input.load_all(text))
    assert loaded == wf.to_dict()
    assert models.Workflow.model_validate(loaded) == wf.model()
    assert loaded["spec"]["params"][1]["default"] == TRICKY


def test_models_are_accepted_and_give_the_same_workflow() -> None:
    model = etl().model()
    assert Workflow.from_model(model).to_dict() == etl().to_dict()
    by_model = (Workflow("gate").node(Node(name="ask", approval=Approval(message="ok?")))
                .then("go").node(Node(name="go", script="true")))
    assert by_model.to_dict()["spec"]["nodes"] == [
        {"name": "ask", "approval": {"message": "ok?"}, "next": [{"node": "go"}]},
        {"name": "go", "script": "true"},
    ]


def test_param_types_follow_the_default() -> None:
    assert [(p.type, p.default) for p in (param("n", 3), param("f", 0.5), param("b", True), param("l", ["a"]),
                                          param("o", {"k": "ü"}), param("s", "10"), param("r"))] == [
        ("integer", "3"), ("number", "0.5"), ("boolean", "true"), ("array", '["a"]'), ("object", '{"k": "ü"}'),
        ("string", "10"), ("string", None)]


@pytest.mark.parametrize(("build", "expected"), [
    (lambda: Workflow("w").node("a", script="x").then("lod").node("load", script="y"),
     "node 'a': then('lod'): no node 'lod' is declared (did you mean 'load'?); add it with .node('lod', ...)"),
    (lambda: Workflow("w").node("a", script="x").node("a", script="y"),
     "node 'a' is declared twice; names are unique across spec.nodes and spec.finally: rename one"),
    (lambda: Workflow("w").node("a", script="x").finally_node("a", script="y"), "node 'a' is declared twice"),
    (lambda: Workflow("w").then("a"), "then('a'): no node to start the edge from; call .node(...) first"),
    (lambda: Workflow("w").node("a", script="x").then("b", on="sucess"),
     "node 'a': then('b', on='sucess'): on must be one of success, failure, always, condition"),
    (lambda: Workflow("w").node("a", script="x").then("b", on="condition"),
     "on='condition' needs when='CEL expression'"),
    (lambda: Workflow("w").node("a", script="x").then("b", on="failure", when="true"),
     "when= goes with on='condition' only"),
    (lambda: Workflow("w").node("Extract", script="x"), "node 'Extract': name: String should match pattern"),
    (lambda: Workflow("w").node("a", script="x", retires=2), "node 'a': retires: unknown field"),
    (lambda: Workflow("w").node(Node(name="a", script="x"), image="y"), "give a Node model or fields, not both"),
    (lambda: Workflow("w", nodes=[]), "'nodes' is not a keyword here"),
    (lambda: Workflow("w").node("a", script="x").then("b", on="always").node("b", script="y").model().spec
     and param("n", 1, type="integr"), "param 'n': type: Input should be"),
])
def test_bad_calls_say_what_is_wrong(build: object, expected: str) -> None:
    with pytest.raises(InvalidWorkflow) as err:
        wf = build()  # type: ignore[operator]
        wf.to_dict()
    assert expected in str(err.value)


def test_lint_finds_exactly_what_jobchain_lint_finds(tmp_path: Path) -> None:
    wf = (Workflow("bad", params=[param("rows", 10)])
          .node("a", image="busybox", script="echo $(params.nope)").then("b", when="params.rows + 1")
          .node("b", image="busybox", script="true", for_each="params.rows").then("a"))
    file = tmp_path / "bad.yaml"
    file.write_text(wf.to_yaml())
    cli = [(p.path, p.message) for p in lint_paths([str(file)]).problems]
    assert len(cli) >= 4  # the unknown param, the non-bool when, the forEach of an integer, the cycle
    assert [(p.path, p.message) for p in wf.lint()] == cli
    assert etl().lint() == []


def test_submit_refuses_lint_problems_and_bad_params_before_any_cluster_call(tmp_path: Path) -> None:
    missing = str(tmp_path / "no-kubeconfig")  # a cluster call would raise ClusterError, not InvalidWorkflow
    bad = Workflow("bad").node("a", image="busybox", script="echo $(params.nope)")
    with pytest.raises(InvalidWorkflow, match=r"spec.nodes\[0\].script: .*nope") as err:
        bad.submit("ns", kubeconfig=missing)
    assert err.value.problems and err.value.problems[0][0] == "spec.nodes[0].script"
    with pytest.raises(InvalidWorkflow, match="does not declare this param"):
        etl().submit("ns", {"table": "t", "colour": "red"}, kubeconfig=missing)
    with pytest.raises(InvalidWorkflow, match="table"):
        etl().submit("ns", {}, kubeconfig=missing)


def test_result_gives_phases_and_outputs_as_python_values() -> None:
    execution = {
        "metadata": {"name": "etl-x1", "namespace": "team"},
        "status": {"phase": "Failed", "reason": "NodeFailed", "message": "node load failed",
                   "nodes": [{"name": "extract", "phase": "Succeeded", "output": {"v": TRICKY, "n": [1, 2.5]}},
                             {"name": "load", "phase": "Failed", "exitCode": 3, "message": "exit 3"}]},
    }
    result = result_of(execution)
    assert (result.name, result.namespace, result.phase, result.reason, result.succeeded) == (
        "etl-x1", "team", "Failed", "NodeFailed", False)
    assert result.outputs() == {"extract": {"v": TRICKY, "n": [1, 2.5]}, "load": None}
    assert (result.nodes["load"].phase, result.nodes["load"].exit_code) == ("Failed", 3)


@pytest.mark.parametrize("doc", ["docs/python.md", "README.md"])
def test_the_documented_workflows_build_and_lint_clean(doc: str) -> None:
    blocks = [b for b in re.findall(r"```python\n(.*?)```", (ROOT / doc).read_text(), re.S) if "Workflow(" in b]
    assert blocks, f"{doc} shows no SDK example"
    for block in blocks:
        scope: dict[str, object] = {}
        exec(block.split("result = ")[0], scope)  # everything before the run, which needs a cluster
        built = scope["wf"]
        assert isinstance(built, Workflow)
        assert built.lint() == []


def test_the_python_example_lints_clean() -> None:
    example = runpy.run_path(str(ROOT / "examples" / "python" / "etl.py"))
    assert example["build"]().lint() == []


class FakeClock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class FakeWatches:
    """The API server's watches of one execution: each call gives the next batch of objects, then
    ends as the server ends a watch after `seconds` (the clock moves on by that much). With no batch
    left and no clock, a watch stays open with nothing to say until `idle` is set."""

    def __init__(self, batches: list[list[dict[str, object]]], clock: FakeClock | None = None) -> None:
        self.batches = batches
        self.clock = clock
        self.asked: list[int] = []
        self.idle = threading.Event()

    def watch(self, namespace: str, plural: str, selector: str, seconds: int) -> Iterator[dict[str, object]]:
        self.asked.append(seconds)
        if not self.batches and self.clock is None:
            self.idle.wait(10)
            return
        for obj in self.batches.pop(0) if self.batches else []:
            yield {"type": "MODIFIED", "raw_object": obj}
        if self.clock is not None:
            self.clock.now += seconds

    def get_object(self, namespace: str, plural: str, name: str) -> dict[str, object]:
        return execution("Succeeded")


def execution(phase: str) -> dict[str, object]:
    return {"metadata": {"name": "etl-x", "namespace": "ns"},
            "status": {"phase": phase, "nodes": [{"name": "a", "phase": phase, "output": {"v": TRICKY}}]}}


def submitted(watches: FakeWatches, clock: FakeClock | None = None) -> Submitted:
    cluster = CliCluster(client.ApiClient(), "ns")
    cluster.objects = watches  # type: ignore[assignment]
    return Submitted("etl-x", cluster, clock or FakeClock())


def test_wait_returns_the_end_and_leaves_no_watch_running() -> None:
    watches = FakeWatches([[execution("Running"), execution("Succeeded")]])
    threads = threading.active_count()
    try:
        result = submitted(watches).wait()
        assert (result.phase, result.outputs()) == ("Succeeded", {"a": {"v": TRICKY}})
        assert threading.active_count() == threads  # a notebook running 100 workflows keeps no 100 watches
    finally:
        watches.idle.set()


def test_wait_gives_up_on_time_and_says_the_execution_keeps_running() -> None:
    clock = FakeClock()
    watches = FakeWatches([[execution("Running")]], clock)
    with pytest.raises(WaitTimeout, match=r"etl-x is still Running after timeout=5s; it keeps running"):
        submitted(watches, clock).wait(timeout=5)
    assert watches.asked == [5]  # the server was asked for no longer a watch than the time left


def test_a_secret_param_is_taken_from_a_secret_never_inline(tmp_path: Path) -> None:
    from jobchain.sdk import ClusterError

    wf = Workflow("s", params=[param("token", secret=True)]).node("a", image="busybox", script="true")
    missing = str(tmp_path / "no-kubeconfig")
    with pytest.raises(InvalidWorkflow, match="secret_params=") as err:
        wf.submit("ns", {"token": "hunter2"}, kubeconfig=missing)
    assert "hunter2" not in str(err.value)
    with pytest.raises(ClusterError, match="no-kubeconfig"):  # the checks pass: it goes on to the cluster
        wf.submit("ns", secret_params={"token": ("creds", "api-token")}, kubeconfig=missing)
