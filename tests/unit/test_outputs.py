"""What a node's output becomes in status: JSON when it parses, else text, capped."""

from __future__ import annotations

from typing import Any

import pytest

from jobchain.engine.spec.outputs import DEFAULT_OUTPUT_LIMIT, parse_output, stored_size

PARSED: list[tuple[str, str | None, Any]] = [
    ("no output", None, None),
    ("empty file", "", None),
    ("only whitespace", " \n\t", None),
    ("JSON object", '{"url": "http://x", "n": 2}', {"url": "http://x", "n": 2}),
    ("JSON with a trailing newline from echo", '{"ok": true}\n', {"ok": True}),
    ("JSON list", "[1, 2, 3]", [1, 2, 3]),
    ("JSON number", "42", 42),
    ("JSON string", '"quoted"', "quoted"),
    ("JSON bool", "false", False),
    ("plain text", "build finished", "build finished"),
    ("text that looks almost like JSON", "{not json}", "{not json}"),
    ("multi-line text keeps its lines", "line 1\nline 2\n", "line 1\nline 2"),
    ("unicode text", "größe ✓", "größe ✓"),
]


@pytest.mark.parametrize(("raw", "expected"), [c[1:] for c in PARSED], ids=[c[0] for c in PARSED])
def test_a_raw_output_parses_to_this_value(raw: str | None, expected: Any) -> None:
    assert parse_output(raw, DEFAULT_OUTPUT_LIMIT) == (expected, False)


def test_default_limit_is_32_kib() -> None:
    assert DEFAULT_OUTPUT_LIMIT == 32 * 1024


CAPPED: list[tuple[str, str, int]] = [
    ("long text", "x" * 5000, 1024),
    ("long JSON becomes a truncated string", '{"data": "' + "y" * 5000 + '"}', 1024),
    ("multi-byte characters are not split", "ä" * 3000, 1001),
    ("default limit", "z" * (DEFAULT_OUTPUT_LIMIT + 1), DEFAULT_OUTPUT_LIMIT),
]


@pytest.mark.parametrize(("raw", "limit"), [c[1:] for c in CAPPED], ids=[c[0] for c in CAPPED])
def test_output_over_the_limit_is_truncated_and_marked(raw: str, limit: int) -> None:
    value, truncated = parse_output(raw, limit)
    assert truncated is True
    assert isinstance(value, str)
    assert stored_size(value) <= limit
    assert raw.startswith(value)
    assert len(value.encode()) >= limit - 3  # as much as fits, not a token amount


def test_output_exactly_at_the_limit_is_kept_whole() -> None:
    assert parse_output("a" * 1024, 1024) == ("a" * 1024, False)


SIZES: list[tuple[Any, int]] = [
    (None, 0),
    ("abc", 3),
    ("ä", 2),
    ({"a": 1}, len('{"a":1}')),
    ([1, 2], len("[1,2]")),
]


@pytest.mark.parametrize(("value", "size"), SIZES)
def test_a_value_takes_this_many_bytes_in_status(value: Any, size: int) -> None:
    assert stored_size(value) == size


def test_a_cut_keeps_the_end_when_asked() -> None:
    value, truncated = parse_output("x" * 100 + "RESULT", 6, keep_end=True)
    assert (value, truncated) == ("RESULT", True)
