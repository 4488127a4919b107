"""Turning what a node left behind (termination message, log tail, annotation) into stored output.

Why capped: outputs live in the execution's status so they survive Job and pod deletion,
and status must stay far below etcd's object size limit even with hundreds of nodes.
"""

from __future__ import annotations

import json
from typing import Any

DEFAULT_OUTPUT_LIMIT = 32 * 1024
# All outputs of one execution together; past it, new outputs get what is left (at least
# MIN_OUTPUT_SHARE). With the rest of a node's status (~500 bytes) and the workflow snapshot, a
# 500-node execution stays under half of etcd's 1.5 MiB object limit (bench/planner.py).
STATUS_OUTPUT_BUDGET = 256 * 1024
MIN_OUTPUT_SHARE = 128
LOG_TAIL_BYTES = 64 * 1024


def stored_size(value: Any) -> int:
    if value is None:
        return 0
    if isinstance(value, str):
        return len(value.encode())
    return len(json.dumps(value, separators=(",", ":")).encode())


def parse_output(raw: str | None, limit: int, keep_end: bool = False) -> tuple[Any, bool]:
    """(value, truncated). JSON when the text parses as JSON, else the text; None when empty.

    Past `limit` bytes the text is cut: its start is kept, or its end with `keep_end` (a log,
    whose result is usually in its last lines).
    """
    if raw is None:
        return None, False
    text = raw.strip()
    if not text:
        return None, False
    data = text.encode()
    if len(data) > limit:
        kept = data[-limit:] if keep_end else data[:limit]
        return kept.decode(errors="ignore"), True
    try:
        return json.loads(text), False
    except ValueError:
        return text, False
