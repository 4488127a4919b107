"""The lock files cover pyproject.toml: hack/venv.sh and the image install only from them, so a
dependency added to pyproject.toml without `make lock` would be missing at import time."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())


def normalized(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def requirement_names(requirements: list[str]) -> set[str]:
    return {normalized(re.split(r"[\s<>=!~;\[(]", r, maxsplit=1)[0]) for r in requirements}


def locked(path: Path) -> dict[str, list[str]]:
    """name -> the hashes of its pinned version."""
    out: dict[str, list[str]] = {}
    name = ""
    for line in path.read_text().splitlines():
        if m := re.match(r"^([A-Za-z0-9][A-Za-z0-9._-]*)==\S+", line):
            name = normalized(m.group(1))
            out[name] = []
        elif m := re.search(r"--hash=sha256:([0-9a-f]{64})", line):
            out[name].append(m.group(1))
    return out


@pytest.mark.parametrize(("lock", "extras"), [("requirements.lock", []), ("requirements-dev.lock", ["dev"])])
def test_every_dependency_is_locked_with_hashes(lock: str, extras: list[str]) -> None:
    wanted = requirement_names(PYPROJECT["project"]["dependencies"])
    for extra in extras:
        wanted |= requirement_names(PYPROJECT["project"]["optional-dependencies"][extra])
    wanted |= requirement_names(PYPROJECT["build-system"]["requires"])
    pins = locked(ROOT / lock)
    missing = sorted(wanted - set(pins))
    assert not missing, f"{lock} lacks {missing}: run `make lock` after changing pyproject.toml"
    unhashed = sorted(n for n, hashes in pins.items() if not hashes)
    assert not unhashed, f"{lock} pins without hashes: {unhashed}"
