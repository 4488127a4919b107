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
from jobchain.api.models import WorkflowSchedule, WorkflowSpec
from jobchain.engine.cron import ScheduleError, parse
from jobchain.engine.graph import validate
from jobchain.engine.schedule import MAX_NAME


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
    where = "spec.executionTemplate"
    if (template.workflow is None) == (template.workflowRef is None):
        problems.append((where, "set exactly one of workflowRef (a Workflow in the same namespace) or workflow"))
        return problems
    workflow = template.workflow
    if workflow is not None:
        problems += [(p.path, p.message) for p in validate(workflow, prefix=f"{where}.workflow")]
    elif template.workflowRef is not None:
        workflow = workflows.get(template.workflowRef.name)
    if workflow is not None:
        declared = {p.name: p for p in workflow.params}
        from_secrets = {p.name for p in template.paramsFrom}
        for param in sorted(set(template.params) - set(declared)):
            problems.append((f"{where}.params.{param}", "the workflow does not declare this param (declared: "
                             f"{', '.join(sorted(declared)) or 'none'})"))
        given = set(template.params) | from_secrets
        for param in sorted(n for n, p in declared.items() if p.default is None and not p.secret and n not in given):
            problems.append((f"{where}.params", f"must set {param!r}: the workflow declares it without a default"))
    return problems
