"""The snapshot an execution takes when it starts: the Workflow it runs and its params, or why
it cannot start (the Workflow missing or invalid, params that do not match). Decided from the
spec and the Workflow found alone, so a start replayed after a lost status write takes the same."""

from __future__ import annotations

from dataclasses import dataclass

from jobchain.api.models import WorkflowSpec
from jobchain.engine.execution.types import ExecutionInput, WorkflowLookup
from jobchain.engine.spec.secrets import secret_refs
from jobchain.engine.spec.validation import join, resolve_params, validate_params, validate_workflow


@dataclass(frozen=True)
class Snapshot:
    workflow_name: str
    workflow: WorkflowSpec
    params: dict[str, str]
    secret_params: list[str]


@dataclass(frozen=True)
class Refusal:
    reason: str  # WorkflowNotFound, InvalidWorkflow, InvalidParams
    message: str


def snapshot(execution: ExecutionInput, lookup: WorkflowLookup | None) -> Snapshot | Refusal:
    """The Workflow an execution runs and its params, or why it cannot run (reason, message)."""
    spec = execution.spec
    if spec.workflow is not None:
        workflow_name, workflow = execution.name, spec.workflow
    elif lookup is None or not lookup.found:
        name = spec.workflowRef.name if spec.workflowRef else "(none)"
        return Refusal("WorkflowNotFound",
                       f"Workflow {name!r} not found in namespace {execution.namespace!r}; "
                       "create it first or fix spec.workflowRef.name, then create a new execution")
    elif lookup.spec is None:
        return Refusal("InvalidWorkflow", f"Workflow {lookup.name!r} is invalid: {'; '.join(lookup.problems)}. "
                       "Fix the Workflow, then create a new execution")
    else:
        workflow_name, workflow = lookup.name, lookup.spec
    where = "spec.workflow" if spec.workflow is not None else f"Workflow {workflow_name!r}"
    problems = validate_workflow(workflow, prefix="spec")
    if problems:
        return Refusal("InvalidWorkflow", f"{where} is invalid: {join(problems)}. Fix it, then create a "
                       "new execution")
    from_secrets = secret_refs(spec)
    problems = validate_params(spec.params, workflow.params, where, from_secrets=from_secrets)
    if problems:
        return Refusal("InvalidParams", join(problems))
    params = {n: v for n, v in resolve_params(spec.params, workflow.params).items() if n not in from_secrets}
    return Snapshot(workflow_name, workflow, params, sorted(from_secrets))
