"""`jobchain lint` of a WorkflowSchedule: the checks the operator makes, offline.

The model (field types, the schema's patterns), then what only the operator's parser can say
(cron ranges, `@every` at least 10s, an IANA time zone), then the execution template as an
execution: its inline Workflow validated, its params checked against a Workflow in the same files.
Returns (field path, message) pairs; `cli.lint` turns them into its problems.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from jobchain.api.errors import describe_validation_error
from jobchain.api.models import WorkflowExecutionSpec, WorkflowSchedule, WorkflowSpec
from jobchain.engine.schedules.cron import ScheduleError, parse
from jobchain.engine.schedules.decide import MAX_NAME
from jobchain.engine.spec.validation import validate_execution


def check_schedule(body: Any, workflows: dict[str, WorkflowSpec]) -> list[tuple[str, str]]:
    try:
        schedule = WorkflowSchedule.model_validate(body)
    except ValidationError as err:
        return [tuple(line.split(": ", 1)) for line in describe_validation_error(err)]  # type: ignore[misc]
    problems: list[tuple[str, str]] = []
    name = schedule.metadata.name or ""
    if len(name) > MAX_NAME:
        problems.append(("metadata.name", f"is {len(name)} characters; a schedule's name is at most {MAX_NAME}"))
    spec = schedule.spec
    try:
        parse(spec.schedule, spec.timeZone)
    except ScheduleError as exc:
        path = "spec.timeZone" if "spec.timeZone" in str(exc) else "spec.schedule"
        problems.append((path, str(exc)))
    template = spec.executionTemplate
    # The template is an execution's spec: checked by the operator's own rule for executions.
    as_execution = WorkflowExecutionSpec.model_validate(template.model_dump(by_alias=True, exclude_none=True))
    workflow = template.workflow if template.workflow is not None else \
        workflows.get(template.workflowRef.name) if template.workflowRef is not None else None
    for problem in validate_execution(as_execution, workflow, where="the workflow"):
        problems.append(("spec.executionTemplate" + problem.path.removeprefix("spec"), problem.message))
    return problems
