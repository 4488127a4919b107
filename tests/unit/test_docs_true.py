"""What the docs say about the project's own output stays true: the `jobchain lint` lines they show,
the CRDs they list (install table, uninstall commands, NOTES.txt), the metrics they name.

Why a test: each of these went stale once (a fourth example file, a third CRD the documented
uninstall left behind, two metrics nobody documented) while the code was right.
"""

from __future__ import annotations

import glob
import io
import re
import shlex
from pathlib import Path

import pytest
import yaml

from jobchain.cli.lint import run_lint

ROOT = Path(__file__).resolve().parents[2]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
CRDS = sorted(yaml.safe_load(p.read_text())["metadata"]["name"] for p in (ROOT / "crds").glob("*.yaml"))
NUMBERS = {2: "two", 3: "three", 4: "four", 5: "five"}


def shown_lint_runs() -> list[tuple[str, list[str], list[str]]]:
    """(doc, arguments, output lines) of every `$ jobchain lint ...` shown on files of the repository."""
    runs = []
    for doc in DOCS:
        lines = doc.read_text().splitlines()
        for i, line in enumerate(lines):
            if not line.startswith("$ jobchain lint "):
                continue
            args = shlex.split(line.removeprefix("$ jobchain lint "))
            paths = [p for a in args for p in (sorted(glob.glob(a, root_dir=ROOT)) if "*" in a else [a])]
            if not paths or not all((ROOT / p).exists() for p in paths):
                continue  # a made-up file (report.yaml) shown for its messages
            output = []
            for later in lines[i + 1:]:
                if later.startswith(("$ ", "```")):
                    break
                output.append(later)
            while output and not output[-1]:
                output.pop()
            runs.append((doc.name, paths, output))
    return runs


def test_some_lint_runs_are_shown() -> None:
    assert {doc for doc, _, _ in shown_lint_runs()} >= {"README.md", "cli.md"}


@pytest.mark.parametrize(("doc", "paths", "shown"), shown_lint_runs(),
                         ids=lambda v: v if isinstance(v, str) else None)
def test_the_lint_output_the_docs_show_is_the_real_one(doc: str, paths: list[str], shown: list[str],
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    out = io.StringIO()
    run_lint(paths, out, io.StringIO())
    assert out.getvalue().splitlines() == shown, f"{doc} shows another output for jobchain lint {' '.join(paths)}"


def test_every_crd_is_named_wherever_the_crds_are_listed() -> None:
    assert len(CRDS) >= 3
    install = (ROOT / "docs" / "install.md").read_text()
    notes = (ROOT / "charts" / "jobchain" / "templates" / "NOTES.txt").read_text()
    for where, text in (("docs/install.md", install), ("NOTES.txt", notes)):
        for command in re.findall(r"kubectl delete crd ([^`\n]+)", text):
            assert sorted(command.split()) == CRDS, f"{where}: `kubectl delete crd {command}` leaves CRDs behind"
    (row,) = [line for line in install.splitlines() if line.startswith("| CRDs ")]
    assert sorted(re.findall(r"`([a-z.]+)`", row)) == CRDS
    assert f"{NUMBERS[len(CRDS)]} CRDs" in install
    charts = (ROOT / "charts" / "jobchain" / "files" / "crds")
    assert sorted(yaml.safe_load(p.read_text())["metadata"]["name"] for p in charts.glob("*.yaml")) == CRDS
    kinds = [yaml.safe_load(p.read_text())["spec"]["names"]["kind"] for p in (ROOT / "crds").glob("*.yaml")]
    chart = (ROOT / "charts" / "jobchain" / "Chart.yaml").read_text()
    values = (ROOT / "charts" / "jobchain" / "values.yaml").read_text()
    for kind in kinds:
        assert kind in yaml.safe_load(chart)["description"], f"Chart.yaml's description omits {kind}"
        assert kind in values.split("crds:", 1)[1].split("install:", 1)[0], f"values.yaml's crds comment omits {kind}"


def test_every_metric_of_the_operator_is_documented_in_install_md() -> None:
    code = "".join(p.read_text() for p in (ROOT / "operator" / "jobchain").rglob("*.py"))
    metrics = set(re.findall(r'(?:Counter|Gauge|Histogram|Summary)\(\s*"(jobchain_[a-z_]+)"', code))
    assert len(metrics) > 5
    install = (ROOT / "docs" / "install.md").read_text()
    assert sorted(m for m in metrics if m not in install) == []


def test_the_changelog_has_the_version_of_pyproject() -> None:
    import tomllib

    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert f"## [{version}]" in (ROOT / "CHANGELOG.md").read_text()
    assert "Apache License" in (ROOT / "LICENSE").read_text().split("\n", 3)[1]
