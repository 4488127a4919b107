"""`jobchain approve|deny EXECUTION NODE`: the merge patch it sends, and what it refuses, against the
in-memory stand-in for the CLI's cluster calls."""

from __future__ import annotations

import io
from typing import Any

import pytest

from jobchain.api.models import ApprovalDecision
from jobchain.api.vocabulary import EXECUTIONS
from jobchain.cli.approvals import decide_gate
from jobchain.cli.errors import CliError
from jobchain.cli.main import build_parser

from .fakes import FakeCluster, execution

RELEASE = {"nodes": [{"name": "build", "image": "busybox", "script": "x", "next": [{"node": "approve"}]},
                     {"name": "approve", "approval": {"message": "ship?"}, "next": [{"node": "deploy"}]},
                     {"name": "deploy", "image": "busybox", "script": "x"}]}


def waiting(name: str = "rel-1", gate: dict[str, Any] | None = None) -> dict[str, Any]:
    return execution(name, "Running", [{"name": "build", "phase": "Succeeded"},
                                       gate or {"name": "approve", "phase": "Waiting"},
                                       {"name": "deploy", "phase": "Pending"}], workflowSpec=RELEASE)


def test_approve_merge_patches_spec_approvals_with_the_message() -> None:
    cluster = FakeCluster()
    cluster.objects[(EXECUTIONS, "rel-1")] = waiting()
    out = io.StringIO()
    assert decide_gate(cluster, "rel-1", "approve", ApprovalDecision.APPROVE, "ok by alice", out) == 0
    assert cluster.merge_patches == [
        ("rel-1", {"spec": {"approvals": {"approve": {"decision": "approve", "message": "ok by alice"}}}})]
    assert out.getvalue() == "rel-1: gate approve approved (spec.approvals.approve); the operator acts on it now\n"


def test_deny_before_the_gate_is_reached_is_taken_for_later() -> None:
    cluster = FakeCluster()
    body = execution("rel-2", "Pending", [])
    body["status"] = {}
    body["spec"] = {"workflow": RELEASE}
    cluster.objects[(EXECUTIONS, "rel-2")] = body
    out = io.StringIO()
    decide_gate(cluster, "rel-2", "approve", ApprovalDecision.DENY, None, out)
    assert cluster.merge_patches == [("rel-2", {"spec": {"approvals": {"approve": {"decision": "deny"}}}})]
    assert "when the execution reaches it" in out.getvalue()


@pytest.mark.parametrize(("node", "gate", "message"), [
    ("deploy", None, "node 'deploy' is not an approval gate of execution 'rel-1' (its gates: approve); only a "
                     "node with `approval:` can be approved or denied"),
    ("aprove", None, "node 'aprove' is not an approval gate of execution 'rel-1' (its gates: approve); only a "
                     "node with `approval:` can be approved or denied"),
    ("approve", {"name": "approve", "phase": "Failed", "reason": "ApprovalTimeout"},
     "gate 'approve' of execution 'rel-1' was decided already: Failed (ApprovalTimeout); a later decision "
     "would be ignored"),
])
def test_refuses_what_is_not_a_waiting_gate(node: str, gate: dict[str, Any] | None, message: str) -> None:
    cluster = FakeCluster()
    cluster.objects[(EXECUTIONS, "rel-1")] = waiting(gate=gate)
    with pytest.raises(CliError) as caught:
        decide_gate(cluster, "rel-1", node, ApprovalDecision.APPROVE, None, io.StringIO())
    assert caught.value.message == message
    assert cluster.merge_patches == []


def test_an_execution_of_a_workflow_without_gates_says_so() -> None:
    cluster = FakeCluster()
    cluster.objects[(EXECUTIONS, "etl-1")] = execution("etl-1", "Pending", [])
    with pytest.raises(CliError) as caught:
        decide_gate(cluster, "etl-1", "load", ApprovalDecision.DENY, None, io.StringIO())
    assert "it has no approval gates" in caught.value.message


def test_the_commands_parse() -> None:
    args = build_parser("jobchain").parse_args(["deny", "rel-1", "approve", "--message", "not today"])
    assert (args.command, args.execution, args.node, args.message) == ("deny", "rel-1", "approve", "not today")
