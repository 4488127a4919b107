"""examples/gitops/ as CI sees it: `jobchain lint` passes on every jobchain object there, the hook
execution is one Argo CD can create (generateName, hook annotations), and lint knows the schedule kind."""

from __future__ import annotations

from pathlib import Path

import yaml

from jobchain.cli.lint import lint_paths
from jobchain.cli.main import main

ROOT = Path(__file__).resolve().parents[2]
GITOPS = ROOT / "examples" / "gitops"
JOBCHAIN_FILES = sorted(str(p) for p in GITOPS.rglob("*.yaml") if p.name != "application.yaml")


def test_jobchain_lint_passes_on_the_gitops_examples() -> None:
    assert len(JOBCHAIN_FILES) == 2
    report = lint_paths(JOBCHAIN_FILES)
    assert report.problems == [], report.problems
    assert report.objects == 3
    assert main(["lint", *JOBCHAIN_FILES]) == 0


def test_the_hook_execution_has_the_generate_name_and_hook_annotations_argo_cd_needs() -> None:
    hook = yaml.safe_load((GITOPS / "hooks" / "smoke-test.yaml").read_text())
    assert hook["kind"] == "WorkflowExecution"
    assert hook["metadata"]["generateName"] and "name" not in hook["metadata"]
    notes = hook["metadata"]["annotations"]
    assert notes["argocd.argoproj.io/hook"] == "PostSync"
    assert notes["argocd.argoproj.io/hook-delete-policy"] == "BeforeHookCreation"
    app = yaml.safe_load((GITOPS / "application.yaml").read_text())
    assert app["spec"]["source"]["path"] == "examples/gitops" and app["spec"]["source"]["directory"]["recurse"]


def test_lint_finds_what_the_operator_would_refuse_in_a_schedule(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump_all([
        {"apiVersion": "jobchain.dev/v1alpha1", "kind": "Workflow", "metadata": {"name": "w"},
         "spec": {"params": [{"name": "day"}], "nodes": [{"name": "a", "image": "busybox", "script": "true"}]}},
        {"apiVersion": "jobchain.dev/v1alpha1", "kind": "WorkflowSchedule", "metadata": {"name": "s"},
         "spec": {"schedule": "@every 5s", "timeZone": "Mars/Olympus",
                  "executionTemplate": {"workflowRef": {"name": "w"}, "params": {"dya": "1"}}}},
    ]))
    problems = [f"{p.path}: {p.message}" for p in lint_paths([str(bad)]).problems]
    assert any(p.startswith("spec.timeZone: ") and "Mars/Olympus" in p for p in problems), problems
    assert any(p.startswith("spec.executionTemplate.params.dya: ") for p in problems), problems
    assert any(p.startswith("spec.executionTemplate.params: ") and "'day'" in p for p in problems), problems
