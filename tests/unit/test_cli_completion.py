"""`jobchain completion bash|zsh|fish` and `--version`: the scripts come from the parser, so every
subcommand and option is in them; bash's is run to check that it completes what a user types."""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import tomllib
from pathlib import Path

import pytest

import jobchain
from jobchain.cli import completion
from jobchain.cli.main import build_parser

ROOT = Path(__file__).resolve().parents[2]


def subcommands() -> list[str]:
    parser = build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    return list(sub.choices)


@pytest.mark.parametrize("shell", ["bash", "zsh", "fish"])
def test_every_subcommand_is_in_every_script(shell: str) -> None:
    text = completion.script(build_parser(), shell)
    names = subcommands()
    assert {"wait", "delete", "completion", "lint", "run"} <= set(names)
    for name in names:
        assert name in text, f"{name} missing from the {shell} script"


def complete(words: str) -> list[str]:
    """What bash offers for the command line `words` (the last word is the one being completed)."""
    script = completion.script(build_parser(), "bash")
    line = words.split(" ")
    program = (script + f"\nCOMP_WORDS=({' '.join(repr(w) for w in line)}); COMP_CWORD={len(line) - 1}\n"
               "_jobchain_complete; printf '%s\\n' \"${COMPREPLY[@]}\"\n")
    with tempfile.TemporaryDirectory() as empty:  # no file names among the answers
        result = subprocess.run(["bash", "-c", program], capture_output=True, text=True, check=True, cwd=empty)
    return [w for w in result.stdout.splitlines() if w]


@pytest.mark.skipif(shutil.which("bash") is None, reason="no bash")
def test_bash_completes_commands_options_and_choices() -> None:
    assert complete("jobchain wa") == ["wait"]
    assert sorted(complete("jobchain d")) == ["dashboard", "delete", "deny"]
    assert complete("jobchain wait e1 --f") == ["--for"]
    assert complete("jobchain wait e1 --for S") == ["Succeeded"]
    assert complete("jobchain graph wf --format s") == ["svg"]
    assert complete("jobchain list w") == ["workflows"]
    assert "--deadline" in complete("jobchain run wf --")


def test_a_new_subcommand_is_completed_without_touching_the_generator() -> None:
    parser = build_parser()
    (sub,) = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    sub.add_parser("frobnicate", help="new").add_argument("--level", choices=("low", "high"))
    for shell in ("bash", "zsh", "fish"):
        text = completion.script(parser, shell)
        assert "frobnicate" in text and "level" in text and "high" in text


def test_version_is_pyproject_s_and_printed_by_version_flag() -> None:
    declared = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert jobchain.__version__ == declared
    result = subprocess.run([sys.executable, "-m", "jobchain.cli.main", "--version"], capture_output=True,
                            text=True, check=False)
    assert (result.returncode, result.stdout) == (0, f"jobchain {declared}\n")
