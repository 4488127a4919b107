"""A step's pod mounts its ServiceAccount token only when it needs it: to set its own
jobchain.dev/output annotation (output: {from: annotation}). Any other step gets no token, so a
compromised step has no API rights to use (docs/security.md, "What a step can touch")."""

from __future__ import annotations

from typing import Any

import pytest

from jobchain.engine.spec.refs import Scope
from jobchain.engine.spec.render import ExecutionRef, render_job

from .builders import node, spec

REF = ExecutionRef(name="run-1", namespace="team-a", uid="uid-123", workflow="etl")
SCOPE = Scope(params={}, execution_name="run-1", namespace="team-a", input={}, has_input=False, outputs={})


def pod_spec(**fields: Any) -> dict[str, Any]:
    workflow = spec(node("a", serviceAccountName="steps", **fields))
    job = render_job(REF, workflow, workflow.nodes[0], SCOPE)
    out: dict[str, Any] = job["spec"]["template"]["spec"]
    return out


@pytest.mark.parametrize("source", [None, "terminationMessage", "logs"])
def test_a_step_that_reads_no_annotation_mounts_no_token(source: str | None) -> None:
    fields = {"output": {"from": source}} if source else {}
    assert pod_spec(**fields)["automountServiceAccountToken"] is False


def test_a_step_with_an_annotation_output_mounts_its_token() -> None:
    assert pod_spec(output={"from": "annotation"})["automountServiceAccountToken"] is True


def test_a_pod_template_may_ask_for_the_token_explicitly() -> None:
    asked = pod_spec(podTemplate={"spec": {"automountServiceAccountToken": True}})
    assert asked["automountServiceAccountToken"] is True
    assert asked["serviceAccountName"] == "steps"
