"""spec.ttlSecondsAfterFinished: when a finished execution is to be deleted."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from jobchain.api.models import ExecutionStatus, WorkflowExecutionSpec
from jobchain.engine.execution.planner import expires_at


@pytest.mark.parametrize(
    ("ttl", "phase", "finished", "expected"),
    [
        (None, "Succeeded", "2026-01-01T00:00:00Z", None),  # no TTL: kept
        (60, "Running", None, None),  # not finished: never
        (60, "Succeeded", "2026-01-01T00:00:00Z", datetime(2026, 1, 1, 0, 1, tzinfo=UTC)),
        (0, "Failed", "2026-01-01T00:00:00Z", datetime(2026, 1, 1, tzinfo=UTC)),
        (30, "Cancelled", "2026-01-01T00:00:00Z", datetime(2026, 1, 1, 0, 0, 30, tzinfo=UTC)),
    ],
)
def test_an_execution_expires_its_ttl_after_it_finished(
        ttl: int | None, phase: str, finished: str | None, expected: datetime | None) -> None:
    spec = WorkflowExecutionSpec(workflowRef={"name": "w"}, ttlSecondsAfterFinished=ttl)
    status = ExecutionStatus(phase=phase, finishedAt=finished)
    assert expires_at(spec, status) == expected
