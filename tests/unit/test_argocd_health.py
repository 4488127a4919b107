"""Argo CD health checks (argocd/health/<group>/<Kind>/health.lua) run as Argo CD runs them.

Argo CD evaluates these scripts with gopher-lua, a Lua 5.1: here the real Lua 5.1 from lupa
runs each one against every object in its health_test.yaml, with the object converted the way
Argo CD converts it (maps and lists become tables, lists 1-indexed, nulls absent), and the
result must match the expected status and message. Also checks that the argocd-cm snippet
carries exactly these scripts, so what users paste is what was tested here.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.support import to_lua

lua51 = pytest.importorskip("lupa.lua51", reason="lupa (dev extra) runs the Lua health checks")

ROOT = Path(__file__).resolve().parents[2]
HEALTH = ROOT / "argocd" / "health"
CM_PATCH = ROOT / "argocd" / "argocd-cm-patch.yaml"
ARGOCD_STATUSES = {"Healthy", "Progressing", "Degraded", "Suspended", "Missing", "Unknown"}
KINDS = sorted(p.parent for p in HEALTH.glob("*/*/health.lua"))


def _cases() -> list[Any]:
    cases = []
    for kind_dir in KINDS:
        tests = yaml.safe_load((kind_dir / "health_test.yaml").read_text())["tests"]
        for test in tests:
            case_id = f"{kind_dir.name}/{Path(test['inputPath']).stem}"
            cases.append(pytest.param(kind_dir, test, id=case_id))
    return cases


def _assess(script: str, obj: dict[str, Any]) -> dict[str, Any]:
    runtime = lua51.LuaRuntime(unpack_returned_tuples=True)
    runtime.globals().obj = to_lua(runtime, obj)
    result = runtime.execute(script)
    assert result is not None, "the script must return a table"
    return {k: result[k] for k in ("status", "message") if result[k] is not None}


def test_every_kind_has_a_health_check() -> None:
    assert [f"{p.parent.name}/{p.name}" for p in KINDS] == [
        "jobchain.dev/Workflow",
        "jobchain.dev/WorkflowExecution",
        "jobchain.dev/WorkflowSchedule",
    ]


@pytest.mark.parametrize(("kind_dir", "test"), _cases())
def test_health_matches_expectation(kind_dir: Path, test: dict[str, Any]) -> None:
    obj = yaml.safe_load((kind_dir / test["inputPath"]).read_text())
    assert obj["kind"] == kind_dir.name, f"{test['inputPath']} is not a {kind_dir.name}"
    health = _assess((kind_dir / "health.lua").read_text(), obj)
    assert health["status"] in ARGOCD_STATUSES
    assert health == test["healthStatus"]


def test_every_testdata_file_is_used() -> None:
    for kind_dir in KINDS:
        used = {t["inputPath"] for t in yaml.safe_load((kind_dir / "health_test.yaml").read_text())["tests"]}
        present = {str(p.relative_to(kind_dir)) for p in (kind_dir / "testdata").glob("*.yaml")}
        assert present == used, f"{kind_dir}: testdata and health_test.yaml disagree"


def test_argocd_cm_patch_carries_the_tested_scripts() -> None:
    cm = yaml.safe_load(CM_PATCH.read_text())
    assert cm["kind"] == "ConfigMap" and cm["metadata"]["name"] == "argocd-cm"
    expected = {
        f"resource.customizations.health.{p.parent.name}_{p.name}": (p / "health.lua").read_text() for p in KINDS
    }
    assert cm["data"] == expected, "argocd/argocd-cm-patch.yaml is stale: run hack/sync-manifests.sh"
