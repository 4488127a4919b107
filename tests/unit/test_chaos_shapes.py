"""The chaos tier's shapes and oracle, checked without a cluster (the tier itself is not run here).

Each shape must be a valid Workflow, its expected end must be the one the planner reaches when
every Job does what its script says, and the Job count check must catch an item run twice.
"""

from __future__ import annotations

import json
import re
from typing import Any

import pytest

from jobchain.api.models import WorkflowSpec
from jobchain.engine.execution.status_write import dump_status
from jobchain.engine.spec.validation import validate_workflow
from tests.chaos.shapes import FILES, Shape, fan_out, job_mismatches, mismatches, mixed

from .builders import env_of, script_seen, simulate


@pytest.mark.parametrize("shape", mixed(), ids=lambda s: s.name)
def test_every_shape_is_a_valid_workflow(shape: Shape) -> None:
    assert validate_workflow(WorkflowSpec.model_validate(shape.manifest["spec"])) == []


def run_as_scripted(name: str, manifest: dict[str, Any]) -> tuple[str, str | None]:
    """What the fan-out shape's busybox scripts write to $JOBCHAIN_OUTPUT, read off the Job."""
    script = script_seen(manifest)
    if name == "list":
        return "Succeeded", re.search(r"echo '(.*)' >", script).group(1)  # type: ignore[union-attr]
    if name.startswith("each#"):
        env = env_of(manifest)
        item, index = json.loads(env["JOBCHAIN_ITEM"]), env["JOBCHAIN_ITEM_INDEX"]
        assert script == f'sleep 3; echo "\\"{item}-{index}\\"" > "$JOBCHAIN_OUTPUT"'
        return "Succeeded", f'"{item}-{index}"'
    assert name == "gather"
    return "Succeeded", str(env_of(manifest)["JOBCHAIN_INPUT"])


def test_the_fan_out_shape_ends_as_expected_with_one_job_per_item() -> None:
    shape = fan_out()
    run = simulate(WorkflowSpec.model_validate(shape.manifest["spec"]), run_as_scripted)
    status = dump_status(run.status)
    assert status["phase"] == "Succeeded"
    assert mismatches(shape, status) == []
    labels = [m["metadata"]["labels"] for m in run.cluster.manifests.values()]
    assert len(labels) == 2 + len(FILES)
    assert job_mismatches(status, labels) == []
    # An item run twice, or a Job for an item that never started, is caught.
    item = next(m for m in labels if m.get("jobchain.dev/item") == "1")
    assert job_mismatches(status, [*labels, item]) == ["each#1 has 2 Jobs, expected 1"]
    ghost = {**item, "jobchain.dev/item": "7"}
    assert job_mismatches(status, [*labels, ghost]) == ["each#7 is in no status entry but has 1 Job(s)"]


def test_a_cancelled_fan_out_with_a_failed_item_is_a_mismatch() -> None:
    shape = next(s for s in mixed() if s.name == "fan-cancel")
    status = {"phase": "Cancelled", "reason": "Cancelled", "nodes": [
        {"name": "first", "phase": "Succeeded", "output": 1},
        {"name": "each", "phase": "Cancelled", "items": {"total": 3},
         "itemResults": [{"index": 0, "phase": "Failed"}, {"index": 1, "phase": "Cancelled"}]},
        {"name": "after", "phase": "Cancelled"}]}
    assert mismatches(shape, status) == ["node each: item(s) [0] Failed, expected none"]
