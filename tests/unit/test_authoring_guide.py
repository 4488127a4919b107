"""docs/authoring.md promises that every YAML block on it lints clean: what a user copies from the guide
is accepted by the API server and the operator. Each block is linted as `jobchain lint` would."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.unit.builders import lint_text

GUIDE = Path(__file__).resolve().parents[2] / "docs" / "authoring.md"
BLOCKS = re.findall(r"```yaml\n(.*?)```", GUIDE.read_text(), re.S)


def test_the_guide_has_its_patterns() -> None:
    assert len(BLOCKS) >= 6, "ETL, notify-and-still-fail, fan-out, gate, nightly with a secret, retry"


@pytest.mark.parametrize("block", BLOCKS, ids=[f"block-{i}" for i in range(len(BLOCKS))])
def test_every_yaml_block_of_the_guide_lints_clean(tmp_path: Path, block: str) -> None:
    code, printed = lint_text(tmp_path, block)
    assert code == 0, printed
    assert printed.splitlines()[-1].startswith("ok: "), printed
