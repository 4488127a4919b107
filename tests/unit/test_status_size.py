"""The whole status of a large execution stays far below etcd's 1.5 MiB object limit."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

from jobchain.api.models import ExecutionStatus, WorkflowExecutionSpec, WorkflowSpec
from jobchain.engine.execution.planner import ExecutionInput, JobState, ObservedJob, WorkflowLookup, iso, plan
from jobchain.engine.execution.status_write import dump_status


def test_500_nodes_with_large_outputs_keep_status_under_half_of_the_etcd_limit() -> None:
    spec = WorkflowSpec.model_validate({
        "defaults": {"image": "busybox:1.36"}, "parallelism": 100,
        "nodes": [{"name": f"node-{i}", "script": "echo"} for i in range(500)],
    })
    now = datetime(2026, 1, 1, tzinfo=UTC)
    status, observed = ExecutionStatus(), {}
    big = json.dumps({"blob": "x" * 30000})
    for _ in range(20):
        execution = ExecutionInput("big", "default", "uid", 1, WorkflowExecutionSpec(workflowRef={"name": "w"}), status)
        result = plan(execution, observed, now, WorkflowLookup("w", spec))
        status = result.status
        for job in result.create:
            node = job["metadata"]["labels"]["jobchain.dev/node"]
            observed[node] = ObservedJob(node, job["metadata"]["name"], JobState.SUCCEEDED, "pod", 0, big,
                                         finished_at=iso(now))
        now += timedelta(seconds=1)
        if status.phase == "Succeeded":
            break
    assert status.phase == "Succeeded"
    size = len(json.dumps(dump_status(status)).encode())  # as written: unset fields are left out
    assert size < 768 * 1024, size
    assert all(n.outputTruncated for n in status.nodes[10:])  # truncation is flagged, never silent
