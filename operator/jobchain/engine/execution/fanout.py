"""forEach (fan-out): the item list of a node, and how its items' results make the node's.

Why the list is evaluated once and kept: its CEL may be costly (nested macros over a long input;
one evaluation stops at CEL_EVAL_STEPS, as a `when`, and a pass's evaluations together at its
PassBudget), and a running node needs its list on every pass that starts items. The pass that
starts the node keeps the list in a ConfigMap (render.items_list_key), created before the status
that says the node runs; later passes read it from there (engine.execution.status.output_refs).
Its inputs never change once the node may start (its input is a finished predecessor's output,
`nodes` holds only the nodes upstream of it, which have all finished, and params are fixed), so a
pass that must evaluate it again (the status write that started the node lost, or the ConfigMap
deleted by hand) gets the same list. Status keeps only what happened to each item
(engine.execution.status.mark_item), never a copy of the items.
Item Jobs are named from node and index (render.item_key), so a restarted operator adopts them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from jobchain.api.models import NodePhase, NodeStatus
from jobchain.engine.execution.conditions import _safe_cel
from jobchain.engine.execution.status import cut, item_preview_limit, names_with_more
from jobchain.engine.spec import cel
from jobchain.engine.spec.outputs import (
    MAX_OUTPUT_BYTES,
    MIN_OUTPUT_SHARE,
    STATUS_OUTPUT_BUDGET,
    input_json,
    stored_size,
)
from jobchain.engine.spec.refs import render_value

DEFAULT_MAX_ITEMS = 1000


@dataclass(frozen=True)
class ItemsProblem(Exception):
    """The forEach list cannot be used: the node Fails with this message, no Job created."""

    reason: str  # ConditionError | TooManyItems | ItemsTooLarge
    message: str

    def __str__(self) -> str:
        return f"{self.reason}: {self.message}"


def activation(params: Mapping[str, Any], input_value: Any, upstream: list[NodeStatus],
               whole: Mapping[str, Any]) -> dict[str, Any]:
    """The variables of a forEach expression, as for `when` (without a node's own output). Outputs
    are whole (`whole`: those kept in ConfigMaps, status holding a preview), as conditions see them."""
    nodes = {n.name: {"phase": str(n.phase), "output": whole.get(n.name, n.output)} for n in upstream}
    return {"input": _safe_cel(input_value), "params": _safe_cel(dict(params)), "nodes": _safe_cel(nodes)}


def items_of(expression: str, variables: dict[str, Any], max_items: int | None, where: str,
             spent: cel.Budget | None = None) -> list[Any]:
    """The item list, or ItemsProblem saying why there is none. Its steps are taken from `spent`."""
    try:
        value = cel.evaluate_value(expression, variables, spent)
    except cel.CelError as exc:
        raise ItemsProblem("ConditionError", f"{where} `{expression}`: {exc}") from None
    if not isinstance(value, list):
        kind = {dict: "map", str: "string", bool: "bool", int: "int", float: "double"}.get(type(value), "null")
        raise ItemsProblem("ConditionError", f"{where} `{expression}` must give a list, got a {kind} "
                           f"({cut(render_value(value), 200)})")
    limit = max_items or DEFAULT_MAX_ITEMS
    if len(value) > limit:
        raise ItemsProblem("TooManyItems", f"{where} `{expression}` gave {len(value)} items, more than "
                           f"maxItems ({limit}); no item was started. Raise maxItems (at most 5000) or "
                           "split the list")
    return value


def list_text(items: list[Any], expression: str, where: str) -> str:
    """The list as kept in its ConfigMap (JSON), or ItemsProblem when a ConfigMap cannot hold it."""
    text = input_json(items)
    if len(text.encode()) > MAX_OUTPUT_BYTES:
        raise ItemsProblem("ItemsTooLarge", f"{where} `{expression}` gave a list of {len(text.encode())} bytes "
                           f"(JSON), more than the {MAX_OUTPUT_BYTES} bytes (1 MiB) kept for it; no item was "
                           "started. Give each item a name or a key and let it read its data itself")
    return text


def item_output_floor(max_items: int) -> int:
    """The least an item's output keeps once the status output budget is spent: MIN_OUTPUT_SHARE
    for up to 2,048 items, less for more (5,000 x 128 bytes would be 640 KiB on top of the budget).
    From the node's maxItems, known before any item runs, so it never depends on the order of passes."""
    return max(32, min(MIN_OUTPUT_SHARE, STATUS_OUTPUT_BUDGET // max(1, max_items)))


def preview(output: Any, total: int) -> str | None:
    """The start of an item's output for its status entry (the whole output is in the list)."""
    limit = item_preview_limit(total)
    if output is None or limit < 8:
        return None
    text = render_value(output)
    if len(text.encode()) <= limit:
        return text
    return text.encode()[: limit - 3].decode(errors="ignore") + "..."


def outcome(node: NodeStatus, fail_fast: bool) -> tuple[NodePhase, str] | None:
    """The node's result once its items allow one: None while an item runs or may still start."""
    counts = node.items
    if counts is None:
        return None
    results = node.itemResults or []
    failed = [e for e in results if e.phase == NodePhase.FAILED]
    finished = counts.succeeded + counts.failed
    stopped_early = fail_fast and failed and counts.running == 0
    if finished < counts.total and not stopped_early:
        return None
    if not failed:
        return NodePhase.SUCCEEDED, f"{counts.total} item(s) succeeded"
    detail = "; ".join(f"#{e.index}: {e.message or 'failed'}" for e in failed[:3])
    message = (f"item(s) {names_with_more([str(e.index) for e in failed])} of {counts.total} failed ({detail}); "
               f"{counts.succeeded} succeeded")
    if finished < counts.total:
        message += f"; failFast: {counts.total - finished} item(s) not started"
    return NodePhase.FAILED, message


def output_size(node: NodeStatus) -> int:
    """What a node's output counts against the status output budget. A forEach node's list counts
    as the sum of its items' outputs, as they were added when recorded: so a pass that records
    several items at once (after lost status writes) hands out the very limits that passes
    recording them one at a time did (the list's brackets and nulls would shift them)."""
    if node.items is not None and isinstance(node.output, list):
        return sum(stored_size(value) for value in node.output)
    return stored_size(node.output)
