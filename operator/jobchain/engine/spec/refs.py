"""`$(...)` references in script, command, args and env values: finding and substituting them.

Ours are `$(params.X)`, `$(input)`, `$(input.KEY...)`, `$(nodes.NAME.output)`,
`$(nodes.NAME.output.KEY...)`, `$(execution.name)`, `$(execution.namespace)`,
`$(execution.scheduledTime)` (RFC 3339: a schedule's time, else when the execution started), in a
finally node `$(execution.phase)`, `$(execution.reason)` and `$(execution.failedNodes)` (a JSON list), and
in a forEach node `$(item)`, `$(item.KEY...)` and `$(item.index)` (the item's 0-based index). Any other
`$(NAME)` is left alone, so Kubernetes' own expansion of container env vars keeps working.
Any of them may be written `$(raw:...)`
(`$(raw:params.x)`): its value is then pasted into the text as it is, where a shell or an
interpreter parses it as code; without `raw:` a value is never parsed (see engine/spec/argv.py
and shell.py). A reference that cannot be resolved raises UnresolvedReference naming it: a value is never
silently empty.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

# The inside of a reference stops at `(`, `)` or a space. Why `(` too: a scan that starts at
# each `$(` and may run on to the next `)` makes a text of many unclosed `$(params.a`
# quadratic (160 KB took 14 CPU-seconds); stopping at the next `(` makes it linear.
_REF = re.compile(r"\$\(((?:raw:)?(?:params|input|nodes|execution|item)(?:\.[^()\s]*)?)\)")
RAW = "raw:"


class UnresolvedReference(Exception):
    """A reference whose value does not exist at run time."""


@dataclass(frozen=True)
class Reference:
    text: str  # as written, without $( )
    kind: str  # params | input | nodes | execution | item
    target: str | None  # param name, node name, execution field
    path: tuple[str, ...]  # keys into the output
    raw: bool = False  # written $(raw:...): pasted as code on purpose


# $(execution.X): the last three are the main graph's outcome, seen by finally nodes only
OUTCOME_FIELDS = ("phase", "reason", "failedNodes")
EXECUTION_FIELDS = ("name", "namespace", "scheduledTime", *OUTCOME_FIELDS)


def parse(text: str) -> Reference | None:
    """Parses the inside of one `$(...)`; None if it is malformed."""
    if text.startswith(RAW):
        ref = parse(text[len(RAW):])
        return None if ref is None or ref.raw else Reference(text, ref.kind, ref.target, ref.path, raw=True)
    parts = text.split(".")
    head = parts[0]
    if any(p == "" for p in parts):
        return None
    if head == "params" and len(parts) == 2:
        return Reference(text, "params", parts[1], ())
    if head == "input":
        return Reference(text, "input", None, tuple(parts[1:]))
    if head == "nodes" and len(parts) >= 3 and parts[2] == "output":
        return Reference(text, "nodes", parts[1], tuple(parts[3:]))
    if head == "item":
        return Reference(text, "item", None, tuple(parts[1:]))
    if head == "execution" and len(parts) == 2 and parts[1] in EXECUTION_FIELDS:
        return Reference(text, "execution", parts[1], ())
    return None


def find(text: str) -> Iterator[tuple[str, Reference | None]]:
    """Yields (raw text, parsed reference or None when malformed) for each of our references."""
    for match in _REF.finditer(text):
        yield match.group(1), parse(match.group(1))


def locate(text: str) -> Iterator[tuple[int, int, str]]:
    """(start, end, inside) of each of our references, for rewriting them in place."""
    for match in _REF.finditer(text):
        yield match.start(), match.end(), match.group(1)


def render_value(value: Any) -> str:
    """How a JSON value is written into a string: strings as they are, the rest as compact JSON."""
    if isinstance(value, str):
        return value
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def dig(value: Any, path: tuple[str, ...], what: str) -> Any:
    """Follows keys (and list indexes) into a JSON value."""
    current = value
    walked = what
    for key in path:
        if isinstance(current, dict) and key in current:
            current = current[key]
        elif isinstance(current, list) and key.isdigit() and int(key) < len(current):
            current = current[int(key)]
        else:
            kind = type(current).__name__ if current is not None else "null"
            raise UnresolvedReference(f"{walked} has no key {key!r} (it is a {kind})")
        walked += f".{key}"
    return current


@dataclass(frozen=True)
class Scope:
    """Everything a reference can name when a node starts."""

    params: dict[str, str]
    execution_name: str
    namespace: str
    input: Any = None
    has_input: bool = False
    outputs: dict[str, Any] | None = None  # node name -> output, for finished nodes that ran
    # secret params: name -> secretKeyRef ({name, key}); their values never pass through the operator
    secrets: Mapping[str, Any] | None = None
    # forEach: the item's index (None outside a forEach node) and value
    item_index: int | None = None
    item: Any = None
    scheduled_time: str | None = None  # RFC 3339
    # The ConfigMap holding the input whole (the predecessor's outputRef), mounted as the input file.
    input_ref: str | None = None
    # The main graph's outcome (phase, reason, failedNodes), for a finally node; None before it ended.
    outcome: Mapping[str, Any] | None = None

    def resolve(self, ref: Reference) -> Any:
        if ref.kind == "params":
            assert ref.target is not None
            if ref.target in (self.secrets or {}):
                raise UnresolvedReference(f"$({ref.text}): a secret param has no value outside the container")
            if ref.target not in self.params:
                raise UnresolvedReference(f"$({ref.text}): no such param")
            return self.params[ref.target]
        if ref.kind == "item":
            if self.item_index is None:
                raise UnresolvedReference(f"$({ref.text}): only a node with forEach has an item")
            if ref.path == ("index",):
                return self.item_index
            try:
                return dig(self.item, ref.path, "item")
            except UnresolvedReference as exc:
                raise UnresolvedReference(f"$({ref.text}): {exc}") from None
        if ref.kind == "execution" and ref.target in OUTCOME_FIELDS:
            if self.outcome is None:
                raise UnresolvedReference(f"$({ref.text}): only a finally node sees the outcome of the main graph")
            return self.outcome[ref.target]
        if ref.kind == "execution":
            if ref.target == "scheduledTime":
                if self.scheduled_time is None:
                    raise UnresolvedReference(f"$({ref.text}): the execution has no start time yet")
                return self.scheduled_time
            return self.execution_name if ref.target == "name" else self.namespace
        if ref.kind == "input":
            if not self.has_input:
                raise UnresolvedReference(f"$({ref.text}): this node has no input (no predecessor ran before it)")
            try:
                return dig(self.input, ref.path, "input")
            except UnresolvedReference as exc:
                raise UnresolvedReference(f"$({ref.text}): {exc}") from None
        outputs = self.outputs or {}
        assert ref.target is not None
        if ref.target not in outputs:
            raise UnresolvedReference(f"$({ref.text}): node {ref.target!r} has not run, so it has no output")
        try:
            return dig(outputs[ref.target], ref.path, f"nodes.{ref.target}.output")
        except UnresolvedReference as exc:
            raise UnresolvedReference(f"$({ref.text}): {exc}") from None

    def substitute(self, text: str) -> str:
        def replace(match: re.Match[str]) -> str:
            ref = parse(match.group(1))
            if ref is None:
                raise UnresolvedReference(f"$({match.group(1)}): not a valid reference")
            return render_value(self.resolve(ref))

        return _REF.sub(replace, text)
