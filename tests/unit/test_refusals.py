"""A Job the API server refuses as invalid fails its node (retrying could never help)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from jobchain.api.models import ExecutionStatus, WorkflowExecutionSpec, WorkflowSpec
from jobchain.engine.execution.events import events_between
from jobchain.engine.execution.planner import ExecutionInput, WorkflowLookup, plan, record_refusals

NOW = datetime(2026, 1, 1, tzinfo=UTC)
SPEC = WorkflowSpec.model_validate({
    "defaults": {"image": "busybox:1.36"},
    "nodes": [
        {"name": "bad", "script": "true", "next": [{"node": "cleanup", "type": "failure"}, {"node": "after"}]},
        {"name": "cleanup", "script": "true"},
        {"name": "after", "script": "true"},
    ],
})


def test_refused_node_fails_with_the_api_message_and_its_failure_edge_runs() -> None:
    first = plan(ExecutionInput("ex", "ns", "uid", 1, WorkflowExecutionSpec(workflowRef={"name": "w"}),
                                ExecutionStatus()), {}, NOW, WorkflowLookup("w", SPEC))
    assert [j["metadata"]["labels"]["jobchain.dev/node"] for j in first.create] == ["bad"]
    before = first.status.model_copy(deep=True)
    record_refusals(first.status, {"bad": 'Job.batch "x" is invalid: spec.template...: quantities'}, NOW)
    bad = first.status.nodes[0]
    assert bad.phase == "Failed" and bad.jobName is None
    assert "Kubernetes refused the node's Job" in bad.message and "quantities" in bad.message
    assert first.status.running is None
    assert [e.reason for e in events_between(before, first.status)] == ["NodeFailed"]
    # The next pass routes the failure: the failure edge runs, the success edge does not.
    second = plan(ExecutionInput("ex", "ns", "uid", 1, WorkflowExecutionSpec(workflowRef={"name": "w"}),
                                 first.status), {}, NOW + timedelta(seconds=1))
    assert [j["metadata"]["labels"]["jobchain.dev/node"] for j in second.create] == ["cleanup"]
    assert {n.name: n.phase for n in second.status.nodes}["after"] == "Skipped"
