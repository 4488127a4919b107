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

from jobchain.api.models import WorkflowExecutionSpec

REDACTED = "<secret>"
MIN_REDACTED_LENGTH = 4  # shorter values would blank out unrelated text (and are hardly secret)


def secret_refs(spec: WorkflowExecutionSpec) -> dict[str, dict[str, Any]]:
    """Param name -> secretKeyRef ({name, key}) of the params an execution takes from Secrets."""
    return {p.name: p.valueFrom.secretKeyRef.model_dump() for p in spec.paramsFrom}


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
