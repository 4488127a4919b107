"""Plain-text tables of executions and their nodes, as `list`, `get` and `run --watch` print them.

Pure functions of the objects (dicts, as the API server sends them) and a clock passed in,
so every table is unit-tested without a cluster.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from jobchain.api.models import ExecutionStatus, NodePhase, NodeStatus
from jobchain.engine.timefmt import format_duration, parse_time

OUTPUT_WIDTH = 48
MESSAGE_WIDTH = 100




def status_of(execution: dict[str, Any]) -> ExecutionStatus:
    """The execution's status, read leniently (an object the operator has not touched has none)."""
    try:
        return ExecutionStatus.model_validate(execution.get("status") or {})
    except ValidationError:
        return ExecutionStatus()


def format_table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """Left-aligned columns, three spaces apart, as kubectl prints them."""
    widths = [len(h) for h in headers]
    for row in rows:
        widths = [max(w, len(cell)) for w, cell in zip(widths, row, strict=True)]
    lines = [
        "   ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)).rstrip()
        for line in [list(headers), *rows]
    ]
    return "\n".join(lines)


def age(timestamp: str | None, now: datetime) -> str:
    """kubectl-style age: 45s, 12m, 3h, 2d."""
    moment = parse_time(timestamp)
    if moment is None:
        return "<unknown>"
    seconds = max(0, int((now - moment).total_seconds()))
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60)):
        if seconds >= size * (2 if unit != "m" else 1):
            return f"{seconds // size}{unit}"
    return f"{seconds}s"


def shorten(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 3] + "..."


def output_summary(value: Any, truncated: bool = False, width: int = OUTPUT_WIDTH) -> str:
    """One line of a node's output: strings as they are, JSON compact."""
    if value is None:
        return ""
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"), sort_keys=True)
    summary = shorten(text, width)
    return summary + (" (truncated)" if truncated and not summary.endswith("...") else "")


def node_duration(node: NodeStatus, now: datetime) -> str:
    started = parse_time(node.startedAt)
    if started is None:
        return ""
    finished = parse_time(node.finishedAt)
    if finished is None:
        return format_duration((now - started).total_seconds()) + (
            "+" if node.phase == NodePhase.RUNNING else ""
        )
    return format_duration((finished - started).total_seconds())


def execution_duration(status: ExecutionStatus, now: datetime) -> str:
    if status.duration:
        return status.duration
    started = parse_time(status.startedAt)
    if started is None:
        return ""
    finished = parse_time(status.finishedAt)
    return format_duration(((finished or now) - started).total_seconds())


def workflow_of(execution: dict[str, Any]) -> str:
    """The Workflow's name, or `(inline)` for a spec carried by the execution (`run FILE`)."""
    spec = execution.get("spec") or {}
    if spec.get("workflow"):
        return "(inline)"  # status.workflowName is then the execution's own name
    return status_of(execution).workflowName or str((spec.get("workflowRef") or {}).get("name") or "")


def executions_table(executions: Sequence[dict[str, Any]], now: datetime) -> str:
    rows = []
    for item in executions:
        status = status_of(item)
        meta = item.get("metadata") or {}
        rows.append(
            [
                str(meta.get("name", "")),
                workflow_of(item),
                str(status.phase) if item.get("status") else "",
                status.progress or "",
                status.running or "",
                age(meta.get("creationTimestamp"), now),
                execution_duration(status, now) if status.finishedAt else "",
            ]
        )
    return format_table(["NAME", "WORKFLOW", "PHASE", "PROGRESS", "RUNNING", "AGE", "DURATION"], rows)


def item_progress(node: NodeStatus) -> str:
    """`37/100 items` (finished of all), with the failed ones counted when there are any."""
    counts = node.items
    if counts is None:
        return ""
    text = f"{counts.succeeded + counts.failed}/{counts.total} items"
    return text + (f", {counts.failed} failed" if counts.failed else "")


def nodes_table(execution: dict[str, Any], now: datetime) -> str:
    """One row per node, in the order of status.nodes (the workflow's declaration order)."""
    rows = []
    for node in status_of(execution).nodes:
        note = (
            node.message if node.phase in (NodePhase.FAILED, NodePhase.SKIPPED, NodePhase.CANCELLED) else ""
        )
        rows.append(
            [
                node.name,
                str(node.phase) + (f"  {item_progress(node)}" if node.items is not None else ""),
                node_duration(node, now),
                str(node.retries) if node.retries else "",
                output_summary(node.output, node.outputTruncated) or shorten(note, OUTPUT_WIDTH),
            ]
        )
    return format_table(["NODE", "PHASE", "DURATION", "RETRIES", "OUTPUT"], rows)


def phase_line(execution: dict[str, Any], now: datetime) -> str:
    """`NAME Succeeded in 12s: message`, the line that closes run --watch/--wait."""
    name = (execution.get("metadata") or {}).get("name", "")
    status = status_of(execution)
    if not execution.get("status"):
        return f"{name}: waiting for the operator to start it"
    text = f"{name} {status.phase}"
    duration = execution_duration(status, now)
    if duration:
        text += f" in {duration}" if status.finishedAt else f" for {duration}"
    if status.progress:
        text += f" ({status.progress} nodes)"
    if status.message:
        text += f": {shorten(status.message, MESSAGE_WIDTH * 3)}"
    return text


def execution_details(execution: dict[str, Any], now: datetime) -> str:
    """The `get` view: a few `Key: value` lines, then the nodes table."""
    meta = execution.get("metadata") or {}
    spec = execution.get("spec") or {}
    status = status_of(execution)
    fields = [
        ("Name", str(meta.get("name", ""))),
        ("Namespace", str(meta.get("namespace", ""))),
        ("Workflow", workflow_of(execution)),
        ("Phase", str(status.phase) if execution.get("status") else "(not started by the operator yet)"),
        ("Reason", status.reason),
        ("Message", status.message),
        ("Progress", status.progress or ""),
        ("Started", status.startedAt or ""),
        ("Finished", status.finishedAt or ""),
        ("Duration", execution_duration(status, now)),
        (
            "Params",
            ", ".join(f"{k}={v}" for k, v in sorted({
                **(status.params or spec.get("params") or {}),
                **dict.fromkeys(status.secretParams or [p.get("name") for p in spec.get("paramsFrom") or []],
                                "<secret>"),
            }.items())),
        ),
        ("Cancel", "requested" if spec.get("cancel") else ""),
    ]
    # A multi-line value (a message quoting log lines) continues under its first line.
    lines = [f"{key + ':':<11}" + value.strip().replace("\n", "\n" + " " * 11) for key, value in fields if value]
    if status.nodes:
        lines += ["", nodes_table(execution, now)]
    return "\n".join(lines)
