"""Turns pydantic validation errors into the `path: what is wrong` lines users see.

One format everywhere (Workflow Ready condition, execution message, `jobchain lint`), so a
user can find the field from the message alone.
"""

from __future__ import annotations

from pydantic import ValidationError


def field_path(loc: tuple[int | str, ...], prefix: str = "") -> str:
    path = prefix
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path += f".{part}" if path else str(part)
    return path or "(top level)"


def describe_validation_error(err: ValidationError, prefix: str = "") -> list[str]:
    lines = []
    for item in err.errors():
        msg = item["msg"].removeprefix("Value error, ")  # pydantic's prefix for our own ValueErrors
        if item["type"] == "extra_forbidden":
            msg = "unknown field (check its spelling and indentation)"
        elif item["type"] == "missing":
            msg = "required field is missing"
        lines.append(f"{field_path(tuple(item['loc']), prefix)}: {msg}")
    return lines
