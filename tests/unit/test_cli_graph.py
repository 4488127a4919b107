"""`jobchain graph`: the three formats, with and without node phases, and drawing from files."""

from __future__ import annotations

import io
import textwrap
from pathlib import Path

import pytest

from jobchain.api.models import WorkflowSpec
from jobchain.cli import graphs
from jobchain.cli.commands import draw_graph
from jobchain.cli.errors import CliError

SPEC = WorkflowSpec.model_validate(
    {
        "defaults": {"image": "busybox:1.36"},
        "nodes": [
            {"name": "build", "next": [{"node": "test"}, {"node": "notify", "type": "failure"}]},
            {"name": "test", "next": [{"node": "deploy", "type": "condition", "when": 'output.env == "prod"'}]},
            {"name": "deploy", "next": [{"node": "notify", "type": "always"}]},
            {"name": "notify", "join": "any"},
        ],
    }
)
PHASES = {"build": "Succeeded", "test": "Succeeded", "deploy": "Failed", "notify": "Running"}


def test_text_lists_nodes_with_their_out_edges_and_kinds() -> None:
    assert graphs.render_text(SPEC, title="Workflow/ci") == textwrap.dedent(
        """\
        Workflow/ci
        build   (start)
          -> test [success]
          -> notify [failure]
        test
          -> deploy [condition output.env == "prod"]
        deploy
          -> notify [always]
        notify  (join: any)
        """
    )


def test_text_marks_each_node_phase() -> None:
    text = graphs.render_text(SPEC, {"build": "Succeeded", "test": "Running"})
    lines = text.splitlines()
    assert lines[0] == "build   (Succeeded, start)"
    assert lines[3] == "test    (Running)"
    assert lines[5] == "deploy  (Pending)"  # not in status yet: Pending


def test_mermaid_draws_each_edge_kind_its_own_way_without_phases() -> None:
    text = graphs.render_mermaid(SPEC)
    assert text.splitlines()[0] == "flowchart TD"
    assert '  n0["build"]' in text
    assert '  n0 -->|"success"| n1' in text
    assert '  n0 -.->|"failure"| n3' in text  # failure edges are dotted
    assert '  n1 -->|"condition output.env == #quot;prod#quot;"| n2' in text  # quotes escaped
    assert '  n2 ==>|"always"| n3' in text  # always edges are thick
    assert "classDef" not in text


def test_mermaid_with_phases_colours_nodes_by_class() -> None:
    text = graphs.render_mermaid(SPEC, PHASES, title="WorkflowExecution/ci-x")
    assert text.startswith("---\ntitle: WorkflowExecution/ci-x\n---\nflowchart TD\n")
    assert '  n2["deploy<br/>Failed"]' in text
    assert "  class n0,n1 succeeded" in text
    assert "  class n2 failed" in text
    assert "  classDef running fill:#e3f2fd,stroke:#1e88e5" in text


def test_mermaid_uses_ids_so_keywords_are_safe_as_node_names() -> None:
    spec = WorkflowSpec.model_validate({"nodes": [{"name": "end", "image": "x", "next": [{"node": "graph"}]},
                                                  {"name": "graph", "image": "x"}]})
    text = graphs.render_mermaid(spec)
    assert '  n0["end"]' in text
    assert '  n0 -->|"success"| n1' in text


def test_dot_labels_and_colours_each_edge_kind_without_phases() -> None:
    text = graphs.render_dot(SPEC, title="Workflow/ci")
    assert text.startswith('digraph "Workflow/ci" {\n')
    assert '  "build";' in text
    assert '  "build" -> "notify" [label="failure", style=dashed, color="#e53935"];' in text
    assert '  "test" -> "deploy" [label="condition output.env == \\"prod\\"", style=solid, color="#1e88e5"];' in text
    assert text.endswith("}\n")


def test_dot_with_phases_fills_nodes() -> None:
    text = graphs.render_dot(SPEC, PHASES)
    assert '  "deploy" [label="deploy\\nFailed", style="rounded,filled", fillcolor="#ffebee", color="#e53935"];' in text


@pytest.mark.parametrize("fmt", graphs.FORMATS)
def test_edges_to_unknown_nodes_are_drawn_and_marked(fmt: str) -> None:
    spec = WorkflowSpec.model_validate({"nodes": [{"name": "a", "image": "x", "next": [{"node": "ghost"}]}]})
    text = graphs.render(spec, fmt)
    assert "ghost" in text
    assert "(unknown node)" in text


EXECUTION_FILE = """\
apiVersion: jobchain.dev/v1alpha1
kind: WorkflowExecution
metadata: {name: ci-abc}
spec:
  workflowRef: {name: ci}
status:
  phase: Running
  workflowSpec:
    defaults: {image: busybox}
    nodes:
      - {name: one, next: [{node: two}]}
      - {name: two}
  nodes:
    - {name: one, phase: Succeeded}
    - {name: two, phase: Running}
"""


def draw(target: str | None, fmt: str = "text", stdin: str = "", execution: str | None = None) -> tuple[str, str]:
    out, err = io.StringIO(), io.StringIO()

    def no_cluster() -> None:
        raise AssertionError("a file is drawn without a cluster")

    assert draw_graph(no_cluster, target, execution, fmt, io.StringIO(stdin), out, err) == 0
    return out.getvalue(), err.getvalue()


def test_graph_of_an_execution_file_marks_phases(tmp_path: Path) -> None:
    path = tmp_path / "run.yaml"
    path.write_text(EXECUTION_FILE)
    out, err = draw(str(path))
    assert out == "WorkflowExecution/ci-abc\none  (Succeeded, start)\n  -> two [success]\ntwo  (Running)\n"
    assert err == ""


def test_graph_of_a_workflow_from_stdin_in_dot() -> None:
    workflow = "apiVersion: jobchain.dev/v1alpha1\nkind: Workflow\nmetadata: {name: w}\nspec:\n" \
               "  nodes: [{name: a, image: x, next: [{node: b}]}, {name: b, image: x}]\n"
    out, _ = draw("-", "dot", stdin=workflow)
    assert '"a" -> "b" [label="success"' in out


def test_graph_of_an_invalid_workflow_is_drawn_with_a_warning(tmp_path: Path) -> None:
    path = tmp_path / "cycle.yaml"
    path.write_text("apiVersion: jobchain.dev/v1alpha1\nkind: Workflow\nmetadata: {name: w}\nspec:\n"
                    "  nodes: [{name: a, image: x, next: [{node: b}]}, {name: b, image: x, next: [{node: a}]}]\n")
    out, err = draw(str(path))
    assert "a\n  -> b [success]\nb\n  -> a [success]\n" in out
    assert err.startswith("warning: Workflow/w has 1 problem(s), e.g. spec.nodes: cycle: a -> b -> a")


def test_graph_of_an_execution_referring_to_a_workflow_elsewhere_says_what_to_do(tmp_path: Path) -> None:
    path = tmp_path / "ex.yaml"
    path.write_text("apiVersion: jobchain.dev/v1alpha1\nkind: WorkflowExecution\nmetadata: {name: e}\n"
                    "spec: {workflowRef: {name: ci}}\n")
    with pytest.raises(CliError) as caught:
        draw(str(path))
    assert caught.value.code == 3
    assert "refers to Workflow 'ci', which is not in the file" in caught.value.message


def test_graph_of_a_missing_file_path_is_a_usage_error() -> None:
    with pytest.raises(CliError) as caught:
        draw("nowhere/wf.yaml")
    assert (caught.value.code, caught.value.message) == (3, "nowhere/wf.yaml: no such file")
