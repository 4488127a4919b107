"""spec.finally and spec.stop (issue 20): the finally nodes run once the main graph has ended, see
its outcome, and leave its phase to the execution; stop is graceful, cancel terminates.

Each story is walked pass by pass, and at each step the pass is replayed from the status before it
(its write lost) to show it decides the same: the outcome is in status before any finally Job.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from jobchain.api.models import ExecutionStatus, WorkflowSpec
from jobchain.engine.execution.planner import Plan, plan
from jobchain.engine.execution.resume import seed
from jobchain.engine.spec.render import ExecutionRef, job_name
from jobchain.engine.spec.validation import validate_workflow

from .builders import (
    FAIL,
    T0,
    ExecutionInput,
    created_nodes,
    env_of,
    execution,
    job,
    node,
    node_status,
    observed,
    phases,
    script_seen,
    simulate,
    with_status,
)
from .planner_sim import EXAMPLES, Scenario, run, scenarios

NOTIFY = 'echo "$(execution.phase) $(execution.reason) $(execution.failedNodes)" > $JOBCHAIN_OUTPUT'


def etl(*finally_: dict[str, Any], **fields: Any) -> WorkflowSpec:
    """extract -> load -> report, with finally nodes (a notify by default)."""
    return WorkflowSpec.model_validate({
        "nodes": [node("extract", "load"), node("load", "report"), node("report")],
        "finally": list(finally_) or [node("notify", script=NOTIFY)], **fields})


def step(ex: ExecutionInput, seen: dict[str, Any], seconds: float, **spec: Any) -> tuple[ExecutionInput, Plan]:
    """One pass at T0 + seconds, planned twice with the same inputs (a kopf retry): both decide the same.
    (Lost writes: the tests below plan again from the status before a pass, and the property test.)"""
    now = T0 + timedelta(seconds=seconds)
    ex = with_status(ex, ex.status, **spec) if spec else ex
    p = plan(ex, seen, now)
    again = plan(ex, seen, now)
    assert (again.status, again.create, again.delete) == (p.status, p.create, p.delete)
    return with_status(ex, p.status), p


def test_a_failed_run_runs_finally_and_stays_failed() -> None:
    ex = execution(etl())
    ex, p = step(ex, {}, 0)
    assert created_nodes(p) == ["extract"]
    assert [(n.name, n.finally_) for n in p.status.nodes][-1] == ("notify", True)
    ex, p = step(ex, observed(job("extract", "Succeeded")), 1)
    before = ex
    failed = observed(job("extract", "Succeeded"), job("load", "Failed", finished_at=T0 + timedelta(seconds=2)))
    ex, p = step(ex, failed, 2)
    # The pass that sees the main graph end records its outcome and starts nothing: the outcome is
    # in status before any finally Job exists.
    assert p.create == [] and p.status.phase == "Running"
    assert p.status.outcome is not None and p.status.outcome.phase == "Failed"
    assert p.status.outcome.reason == "NodeFailed" and p.status.outcome.failedNodes == ["load"]
    assert p.wake_at == T0 + timedelta(seconds=2)
    # Its write lost: the next pass decides the same outcome again, from the same status.
    lost = plan(before, failed, T0 + timedelta(seconds=9))
    assert lost.status.outcome == p.status.outcome and lost.create == []
    seen = observed(job("extract", "Succeeded"), job("load", "Failed"))
    ex, p = step(ex, seen, 3)
    assert created_nodes(p) == ["notify"] and p.status.phase == "Running"
    assert script_seen(p.create[0]).startswith('echo "Failed NodeFailed ["load"]"')
    env = env_of(p.create[0])
    assert (env["JOBCHAIN_EXECUTION_PHASE"], env["JOBCHAIN_EXECUTION_REASON"], env["JOBCHAIN_FAILED_NODES"]) == \
        ("Failed", "NodeFailed", '["load"]')
    # Replayed after a lost write: the notify Job is adopted, not created twice.
    adopted = plan(ex, {**seen, **observed(job("notify"))}, T0 + timedelta(seconds=4))
    assert adopted.create == [] and node_status(adopted.status, "notify").phase == "Running"
    ex, p = step(ex, {**seen, **observed(job("notify", "Succeeded", "Failed NodeFailed [\"load\"]"))}, 4)
    assert (p.status.phase, p.status.reason) == ("Failed", "NodeFailed")
    assert node_status(p.status, "notify").output == 'Failed NodeFailed ["load"]'
    assert phases(p.status) == {"extract": "Succeeded", "load": "Failed", "report": "Skipped", "notify": "Succeeded"}


def test_a_succeeded_run_ends_succeeded_after_its_finally() -> None:
    r = simulate(etl())
    assert (r.status.phase, r.status.reason) == ("Succeeded", "Succeeded")
    assert r.started_order() == ["extract", "load", "report", "notify"]
    assert r.status.outcome is not None and r.status.outcome.failedNodes == []


def test_a_failed_finally_node_fails_a_run_that_had_succeeded() -> None:
    r = simulate(etl(), {"notify": FAIL})
    assert (r.status.phase, r.status.reason) == ("Failed", "FinallyFailed")
    assert "finally node(s) notify failed" in r.status.message
    # ... but leaves a failed run's reason alone
    r = simulate(etl(), {"notify": FAIL, "load": FAIL})
    assert (r.status.phase, r.status.reason) == ("Failed", "NodeFailed")


def test_finally_nodes_may_chain_and_see_main_outputs() -> None:
    workflow = etl(node("notify", "clean", script="echo $(nodes.extract.output)"), node("clean"))
    assert validate_workflow(workflow) == []
    r = simulate(workflow, {"extract": ("Succeeded", '"rows"')})
    assert r.started_order()[-2:] == ["notify", "clean"]
    assert script_seen(r.cluster.manifests[job_name("run-1", "notify")]) == "echo rows"


def test_stop_lets_the_running_node_finish_starts_nothing_new_then_runs_finally() -> None:
    ex = execution(etl())
    ex, p = step(ex, {}, 0)
    ex, p = step(ex, observed(job("extract")), 1, stop=True)
    assert p.create == [] and p.delete == [] and p.status.outcome is None  # extract still runs
    seen = observed(job("extract", "Succeeded", finished_at=T0 + timedelta(seconds=2)))
    ex, p = step(ex, seen, 2)
    assert p.create == [], "load never starts after a stop"
    assert p.status.outcome is not None
    assert (p.status.outcome.phase, p.status.outcome.reason) == ("Cancelled", "Stopped")
    assert phases(p.status) == {"extract": "Succeeded", "load": "Cancelled", "report": "Cancelled",
                                "notify": "Pending"}
    ex, p = step(ex, seen, 3)
    assert created_nodes(p) == ["notify"]
    assert env_of(p.create[0])["JOBCHAIN_EXECUTION_REASON"] == "Stopped"
    ex, p = step(ex, {**seen, **observed(job("notify", "Succeeded"))}, 4)
    assert (p.status.phase, p.status.reason) == ("Cancelled", "Stopped")


def test_stop_without_finally_ends_stopped_once_nothing_runs() -> None:
    workflow = WorkflowSpec.model_validate({"nodes": [node("a", "b"), node("b")]})
    ex, p = step(execution(workflow), {}, 0)
    ex, p = step(ex, observed(job("a", "Succeeded")), 1, stop=True)
    assert (p.status.phase, p.status.reason) == ("Cancelled", "Stopped") and p.create == []


def test_cancel_terminates_and_skips_finally() -> None:
    ex, p = step(execution(etl()), {}, 0)
    ex, p = step(ex, observed(job("extract")), 1, cancel=True)
    assert (p.status.phase, p.status.reason) == ("Cancelled", "Cancelled")
    assert p.delete == [job_name("run-1", "extract")] and p.create == []
    assert node_status(p.status, "notify").phase == "Cancelled"


def test_stop_then_cancel_terminates_the_running_node_and_skips_finally() -> None:
    ex, p = step(execution(etl()), {}, 0)
    ex, p = step(ex, observed(job("extract")), 1, stop=True)
    ex, p = step(ex, observed(job("extract")), 2, cancel=True)
    assert (p.status.phase, p.status.reason) == ("Cancelled", "Cancelled")
    assert p.delete == [job_name("run-1", "extract")] and p.create == []
    assert phases(p.status)["notify"] == "Cancelled"


def test_cancel_while_finally_runs_deletes_its_job() -> None:
    ex, p = step(execution(etl()), {}, 0)
    done = observed(job("extract", "Failed"))
    ex, p = step(ex, done, 1)
    ex, p = step(ex, done, 2)
    assert created_nodes(p) == ["notify"]
    ex, p = step(ex, {**done, **observed(job("notify"))}, 3, cancel=True)
    assert (p.status.phase, p.status.reason) == ("Cancelled", "Cancelled")
    assert p.delete == [job_name("run-1", "notify")]


def test_a_deadline_cannot_starve_finally_which_has_its_own_time() -> None:
    ex = execution(etl(finallyTimeoutSeconds=30), timeout=60)
    ex, p = step(ex, {}, 0)
    ex, p = step(ex, observed(job("extract")), 60)
    assert p.delete == [job_name("run-1", "extract")]
    assert p.status.outcome is not None and p.status.outcome.reason == "DeadlineExceeded"
    assert p.status.outcome.endedAt == "2026-01-01T12:01:00Z" and p.status.phase == "Running"
    ex, p = step(ex, {}, 61)  # past the execution's deadline: the finally node starts all the same
    assert created_nodes(p) == ["notify"]
    assert p.wake_at == T0 + timedelta(seconds=90)
    ex, p = step(ex, observed(job("notify", "Succeeded")), 70)
    assert (p.status.phase, p.status.reason) == ("Failed", "DeadlineExceeded")
    assert phases(p.status)["notify"] == "Succeeded"


def test_finally_running_past_its_time_is_deleted() -> None:
    ex = execution(etl(finallyTimeoutSeconds=30))
    ex, p = step(ex, {}, 0)
    done = observed(job("extract", "Failed", finished_at=T0 + timedelta(seconds=1)))
    ex, p = step(ex, done, 1)
    ex, p = step(ex, done, 2)
    ex, p = step(ex, {**done, **observed(job("notify"))}, 31)
    assert p.delete == [job_name("run-1", "notify")]
    assert (p.status.phase, p.status.reason) == ("Failed", "NodeFailed")
    assert "finallyTimeoutSeconds (30s)" in p.status.message


def test_validation_refuses_edges_into_finally_and_duplicate_names() -> None:
    bad = WorkflowSpec.model_validate({
        "nodes": [node("a", "notify"), node("b", script="echo $(execution.phase)")],
        "finally": [node("notify", "a"), node("b")]})
    shown = [str(p) for p in validate_workflow(bad)]
    assert "spec.nodes[0].next[0].node: 'notify' is a finally node: it runs once the main graph has ended, " \
        "never after an edge; remove this edge" in shown
    assert "spec.finally[0].next[0].node: 'a' is a node of spec.nodes: a finally node can only lead to other " \
        "finally nodes" in shown
    assert any(s.startswith("spec.finally[1].name: duplicate node name 'b'") for s in shown)
    assert any(s.startswith("spec.nodes[1].script: $(execution.phase): only the nodes of spec.finally") for s in shown)


# ---- the property test: random workflows with finally nodes, stops, cancels, lost writes -------

@st.composite
def finally_scenarios(draw: st.DrawFn) -> Scenario:
    sc = draw(scenarios())
    count = draw(st.integers(1, 2))
    finals = [{"name": f"f{i}", "image": "busybox", "script": draw(st.sampled_from([NOTIFY, "true"]))}
              for i in range(count)]
    if count == 2 and draw(st.booleans()):
        finals[0]["next"] = [{"node": "f1", "type": draw(st.sampled_from(["success", "always"]))}]
    workflow = WorkflowSpec.model_validate({**sc.workflow.model_dump(by_alias=True, exclude_none=True),
                                            "finally": finals,
                                            "finallyTimeoutSeconds": draw(st.sampled_from([3, 300]))})
    results = {**sc.results, **{f["name"]: (draw(st.sampled_from(["Succeeded", "Failed"])), None,
                                            draw(st.integers(1, 3))) for f in finals}}
    return Scenario(workflow, results, sc.timeout, sc.cancel_at, sc.pass_steps,
                    stop_at=draw(st.none() | st.integers(0, 12)), approvals=sc.approvals)


@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(finally_scenarios(), st.data())
def test_finally_keeps_the_invariants_with_stops_cancels_lost_writes_and_replays(sc: Scenario,
                                                                                 data: st.DataObject) -> None:
    out = run(sc, data)  # asserts one Job per node, finished nodes never change, the outcome never changes
    status = out.status
    finals = [n for n in status.nodes if n.finally_]
    ran_finally = [n.name for n in finals if n.name in out.manifests]
    if status.outcome is None:
        assert ran_finally == [], "a finally node ran without an outcome"
        assert status.reason in ("Cancelled", "ConditionError") or status.phase == "Failed"
    if status.reason != "Cancelled" and status.outcome is not None:
        # Not terminated: the execution keeps the main graph's phase (or FinallyFailed over a success).
        if status.reason == "FinallyFailed":
            assert status.outcome.phase == "Succeeded" and status.phase == "Failed"
        else:
            assert (status.phase, status.reason) == (status.outcome.phase, status.outcome.reason)
    if sc.cancel_at is None and sc.timeout is None and sc.stop_at is None and sc.workflow.finallyTimeoutSeconds > 60:
        # Without a stop in time, lost writes and replays (which delay passes) change nothing of the end.
        calm = run(sc, None)
        # (endedAt of an outcome that cancelled nodes, as a condition error does, is the pass's time, as
        # an execution's finishedAt is: a lost write delays it. It is recorded once, before finally runs.)
        assert (status.phase, status.reason) == (calm.status.phase, calm.status.reason)
        assert (status.outcome is None) == (calm.status.outcome is None)
        if status.outcome is not None and calm.status.outcome is not None:
            assert status.outcome.model_copy(update={"endedAt": None}) == \
                calm.status.outcome.model_copy(update={"endedAt": None})
        assert phases(status) == phases(calm.status)


def test_a_retry_runs_the_finally_nodes_again() -> None:
    # A retry of a failed run reuses what succeeded in the main graph, never the finally nodes: they
    # must see the retry's outcome.
    source = simulate(etl(), {"load": FAIL}).status
    assert phases(source)["notify"] == "Succeeded"
    retry = ExecutionStatus()
    seed(retry, "first", source, T0 + timedelta(hours=1), ExecutionRef("second", "team-a", "uid-2", "wf"))
    assert phases(retry) == {"extract": "Succeeded", "load": "Pending", "report": "Pending", "notify": "Pending"}


def test_a_finally_node_whose_reference_has_no_value_fails_when_the_main_graph_ended() -> None:
    workflow = etl(node("notify", script="echo $(nodes.report.output.rows)"))
    r = simulate(workflow, {"load": FAIL})
    notify = node_status(r.status, "notify")
    assert notify.phase == "Failed" and "report" in notify.message
    assert r.status.outcome is not None and notify.finishedAt == r.status.outcome.endedAt
    assert (r.status.phase, r.status.reason) == ("Failed", "NodeFailed")


def test_an_approval_gate_cannot_be_a_finally_node() -> None:
    """Finally nodes run unattended after a stop or a deadline too: a gate there would wait for ever."""
    workflow = WorkflowSpec.model_validate({
        "defaults": {"image": "busybox"},
        "nodes": [{"name": "build", "script": "true"}],
        "finally": [{"name": "sign-off", "approval": {"message": "ok?"}}],
    })
    problems = validate_workflow(workflow)
    assert [(p.path, "cannot be a finally node" in p.message) for p in problems] == \
        [("spec.finally[0].approval", True)]
