"""Secret params: which params of an execution come from a Secret, what is wrong with how they
are set, and removing their values from text the operator keeps (log tails, outputs).

Why the operator never holds a secret param in status: the execution's status is readable by
everyone who may read the execution. The value travels from the Secret to the container through
an env var's `valueFrom.secretKeyRef` (see render), so neither the Job spec nor status carries it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from jobchain.api.models import WorkflowExecutionSpec, WorkflowSpec

REDACTED = "<secret>"
MIN_REDACTED_LENGTH = 4  # shorter values would blank out unrelated text (and are hardly secret)


def secret_refs(spec: WorkflowExecutionSpec) -> dict[str, dict[str, Any]]:
    """Param name -> secretKeyRef ({name, key}) of the params an execution takes from Secrets."""
    return {p.name: p.valueFrom.secretKeyRef.model_dump() for p in spec.paramsFrom}


def secret_param_problems(workflow: WorkflowSpec, spec: WorkflowExecutionSpec) -> list[str]:
    """What is wrong with how the execution sets secret params, each saying what to do."""
    problems = []
    from_secrets = {p.name for p in spec.paramsFrom}
    for name in sorted(from_secrets & set(spec.params)):
        problems.append(f"param {name} is set both in spec.params and in spec.paramsFrom; set it in one place")
    for param in workflow.params:
        if param.secret and param.name in spec.params:
            problems.append(
                f"param {param.name} is secret: set it with spec.paramsFrom[].valueFrom.secretKeyRef, not in "
                "spec.params, where everyone who may read the execution sees it"
            )
        elif param.secret and param.name not in from_secrets:
            problems.append(f"param {param.name} is secret and must be set with "
                            "spec.paramsFrom[].valueFrom.secretKeyRef (a key of a Secret in this namespace)")
    return problems


def redact(text: str | None, values: Iterable[str]) -> str | None:
    """`text` with every secret value (and its JSON-escaped form) replaced by <secret>."""
    if not text:
        return text
    for value in sorted(values, key=len, reverse=True):
        if len(value) < MIN_REDACTED_LENGTH:
            continue
        for form in {value, json.dumps(value)[1:-1]}:
            text = text.replace(form, REDACTED)
    return text
