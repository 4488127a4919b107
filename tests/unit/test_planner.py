"""The planner, scenario by scenario: what runs, what is skipped, and what the user reads in status."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from jobchain.api.models import ExecutionStatus, WorkflowSpec
from jobchain.engine.execution.events import events_between
from jobchain.engine.execution.planner import ObservedJob, Plan, iso, plan
from jobchain.engine.spec.outputs import MIN_OUTPUT_SHARE, STATUS_OUTPUT_BUDGET, stored_size
from jobchain.engine.spec.render import job_name

from .builders import (
    T0,
    Result,
    chain,
    created_nodes,
    edge,
    env_of,
    execution,
    job,
    lookup,
    node,
    node_status,
    observed,
    phases,
    script_seen,
    simulate,
    spec,
    with_status,
)

OK: Result = ("Succeeded", None)
FAIL: Result = ("Failed", None)


def ok(output: Any) -> Result:
    return ("Succeeded", output if isinstance(output, str) else json.dumps(output))


# ---- outcomes of whole runs ----------------------------------------------------------------

OUTCOMES: list[tuple[str, WorkflowSpec, dict[str, Result], str, str, dict[str, str]]] = [
    # (id, workflow, what each node's Job does, execution phase, reason, node phases)
    ("chain succeeds", chain("a", "b", "c"), {},
     "Succeeded", "Succeeded", {"a": "Succeeded", "b": "Succeeded", "c": "Succeeded"}),
    ("failure routes to the failure edge, success edge skipped",
     spec(node("a", edge("deploy"), edge("cleanup", "failure")), node("deploy"), node("cleanup")),
     {"a": FAIL}, "Succeeded", "Succeeded", {"a": "Failed", "deploy": "Skipped", "cleanup": "Succeeded"}),
    ("success skips the failure edge",
     spec(node("a", edge("deploy"), edge("cleanup", "failure")), node("deploy"), node("cleanup")),
     {}, "Succeeded", "Succeeded", {"a": "Succeeded", "deploy": "Succeeded", "cleanup": "Skipped"}),
    ("always runs after a failure, which is handled",
     spec(node("a", edge("report", "always")), node("report")),
     {"a": FAIL}, "Succeeded", "Succeeded", {"a": "Failed", "report": "Succeeded"}),
    ("always runs after a success",
     spec(node("a", edge("report", "always")), node("report")),
     {}, "Succeeded", "Succeeded", {"a": "Succeeded", "report": "Succeeded"}),
    ("unhandled failure fails the execution and skips the rest", chain("a", "b", "c"), {"a": FAIL},
     "Failed", "NodeFailed", {"a": "Failed", "b": "Skipped", "c": "Skipped"}),
    ("handled failure downstream of a failure handler still fails if itself unhandled",
     spec(node("a", edge("fix", "failure")), node("fix")), {"a": FAIL, "fix": FAIL},
     "Failed", "NodeFailed", {"a": "Failed", "fix": "Failed"}),
    ("condition true runs the node",
     spec(node("a", edge("big", "condition", "output.n > 10")), node("big")), {"a": ok({"n": 11})},
     "Succeeded", "Succeeded", {"a": "Succeeded", "big": "Succeeded"}),
    ("condition false skips the node",
     spec(node("a", edge("big", "condition", "output.n > 10")), node("big")), {"a": ok({"n": 3})},
     "Succeeded", "Succeeded", {"a": "Succeeded", "big": "Skipped"}),
    ("condition on a failed node does not hold",
     spec(node("a", edge("big", "condition", "true"), edge("h", "failure")), node("big"), node("h")),
     {"a": FAIL}, "Succeeded", "Succeeded", {"a": "Failed", "big": "Skipped", "h": "Succeeded"}),
    ("has() tests an optional key",
     spec(node("a", edge("b", "condition", "has(output.skip) && output.skip")), node("b")), {"a": ok({})},
     "Succeeded", "Succeeded", {"a": "Succeeded", "b": "Skipped"}),
    ("condition sees params",
     spec(node("a", edge("b", "condition", 'params.env == "prod"')), node("b"),
          params=[{"name": "env", "default": "prod"}]), {},
     "Succeeded", "Succeeded", {"a": "Succeeded", "b": "Succeeded"}),
    ("condition sees node exit code",
     spec(node("a", edge("b", "condition", "node.exitCode == 0 && node.phase == 'Succeeded'")), node("b")), {},
     "Succeeded", "Succeeded", {"a": "Succeeded", "b": "Succeeded"}),
    ("condition sees input and other nodes",
     spec(node("a", "m"), node("m", edge("b", "condition",
                                         'input.k == "v" && nodes.a.output.k == "v" && nodes.a.phase == "Succeeded"')),
          node("b")),
     {"a": ok({"k": "v"})}, "Succeeded", "Succeeded", {"a": "Succeeded", "m": "Succeeded", "b": "Succeeded"}),
    ("join all runs when every edge holds",
     spec(node("a", "j"), node("b", "j"), node("j")), {},
     "Succeeded", "Succeeded", {"a": "Succeeded", "b": "Succeeded", "j": "Succeeded"}),
    ("join all skips when one edge does not hold",
     spec(node("a", "j"), node("b", "j", edge("h", "failure")), node("j"), node("h")), {"b": FAIL},
     "Succeeded", "Succeeded", {"a": "Succeeded", "b": "Failed", "j": "Skipped", "h": "Succeeded"}),
    ("join any runs when one edge holds",
     spec(node("a", "j"), node("b", "j", edge("h", "failure")), node("j", join="any"), node("h")), {"b": FAIL},
     "Succeeded", "Succeeded", {"a": "Succeeded", "b": "Failed", "j": "Succeeded", "h": "Succeeded"}),
    ("join any skips when no edge holds",
     spec(node("a", "j", edge("h1", "failure")), node("b", "j", edge("h2", "failure")), node("j", join="any"),
          node("h1"), node("h2")),
     {"a": FAIL, "b": FAIL}, "Succeeded", "Succeeded",
     {"a": "Failed", "b": "Failed", "j": "Skipped", "h1": "Succeeded", "h2": "Succeeded"}),
    ("join any waits for every incoming edge to be decided",
     spec(node("a", "j"), node("b", "c"), node("c", "j"), node("j", join="any")), {},
     "Succeeded", "Succeeded", {"a": "Succeeded", "b": "Succeeded", "c": "Succeeded", "j": "Succeeded"}),
    ("skip cascades through always edges: a skipped node's edges hold for nothing",
     spec(node("a", edge("b", "condition", "false")), node("b", edge("c", "always")), node("c", "d"), node("d")),
     {}, "Succeeded", "Succeeded", {"a": "Succeeded", "b": "Skipped", "c": "Skipped", "d": "Skipped"}),
    ("skip cascade stops at a join any with another holding edge",
     spec(node("a", edge("b", "condition", "false"), "j"), node("b", "j"), node("j", join="any")), {},
     "Succeeded", "Succeeded", {"a": "Succeeded", "b": "Skipped", "j": "Succeeded"}),
    ("failed node message names the failed nodes", spec(node("a"), node("b")), {"a": FAIL, "b": FAIL},
     "Failed", "NodeFailed", {"a": "Failed", "b": "Failed"}),
]


@pytest.mark.parametrize(("workflow", "results", "phase", "reason", "node_phases"),
                         [c[1:] for c in OUTCOMES], ids=[c[0] for c in OUTCOMES])
def test_a_workflow_with_these_node_results_ends_in_this_phase_and_reason(
        workflow: WorkflowSpec, results: dict[str, Result], phase: str, reason: str,
        node_phases: dict[str, str]) -> None:
    run = simulate(workflow, results)
    assert phases(run.status) == node_phases
    assert run.status.phase == phase
    assert run.status.reason == reason
    assert run.status.finishedAt is not None
    unhandled = [n for n, r in results.items() if r == FAIL and phase == "Failed"]
    for name in unhandled:
        if not any(e.type in ("failure", "always") for e in next(n for n in workflow.nodes if n.name == name).next):
            assert name in run.status.message
    skipped = [n for n in run.status.nodes if n.phase == "Skipped"]
    assert all(n.jobName is None and n.message.startswith("skipped:") for n in skipped)
    assert sorted(run.cluster.creates) == sorted(n for n, p in node_phases.items() if p != "Skipped")


def test_unhandled_failure_message_names_only_the_unhandled_node() -> None:
    workflow = spec(node("a", edge("h", "failure")), node("h"), node("b"))
    run = simulate(workflow, {"a": FAIL, "b": ("Failed", None)})
    assert run.status.phase == "Failed"
    assert "node(s) b failed" in run.status.message
    assert "a:" not in run.status.message


# ---- outputs and inputs --------------------------------------------------------------------

def test_chain_passes_outputs_as_input_env_and_references() -> None:
    workflow = spec(
        node("extract", "transform"),
        node("transform", "load", script="fetch $(input.url) --rows $(input.rows)"),
        node("load", env=[{"name": "SRC", "value": "$(nodes.extract.output.url)"},
                          {"name": "PREV", "value": "$(input)"}]),
    )
    results = {"extract": ok({"url": "s3://b/k", "rows": 5}), "transform": ok("done")}
    run = simulate(workflow, results)
    assert run.status.phase == "Succeeded"
    transform = run.cluster.manifests[job_name("run-1", "transform")]
    assert json.loads(env_of(transform)["JOBCHAIN_INPUT"]) == {"url": "s3://b/k", "rows": 5}
    assert script_seen(transform) == "fetch s3://b/k --rows 5"
    load_env = env_of(run.cluster.manifests[job_name("run-1", "load")])
    assert load_env["SRC"] == "s3://b/k"
    assert load_env["PREV"] == "done"
    assert node_status(run.status, "extract").output == {"url": "s3://b/k", "rows": 5}
    assert node_status(run.status, "transform").output == "done"
    assert node_status(run.status, "transform").inputFrom == "extract"
    assert node_status(run.status, "extract").inputFrom is None


@pytest.mark.parametrize("join", ["all", "any"])
@pytest.mark.parametrize(("first", "last"), [("a", "b"), ("b", "a")])
def test_input_comes_from_the_predecessor_that_finished_last(join: str, first: str, last: str) -> None:
    workflow = spec(node("a", "j"), node("b", "j"), node("j", join=join), parallelism=2)
    ex = execution(workflow)
    p1 = plan(ex, {}, T0)
    assert created_nodes(p1) == ["a", "b"]
    ex = with_status(ex, p1.status)
    t1, t2 = T0 + timedelta(seconds=5), T0 + timedelta(seconds=9)
    done = observed(job(first, "Succeeded", f'"from {first}"', finished_at=t1),
                    job(last, "Succeeded", f'"from {last}"', finished_at=t2))
    p2 = plan(ex, done, t2 + timedelta(seconds=1))
    assert created_nodes(p2) == ["j"]
    assert env_of(p2.create[0])["JOBCHAIN_INPUT"] == f'"from {last}"'
    assert node_status(p2.status, "j").inputFrom == last


def test_input_is_from_the_edge_that_held_not_a_later_skipped_one() -> None:
    workflow = spec(node("a", "j"), node("b", edge("j", "failure")), node("j", join="any"), parallelism=2)
    ex = execution(workflow)
    ex = with_status(ex, plan(ex, {}, T0).status)
    done = observed(job("a", "Succeeded", '"a"', finished_at=T0 + timedelta(seconds=1)),
                    job("b", "Succeeded", '"b"', finished_at=T0 + timedelta(seconds=2)))
    p = plan(ex, done, T0 + timedelta(seconds=3))
    assert node_status(p.status, "j").inputFrom == "a"
    assert env_of(p.create[0])["JOBCHAIN_INPUT"] == '"a"'


UNRESOLVED: list[tuple[str, WorkflowSpec, dict[str, Result], str, str]] = [
    ("missing input key", spec(node("a", "b"), node("b", script="echo $(input.url)")),
     {"a": ok({"other": 1})}, "b", "$(input.url)"),
    ("input is text, not an object", spec(node("a", "b"), node("b", args=["$(input.url)"])),
     {"a": ok("plain")}, "b", "$(input.url)"),
    ("output of a node that was skipped", spec(
        node("a", edge("s", "condition", "false"), "b"), node("s", "b"),
        node("b", join="any", env=[{"name": "X", "value": "$(nodes.s.output)"}])),
     {}, "b", "$(nodes.s.output)"),
]


@pytest.mark.parametrize(("workflow", "results", "failed", "reference"),
                         [c[1:] for c in UNRESOLVED], ids=[c[0] for c in UNRESOLVED])
def test_unresolvable_reference_fails_the_node_naming_it(workflow: WorkflowSpec, results: dict[str, Result],
                                                          failed: str, reference: str) -> None:
    run = simulate(workflow, results)
    status = node_status(run.status, failed)
    assert status.phase == "Failed"
    assert reference in status.message
    assert status.jobName is None
    assert failed not in run.cluster.creates
    assert run.status.phase == "Failed"
    assert reference in run.status.message


def test_unresolvable_reference_can_be_handled_by_a_failure_edge() -> None:
    workflow = spec(node("a", "b"), node("b", edge("h", "failure"), script="echo $(input.x)"), node("h"))
    run = simulate(workflow, {"a": ok({})})
    assert phases(run.status) == {"a": "Succeeded", "b": "Failed", "h": "Succeeded"}
    assert run.status.phase == "Succeeded"


# ---- conditions that fail at run time ------------------------------------------------------

def test_condition_runtime_error_fails_the_execution_with_condition_error() -> None:
    workflow = spec(node("a", edge("b", "condition", "output.missing == 1")), node("b"), node("slow"),
                    parallelism=2)
    ex = execution(workflow)
    p1 = plan(ex, {}, T0)
    assert created_nodes(p1) == ["a", "slow"]
    ex = with_status(ex, p1.status)
    p2 = plan(ex, observed(job("a", "Succeeded", '{"k": 1}'), job("slow")), T0 + timedelta(seconds=1))
    status = p2.status
    assert status.phase == "Failed"
    assert status.reason == "ConditionError"
    assert "spec.nodes[0].next[0]" in status.message
    assert "a -> b" in status.message
    assert "output.missing == 1" in status.message
    assert "has(...)" in status.message
    assert p2.delete == [job_name("run-1", "slow")]
    assert p2.create == []
    assert phases(status) == {"a": "Succeeded", "b": "Cancelled", "slow": "Cancelled"}


def test_condition_error_after_a_start_in_the_same_pass_creates_no_job() -> None:
    # x fails before starting (unresolved reference) while y starts; only then is z decided, and its
    # condition errors. y is Cancelled with the execution: it must not get a Job.
    workflow = spec(
        node("a", "x", "y", edge("z", "condition", "output.missing == 1")),
        node("x", edge("z", "failure"), script="echo $(input.nope)"),
        node("y"),
        node("z"),
        parallelism=2,
    )
    ex, _ = started(workflow)
    p = plan(ex, observed(job("a", "Succeeded", "{}")), T0 + timedelta(seconds=1))
    assert p.status.reason == "ConditionError"
    assert phases(p.status) == {"a": "Succeeded", "x": "Failed", "y": "Cancelled", "z": "Cancelled"}
    assert p.create == []
    assert "NodeStarted" not in [e.reason for e in events_between(ex.status, p.status)]  # no Job, no event


def test_condition_that_is_not_a_bool_is_a_condition_error() -> None:
    run = simulate(spec(node("a", edge("b", "condition", "output.n")), node("b")), {"a": ok({"n": 1})})
    assert run.status.reason == "ConditionError"
    assert "bool" in run.status.message


# ---- parallelism and order -----------------------------------------------------------------

PARALLEL: list[tuple[str, WorkflowSpec, list[list[str]]]] = [
    ("parallelism 1 runs one at a time in declaration order",
     spec(node("s", "c", "a", "b"), node("c"), node("a"), node("b"), parallelism=1),
     [["s"], ["c"], ["a"], ["b"]]),
    ("parallelism 2 starts the first two declared",
     spec(node("s", "c", "a", "b"), node("c"), node("a"), node("b"), parallelism=2),
     [["s"], ["c", "a"], ["b"]]),
    ("parallelism larger than the ready nodes", spec(node("x"), node("y"), node("z"), parallelism=5),
     [["x", "y", "z"]]),
    ("start nodes in declaration order", spec(node("z"), node("y"), node("x"), parallelism=1),
     [["z"], ["y"], ["x"]]),
    ("a node made ready by a skip is not overtaken by a later-declared node",
     spec(node("s", edge("d", "failure"), "b", "c"), node("b", join="any"), node("c"), node("d", "b"),
          parallelism=1),
     [["s"], ["b"], ["c"]]),
]


@pytest.mark.parametrize(("workflow", "waves"), [c[1:] for c in PARALLEL], ids=[c[0] for c in PARALLEL])
def test_ready_nodes_start_in_declaration_order_up_to_parallelism(workflow: WorkflowSpec,
                                                                   waves: list[list[str]]) -> None:
    run = simulate(workflow)  # every step finishes all running Jobs: one wave per step
    assert [created_nodes(p) for p in run.plans if p.create] == waves
    assert run.status.phase == "Succeeded"


@pytest.mark.parametrize("parallelism", [1, 2, 3])
def test_running_never_exceeds_parallelism_and_a_slot_is_refilled(parallelism: int) -> None:
    workflow = spec(*(node(f"n{i}") for i in range(7)), parallelism=parallelism)
    run = simulate(workflow, finish_per_step=1)
    for p in run.plans:
        assert sum(1 for n in p.status.nodes if n.phase == "Running") <= parallelism
    assert run.started_order() == [f"n{i}" for i in range(7)]
    assert max(len(p.create) for p in run.plans) == parallelism


# ---- cancel and deadline -------------------------------------------------------------------

def started(workflow: WorkflowSpec, **kwargs: Any) -> tuple[Any, Plan]:
    ex = execution(workflow, **kwargs)
    p = plan(ex, {}, T0)
    return with_status(ex, p.status), p


def test_cancel_deletes_running_jobs_and_cancels_unstarted_nodes() -> None:
    workflow = spec(node("a", "c"), node("b"), node("c"), parallelism=2)
    ex, _ = started(workflow)
    ex = with_status(ex, ex.status, cancel=True)
    p = plan(ex, observed(job("a"), job("b", "Succeeded", "7")), T0 + timedelta(seconds=5))
    assert p.status.phase == "Cancelled"
    assert p.status.reason == "Cancelled"
    assert p.delete == [job_name("run-1", "a")]
    assert p.create == []
    assert phases(p.status) == {"a": "Cancelled", "b": "Succeeded", "c": "Cancelled"}
    assert node_status(p.status, "b").output == 7
    assert p.wake_at is None


def test_cancel_before_start_cancels_without_creating_anything() -> None:
    p = plan(execution(chain("a", "b"), cancel=True), {}, T0)
    assert p.status.phase == "Cancelled"
    assert p.create == []


def test_cancel_after_a_crash_before_the_first_status_write_deletes_the_jobs_created() -> None:
    # The first reconcile created a's Job and crashed before writing status; then the user cancels.
    ex = execution(chain("a", "b"), cancel=True)
    p = plan(ex, observed(job("a")), T0 + timedelta(seconds=2))
    assert p.status.phase == "Cancelled"
    assert p.delete == [job_name("run-1", "a")]
    assert p.create == []


def test_deadline_sets_wake_at_then_fails_with_deadline_exceeded() -> None:
    ex, p1 = started(chain("a", "b"), timeout=60)
    assert p1.wake_at == T0 + timedelta(seconds=60)
    p2 = plan(ex, observed(job("a")), T0 + timedelta(seconds=30))
    assert p2.status.phase == "Running"
    assert p2.wake_at == T0 + timedelta(seconds=60)
    p3 = plan(ex, observed(job("a")), T0 + timedelta(seconds=60))
    assert p3.status.phase == "Failed"
    assert p3.status.reason == "DeadlineExceeded"
    assert "60s" in p3.status.message
    assert p3.delete == [job_name("run-1", "a")]
    assert phases(p3.status) == {"a": "Cancelled", "b": "Cancelled"}
    assert p3.wake_at is None
    assert p3.status.duration == "1m00s"


def test_no_timeout_no_wake_at() -> None:
    _, p = started(chain("a"))
    assert p.wake_at is None


# ---- workflow and params problems ----------------------------------------------------------

def test_workflow_not_found() -> None:
    p = plan(execution(ref="etl"), {}, T0, lookup(None, "etl", found=False))
    assert (p.status.phase, p.status.reason) == ("Failed", "WorkflowNotFound")
    assert "'etl' not found in namespace 'team-a'" in p.status.message
    assert p.create == []
    assert p.status.finishedAt is not None


def test_invalid_referenced_workflow_that_did_not_parse() -> None:
    p = plan(execution(ref="etl"), {}, T0, lookup(None, "etl", problems=["spec.nodes[0].scirpt: unknown field"]))
    assert (p.status.phase, p.status.reason) == ("Failed", "InvalidWorkflow")
    assert "spec.nodes[0].scirpt: unknown field" in p.status.message
    assert "Fix the Workflow" in p.status.message


@pytest.mark.parametrize("inline", [True, False])
def test_invalid_workflow_graph_fails_at_once_saying_what_to_fix(inline: bool) -> None:
    bad = spec(node("a", "nope"))
    ex = execution(bad) if inline else execution(ref="etl")
    p = plan(ex, {}, T0, None if inline else lookup(bad, "etl"))
    assert (p.status.phase, p.status.reason) == ("Failed", "InvalidWorkflow")
    assert "spec.nodes[0].next[0].node: edge to unknown node 'nope'" in p.status.message
    assert ("spec.workflow" if inline else "Workflow 'etl'") in p.status.message
    assert p.create == []


PARAMS: list[tuple[str, dict[str, str], list[str]]] = [
    ("unknown param", {"colour": "red", "env": "x"},
     ["spec.params.colour: spec.workflow does not declare this param (declared: env, region)"]),
    ("missing param without default", {}, ["spec.params: must set 'env': spec.workflow declares it without a default"]),
    ("both", {"oops": "1"}, ["spec.params.oops: ", "does not declare", "must set 'env'"]),
]


@pytest.mark.parametrize(("params", "phrases"), [c[1:] for c in PARAMS], ids=[c[0] for c in PARAMS])
def test_invalid_params(params: dict[str, str], phrases: list[str]) -> None:
    workflow = spec(node("a"), params=[{"name": "env"}, {"name": "region", "default": "eu"}])
    p = plan(execution(workflow, params=params), {}, T0)
    assert (p.status.phase, p.status.reason) == ("Failed", "InvalidParams")
    for phrase in phrases:
        assert phrase in p.status.message
    assert p.create == []


def test_params_are_resolved_with_defaults_and_passed_to_nodes() -> None:
    workflow = spec(node("a", script="echo $(params.env) $(params.region)"),
                    params=[{"name": "env"}, {"name": "region", "default": "eu"}])
    p = plan(execution(workflow, params={"env": "prod"}), {}, T0)
    assert p.status.params == {"env": "prod", "region": "eu"}
    assert json.loads(env_of(p.create[0])["JOBCHAIN_PARAMS"]) == {"env": "prod", "region": "eu"}
    assert script_seen(p.create[0]) == "echo prod eu"


def test_workflow_snapshot_is_kept_editing_the_workflow_changes_nothing() -> None:
    ex = execution(ref="etl")
    p1 = plan(ex, {}, T0, lookup(chain("a", "b"), "etl"))
    assert p1.status.workflowName == "etl"
    ex = with_status(ex, p1.status)
    p2 = plan(ex, observed(job("a", "Succeeded")), T0 + timedelta(seconds=1), lookup(chain("x"), "etl"))
    assert created_nodes(p2) == ["b"]
    assert p2.create[0]["metadata"]["labels"]["jobchain.dev/workflow"] == "etl"
    assert p2.status.workflowSpec == chain("a", "b")


# ---- restarts, retries, lost Jobs ----------------------------------------------------------

def test_pending_node_with_an_observed_job_is_adopted_not_created_again() -> None:
    _, p1 = started(chain("a", "b"))
    assert created_nodes(p1) == ["a"]
    fresh = execution(chain("a", "b"))  # the status write of p1 was lost
    p2 = plan(fresh, observed(job("a")), T0 + timedelta(seconds=1))
    assert p2.create == []
    assert node_status(p2.status, "a").phase == "Running"
    assert node_status(p2.status, "a").jobName == job_name("run-1", "a")
    assert p2.status.running == "a"


def test_adoption_later_in_the_run() -> None:
    ex, _ = started(chain("a", "b", "c"))
    a_done = observed(job("a", "Succeeded"))
    p2 = plan(ex, a_done, T0 + timedelta(seconds=1))
    assert created_nodes(p2) == ["b"]  # ... and the status write is lost: b is still Pending in ex
    assert node_status(ex.status, "b").phase == "Pending"
    p3 = plan(ex, {**a_done, **observed(job("b"))}, T0 + timedelta(seconds=2))
    assert p3.create == []
    assert phases(p3.status) == {"a": "Succeeded", "b": "Running", "c": "Pending"}


def test_adopted_node_keeps_its_input_so_conditions_decide_as_without_the_crash() -> None:
    workflow = spec(node("a", "b"), node("b", edge("c", "condition", 'input.k == "v"')), node("c"))
    ex, _ = started(workflow)
    a_done = observed(job("a", "Succeeded", '{"k": "v"}', finished_at=T0))
    p2 = plan(ex, a_done, T0 + timedelta(seconds=1))
    assert node_status(p2.status, "b").inputFrom == "a"
    # p2's status write is lost; b's Job is found by the next reconcile, already finished.
    p3 = plan(ex, {**a_done, **observed(job("b", "Succeeded", "{}"))}, T0 + timedelta(seconds=2))
    assert node_status(p3.status, "b").inputFrom == "a"
    assert created_nodes(p3) == ["c"]


def test_replay_after_two_lost_writes_restores_inputs_at_once() -> None:
    # parallelism 2. Lost pass 1: n1 fails before starting (no Job), n5 starts. Lost pass 2: n5 has
    # finished, y starts. The replay from the last written status (s, x Running) finds x and y
    # running: both slots taken. n1 must still be decided now, or n5 would be written finished with
    # no input and change later.
    workflow = spec(
        node("s", "n1"), node("x"),
        node("n1", edge("n5", "failure"), script="echo $(input.v)"),
        node("n5", "y"), node("y", edge("z", "condition", 'input == "five"')), node("z"),
        parallelism=2,
    )
    ex, p0 = started(workflow)
    assert created_nodes(p0) == ["s", "x"]
    t = T0 + timedelta(seconds=1)
    seen = observed(job("s", "Succeeded", "{}", finished_at=t), job("x"),
                    job("n5", "Succeeded", '"five"', finished_at=t + timedelta(seconds=1)), job("y"))
    p3 = plan(ex, seen, t + timedelta(seconds=2))
    assert p3.create == []
    assert phases(p3.status) == {"s": "Succeeded", "x": "Running", "n1": "Failed", "n5": "Succeeded",
                                 "y": "Running", "z": "Pending"}
    assert node_status(p3.status, "n5").inputFrom == "n1"
    assert node_status(p3.status, "y").inputFrom == "n5"
    assert len([n for n in p3.status.nodes if n.phase == "Running"]) == 2


def test_node_that_cannot_start_fails_without_waiting_for_a_slot() -> None:
    workflow = spec(node("s", "bad", "ok"), node("slow1"), node("slow2"),
                    node("bad", edge("h", "failure"), script="$(input.v)"), node("ok"), node("h"), parallelism=2)
    ex, p0 = started(workflow)
    assert created_nodes(p0) == ["s", "slow1"]
    p = plan(ex, observed(job("s", "Succeeded", "{}"), job("slow1")), T0 + timedelta(seconds=1))
    assert created_nodes(p) == ["slow2"]
    bad = node_status(p.status, "bad")
    assert (bad.phase, bad.inputFrom) == ("Failed", "s")
    assert "$(input.v)" in bad.message
    assert phases(p.status)["ok"] == phases(p.status)["h"] == "Pending"  # both wait for a slot


def test_pending_node_whose_job_already_finished_takes_its_result() -> None:
    lost = execution(chain("a", "b"))  # a's Job was created, then the status write was lost
    p = plan(lost, observed(job("a", "Succeeded", '{"v": 1}')), T0 + timedelta(seconds=1))
    assert node_status(p.status, "a").phase == "Succeeded"
    assert node_status(p.status, "a").output == {"v": 1}
    assert created_nodes(p) == ["b"]


def test_same_inputs_twice_plan_the_same_job() -> None:
    ex = execution(chain("a", "b"))
    first, second = plan(ex, {}, T0), plan(ex, {}, T0)
    assert first.create == second.create
    assert first.status == second.status


def test_vanished_job_fails_its_node() -> None:
    ex, _ = started(chain("a", "b"))
    p = plan(ex, {}, T0 + timedelta(seconds=3))
    a = node_status(p.status, "a")
    assert a.phase == "Failed"
    assert "disappeared" in a.message
    assert p.create == []
    assert p.status.phase == "Failed"
    assert node_status(p.status, "b").phase == "Skipped"


def test_finished_node_ignores_what_is_observed_later() -> None:
    ex, _ = started(chain("a", "b"))
    p = plan(ex, observed(job("a", "Succeeded", "1")), T0 + timedelta(seconds=1))
    ex = with_status(ex, p.status)
    p2 = plan(ex, observed(job("a", "Failed", "2"), job("b")), T0 + timedelta(seconds=2))
    assert node_status(p2.status, "a").phase == "Succeeded"
    assert node_status(p2.status, "a").output == 1


def test_pod_retries_and_exit_code_are_recorded() -> None:
    ex, _ = started(chain("a"))
    seen = ObservedJob("a", job_name("run-1", "a"), job("a", "Failed").state, pod_name="pod-x", exit_code=3,
                       raw_output="boom", message="BackoffLimitExceeded", retries=2)
    p = plan(ex, {"a": seen}, T0 + timedelta(seconds=1))
    a = node_status(p.status, "a")
    assert (a.exitCode, a.retries, a.podName, a.output) == (3, 2, "pod-x", "boom")
    assert "BackoffLimitExceeded" in p.status.message


# ---- a finished execution ------------------------------------------------------------------

TERMINALS: list[tuple[str, dict[str, Any]]] = [
    ("succeeded", {}),
    ("cancelled", {"cancel": True}),
]


@pytest.mark.parametrize("changes", [c[1] for c in TERMINALS], ids=[c[0] for c in TERMINALS])
def test_finished_execution_never_changes_and_keeps_the_jobs_of_nodes_that_ran(changes: dict[str, Any]) -> None:
    run = simulate(chain("a", "b"))
    final = run.status
    ex = with_status(execution(chain("a", "b")), final, **changes)
    # b's pod finished (its result is in status) but the Job controller has not yet set the
    # Job's Complete condition: the Job, its pod and its log are kept (`jobchain logs` reads them).
    lagging = observed(job("a", "Succeeded"), job("b"))
    p = plan(ex, lagging, T0 + timedelta(hours=1), lookup(None, found=False))
    assert p.status == final
    assert p.create == []
    assert p.delete == []
    assert events_between(ex.status, p.status) == []
    assert p.wake_at is None


def test_finished_execution_deletes_running_jobs_of_nodes_that_did_not_run() -> None:
    ex, _ = started(chain("a", "b"))
    cancelled = plan(with_status(ex, ex.status, cancel=True), observed(job("a")), T0 + timedelta(seconds=1))
    assert cancelled.delete == [job_name("run-1", "a")]
    # The delete did not complete before a crash: the next pass deletes it again.
    again = plan(with_status(ex, cancelled.status, cancel=True), observed(job("a")), T0 + timedelta(seconds=2))
    assert again.status == cancelled.status
    assert again.delete == [job_name("run-1", "a")]


def test_failed_execution_stays_failed_when_cancel_is_set_later() -> None:
    run = simulate(chain("a", "b"), {"a": FAIL})
    ex = with_status(execution(chain("a", "b")), run.status, cancel=True)
    p = plan(ex, {}, T0 + timedelta(hours=1))
    assert p.status == run.status
    assert p.status.phase == "Failed"


# ---- outputs in status ---------------------------------------------------------------------

LIMITS: list[tuple[str, dict[str, Any], str, Any, bool]] = [
    ("small JSON output kept", {}, '{"a": 1}', {"a": 1}, False),
    ("over the default 32 KiB truncated", {}, "x" * 40000, "x" * 32768, True),
    ("outputLimitBytes set lower", {"outputLimitBytes": 300}, "y" * 1000, "y" * 300, True),
    ("outputLimitBytes set higher", {"outputLimitBytes": 65536}, "z" * 40000, "z" * 40000, False),
]


@pytest.mark.parametrize(("fields", "raw", "expected", "truncated"),
                         [c[1:] for c in LIMITS], ids=[c[0] for c in LIMITS])
def test_output_is_capped_and_marked(fields: dict[str, Any], raw: str, expected: Any, truncated: bool) -> None:
    run = simulate(spec(node("a"), **fields), {"a": ("Succeeded", raw)})
    a = node_status(run.status, "a")
    assert a.output == expected
    assert a.outputTruncated is truncated
    assert ("truncated" in a.message) is truncated
    assert run.status.phase == "Succeeded"


def test_status_stays_bounded_with_300_nodes_of_large_output() -> None:
    workflow = spec(*(node(f"n{i:03d}") for i in range(300)), parallelism=100)
    run = simulate(workflow, lambda name, _: ("Succeeded", json.dumps({"blob": name * 20000})))
    status = run.status
    assert status.phase == "Succeeded"
    outputs = sum(stored_size(n.output) for n in status.nodes)
    assert outputs <= STATUS_OUTPUT_BUDGET + 300 * MIN_OUTPUT_SHARE
    assert len(status.model_dump_json()) < 1_500_000  # etcd's object limit is 1.5 MiB
    assert all(n.outputTruncated for n in status.nodes)
    assert all(stored_size(n.output) >= MIN_OUTPUT_SHARE for n in status.nodes)


# ---- fields users read -----------------------------------------------------------------------

def test_progress_running_and_conditions_while_running() -> None:
    workflow = spec(node("a", "c"), node("b", "c"), node("c"), parallelism=2)
    ex, p1 = started(workflow)
    s = p1.status
    assert (s.phase, s.progress, s.running) == ("Running", "0/3", "a,b")
    assert s.startedAt == iso(T0)
    assert s.observedGeneration == 1
    assert [(c.type, c.status, c.reason) for c in s.conditions] == [("Succeeded", "Unknown", "Running")]
    assert [e.reason for e in events_between(ExecutionStatus(), s)] == ["ExecutionStarted", "NodeStarted",
                                                                        "NodeStarted"]
    p2 = plan(ex, observed(job("a", "Succeeded"), job("b")), T0 + timedelta(seconds=2))
    assert (p2.status.progress, p2.status.running) == ("1/3", "b")
    assert p2.status.conditions[0].lastTransitionTime == iso(T0)  # unchanged condition keeps its time


def test_fields_when_finished() -> None:
    run = simulate(chain("a", "b"))
    s = run.status
    assert (s.progress, s.running) == ("2/2", None)
    cond = s.conditions[0]
    assert (cond.type, cond.status, cond.reason) == ("Succeeded", "True", "Succeeded")
    assert cond.lastTransitionTime == s.finishedAt
    assert s.duration == "2s"
    assert "2 succeeded, 0 failed, 0 skipped" in s.message


def test_failed_condition_is_false_with_the_reason() -> None:
    run = simulate(chain("a"), {"a": FAIL})
    cond = run.status.conditions[0]
    assert (cond.status, cond.reason) == ("False", "NodeFailed")
    assert "a" in cond.message


def test_nodes_are_listed_in_declaration_order() -> None:
    p = plan(execution(spec(node("z"), node("a", "m"), node("m"))), {}, T0)
    assert [n.name for n in p.status.nodes] == ["z", "a", "m"]


def test_input_status_is_not_modified() -> None:
    ex = execution(chain("a", "b"))
    before = ex.status.model_copy(deep=True)
    plan(ex, {}, T0)
    assert ex.status == before == ExecutionStatus()


def test_output_from_logs_keeps_the_end_of_the_log() -> None:
    # Issue 8, defect 10: a log's result is in its last lines; the first 32 KiB of the last
    # 64 KiB were kept, dropping them.
    wf = spec(node("a", output={"from": "logs"}))
    first = plan(execution(wf), {}, T0)
    log = "progress line\n" * 4000 + "RESULT 42"
    done = plan(with_status(execution(wf), first.status), observed(job("a", "Succeeded", log)), T0)
    a = node_status(done.status, "a")
    assert a.outputTruncated and str(a.output).endswith("RESULT 42")
