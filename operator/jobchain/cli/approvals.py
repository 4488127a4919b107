"""`jobchain approve|deny EXECUTION NODE`: decides an approval gate by a merge patch of spec.approvals.

Why a merge patch of the spec and nothing else: the decision is then data anyone with patch rights
on the execution can give the same way (kubectl patch, a GitOps commit), and the operator decides
the gate from it in its next pass. This module only checks that NODE is a gate of that execution
(from the snapshot in status, else the Workflow it runs) so that a typo is refused here, where the
user is, rather than ignored by the operator.
"""

from __future__ import annotations

from typing import IO, Any

from pydantic import ValidationError

from jobchain.api.models import FINISHED_NODE_PHASES, TERMINAL_EXECUTION_PHASES, ApprovalDecision, WorkflowSpec
from jobchain.api.vocabulary import EXECUTIONS, WORKFLOWS
from jobchain.cli.cluster import ClusterCalls
from jobchain.cli.errors import usage_error
from jobchain.cli.tables import status_of


def _workflow(cluster: ClusterCalls, execution: dict[str, Any]) -> WorkflowSpec | None:
    """What the execution runs: its snapshot, else its inline spec, else the Workflow it names."""
    status = status_of(execution)
    if status.workflowSpec is not None:
        return status.workflowSpec
    spec = execution.get("spec") or {}
    data = spec.get("workflow")
    if data is None and (spec.get("workflowRef") or {}).get("name"):
        data = (cluster.get(WORKFLOWS, spec["workflowRef"]["name"]).get("spec") or {})
    try:
        return WorkflowSpec.model_validate(data) if data is not None else None
    except ValidationError:
        return None


def decide_gate(cluster: ClusterCalls, name: str, node: str, decision: ApprovalDecision, message: str | None,
                out: IO[str]) -> int:
    execution = cluster.get(EXECUTIONS, name)
    workflow = _workflow(cluster, execution)
    gates = [n.name for n in workflow.nodes if n.approval is not None] if workflow else []
    if node not in gates:
        have = f"its gates: {', '.join(gates)}" if gates else "it has no approval gates"
        raise usage_error(f"node {node!r} is not an approval gate of execution {name!r} ({have}); "
                          "only a node with `approval:` can be approved or denied")
    status = status_of(execution)
    gate = next((n for n in status.nodes if n.name == node), None)
    if gate is not None and gate.phase in FINISHED_NODE_PHASES:
        why = f" ({gate.reason})" if gate.reason else ""
        raise usage_error(f"gate {node!r} of execution {name!r} was decided already: {gate.phase}{why}; "
                          "a later decision would be ignored")
    if execution.get("status") and status.phase in TERMINAL_EXECUTION_PHASES:
        raise usage_error(f"execution {name!r} already ended ({status.phase}); nothing to decide")
    given: dict[str, Any] = {"decision": str(decision)}
    if message:
        given["message"] = message
    cluster.patch_execution(name, {"spec": {"approvals": {node: given}}})
    done = "approved" if decision == ApprovalDecision.APPROVE else "denied"
    when = "now" if gate is not None and gate.phase == "Waiting" else "when the execution reaches it"
    print(f"{name}: gate {node} {done} (spec.approvals.{node}); the operator acts on it {when}", file=out)
    return 0
