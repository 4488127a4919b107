"""What `jobchain lint` and `graph FILE` accept: directories, folders holding other kinds (a kustomize
folder), `-o json` for tools, and files with several Workflows."""

from __future__ import annotations

import io
import json
import textwrap
from pathlib import Path

import pytest

from jobchain.cli import commands
from jobchain.cli.errors import CliError
from jobchain.cli.lint import run_lint

WORKFLOW = """\
apiVersion: jobchain.dev/v1alpha1
kind: Workflow
metadata: {{name: {name}}}
spec:
  nodes:
    - {{name: a, image: busybox, script: echo {name}}}
"""
CONFIGMAP = "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: settings}\ndata: {a: b}\n"


def tree(root: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        (root / name).parent.mkdir(parents=True, exist_ok=True)
        (root / name).write_text(textwrap.dedent(text))
    return root


def lint(*paths: str, fmt: str | None = None) -> tuple[int, str]:
    out = io.StringIO()
    return run_lint(list(paths), out, io.StringIO(), fmt), out.getvalue()


def test_a_directory_is_linted_recursively_yaml_and_yml_only(tmp_path: Path) -> None:
    root = tree(tmp_path, {"a.yaml": WORKFLOW.format(name="a"), "sub/b.yml": WORKFLOW.format(name="b"),
                           "sub/deeper/bad.yaml": "apiVersion: jobchain.dev/v1alpha1\nkind: Workflow\n"
                                                  "metadata: {name: c}\nspec: {nodes: []}\n",
                           "README.md": "kind: Workflow: not yaml to lint", ".hidden/x.yaml": "{{{"})
    code, text = lint(str(root))
    assert code == 1
    assert f"{root}/sub/deeper/bad.yaml: Workflow/c: spec.nodes" in text
    assert text.splitlines()[-1] == "1 problem(s); 3 object(s) checked in 3 file(s)"


def test_other_kinds_are_skipped_with_a_note_not_failed(tmp_path: Path) -> None:
    root = tree(tmp_path, {"kustomize/wf.yaml": WORKFLOW.format(name="etl") + "---\n" + CONFIGMAP})
    code, text = lint(str(root / "kustomize"))
    assert code == 0
    assert text.splitlines() == [f"note: {root}/kustomize/wf.yaml: ConfigMap/settings skipped: not a jobchain kind",
                                 "ok: 1 object(s) in 1 file(s)"]


def test_lint_json_lists_problems_as_fields(tmp_path: Path) -> None:
    root = tree(tmp_path, {"wf.yaml": WORKFLOW.format(name="ok") + "---\n" + CONFIGMAP + "---\n"
                           + "apiVersion: jobchain.dev/v1alpha1\nkind: Workflow\nmetadata: {name: bad}\n"
                           "spec: {nodes: []}\n"})
    code, text = lint(str(root / "wf.yaml"), fmt="json")
    assert code == 1
    report = json.loads(text)
    assert report["ok"] is False and (report["objects"], report["files"]) == (2, 1)
    assert report["skipped"] == [f"{root}/wf.yaml: ConfigMap/settings"]
    assert report["problems"] == [{"file": f"{root}/wf.yaml", "object": "Workflow/bad", "path": "spec.nodes",
                                   "message": report["problems"][0]["message"]}]
    assert report["problems"][0]["message"]


def test_a_secret_param_in_when_is_refused(tmp_path: Path) -> None:
    """(This check existed before issue 23: lint refuses it, as the operator does, rather than warning.)"""
    root = tree(tmp_path, {"wf.yaml": """\
        apiVersion: jobchain.dev/v1alpha1
        kind: Workflow
        metadata: {name: s}
        spec:
          params: [{name: token, secret: true}]
          nodes:
            - {name: a, image: busybox, script: x, next: [{node: b, type: condition, when: "params.token == 'x'"}]}
            - {name: b, image: busybox, script: x}
        """})
    code, text = lint(str(root / "wf.yaml"))
    assert code == 1 and "param token is secret, and `when` cannot see secret params" in text


def test_graph_of_a_file_with_several_workflows_asks_for_name(tmp_path: Path) -> None:
    path = tmp_path / "two.yaml"
    path.write_text(WORKFLOW.format(name="first") + "---\n" + WORKFLOW.format(name="second"))
    draw = lambda pick: commands.draw_graph(None, str(path), None, "text", io.StringIO(), out, io.StringIO(),  # noqa: E731
                                            pick)
    out = io.StringIO()
    with pytest.raises(CliError) as caught:
        draw(None)
    assert caught.value.message == (f"{path} holds 2 Workflows (first, second): say which to draw with --name NAME")
    assert draw("second") == 0
    assert "Workflow/second" in out.getvalue()
    with pytest.raises(CliError, match="--name third: no Workflow or WorkflowExecution of that name"):
        draw("third")
