"""Hostile and foreign inputs shared by the unit and e2e tiers: CEL and YAML bombs that must be
refused cheaply, and Python values handed to the Argo CD health checks' Lua (run by lupa)."""

from __future__ import annotations

from typing import Any


def nested_all(depth: int) -> str:
    expression = "true"
    for i in range(depth):
        expression = f"[0,1,2,3,4,5,6,7,8,9].all(x{i}, {expression})"
    return expression


def alias_bomb_lines(levels: int = 9) -> list[str]:
    """YAML lines whose aliases expand nine-fold per level (a "billion laughs" at nine levels)."""
    lines = ["x0: &a0 [lol, lol, lol, lol, lol, lol, lol, lol, lol]"]
    lines += [f"x{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 9) + "]" for i in range(1, levels)]
    return lines


def to_lua(runtime: Any, value: Any) -> Any:
    """`value` as Lua tables of `runtime` (a lupa LuaRuntime), None fields left out as Lua has no null."""
    if isinstance(value, dict):
        return runtime.table_from({k: to_lua(runtime, v) for k, v in value.items() if v is not None})
    if isinstance(value, list):
        return runtime.table_from([to_lua(runtime, v) for v in value])
    return value
