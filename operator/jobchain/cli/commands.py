"""The thin commands: get, cancel, graph and operator. Each reads, asks a pure module, prints.

`run`, `logs` and `lint` have modules of their own because they carry more logic; `verbs` holds list,
wait, delete and get --watch.
"""

from __future__ import annotations

import copy
import json
from datetime import UTC, datetime
from typing import IO, Any

import yaml
from pydantic import ValidationError

from jobchain.api.errors import describe_validation_error
from jobchain.api.models import TERMINAL_EXECUTION_PHASES, WorkflowSpec
from jobchain.api.vocabulary import EXECUTIONS, KIND_EXECUTION, KIND_WORKFLOW, WORKFLOWS
from jobchain.cli import graphs
from jobchain.cli.cluster import ClusterCalls
from jobchain.cli.errors import CliError, Exit, usage_error
from jobchain.cli.lint import object_label
from jobchain.cli.tables import execution_details, status_of
from jobchain.cli.workflow_file import is_file_argument, read_objects
from jobchain.engine.spec.validation import validate_workflow


def _clean(obj: dict[str, Any]) -> dict[str, Any]:
    """The object as kubectl shows it: without metadata.managedFields."""
    out = copy.deepcopy(obj)
    (out.get("metadata") or {}).pop("managedFields", None)
    return out


def dump(data: Any, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(data, indent=2) + "\n"
    return str(yaml.safe_dump(data, sort_keys=False, default_flow_style=False))


def get_execution(cluster: ClusterCalls, name: str, fmt: str | None, out: IO[str]) -> int:
    execution = cluster.with_whole_outputs(cluster.get(EXECUTIONS, name))
    if fmt:
        out.write(dump(_clean(execution), fmt))
    else:
        print(execution_details(execution, datetime.now(UTC)), file=out)
    return 0


def _ended(cluster: ClusterCalls, name: str, what: str, out: IO[str]) -> bool:
    """Whether the execution has ended already (then says there is nothing to `what`)."""
    execution = cluster.get(EXECUTIONS, name)
    status = status_of(execution)
    if execution.get("status") and status.phase in TERMINAL_EXECUTION_PHASES:
        print(f"{name} already ended ({status.phase}); nothing to {what}", file=out)
        return True
    return False


def cancel_execution(cluster: ClusterCalls, name: str, out: IO[str]) -> int:
    if not _ended(cluster, name, "cancel", out):
        cluster.cancel_execution(name)
        print(f"{name}: cancel requested (running Jobs are deleted, unstarted nodes become Cancelled)", file=out)
    return 0


def stop_execution(cluster: ClusterCalls, name: str, out: IO[str]) -> int:
    """spec.stop (a merge patch, as kubectl or GitOps would set it): the graceful stop."""
    if not _ended(cluster, name, "stop", out):
        cluster.stop_execution(name)
        print(f"{name}: stop requested (nothing new starts; running nodes finish, then the finally nodes run; "
              f"jobchain cancel {name} terminates)", file=out)
    return 0


# ---- graph -------------------------------------------------------------------------------
def _parse_spec(data: Any, where: str) -> WorkflowSpec:
    try:
        return WorkflowSpec.model_validate(data)
    except ValidationError as err:
        problems = describe_validation_error(err, "spec")
        raise usage_error(
            f"{where} is invalid: {problems[0]}"
            + (f" (and {len(problems) - 1} more)" if len(problems) > 1 else "")
            + "; jobchain lint shows every problem"
        ) from None


def _execution_drawing(
    execution: dict[str, Any], workflows: dict[str, Any], cluster: ClusterCalls | None, where: str
) -> tuple[WorkflowSpec, dict[str, str] | None]:
    status = execution.get("status") or {}
    spec = execution.get("spec") or {}
    ref = (spec.get("workflowRef") or {}).get("name")
    if status.get("workflowSpec"):
        data = status["workflowSpec"]
    elif spec.get("workflow"):
        data = spec["workflow"]
    elif ref and ref in workflows:
        data = workflows[ref]
    elif ref and cluster is not None:
        data = cluster.get(WORKFLOWS, ref).get("spec")
    else:
        raise usage_error(
            f"{where} refers to Workflow {ref!r}, which is not in the file; "
            "put it in the file or draw it from the cluster (jobchain graph --execution NAME)"
        )
    phases = {n.name: str(n.phase) for n in status_of(execution).nodes} if status else None
    return _parse_spec(data, where), phases


def _file_drawing(path: str, stdin: IO[str],
                  pick: str | None = None) -> tuple[WorkflowSpec, dict[str, str] | None, str]:
    name, bodies = read_objects(path, stdin)
    workflows: dict[str, Any] = {
        str((b.get("metadata") or {}).get("name")): b.get("spec") for b in bodies if b.get("kind") == KIND_WORKFLOW
    }
    executions = [b for b in bodies if b.get("kind") == KIND_EXECUTION]
    if pick is not None:
        chosen = [b for b in executions if (b.get("metadata") or {}).get("name") == pick]
        if pick in workflows:
            executions, workflows = [], {pick: workflows[pick]}
        elif chosen:
            executions = chosen
        else:
            found = ", ".join(object_label(b, i) for i, b in enumerate(bodies, 1)
                              if b.get("kind") in (KIND_WORKFLOW, KIND_EXECUTION)) or "none"
            raise usage_error(f"{name}: --name {pick}: no Workflow or WorkflowExecution of that name; found: {found}")
    elif len(workflows) > 1 and not executions:
        raise usage_error(f"{name} holds {len(workflows)} Workflows ({', '.join(workflows)}): say which to draw "
                          f"with --name NAME")
    if len(executions) == 1:
        label = object_label(executions[0], 1)
        ref = ((executions[0].get("spec") or {}).get("workflowRef") or {}).get("name")
        if not executions[0].get("status") and ref in workflows:
            label = f"Workflow/{ref}"  # nothing has run: the drawing is the file's Workflow
        return (*_execution_drawing(executions[0], workflows, None, f"{name}: {label}"), label)
    if not executions and len(workflows) == 1:
        ((wf_name, spec),) = workflows.items()
        return _parse_spec(spec, f"{name}: Workflow/{wf_name}"), None, f"Workflow/{wf_name}"
    found = (
        ", ".join(
            object_label(b, i) for i, b in enumerate(bodies, 1) if b.get("kind") in (KIND_WORKFLOW, KIND_EXECUTION)
        )
        or "none"
    )
    raise usage_error(f"{name}: expected one Workflow or one WorkflowExecution to draw, found: {found}")


def draw_graph(
    cluster_factory: Any,
    target: str | None,
    execution: str | None,
    fmt: str,
    stdin: IO[str],
    out: IO[str],
    err: IO[str],
    pick: str | None = None,
) -> int:
    """`target` is a file (or `-`) when one exists by that name, else a Workflow in the cluster;
    `pick` (--name) chooses among the file's objects."""
    if execution is not None:
        cluster: ClusterCalls = cluster_factory()
        obj = cluster.get(EXECUTIONS, execution)
        spec, phases = _execution_drawing(obj, {}, cluster, f"execution {execution!r}")
        title = f"WorkflowExecution/{execution}"
    elif target is None:
        raise usage_error("say what to draw: a Workflow name, a FILE, or --execution NAME")
    elif pick is not None and not is_file_argument(target):
        raise usage_error("--name chooses among the objects of a FILE; for the cluster, give the Workflow's name")
    elif is_file_argument(target):
        spec, phases, title = _file_drawing(target, stdin, pick)
    else:
        cluster = cluster_factory()
        spec = _parse_spec(cluster.get(WORKFLOWS, target).get("spec"), f"Workflow {target!r}")
        phases, title = None, f"Workflow/{target}"
    problems = validate_workflow(spec)
    if problems:
        print(
            f"warning: {title} has {len(problems)} problem(s), e.g. {problems[0]}; jobchain lint shows them",
            file=err,
        )
    out.write(graphs.render(spec, fmt, phases, title))
    return 0


# ---- operator ----------------------------------------------------------------------------
def run_operator(
    namespaces: list[str] | None, metrics_port: int, health_port: int, log_format: str, verbose: bool,
    bind_address: str = "0.0.0.0", election: dict[str, Any] | None = None,
) -> int:
    """Imported lazily: kopf (and the controller) load only for this command.

    `election`: the --leader-elect options (enabled, namespace, name, lease_duration, renew_deadline,
    retry_period)."""
    try:
        from jobchain.controller.main import leader_settings
        from jobchain.controller.main import run_operator as start
    except ImportError as exc:
        raise CliError(
            f"the operator cannot start: {exc}; reinstall jobchain (pip install jobchain)", Exit.INTERNAL
        ) from None
    try:
        settings = leader_settings(**election) if election else None
    except ValueError as exc:
        raise CliError(f"jobchain operator: {exc}", Exit.USAGE) from None
    return int(
        start(
            namespaces=namespaces,
            metrics_port=metrics_port,
            health_port=health_port,
            log_format=log_format,
            verbose=verbose,
            bind_address=bind_address,
            leader_election=settings,
        )
    )
