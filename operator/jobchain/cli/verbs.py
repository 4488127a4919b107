"""The verbs users of kubectl reach for: wait, delete, get --watch, and list with -A, -l, --phase and a kind.

Why apart from `commands`: these follow kubectl's conventions (several names, selectors, all
namespaces, a wait limit) rather than jobchain's own, and each one reads, filters and prints
through the same tables as `get` and `list`.
"""

from __future__ import annotations

import sys
from datetime import UTC, datetime
from typing import IO, Any

from jobchain.api.models import ExecutionPhase
from jobchain.api.vocabulary import EXECUTIONS, SCHEDULES, WORKFLOWS
from jobchain.api.vocabulary import LABEL_SCHEDULE as SCHEDULE_LABEL
from jobchain.cli.cluster import ClusterCalls
from jobchain.cli.commands import _clean, dump
from jobchain.cli.errors import CliError, Exit
from jobchain.cli.run import EXIT_OF_PHASE, LiveView, end_view, wait_for_end
from jobchain.cli.tables import age, executions_table, format_table, status_of, workflow_of

# `list KIND`: the words a user types (the plural of workflows is the word itself)
PLURAL_OF_KIND = {"executions": EXECUTIONS, WORKFLOWS: WORKFLOWS, "schedules": SCHEDULES}
WAIT_PHASES = tuple(str(p) for p in ExecutionPhase if p != ExecutionPhase.PENDING)


# ---- wait ----------------------------------------------------------------------------------
def wait_execution(cluster: ClusterCalls, name: str, phase: str | None, limit: float | None,
                   out: IO[str], err: IO[str]) -> int:
    """`wait NAME`: without --for, until the execution ends, exiting 0/1/2 as it Succeeded, Failed or
    was Cancelled; with --for PHASE, 0 once it is in PHASE, 1 when it ended in another phase. After
    --timeout seconds: Exit.TIMEOUT, the execution untouched."""
    try:
        execution = wait_for_end(cluster, name, None, err=err, limit=limit, until=phase)
    except KeyboardInterrupt:
        raise CliError(f"stopped waiting for {name}; it keeps running", Exit.INTERRUPTED) from None
    reached = str(status_of(execution).phase)
    print(f"{name} {reached}", file=out)
    if phase is None:
        return int(EXIT_OF_PHASE[ExecutionPhase(reached)])
    if reached == phase:
        return int(Exit.SUCCEEDED)
    print(f"{name} ended {reached}: it will never be {phase}", file=err)
    return int(Exit.FAILED)


# ---- delete --------------------------------------------------------------------------------
def delete_executions(cluster: ClusterCalls, names: list[str], out: IO[str], err: IO[str]) -> int:
    """Deletes each execution (its Jobs and pods follow); names not found are reported and the rest
    still deleted, as kubectl does. Exit 0 when all were deleted, else the first failure's status."""
    code = Exit.SUCCEEDED
    for name in dict.fromkeys(names):
        try:
            cluster.delete_execution(name)
        except CliError as exc:
            print(f"error: {exc.message}", file=err)
            code = code or exc.code
            continue
        print(f"workflowexecution {name!r} deleted", file=out)
    return int(code)


# ---- list ----------------------------------------------------------------------------------
def _meta(obj: dict[str, Any]) -> dict[str, Any]:
    return obj.get("metadata") or {}


def _ready(obj: dict[str, Any]) -> str:
    for cond in (obj.get("status") or {}).get("conditions") or []:
        if cond.get("type") == "Ready":
            return str(cond.get("status", "")) + (f" ({cond['reason']})" if cond.get("reason") else "")
    return ""


def _row(obj: dict[str, Any], kind: str, now: datetime) -> list[str]:
    meta, spec, status = _meta(obj), obj.get("spec") or {}, obj.get("status") or {}
    if kind == WORKFLOWS:
        return [str(meta.get("name", "")), str(len(spec.get("nodes") or [])), _ready(obj),
                age(meta.get("creationTimestamp"), now)]
    return [str(meta.get("name", "")), str(spec.get("schedule", "")), str(bool(spec.get("suspend"))).lower(),
            str(status.get("activeCount", 0)), str(status.get("lastScheduleTime") or ""),
            str(status.get("nextScheduleTime") or ""), _ready(obj)]


HEADERS = {
    WORKFLOWS: ["NAME", "NODES", "READY", "AGE"],
    "schedules": ["NAME", "SCHEDULE", "SUSPEND", "ACTIVE", "LAST", "NEXT", "READY"],
}


def list_objects(cluster: ClusterCalls, kind: str, *, workflow: str | None = None, schedule: str | None = None,
                 phase: str | None = None, selector: str | None = None, all_namespaces: bool = False,
                 fmt: str | None = None, out: IO[str] = sys.stdout) -> int:
    """`list [executions|workflows|schedules]`: -l is matched by the API server, --phase,
    --workflow and --schedule here; -A adds a NAMESPACE column."""
    items = cluster.list_selected(PLURAL_OF_KIND[kind], selector, all_namespaces)
    if workflow is not None:
        items = [i for i in items if workflow_of(i) == workflow]
    if schedule is not None:
        items = [i for i in items if (_meta(i).get("labels") or {}).get(SCHEDULE_LABEL) == schedule]
    if phase is not None:
        items = [i for i in items if i.get("status") and str(status_of(i).phase) == phase]
    items.sort(key=lambda i: (_meta(i).get("namespace") or "", _meta(i).get("creationTimestamp") or "",
                              _meta(i).get("name") or ""))
    if fmt:
        out.write(dump({"apiVersion": "v1", "kind": "List", "items": [_clean(i) for i in items]}, fmt))
        return 0
    if not items:
        filters = [f"{flag} {value}" for flag, value in (("--workflow", workflow), ("--schedule", schedule),
                                                            ("--phase", phase), ("-l", selector)) if value]
        where = "in any namespace" if all_namespaces else f"in namespace {cluster.namespace!r}"
        print(f"no {kind} {where}" + (f" matching {' '.join(filters)}" if filters else ""), file=out)
        return 0
    now = datetime.now(UTC)
    if kind == "executions":
        table = executions_table(items, now)
        if not all_namespaces:
            print(table, file=out)
            return 0
        # the same table, with the namespace in front (format_table pads every column alike)
        lines = table.split("\n")
        spaces = [str(_meta(i).get("namespace", "")) for i in items]
        width = max(len("NAMESPACE"), *(len(s) for s in spaces)) + 2
        print("\n".join(["NAMESPACE".ljust(width) + lines[0]]
                        + [ns.ljust(width) + line for ns, line in zip(spaces, lines[1:], strict=True)]), file=out)
        return 0
    headers, rows = HEADERS[kind], [_row(i, kind, now) for i in items]
    if all_namespaces:
        headers = ["NAMESPACE", *headers]
        rows = [[str(_meta(i).get("namespace", "")), *row] for i, row in zip(items, rows, strict=True)]
    print(format_table(headers, rows), file=out)
    return 0


# ---- get --watch ---------------------------------------------------------------------------
def watch_execution(cluster: ClusterCalls, name: str, out: IO[str]) -> int:
    """`get NAME --watch`: the run's table, redrawn on each change, until it ends (exit 0: a view,
    not a verdict; `jobchain wait` gives the end as the exit status)."""
    view = LiveView(out, out.isatty())
    try:
        execution = wait_for_end(cluster, name, view)
    except KeyboardInterrupt:
        raise CliError(f"stopped watching {name}", Exit.INTERRUPTED) from None
    if not view.last:
        view.show(end_view(execution, datetime.now(UTC)))
    return 0
