"""Typed params: what a param's text means for its declared type, and the value CEL sees.

Why values stay text: an execution's params (and a schedule's, and a default) are strings in
the API, status keeps them as strings, and `$(params.X)` pastes text. A param of type string is
used byte for byte, as before types existed; any other type is JSON text, checked once when the
execution starts (so a typo fails with InvalidParams before any Job runs), stored in its compact
form, and given to CEL as the typed value (so `params.rows > 10` compares numbers). An execution
started before types existed has no type in its snapshot: every param is then a string.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from typing import Any

from jobchain.api.models import ExecutionStatus, Param, ParamType

_EXAMPLES = {
    ParamType.INTEGER: '"10"',
    ParamType.NUMBER: '"2.5"',
    ParamType.BOOLEAN: '"true" or "false"',
    ParamType.ARRAY: """'["a", "b"]'""",
    ParamType.OBJECT: """'{"key": "value"}'""",
}
_ARTICLE = {ParamType.INTEGER: "an", ParamType.ARRAY: "an", ParamType.OBJECT: "an"}


def _no_constant(text: str) -> Any:
    raise ValueError(f"{text} is not a JSON number")


def parse(text: str, kind: str) -> Any:
    """The value of `text` for a param of type `kind`; raises ValueError saying why it is not one."""
    if kind == ParamType.STRING:
        return text
    try:
        value = json.loads(text, parse_constant=_no_constant)
    except ValueError:
        raise ValueError("it is not JSON") from None
    ok = {
        ParamType.INTEGER: isinstance(value, int) and not isinstance(value, bool),
        ParamType.NUMBER: isinstance(value, int | float) and not isinstance(value, bool),
        ParamType.BOOLEAN: isinstance(value, bool),
        ParamType.ARRAY: isinstance(value, list),
        ParamType.OBJECT: isinstance(value, dict),
    }.get(ParamType(kind), False)
    if not ok:
        raise ValueError(f"it is JSON {_json_kind(value)}")
    return value


def _json_kind(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return "null"


def problem(name: str, kind: str, text: str) -> str | None:
    """Why `text` is not a value of param `name` of type `kind`, with what to write; None when it is."""
    try:
        parse(text, kind)
    except ValueError as exc:
        shown = text if len(text) <= 60 else text[:57] + "..."
        article = _ARTICLE.get(ParamType(kind), "a")
        return (f"param {name} is type {kind}, and {shown!r} is not {article} {kind} ({exc}); write its JSON "
                f"text, e.g. {_EXAMPLES[ParamType(kind)]}")
    return None


def canonical(text: str, kind: str) -> str:
    """The text a valid value is stored and rendered as: a string as it is, other types as compact JSON."""
    if kind == ParamType.STRING:
        return text
    return json.dumps(parse(text, kind), separators=(",", ":"), ensure_ascii=False)


def typed_values(params: Mapping[str, str], declared: Iterable[Param] | None) -> dict[str, Any]:
    """The params as CEL sees them: typed as declared. A value that does not parse (it cannot, once an
    execution started, but status is user-writable) stays the text, as for an untyped param."""
    kinds = {p.name: str(p.type) for p in declared or ()}
    values: dict[str, Any] = {}
    for name, text in params.items():
        try:
            values[name] = parse(text, kinds.get(name, ParamType.STRING))
        except ValueError:
            values[name] = text
    return values


def of_status(status: ExecutionStatus) -> dict[str, Any]:
    """An execution's params as CEL sees them, typed by its Workflow snapshot."""
    return typed_values(status.params or {}, status.workflowSpec.params if status.workflowSpec else None)
