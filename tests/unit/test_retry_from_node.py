"""Retry from any node with changed params (spec.resumeFrom.node, spec.params), through reconcile
passes on the in-memory cluster: what is reused, what runs again and with which params, what a retry
made with only resumeFrom inherits, and that a lost write or a re-created source never mixes two runs."""

from __future__ import annotations

import io
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from jobchain.api.models import TERMINAL_EXECUTION_PHASES, ExecutionStatus
from jobchain.api.vocabulary import EXECUTIONS, LABEL_NODE
from jobchain.cli.again import retry_execution
from jobchain.cli.errors import CliError
from jobchain.engine.execution import passes
from jobchain.engine.execution.types import JobState
from tests.unit import fakes
from tests.unit.builders import (
    NAMESPACE,
    T0,
    FakeCluster,
    WriteFailed,
    edge,
    execution_body,
    lint_text,
    node,
    pass_of,
    phases,
    script_seen,
    spec,
)

CHAIN = spec(node("a", "b", script="echo a=$(params.v)"), node("b", "c", script="echo b=$(params.v)"),
             node("c", script="echo c=$(params.v)"), params=[{"name": "v", "default": "1"}])
WF = CHAIN.model_dump(mode="json", by_alias=True, exclude_none=True)


def body(name: str, **spec_: Any) -> dict[str, Any]:
    out = execution_body(spec_=spec_)
    out["metadata"].update(name=name, uid=f"uid-{name}")
    return out


def run_to_end(cluster: FakeCluster, name: str, fail: tuple[str, ...] = (), at: float = 0) -> ExecutionStatus:
    """Passes of `name` until it ends; every Job finishes in the next second (the nodes in `fail` Fail)
    with the output {"ran": "<node>: <its script>"}, so a test sees which params each node ran with."""
    cluster.seen, cluster.jobs = {}, {}
    for step in range(40):
        pass_of(cluster, name, at + step)
        status = cluster.status(name)
        if status.phase in TERMINAL_EXECUTION_PHASES:
            return status
        for key, seen in list(cluster.seen.items()):
            if seen.state == JobState.RUNNING:
                script = script_seen(cluster.jobs[seen.name])
                cluster.finish(key, "Failed" if key in fail else "Succeeded",
                               json.dumps({"ran": f"{key}: {script}"}), T0 + timedelta(seconds=at + step + 0.5))
    raise AssertionError(f"{name} did not end: {phases(cluster.status(name))}")


def jobs_by_node(cluster: FakeCluster) -> list[str]:
    return sorted(j["metadata"]["labels"][LABEL_NODE] for j in cluster.jobs.values())


def source(workflow: dict[str, Any] | None = None, fail: tuple[str, ...] = (), **spec_: Any) -> FakeCluster:
    """A cluster holding the Workflow `wf` and its execution `first`, ended."""
    cluster = FakeCluster(workflows={"wf": workflow or WF})
    cluster.executions["first"] = body("first", workflowRef={"name": "wf"}, **spec_)
    run_to_end(cluster, "first", fail)
    return cluster


def retry(cluster: FakeCluster, at: float = 100, **spec_: Any) -> ExecutionStatus:
    cluster.executions["second"] = body("second", resumeFrom={"name": "first", **spec_.pop("resume", {})}, **spec_)
    return run_to_end(cluster, "second", at=at)


def test_from_b_of_a_succeeded_chain_reuses_a_and_reruns_b_and_c_with_the_new_params() -> None:
    cluster = source(params={"v": "1"})
    first = cluster.status("first")
    assert first.phase == "Succeeded"
    second = retry(cluster, resume={"node": "b"}, params={"v": "2"})
    assert second.phase == "Succeeded"
    assert jobs_by_node(cluster) == ["b", "c"]  # exactly one new Job each, none for a
    nodes = {n.name: n for n in second.nodes}
    assert nodes["a"].reused and nodes["a"].output == first.nodes[0].output == {"ran": "a: echo a=1"}
    assert nodes["b"].output == {"ran": "b: echo b=2"} and not nodes["b"].reused
    assert nodes["c"].output == {"ran": "c: echo c=2"} and not nodes["c"].reused
    # status records both: what the rerun nodes got, and what the reused one ran with
    assert second.params == {"v": "2"}
    assert second.resumedFrom is not None and second.resumedFrom.params == {"v": "1"}
    assert (second.resumedFrom.name, second.resumedFrom.uid, second.resumedFrom.node) == ("first", "uid-first", "b")
    assert cluster.status("first") == first  # the execution resumed is not changed


def test_from_a_middle_node_of_a_diamond_reuses_its_sibling() -> None:
    diamond = spec(node("a", "b", "c"), node("b", "d"), node("c", "d"), node("d"))
    cluster = source(diamond.model_dump(mode="json", by_alias=True, exclude_none=True))
    second = retry(cluster, resume={"node": "b"})
    assert second.phase == "Succeeded"
    assert {n.name for n in second.nodes if n.reused} == {"a", "c"}
    assert jobs_by_node(cluster) == ["b", "d"]


def test_failure_and_always_edges_below_the_node_are_decided_again() -> None:
    # b's failure handler `alert` was Skipped in the Succeeded run; rerun from b, b now fails:
    # alert runs and cleanup (always) runs again; a is reused.
    workflow = spec(node("a", "b"), node("b", edge("cleanup", "always"), edge("alert", "failure")),
                    node("cleanup"), node("alert"))
    cluster = source(workflow.model_dump(mode="json", by_alias=True, exclude_none=True))
    assert phases(cluster.status("first")) == {"a": "Succeeded", "b": "Succeeded", "cleanup": "Succeeded",
                                               "alert": "Skipped"}
    cluster.executions["second"] = body("second", resumeFrom={"name": "first", "node": "b"})
    second = run_to_end(cluster, "second", fail=("b",), at=100)
    assert phases(second) == {"a": "Succeeded", "b": "Failed", "cleanup": "Succeeded", "alert": "Succeeded"}
    assert [n.name for n in second.nodes if n.reused] == ["a"]
    assert jobs_by_node(cluster) == ["alert", "b", "cleanup"]


def test_a_succeeded_run_without_node_is_refused_saying_to_name_one() -> None:
    cluster = source()
    second = retry(cluster)
    assert (second.phase, second.reason) == ("Failed", "InvalidResume")
    assert "spec.resumeFrom.node" in second.message and "Succeeded" in second.message
    assert not cluster.jobs


def test_an_unknown_node_is_refused_listing_the_nodes() -> None:
    cluster = source()
    second = retry(cluster, resume={"node": "zz"})
    assert (second.phase, second.reason) == ("Failed", "InvalidResume")
    assert "spec.resumeFrom.node 'zz' is not a node" in second.message and "a, b, c" in second.message
    assert not cluster.jobs


def test_a_param_the_workflow_does_not_declare_is_refused() -> None:
    cluster = source()
    second = retry(cluster, resume={"node": "b"}, params={"w": "2"})
    assert (second.phase, second.reason) == ("Failed", "InvalidParams")
    assert "spec.params.w" in second.message and "declared: v" in second.message


def test_only_resume_from_inherits_workflow_ref_params_timeout_and_ttl() -> None:
    cluster = source(fail=("c",), params={"v": "5"}, timeoutSeconds=600, ttlSecondsAfterFinished=60)
    cluster.seen, cluster.jobs = {}, {}
    cluster.executions["second"] = body("second", resumeFrom={"name": "first"})
    pass_of(cluster, "second", 100)  # pins
    pinned = cluster.status("second")
    assert pinned.resumedFrom is not None and pinned.nodes == []
    raw = cluster.executions["second"]["spec"]
    inherited = passes.intake(NAMESPACE, None, raw, pinned, 1, T0)
    assert not isinstance(inherited, passes.Plan)
    assert (inherited.workflowRef and inherited.workflowRef.name, inherited.timeoutSeconds,
            inherited.ttlSecondsAfterFinished) == ("wf", 600, 60)
    pass_of(cluster, "second", 100)  # seeds
    pass_of(cluster, "second", 101)  # runs c
    second = cluster.status("second")
    assert second.params == {"v": "5"} and jobs_by_node(cluster) == ["c"]
    assert script_seen(next(iter(cluster.jobs.values()))) == "echo c=5"
    # the inherited deadline: c still runs 600 s after the retry started
    pass_of(cluster, "second", 100 + 601)
    late = cluster.status("second")
    assert (late.phase, late.reason) == ("Failed", "DeadlineExceeded")
    # the inherited time to live: deleted 60 s after it finished
    pass_of(cluster, "second", 100 + 601 + 61)
    assert "second" not in cluster.executions


def test_a_different_workflow_ref_is_refused() -> None:
    cluster = source(fail=("c",))
    cluster.workflows["other"] = {"metadata": {"name": "other", "namespace": NAMESPACE}, "spec": WF}
    second = retry(cluster, workflowRef={"name": "other"})
    assert (second.phase, second.reason) == ("Failed", "InvalidResume")
    assert "spec.workflowRef.name 'other'" in second.message and "Workflow 'wf'" in second.message
    assert not cluster.jobs


@pytest.mark.parametrize("lost", [0, 1, 2], ids=["the pin's write lost", "the seed's write lost",
                                                 "the first plan's write lost"])
def test_a_lost_status_write_and_its_replayed_pass_decide_the_same(lost: int) -> None:
    clean = source(params={"v": "1"})
    lossy = source(params={"v": "1"})
    for cluster in (clean, lossy):
        cluster.seen, cluster.jobs = {}, {}
        cluster.executions["second"] = body("second", resumeFrom={"name": "first", "node": "b"}, params={"v": "2"})
    for step in range(3):
        pass_of(clean, "second", 100)
        if step == lost:
            lossy.fail_status_writes = 1
            with pytest.raises(WriteFailed):
                pass_of(lossy, "second", 100)
        pass_of(lossy, "second", 100)
    assert lossy.status("second") == clean.status("second")
    assert phases(lossy.status("second")) == {"a": "Succeeded", "b": "Running", "c": "Pending"}
    assert jobs_by_node(lossy) == ["b"]


def test_the_source_deleted_after_the_pin_refuses_the_retry() -> None:
    cluster = source(fail=("c",))
    cluster.seen, cluster.jobs = {}, {}
    cluster.executions["second"] = body("second", resumeFrom={"name": "first"})
    pass_of(cluster, "second", 100)  # pins uid-first
    del cluster.executions["first"]
    pass_of(cluster, "second", 101)
    second = cluster.status("second")
    assert (second.phase, second.reason) == ("Failed", "InvalidResume")
    assert "'first' was deleted after this retry first read it (uid uid-first)" in second.message


def test_the_source_recreated_with_the_same_name_is_not_mixed_in() -> None:
    cluster = source(fail=("c",))
    cluster.seen, cluster.jobs = {}, {}
    cluster.executions["second"] = body("second", resumeFrom={"name": "first"})
    pass_of(cluster, "second", 100)  # pins uid-first
    # `first` deleted and run again under the same name: a new uid, other results
    cluster.executions["first"] = body("first", workflowRef={"name": "wf"})
    cluster.executions["first"]["metadata"]["uid"] = "uid-first-again"
    run_to_end(cluster, "first", fail=("b",), at=200)
    cluster.seen, cluster.jobs = {}, {}
    pass_of(cluster, "second", 300)
    second = cluster.status("second")
    assert (second.phase, second.reason) == ("Failed", "InvalidResume")
    assert "deleted and created again (uid uid-first-again)" in second.message
    assert second.nodes == [] and not cluster.jobs


# ---- the CLI ----------------------------------------------------------------------------------

def cli_cluster() -> fakes.FakeCluster:
    cluster = fakes.FakeCluster()
    done = [{"name": "extract", "phase": "Succeeded", "output": 3}, {"name": "load", "phase": "Succeeded"}]
    old = fakes.execution("etl-abcde", "Succeeded", done, params={"size": "1", "target": "db"},
                          workflowSpec=fakes.WORKFLOW["spec"])
    old["spec"]["params"] = {"target": "db"}
    cluster.objects[(EXECUTIONS, "etl-abcde")] = old
    return cluster


def test_cli_retry_from_a_node_with_params_creates_the_retry() -> None:
    cluster = cli_cluster()
    out = io.StringIO()
    assert retry_execution(cluster, "etl-abcde", None, out, node="load", params={"size": "2"}) == 0
    [made] = cluster.created
    assert made["spec"] == {"workflowRef": {"name": "etl"}, "params": {"target": "db", "size": "2"},
                            "resumeFrom": {"name": "etl-abcde", "node": "load"}}
    assert made["metadata"]["generateName"] == "etl-abcde-retry-"
    assert out.getvalue() == "etl-abcde-retry-x7k2p\n"


def test_cli_retry_from_an_unknown_node_creates_nothing_and_lists_the_nodes() -> None:
    cluster = cli_cluster()
    with pytest.raises(CliError) as refused:
        retry_execution(cluster, "etl-abcde", None, io.StringIO(), node="lod")
    assert "'lod' is not a node" in str(refused.value) and "extract, load" in str(refused.value)
    assert cluster.created == []


def test_cli_retry_of_a_succeeded_run_without_from_says_to_name_one() -> None:
    cluster = cli_cluster()
    with pytest.raises(CliError) as refused:
        retry_execution(cluster, "etl-abcde", None, io.StringIO())
    assert "--from NODE" in str(refused.value)
    assert cluster.created == []


def test_cli_retry_with_an_undeclared_param_creates_nothing() -> None:
    cluster = cli_cluster()
    with pytest.raises(CliError) as refused:
        retry_execution(cluster, "etl-abcde", None, io.StringIO(), node="load", params={"sise": "2"})
    assert "spec.params.sise" in str(refused.value) and "declared: size, target" in str(refused.value)
    assert cluster.created == []


def test_lint_takes_an_execution_with_only_resume_from(tmp_path: Path) -> None:
    code, printed = lint_text(tmp_path, "apiVersion: jobchain.dev/v1alpha1\nkind: WorkflowExecution\n"
                              "metadata: {name: again}\nspec: {resumeFrom: {name: first, node: b}, params: {v: '2'}}\n")
    assert code == 0, printed
    code, printed = lint_text(tmp_path, "apiVersion: jobchain.dev/v1alpha1\nkind: WorkflowExecution\n"
                              "metadata: {name: again}\nspec: {params: {v: '2'}}\n")
    assert code != 0 and "or resumeFrom, to retry an execution" in printed
