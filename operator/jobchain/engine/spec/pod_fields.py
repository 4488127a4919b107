"""The pod fields a node passes to Kubernetes as they are (podTemplate, resources, env[].valueFrom),
checked against the Kubernetes schema the project ships (pod_schema.json, see hack/pod-schema.py).

Why: these fields are free-form in the CRD (a pod spec is too large to repeat in it), so a typo such
as `nodeSelektor` or `request` passed the API server and lint, and the API server dropped it when the
Job was created, with a warning nobody reads: the pod ran on any node, without its requests. Here an
unknown field, or a value of the wrong shape (a list where a map goes), is refused with its path.
Only names and shapes are checked: values (quantities, int-or-string) are the API server's to judge
(the operator's dry run of each node's Job does, see controller), so nothing valid is refused here.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from functools import cache
from importlib import resources
from typing import Any

from jobchain.engine.spec.suggest import did_you_mean

MAX_REPORTED = 5  # per field: the first few say enough


@cache
def _schema() -> dict[str, Any]:
    text = resources.files("jobchain.engine.spec").joinpath("pod_schema.json").read_text(encoding="utf-8")
    return dict(json.loads(text))


def kubernetes_version() -> str:
    return str(_schema()["kubernetes"])


def problems(root: str, value: Any, path: str) -> list[tuple[str, str]]:
    """(field path, message) of each unknown field or wrong shape in `value`, a node's `root`
    (podTemplate, resources or valueFrom) at `path`; at most MAX_REPORTED."""
    found: list[tuple[str, str]] = []
    for problem in _walk(value, _schema()["roots"][root], path):
        found.append(problem)
        if len(found) >= MAX_REPORTED:
            break
    return found


def _walk(value: Any, shape: Any, path: str) -> Iterator[tuple[str, str]]:
    types = _schema()["types"]
    while isinstance(shape, str) and shape in types:
        shape = types[shape]
    if shape == "*" or value is None:
        return
    if shape == "s":
        if isinstance(value, dict | list):
            yield path, f"must be a single value (text or number), not a {'map' if isinstance(value, dict) else 'list'}"
        return
    if "l" in shape:
        if not isinstance(value, list):
            yield path, f"must be a list, not {_kind(value)}"
            return
        for i, item in enumerate(value):
            yield from _walk(item, shape["l"], f"{path}[{i}]")
        return
    if not isinstance(value, dict):
        yield path, f"must be a map, not {_kind(value)}"
        return
    if "m" in shape:
        for key, item in value.items():
            yield from _walk(item, shape["m"], f"{path}.{key}")
        return
    fields: dict[str, Any] = shape["o"]
    for key, item in value.items():
        if key not in fields:
            hint = did_you_mean(str(key), fields)
            known = "" if hint else "; fields here: " + ", ".join(sorted(fields)[:30]) + (
                ", ..." if len(fields) > 30 else "")
            yield (f"{path}.{key}", f"unknown field {key!r}{hint}: Kubernetes {kubernetes_version()} has no such "
                   f"field here (the API server would drop it); fix its name or remove it{known}")
        else:
            yield from _walk(item, fields[key], f"{path}.{key}")


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return "a map"
    if isinstance(value, list):
        return "a list"
    return f"a single value ({json.dumps(value)[:40]})"
