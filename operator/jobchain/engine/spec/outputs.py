"""Turning what a node left behind (termination message, log tail, annotation) into stored output.

Why capped: outputs live in the execution's status so they survive Job and pod deletion,
and status must stay far below etcd's object size limit even with hundreds of nodes.

Why canonical: the value stored in status, the value the next node is given, and the value
read back from the API server after a restart must be one and the same. The API server
stores JSON numbers as int64 or float64 and its serializer gives up on deep nesting, so an
output is brought into a form that survives that trip unchanged before anything uses it:

- text that is not strict JSON (NaN, Infinity, 1e999, invalid UTF-16 escapes) is kept as
  the text, not as JSON;
- JSON nested deeper than MAX_OUTPUT_DEPTH is kept as the text too (never fatal);
- a whole number written as a float (2.0) is stored as the integer (2), as the API server
  would store it;
- an integer outside the signed 64-bit range (18446744073709551615) is stored as the string
  of its digits, so nothing (the API server, CEL) ever rounds it.
"""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any

DEFAULT_OUTPUT_LIMIT = 32 * 1024
# All outputs of one execution together; past it, new outputs get what is left (at least
# MIN_OUTPUT_SHARE). With the rest of a node's status (~500 bytes, ~80 more for the sha256 of an
# output kept whole) and the workflow snapshot, a 500-node execution stays under half of etcd's
# 1.5 MiB object limit (bench/planner.py, tests/unit/test_status_size.py).
STATUS_OUTPUT_BUDGET = 216 * 1024
MIN_OUTPUT_SHARE = 128
# The most a node's output may be: it is kept whole in a ConfigMap, whose data may not pass 1 MiB
# (1 KiB is left for the key and bookkeeping). A larger output fails its node (see keep_output).
MAX_OUTPUT_BYTES = 1024 * 1024 - 1024
# A `logs` output is read up to one byte past the limit, so a larger log is known to be larger.
LOG_TAIL_BYTES = MAX_OUTPUT_BYTES + 1
# An output whose JSON text is over this is also kept in a ConfigMap (outputRef), even when it fits
# inline: the next node's $JOBCHAIN_INPUT_FILE is mounted from there. Smaller inputs reach that
# file through a pod annotation (annotations of one object are capped at 256 KiB altogether).
INLINE_INPUT_FILE_BYTES = 64 * 1024
MAX_OUTPUT_DEPTH = 32
INT64_MIN, INT64_MAX = -(2**63), 2**63 - 1


class NotKept(ValueError):
    """A JSON text that cannot be stored as JSON as it is (reason in the message)."""


def stored_size(value: Any) -> int:
    if value is None:
        return 0
    if isinstance(value, str):
        return len(value.encode(errors="replace"))
    return len(json.dumps(value, separators=(",", ":")).encode())


def depth(value: Any, limit: int) -> int:
    """How deeply `value` nests (a scalar is 0), counted up to limit + 1 only: no recursion."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        current, level = stack.pop()
        if isinstance(current, dict | list):
            level += 1
            deepest = max(deepest, level)
            if level > limit:
                return level
            stack.extend((v, level) for v in (current.values() if isinstance(current, dict) else current))
    return deepest


def _check_text(text: str) -> str:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise NotKept("a string with an invalid UTF-16 escape") from None
    return text


def canonical(value: Any) -> Any:
    """`value` in the form the API server stores unchanged; NotKept when that is impossible."""
    if depth(value, MAX_OUTPUT_DEPTH) > MAX_OUTPUT_DEPTH:
        raise NotKept(f"nested deeper than {MAX_OUTPUT_DEPTH} levels")
    return _canonical(value)


def _canonical(value: Any) -> Any:
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, float):
        if not math.isfinite(value):
            raise NotKept("not a finite number")
        if value.is_integer():
            value = int(value)
        else:
            return value
    if isinstance(value, int):
        return value if INT64_MIN <= value <= INT64_MAX else str(value)
    if isinstance(value, str):
        return _check_text(value)
    if isinstance(value, list):
        return [_canonical(v) for v in value]
    if isinstance(value, dict):
        return {_check_text(k): _canonical(v) for k, v in value.items()}
    raise NotKept(f"not JSON: {type(value).__name__}")


def _not_strict(text: str) -> Any:
    raise NotKept(f"{text} is not JSON")


def _strict_float(text: str) -> float:
    number = float(text)
    if not math.isfinite(number):
        raise NotKept(f"{text} is out of a double's range")
    return number


def parse_output(raw: str | None, limit: int, keep_end: bool = False) -> tuple[Any, bool]:
    """(value, truncated). JSON when the text is strict JSON that can be kept as it is, else
    the text; None when empty. Text over `limit` bytes is cut (and never parsed): its start is
    kept, or its end with `keep_end` (a log, whose result is usually in its last lines)."""
    if raw is None:
        return None, False
    text = raw.encode("utf-8", errors="replace").decode("utf-8").strip()
    if not text:
        return None, False
    data = text.encode()
    if len(data) > limit:
        kept = data[-limit:] if keep_end else data[:limit]
        return kept.decode(errors="ignore"), True
    try:
        return canonical(json.loads(text, parse_constant=_not_strict, parse_float=_strict_float)), False
    except (ValueError, RecursionError):  # NotKept is a ValueError, as is json's own error
        return text, False


def input_json(value: Any) -> str:
    """The text a node is given as its input ($JOBCHAIN_INPUT, $JOBCHAIN_INPUT_FILE): compact JSON."""
    return json.dumps(value, separators=(",", ":"))


def text_sha256(text: str) -> str:
    """The digest status records of an output kept whole in a ConfigMap (OutputRef.sha256)."""
    return hashlib.sha256(text.encode()).hexdigest()


@dataclass(frozen=True)
class KeptOutput:
    """How one finished node's output is kept.

    `output`/`truncated`: what status holds (the value, or a preview of it). `whole`: the value's
    JSON text, to keep in a ConfigMap (status then names it in outputRef), or None when status holds
    it all and it is small enough for an annotation. `value`: the whole value, for this pass's edges
    and inputs. `too_large`: the output's size when over MAX_OUTPUT_BYTES: nothing is kept whole and
    the node fails, because passing a cut value on would hand the next node wrong data silently.
    """

    output: Any
    truncated: bool
    whole: str | None
    value: Any
    too_large: int = 0


def keep_output(raw: str | None, limit: int, keep_end: bool = False) -> KeptOutput:
    """Decides how an output is kept: inline (at most `limit` bytes in status), in a ConfigMap with a
    preview in status (its start, or its end with `keep_end`: a log), or not at all (over
    MAX_OUTPUT_BYTES: then the start, the only part read)."""
    text = raw.encode("utf-8", errors="replace").decode("utf-8").strip() if raw is not None else ""
    size = len(text.encode())
    if size > MAX_OUTPUT_BYTES:
        preview, _ = parse_output(text, limit)
        return KeptOutput(preview, True, None, None, size)
    value, _ = parse_output(text, MAX_OUTPUT_BYTES)
    whole = input_json(value)
    fits = stored_size(value) <= limit
    if fits and len(whole.encode()) <= INLINE_INPUT_FILE_BYTES:
        return KeptOutput(value, False, None, value)
    if fits:
        return KeptOutput(value, False, whole, value)
    preview, _ = parse_output(text, limit, keep_end)  # a log's result is usually at its end
    return KeptOutput(preview, True, whole, value)


def too_large_note(size: int) -> str:
    """What a node (or an item) whose output is over MAX_OUTPUT_BYTES says."""
    return (f"output is over the {MAX_OUTPUT_BYTES} bytes (1 MiB) a node's output may be ({size} bytes read): "
            "only its start is kept and it is passed on to no node; write large data to a volume or an "
            "object store and output its location")


# The termination message (output.from: terminationMessage, the default). The kubelet keeps at most
# the last 4096 bytes of the file, and of a pod's messages together the first 12 KiB split evenly
# between its containers: a longer output arrives cut, with nothing to say so. So a script node's
# wrapper (engine.spec.render) passes an output that long through the log instead, between marker
# lines, and leaves only IN_LOG_MARK and its size in the message; a message that long without the
# marker (a command node, which has no shell to wrap it) may have been cut, and fails its node.
MAX_TERMINATION_MESSAGE = 4096
MAX_POD_TERMINATION_MESSAGES = 12 * 1024
IN_LOG_MARK = "jobchain.dev/output-in-log"
LOG_BEGIN_MARK = "jobchain.dev/output-begin"
LOG_END_MARK = "jobchain.dev/output-end"


def termination_message_limit(containers: int) -> int:
    """The bytes a pod with `containers` containers (init containers included) keeps of one message:
    a message this long or longer may have been cut."""
    return min(MAX_TERMINATION_MESSAGE, MAX_POD_TERMINATION_MESSAGES // max(1, containers))


@dataclass(frozen=True)
class MessageOutput:
    """What a termination message says of the output: `text` (the output, whole), or `in_log` (the
    size of an output the wrapper wrote to the log, with its line count), or `error` (cut)."""

    text: str | None = None
    in_log: int | None = None
    lines: int = 0
    error: str = ""


def read_message(message: str | None, limit: int) -> MessageOutput:
    """Reads a termination message of a pod keeping `limit` bytes of it (termination_message_limit)."""
    if message is None:
        return MessageOutput()
    mark = message.strip().split(" ")
    if len(mark) == 3 and mark[0] == IN_LOG_MARK and mark[1].isdigit() and mark[2].isdigit():
        return MessageOutput(in_log=int(mark[1]), lines=int(mark[2]))
    if len(message.encode(errors="replace")) >= limit:
        return MessageOutput(error=(
            f"output may have been cut: the termination message ($JOBCHAIN_OUTPUT) is {limit} bytes or more, "
            f"and Kubernetes keeps only {limit} bytes of it (its end) for this pod; run the node as a `script` "
            "(its outputs up to 1 MiB are passed whole), or use output.from: logs"))
    return MessageOutput(text=message)


def log_tail_lines(size: int, lines: int) -> int:
    """How many log lines to ask for to get an output of `size` bytes in `lines` lines with its marker
    lines: the container runtime splits long lines (containerd at 16 KiB), and the kubelet counts
    each part as a line; asking for more only reads a little of the log before the output."""
    return lines + 4 + size // 1024


def output_in_log(data: bytes, size: int) -> str | None:
    """The output of `size` bytes the wrapper wrote at the end of a log (`data`, its end), or None
    when the log does not end with it whole (cut, rotated away, or written over by another process)."""
    end = f"\n{LOG_END_MARK} {size}\n".encode()
    begin = f"\n{LOG_BEGIN_MARK} {size}\n".encode()
    if not data.endswith(end) or len(data) < size + len(end) + len(begin) - 1:
        return None
    body_end = len(data) - len(end)
    body = data[body_end - size:body_end]
    before = data[:body_end - size]
    if not (before.endswith(begin) or before == begin[1:]):
        return None
    return body.decode("utf-8", errors="replace")


def unreadable_note(size: int) -> str:
    """What a node says whose output, written to its log by the wrapper, could not be read back whole."""
    return (f"output ({size} bytes, passed through the pod log) could not be read back whole: the log was cut, "
            "rotated or written to after the node's script ended (a process left running in the background?); "
            "it is passed on to no node")


# Node fields passed to Kubernetes as they are: nested deeper than this, the snapshot in status
# could not be written (the serializer's limit), so validation (engine.spec.validation) refuses the workflow.
MAX_FREE_FORM_DEPTH = MAX_OUTPUT_DEPTH

