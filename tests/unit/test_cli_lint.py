"""`jobchain lint`: each rule on a good and a bad file, the output format, multi-doc, stdin, exit codes."""

from __future__ import annotations

import io
import re
import textwrap
from pathlib import Path

import pytest

from jobchain.cli.lint import lint_paths, run_lint

GOOD_WORKFLOW = """\
apiVersion: jobchain.dev/v1alpha1
kind: Workflow
metadata:
  name: etl
spec:
  params:
    - name: size
      default: "3"
    - name: target
  defaults:
    image: busybox:1.36
  nodes:
    - name: extract
      script: 'echo {"count": $(params.size)} > $JOBCHAIN_OUTPUT'
      next:
        - node: transform
        - node: notify
          type: failure
    - name: transform
      script: echo $(input.count) $(nodes.extract.output.count)
      next:
        - node: load
          type: condition
          when: output.count > 0
    - name: load
      script: echo load to $(params.target)
      next:
        - node: notify
          type: always
    - name: notify
      join: any
      script: echo done
"""

GOOD_EXECUTION = """\
apiVersion: jobchain.dev/v1alpha1
kind: WorkflowExecution
metadata:
  generateName: etl-
spec:
  workflowRef:
    name: etl
  params:
    target: db
"""

LINE = re.compile(r"^(?P<file>[^:]+): (?P<obj>[^:]+): (?P<path>[^:]+): (?P<message>.+)$")


def write(tmp_path: Path, name: str, text: str) -> str:
    path = tmp_path / name
    path.write_text(textwrap.dedent(text))
    return str(path)


def lint(*paths: str, stdin: str = "") -> tuple[int, list[str]]:
    out = io.StringIO()
    code = run_lint(list(paths), out, io.StringIO(stdin))
    lines = out.getvalue().splitlines()
    return code, lines[:-1]  # the last line is the summary


def one_problem(tmp_path: Path, text: str) -> re.Match[str]:
    code, lines = lint(write(tmp_path, "wf.yaml", text))
    assert code == 1, lines
    assert len(lines) == 1, lines
    match = LINE.match(lines[0])
    assert match, lines[0]
    return match


def workflow(nodes: str, extra: str = "") -> str:
    """A Workflow named w with the given (already indented) nodes."""
    return (
        "apiVersion: jobchain.dev/v1alpha1\nkind: Workflow\nmetadata:\n  name: w\nspec:\n"
        + extra
        + "  nodes:\n"
        + textwrap.indent(textwrap.dedent(nodes), "    ")
    )


def test_good_files_lint_clean_with_exit_0(tmp_path: Path) -> None:
    out = io.StringIO()
    code = run_lint([write(tmp_path, "etl.yaml", GOOD_WORKFLOW + "---\n" + GOOD_EXECUTION)], out)
    assert code == 0
    assert out.getvalue() == "ok: 2 object(s) in 1 file(s)\n"


@pytest.mark.parametrize(
    ("nodes", "path", "message"),
    [
        (  # a typo is an unknown field
            "- name: a\n  image: busybox\n  scrpit: echo\n",
            "spec.nodes[0].scrpit",
            "unknown field",
        ),
        (  # `on:` is read as boolean true by YAML 1.1
            "- name: a\n  image: busybox\n  next:\n    - node: b\n      on: failure\n- name: b\n  image: busybox\n",
            "spec.nodes[0].next[0]",
            "`on:` is not a field",
        ),
        (  # names are DNS labels
            "- name: Bad_Name\n  image: busybox\n",
            "spec.nodes[0].name",
            "String should match pattern",
        ),
        (
            "- name: a\n  image: busybox\n- name: a\n  image: busybox\n",
            "spec.nodes[1].name",
            "duplicate node name 'a'",
        ),
        (
            "- name: a\n  image: busybox\n  next:\n    - node: nope\n",
            "spec.nodes[0].next[0].node",
            "edge to unknown node 'nope'",
        ),
        (
            "- name: a\n  image: busybox\n  next: [{node: b}]\n- name: b\n  image: busybox\n  next: [{node: a}]\n",
            "spec.nodes",
            "cycle: a -> b -> a",
        ),
        (
            "- name: a\n  script: echo\n",
            "spec.nodes[0].image",
            "no image",
        ),
        (
            "- name: a\n  image: busybox\n  script: echo\n  command: [echo]\n",
            "spec.nodes[0]",
            "either script or command/args",
        ),
        (
            "- name: a\n  image: busybox\n  next: [{node: b, type: condition}]\n- name: b\n  image: busybox\n",
            "spec.nodes[0].next[0].when",
            "needs `when`",
        ),
        (
            "- name: a\n  image: busybox\n  next: [{node: b, when: 'true'}]\n- name: b\n  image: busybox\n",
            "spec.nodes[0].next[0].when",
            "only goes with type: condition",
        ),
        (  # CEL is compiled
            "- name: a\n  image: busybox\n  next: [{node: b, type: condition, when: 'output.x >'}]\n"
            "- name: b\n  image: busybox\n",
            "spec.nodes[0].next[0].when",
            "CEL does not compile",
        ),
        (
            "- name: a\n  image: busybox\n  script: echo $(params.nope)\n",
            "spec.nodes[0].script",
            "unknown param",
        ),
        (
            "- name: a\n  image: busybox\n  script: echo $(nodes.b.output)\n  next: [{node: b}]\n"
            "- name: b\n  image: busybox\n",
            "spec.nodes[0].script",
            "does not run before 'a'",
        ),
        (
            "- name: a\n  image: busybox\n  args: [$(input.x)]\n",
            "spec.nodes[0].args[0]",
            "start node and has no input",
        ),
    ],
)
def test_each_rule_reports_the_field_of_the_problem(tmp_path: Path, nodes: str, path: str, message: str) -> None:
    match = one_problem(tmp_path, workflow(nodes))
    assert match["file"].endswith("wf.yaml")
    assert match["obj"] == "Workflow/w"
    assert match["path"] == path
    assert message in match["message"]


def test_a_workflow_without_nodes_is_reported(tmp_path: Path) -> None:
    text = "apiVersion: jobchain.dev/v1alpha1\nkind: Workflow\nmetadata: {name: w}\nspec: {params: []}\n"
    match = one_problem(tmp_path, text)
    assert (match["path"], match["message"]) == ("spec.nodes", "required field is missing")


@pytest.mark.parametrize(
    ("header", "obj", "path", "message"),
    [
        # a kind of our group we do not know is a typo (a ConfigMap is skipped: test_lint_inputs.py)
        ("apiVersion: jobchain.dev/v1alpha1\nkind: Workflw\nmetadata: {name: c}\n", "Workflw/c", "kind",
         "unknown kind"),
        ("apiVersion: jobchain.dev/v1\nkind: Workflow\nmetadata: {name: w}\n", "Workflow/w", "apiVersion",
         "set apiVersion: jobchain.dev/v1alpha1"),
        ("apiVersion: jobchain.dev/v1alpha1\nkind: Workflow\nmetadata: {}\n", "Workflow/(no name)",
         "metadata.name", "required field is missing"),
        ("apiVersion: jobchain.dev/v1alpha1\nmetadata: {name: w}\n", "document 1", "kind", "required field"),
    ],
)
def test_object_headers_are_checked(tmp_path: Path, header: str, obj: str, path: str, message: str) -> None:
    text = header
    if "kind: Workflow" in header:
        text += "spec:\n  nodes:\n    - {name: a, image: busybox}\n"
    match = one_problem(tmp_path, text)
    assert (match["obj"], match["path"]) == (obj, path)
    assert message in match["message"]


def test_execution_with_an_inline_workflow_is_validated_with_its_path(tmp_path: Path) -> None:
    text = """\
        apiVersion: jobchain.dev/v1alpha1
        kind: WorkflowExecution
        metadata: {name: run-1}
        spec:
          workflow:
            nodes:
              - name: a
                image: busybox
                next: [{node: ghost}]
    """
    match = one_problem(tmp_path, text)
    assert match["obj"] == "WorkflowExecution/run-1"
    assert match["path"] == "spec.workflow.nodes[0].next[0].node"


def test_execution_params_are_checked_against_a_workflow_in_the_files(tmp_path: Path) -> None:
    wf = write(tmp_path, "wf.yaml", GOOD_WORKFLOW)
    ex = write(tmp_path, "ex.yaml", GOOD_EXECUTION.replace("target: db", "sise: '4'"))
    code, lines = lint(wf, ex)
    assert code == 1
    assert lines == [
        f"{ex}: WorkflowExecution/etl-*: spec.params.sise: Workflow 'etl' does not declare this param "
        "(did you mean 'size'?) (declared: size, target)",
        f"{ex}: WorkflowExecution/etl-*: spec.params: must set 'target': Workflow 'etl' declares it without a default",
    ]


def test_execution_of_a_workflow_not_in_the_files_is_checked_alone(tmp_path: Path) -> None:
    code, lines = lint(write(tmp_path, "ex.yaml", GOOD_EXECUTION.replace("name: etl", "name: elsewhere")))
    assert (code, lines) == (0, [])


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("  params: {a: b}\n", "set workflowRef.name"),
        ("  workflowRef: {name: w}\n  workflow: {nodes: [{name: a, image: busybox}]}\n", "not both"),
        ("  workflowRef: {name: w}\n  cancle: true\n", "unknown field"),
    ],
)
def test_each_mistake_in_an_execution_spec_is_named(tmp_path: Path, spec: str, message: str) -> None:
    text = "apiVersion: jobchain.dev/v1alpha1\nkind: WorkflowExecution\nmetadata: {name: x}\nspec:\n" + spec
    match = one_problem(tmp_path, text)
    assert message in match["message"]


def test_multi_document_file_names_each_object(tmp_path: Path) -> None:
    bad = workflow("- name: a\n  image: busybox\n  next: [{node: nope}]\n").replace("name: w", "name: second")
    path = write(tmp_path, "all.yaml", GOOD_WORKFLOW + "---\n" + bad + "---\n" + GOOD_EXECUTION)
    code, lines = lint(path)
    assert code == 1
    assert lines == [f"{path}: Workflow/second: spec.nodes[0].next[0].node: edge to unknown node 'nope' (nodes: a)"]


def test_yaml_syntax_error_names_document_line_and_column(tmp_path: Path) -> None:
    path = write(tmp_path, "broken.yaml", GOOD_WORKFLOW + "---\nkind: Workflow\nspec: [\n")
    code, lines = lint(path)
    assert code == 1
    assert len(lines) == 1
    end = GOOD_WORKFLOW.count("\n") + 4  # the end of the file, after `spec: [`, counted over the whole file
    assert lines[0].startswith(f"{path}: document 2: line {end}, column 1: not valid YAML:")


def test_a_document_that_is_not_a_mapping(tmp_path: Path) -> None:
    match = one_problem(tmp_path, "- just\n- a list\n")
    assert (match["obj"], match["path"]) == ("document 1", "(top level)")


def test_stdin_is_read_for_dash(tmp_path: Path) -> None:
    code, lines = lint("-", stdin=workflow("- name: a\n  script: echo\n"))
    assert code == 1
    assert lines == ["<stdin>: Workflow/w: spec.nodes[0].image: no image: set it on the node or in spec.defaults.image"]


def test_kubectl_list_items_are_linted_one_by_one(tmp_path: Path) -> None:
    text = "apiVersion: v1\nkind: List\nitems:\n" + textwrap.indent(
        "- apiVersion: jobchain.dev/v1alpha1\n  kind: Workflow\n  metadata: {name: x}\n  spec: {nodes: []}\n", "  "
    )
    match = one_problem(tmp_path, text)
    assert (match["obj"], match["path"]) == ("Workflow/x", "spec.nodes")


def test_unreadable_file_is_reported_and_exits_3_after_the_others(tmp_path: Path) -> None:
    good = write(tmp_path, "good.yaml", GOOD_WORKFLOW)
    missing = str(tmp_path / "missing.yaml")
    report = lint_paths([missing, good])
    assert report.exit_code == 3
    assert [str(p) for p in report.problems] == [f"{missing}: cannot read: No such file or directory"]
    assert report.objects == 1


def test_empty_documents_are_ignored(tmp_path: Path) -> None:
    code, lines = lint(write(tmp_path, "e.yaml", "---\n---\n" + GOOD_WORKFLOW + "---\n"))
    assert (code, lines) == (0, [])
