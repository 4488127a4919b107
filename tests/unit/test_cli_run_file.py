"""`jobchain run FILE`: the execution built from a workflow file, checked before anything is created."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from jobchain.cli.errors import CliError
from jobchain.cli.workflow_file import execution_from_file, is_file_argument

WORKFLOW = """\
apiVersion: jobchain.dev/v1alpha1
kind: Workflow
metadata: {name: hello}
spec:
  params: [{name: who}]
  defaults: {image: busybox:1.36}
  nodes:
    - {name: greet, script: echo $(params.who)}
"""
EXECUTION = """\
apiVersion: jobchain.dev/v1alpha1
kind: WorkflowExecution
metadata: {generateName: hello-, namespace: elsewhere}
spec:
  workflowRef: {name: hello}
  params: {who: file, other: kept}
status: {phase: Succeeded}
"""


def from_file(tmp_path: Path, text: str, params: dict[str, str] | None = None, timeout: int | None = None) -> dict:
    path = tmp_path / "run.yaml"
    path.write_text(text)
    return execution_from_file(str(path), params or {}, timeout, io.StringIO())


def test_a_workflow_file_runs_inline_with_params_and_timeout(tmp_path: Path) -> None:
    manifest = from_file(tmp_path, WORKFLOW + "---\n" + EXECUTION, {"who": "cli"}, 60)
    assert manifest["metadata"] == {"generateName": "hello-"}
    assert manifest["spec"]["params"] == {"who": "cli"}
    assert manifest["spec"]["timeoutSeconds"] == 60
    assert manifest["spec"]["workflow"]["nodes"] == [{"name": "greet", "script": "echo $(params.who)"}]
    assert "workflowRef" not in manifest["spec"]


def test_an_execution_file_is_created_as_written_without_status_or_namespace(tmp_path: Path) -> None:
    manifest = from_file(tmp_path, EXECUTION, {"who": "cli"})
    assert manifest["metadata"] == {"generateName": "hello-"}
    assert manifest["spec"] == {"workflowRef": {"name": "hello"}, "params": {"who": "cli", "other": "kept"}}
    assert "status" not in manifest


def test_a_missing_param_is_refused_with_the_file_and_field(tmp_path: Path) -> None:
    with pytest.raises(CliError) as caught:
        from_file(tmp_path, WORKFLOW)
    assert caught.value.code == 3
    assert caught.value.message.endswith(
        "run.yaml: spec.params: must set 'who': spec.workflow declares it without a default; "
        f"`jobchain lint {tmp_path / 'run.yaml'}` shows every problem")


def test_an_invalid_workflow_is_refused(tmp_path: Path) -> None:
    with pytest.raises(CliError) as caught:
        from_file(tmp_path, WORKFLOW.replace("echo $(params.who)", "echo $(nodes.ghost.output)"), {"who": "x"})
    assert "spec.workflow.nodes[0].script: $(nodes.ghost.output) names an unknown node" in caught.value.message


def test_a_file_with_two_workflows_is_ambiguous(tmp_path: Path) -> None:
    with pytest.raises(CliError) as caught:
        from_file(tmp_path, WORKFLOW + "---\n" + WORKFLOW.replace("name: hello", "name: other"))
    assert "expected one Workflow (or one WorkflowExecution) to run, found: Workflow/hello, Workflow/other" in (
        caught.value.message)


def test_a_dash_or_an_existing_path_is_a_file_and_a_missing_one_is_said() -> None:
    assert is_file_argument("-")
    assert is_file_argument(__file__)
    assert not is_file_argument("my-workflow")
    with pytest.raises(CliError, match="no such file"):
        is_file_argument("flows/nightly.yaml")
