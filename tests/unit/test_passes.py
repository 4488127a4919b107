"""The decisions of a pass around the plan (engine.execution.passes and plan()'s admission and
resume), table by table, without a cluster: what reconcile used to decide itself."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from jobchain.api.models import (
    ExecutionPhase,
    ExecutionStatus,
    NodePhase,
    ResumedFrom,
    ResumeFrom,
    WorkflowExecutionSpec,
    WorkflowStatus,
)
from jobchain.engine.coordination.admission import Admission, Waiting
from jobchain.engine.execution import passes, pod_refusal
from jobchain.engine.execution.planner import plan
from jobchain.engine.execution.types import ResumeSource
from jobchain.engine.timefmt import iso

from .builders import T0, chain, execution, job, node, observed, simulate, spec, with_status

WF = chain("a", "b")


def finished_status(phase: str = "Succeeded", running: str | None = None) -> ExecutionStatus:
    return ExecutionStatus.model_validate({"phase": phase, "finishedAt": iso(T0), "running": running,
                                           "workflowSpec": WF.model_dump(by_alias=True, exclude_none=True)})


# ---- intake: the namespace and the spec ---------------------------------------------------------

@pytest.mark.parametrize(("namespace", "operator_namespace", "raw_spec", "reason", "phrase"), [
    ("jobchain-system", "jobchain-system", {"workflowRef": {"name": "w"}}, "RefusedNamespace",
     "the jobchain operator's own namespace"),
    ("team-a", "jobchain-system", {"workflowRef": {"name": "w"}, "timeoutSeconds": "soon"}, "InvalidSpec",
     "spec.timeoutSeconds"),
    # the namespace is refused first: its spec is not even looked at
    ("jobchain-system", "jobchain-system", {"timeoutSeconds": "soon"}, "RefusedNamespace", "own namespace"),
], ids=["in the operator's namespace", "a spec that does not parse", "both: the namespace first"])
def test_intake_refuses_with_a_reason_and_what_to_do(namespace: str, operator_namespace: str,
                                                      raw_spec: dict[str, Any], reason: str, phrase: str) -> None:
    refused = passes.intake(namespace, operator_namespace, raw_spec, ExecutionStatus(), 1, T0)
    assert not isinstance(refused, WorkflowExecutionSpec)
    assert (refused.status.phase, refused.status.reason) == ("Failed", reason)
    assert phrase in refused.status.message
    assert refused.create == [] and refused.wake_at is None


def test_intake_gives_the_spec_when_it_goes_on() -> None:
    taken = passes.intake("team-a", None, {"workflowRef": {"name": "w"}}, ExecutionStatus(), 1, T0)
    assert isinstance(taken, WorkflowExecutionSpec) and taken.workflowRef is not None


def test_a_refusal_never_changes_a_finished_execution() -> None:
    old = finished_status("Cancelled")
    refused = passes.refuse(old, 1, "InvalidSpec", "spec is invalid", T0 + timedelta(hours=1))
    assert refused.status == old


# ---- finished: the time to live ----------------------------------------------------------------

@pytest.mark.parametrize(("status", "ttl", "seconds", "expected"), [
    (ExecutionStatus(phase=ExecutionPhase.RUNNING), 30, 100, None),
    (finished_status(running="a"), 30, 100, None),  # a Job left running: the planner deletes it first
    (finished_status(), None, 100, ("keep", None)),
    (finished_status(), 30, 10, ("keep", T0 + timedelta(seconds=30))),
    (finished_status("Failed"), 30, 30, ("delete", None)),
], ids=["running: the pass goes on", "a Job still running: the pass goes on", "no ttl: kept, no wake",
        "ttl not over: wake at its end", "ttl over: deleted"])
def test_finished_minds_only_the_time_to_live(status: ExecutionStatus, ttl: int | None, seconds: int,
                                              expected: tuple[str, Any] | None) -> None:
    spec_ = WorkflowExecutionSpec.model_validate({"workflowRef": {"name": "w"}, "ttlSecondsAfterFinished": ttl})
    decided = passes.finished(spec_, status, T0 + timedelta(seconds=seconds))
    if expected is None:
        assert decided is None
        return
    assert decided is not None and decided.status == status
    assert ("delete" if decided.delete_execution else "keep", decided.wake_at) == expected


# ---- what a pass reads --------------------------------------------------------------------------

def test_what_a_pass_reads_follows_its_status() -> None:
    by_ref = WorkflowExecutionSpec.model_validate({"workflowRef": {"name": "w"}, "resumeFrom": {"name": "old"}})
    assert passes.workflow_to_read(by_ref, ExecutionStatus()) == "w"
    assert passes.resume_from(by_ref, ExecutionStatus()) == "old"
    started = plan(execution(WF), {}, T0).status
    assert passes.workflow_to_read(by_ref, started) is None  # the snapshot is taken
    assert passes.resume_from(by_ref, started) is None
    cancelled = by_ref.model_copy(update={"cancel": True})
    assert passes.resume_from(cancelled, ExecutionStatus()) is None
    # a Running node is read with its Job; a finished one is not read at all
    reads = passes.to_read(WF, started)
    assert [(r.name, r.job) for r in reads] == [("a", started.nodes[0].jobName), ("b", None)]
    done = plan(with_status(execution(WF), started), observed(job("a", "Succeeded", finished_at=T0)), T0).status
    assert [r.name for r in passes.to_read(WF, done)] == ["b"]
    assert passes.to_read(None, ExecutionStatus()) == []


def test_a_lookup_says_missing_or_what_is_wrong() -> None:
    assert passes.lookup_of("w", None).found is False
    bad = passes.lookup_of("w", {"spec": {"nodes": "no"}})
    assert bad.spec is None and bad.problems and bad.problems[0].startswith("spec.nodes")
    assert passes.lookup_of("w", {"spec": WF.model_dump(by_alias=True)}).spec == WF


def test_secrets_are_read_only_for_text_that_may_hold_them_and_withheld_when_unreadable() -> None:
    with_secret = WorkflowExecutionSpec.model_validate({
        "workflow": WF.model_dump(by_alias=True, exclude_none=True),
        "paramsFrom": [{"name": "token", "valueFrom": {"secretKeyRef": {"name": "s", "key": "k"}}}]})
    quiet = observed(job("a"))
    loud = observed(job("a", "Failed", message="last log lines: hunter2-hunter2"))
    assert passes.secrets_to_read(with_secret, quiet) == []
    assert passes.secrets_to_read(with_secret, loud) == [{"name": "s", "key": "k"}]
    assert passes.secrets_to_read(execution(WF).spec, loud) == []
    assert "hunter2" not in passes.without_secrets(loud, ["hunter2-hunter2"])["a"].message
    assert passes.without_secrets(loud, None)["a"].message.startswith("(withheld")


# ---- before the plan: the queue and a retry -----------------------------------------------------

def failed_source() -> ExecutionStatus:
    run = simulate(WF, {"b": ("Failed", None)})
    assert run.status.phase == "Failed"
    return run.status


@pytest.mark.parametrize(("admission", "resume", "expected"), [
    (Admission(gone=True), None, ("gone", "Pending", None)),
    (Admission(changed=True), None, ("", "Pending", T0)),
    (Admission(Waiting(running=2, limit=2, position=1)), None, ("", "Pending", None)),
    (Admission(), ResumeSource("old", None), ("", "Failed", None)),
    (Admission(), "unpinned", ("", "Pending", T0)),
    (Admission(), "failed", ("", "Running", T0)),
    (Admission(), ResumeSource("old", ExecutionStatus(phase=ExecutionPhase.RUNNING)), ("", "Failed", None)),
], ids=["gone: nothing", "a newer copy: look again at once", "no slot: held Queued",
        "resume from nothing: refused", "resume: pins what it resumes, then looks again at once",
        "resume: copies, then plans at once", "resume a running one: refused"])
def test_plan_holds_resumes_or_refuses_before_any_node(admission: Admission, resume: ResumeSource | str | None,
                                                      expected: tuple[str, str, Any]) -> None:
    by_ref = execution(ref="w")
    pinned = ExecutionStatus(resumedFrom=ResumedFrom(name="old", uid="uid-old")) if resume == "failed" \
        else ExecutionStatus()
    ex = execution(ref="w") if resume is None else with_status(by_ref, pinned, resumeFrom=ResumeFrom(name="old"))
    source = ResumeSource("old", failed_source(), uid="uid-old", spec=by_ref.spec) \
        if resume in ("failed", "unpinned") else resume
    assert not isinstance(source, str)
    decided = plan(ex, {}, T0, admission=admission, resume_source=source)
    gone = "gone" if decided.gone else ""
    assert (gone, str(decided.status.phase or "Pending"), decided.wake_at) == expected
    assert decided.create == []
    if admission.waiting is not None:
        assert (decided.status.reason, decided.status.message) == ("Queued", "waiting: 2 of 2 running, position 1")
    if resume == "failed":
        assert {n.name: (n.phase, n.reused) for n in decided.status.nodes} == {
            "a": (NodePhase.SUCCEEDED, True), "b": (NodePhase.PENDING, False)}


# ---- after the plan: refusals -------------------------------------------------------------------

def test_refusals_go_back_through_the_engine_keyed_by_node_or_item() -> None:
    wf = spec(node("each", forEach="[0, 1, 2]"), node("solo"), parallelism=4)
    first = plan(execution(wf), {}, T0)
    applied = passes.after_apply(first, {"each#1": "quota exceeded", "solo": "bad image"}, T0)
    nodes = {n.name: n for n in applied.status.nodes}
    assert applied.wake_at == T0
    assert nodes["solo"].phase == NodePhase.FAILED and "bad image" in (nodes["solo"].message or "")
    assert nodes["each"].phase == NodePhase.RUNNING
    assert [(e.index, e.phase) for e in nodes["each"].itemResults or []] == [
        (0, NodePhase.RUNNING), (1, NodePhase.FAILED), (2, NodePhase.RUNNING)]

def test_a_pass_that_creates_jobs_looks_again_when_their_pods_are_due() -> None:
    """Refused pods send no event the operator sees (pod_refusal): the engine says when to look."""
    wf = spec(node("each", forEach="[0, 1, 2]"), node("solo"), parallelism=4)
    created = plan(execution(wf), {}, T0)
    assert created.create
    due = T0 + timedelta(seconds=pod_refusal.FIRST_LOOK + 0.5)
    assert passes.after_apply(created, {}, T0).wake_at == due
    sooner = T0 + timedelta(seconds=1)
    assert passes.after_apply(plan(execution(wf), {}, T0), {}, T0, recheck_at=sooner).wake_at == sooner


# ---- a Workflow ---------------------------------------------------------------------------------

def test_a_workflow_gets_one_warning_when_it_becomes_not_ready() -> None:
    bad = {"metadata": {"generation": 1}, "spec": {"nodes": [{"name": "a"}]}}
    not_ready = passes.workflow_status(bad, T0)
    event = passes.workflow_event(WorkflowStatus(), not_ready)
    assert event is not None and (event.type, event.reason) == ("Warning", "InvalidWorkflow")
    assert passes.workflow_event(not_ready, not_ready) is None
    ready = passes.workflow_status({"metadata": {"generation": 2}, "spec": WF.model_dump(by_alias=True)}, T0)
    assert ready.conditions[0].status == "True" and passes.workflow_event(not_ready, ready) is None
