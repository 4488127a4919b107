"""`outputSchema`: the declared shape of a node's output, for the CEL type check.

Why a subset of JSON Schema: it is what Argo Workflows and Tekton users write for results, and
the type check only needs types and keys. Only keywords that change a type are read (`type`,
`properties`, `items`, `required`, `additionalProperties`) plus `description`; any other keyword
is refused with its path rather than silently ignored, so nobody believes a `pattern` is enforced.
The operator does not check outputs against the schema at run time: it types the expressions that
read them, so `output.rows > 10` on a string `rows` is refused before anything runs.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any

_KEYWORDS = {"type", "properties", "items", "required", "additionalProperties", "description"}
_TYPES = ("string", "integer", "number", "boolean", "array", "object", "null")
MAX_DEPTH = 10


def valid(schema: Any) -> bool:
    return next(problems(schema, ""), None) is None


def problems(schema: Any, path: str, depth: int = 0) -> Iterator[tuple[str, str]]:
    """(path, message) for each part of `schema` outside the subset."""
    if not isinstance(schema, Mapping):
        yield path, "must be a JSON Schema object, e.g. {type: object, properties: {rows: {type: integer}}}"
        return
    if depth > MAX_DEPTH:
        yield path, f"nested deeper than {MAX_DEPTH} levels; describe the deeper part as {{}} (anything)"
        return
    for key in sorted(set(schema) - _KEYWORDS):
        known = ", ".join(sorted(_KEYWORDS))
        yield f"{path}.{key}", (f"{key!r} is not part of the schema subset jobchain reads ({known}); remove it "
                                "(outputs are not validated against the schema at run time)")
    kind = schema.get("type")
    if kind is not None and kind not in _TYPES:
        yield f"{path}.type", f"unknown type {kind!r}; use one of: {', '.join(_TYPES)}"
    properties = schema.get("properties")
    if properties is not None:
        if not isinstance(properties, Mapping):
            yield f"{path}.properties", "must map each key to its schema"
        else:
            if kind not in (None, "object"):
                yield f"{path}.properties", f"only an object has properties (type is {kind!r})"
            for key, sub in properties.items():
                yield from problems(sub, f"{path}.properties.{key}", depth + 1)
    items = schema.get("items")
    if items is not None:
        if kind not in (None, "array"):
            yield f"{path}.items", f"only an array has items (type is {kind!r})"
        yield from problems(items, f"{path}.items", depth + 1)
    required = schema.get("required")
    if required is not None:
        if not isinstance(required, list) or not all(isinstance(r, str) for r in required):
            yield f"{path}.required", "must be a list of property names"
        else:
            for name in required:
                if not isinstance(properties, Mapping) or name not in properties:
                    yield f"{path}.required", f"{name!r} is required but not in properties; declare it there"
    extra = schema.get("additionalProperties")
    if extra is not None and not isinstance(extra, bool):
        yield f"{path}.additionalProperties", "must be true or false here (a schema for extra keys is not read)"

