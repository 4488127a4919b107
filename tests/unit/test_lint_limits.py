"""`jobchain lint` refuses what the API server refuses (defect 15), and hostile YAML gets one line.

The schema limits come from the models (one source with the CRD); the YAML limits from
`cli.yaml_input`. The e2e test `test_lint_agrees_with_the_api_server` checks the same
table against a real API server.
"""

from __future__ import annotations

import io
import time
from pathlib import Path
from typing import Any

import pytest
import yaml

from jobchain.api import limits
from jobchain.api.crd import workflow_crd
from jobchain.cli import workflow_file, yaml_input
from jobchain.cli.errors import CliError
from jobchain.cli.main import main
from tests.support import alias_bomb_lines
from tests.unit.builders import lint_text

HEADER = "apiVersion: jobchain.dev/v1alpha1\nkind: Workflow\nmetadata: {name: w}\nspec:\n  nodes:\n"


def node_yaml(extra: str = "", script: bool = True) -> str:
    return HEADER + "  - name: a\n    image: busybox\n" + ("    script: echo\n" if script else "") + extra


def workflow_yaml(**node: Any) -> str:
    body = {"apiVersion": "jobchain.dev/v1alpha1", "kind": "Workflow", "metadata": {"name": "w"},
            "spec": {"nodes": [{"name": "a", "image": "busybox", **node}, {"name": "b", "image": "busybox"}]}}
    return yaml.safe_dump(body)


# (id, file text, text of the one problem, or None when it must lint clean)
SCHEMA_TABLE: list[tuple[str, str, str | None]] = [
    ("args at the limit", workflow_yaml(command=["echo"], args=["x"] * limits.MAX_ARGS), None),
    ("args over", workflow_yaml(command=["echo"], args=["x"] * (limits.MAX_ARGS + 1)),
     "spec.nodes[0].args: List should have at most 200 items"),
    ("command over", workflow_yaml(command=["x"] * (limits.MAX_COMMAND + 1)),
     "spec.nodes[0].command: List should have at most 100 items"),
    ("env over", workflow_yaml(script="true", env=[{"name": f"E{i}", "value": "v"} for i in range(101)]),
     "spec.nodes[0].env: List should have at most 100 items"),
    ("next over", workflow_yaml(script="true", next=[{"node": "b"}] * 101),
     "spec.nodes[0].next: List should have at most 100 items"),
    ("when over", workflow_yaml(script="true", next=[{"node": "b", "type": "condition", "when": "true" + " " * 1021}]),
     "spec.nodes[0].next[0].when: String should have at most 1024 characters"),
    ("script over", workflow_yaml(script="x" * (limits.MAX_TEXT + 1)),
     "spec.nodes[0].script: String should have at most 65536 characters"),
    ("timeout over int32", workflow_yaml(script="true", timeoutSeconds=2**31),
     "spec.nodes[0].timeoutSeconds: Input should be less than or equal to 2147483647"),
]


@pytest.mark.parametrize(("text", "expected"), [c[1:] for c in SCHEMA_TABLE], ids=[c[0] for c in SCHEMA_TABLE])
def test_lint_refuses_what_the_schema_refuses(tmp_path: Path, text: str, expected: str | None) -> None:
    code, out = lint_text(tmp_path, text)
    if expected is None:
        assert (code, out) == (0, "ok: 1 object(s) in 1 file(s)\n")
    else:
        assert code == 1
        assert f"Workflow/w: {expected}" in out


def test_the_list_limits_are_in_the_crd_because_they_are_in_the_model() -> None:
    node = workflow_crd()["spec"]["versions"][0]["schema"]["openAPIV3Schema"]["properties"]["spec"][
        "properties"]["nodes"]["items"]["properties"]
    assert (node["args"]["maxItems"], node["command"]["maxItems"], node["env"]["maxItems"],
            node["next"]["maxItems"]) == (200, 100, 100, 100)
    assert node["next"]["items"]["properties"]["when"]["maxLength"] == limits.MAX_WHEN
    assert node["script"]["maxLength"] == node["args"]["items"]["maxLength"] == limits.MAX_TEXT


def bomb(levels: int = 9) -> str:
    lines = alias_bomb_lines(levels)
    return node_yaml("    podTemplate:\n" + "".join(f"      {line}\n" for line in lines))


HOSTILE: list[tuple[str, str, str]] = [
    ("deep flow nesting", node_yaml("    podTemplate: " + "{a: " * 5000 + "1" + "}" * 5000 + "\n"),
     "document 1: line 9, column 399: refused: nested more than 100 levels deep; flatten it"),
    ("deep block nesting", node_yaml("    podTemplate:\n" + "".join("  " * (i + 3) + "a:\n" for i in range(150))
                                     + "  " * 153 + "b: 1\n"),
     "refused: nested more than 100 levels deep"),
    ("alias bomb", bomb(), "refused: its aliases (*name) expand to more than 200000 values"),
    ("5,000-digit integer in an integer field", node_yaml("    timeoutSeconds: " + "9" * 5000 + "\n"),
     "Workflow/w: spec.nodes[0].timeoutSeconds: "),
    ("30-digit integer in an integer field", node_yaml("    timeoutSeconds: " + "9" * 30 + "\n"),
     "Workflow/w: spec.nodes[0].timeoutSeconds: "),
    ("a podTemplate deeper than the operator takes",
     node_yaml("    podTemplate: " + "{a: " * 40 + "1" + "}" * 40 + "\n"),
     "Workflow/w: spec.nodes[0].podTemplate: nested deeper than 32 levels"),
]


@pytest.mark.parametrize(("text", "expected"), [c[1:] for c in HOSTILE], ids=[c[0] for c in HOSTILE])
def test_hostile_yaml_gets_one_line_at_once(tmp_path: Path, text: str, expected: str,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "wf.yaml"
    path.write_text(text)
    start = time.process_time()
    code = main(["lint", str(path)])
    spent = time.process_time() - start
    out, err = capsys.readouterr()
    assert code == 1, err  # a problem in the file, not 5 ("a bug in jobchain")
    assert err == ""
    lines = out.splitlines()
    assert len(lines) == 2 and expected in lines[0] and lines[1].startswith("1 problem(s)")
    assert spent < 2.0, f"{spent:.2f} CPU-s"


def test_run_file_refuses_an_alias_bomb_at_once(tmp_path: Path) -> None:
    """Lint passed it in 0.5 s; `run FILE` then expanded it for 30 s (and gigabytes) before sending."""
    path = tmp_path / "wf.yaml"
    path.write_text(bomb())
    start = time.process_time()
    with pytest.raises(CliError) as caught:
        workflow_file.execution_from_file(str(path), {}, None, io.StringIO())
    assert caught.value.code == 3
    assert "expand to more than 200000 values" in caught.value.message
    assert time.process_time() - start < 2.0


def test_few_aliases_are_fine(tmp_path: Path) -> None:
    text = HEADER + ("  - name: a\n    image: busybox\n    script: echo\n    env: &env [{name: A, value: '1'}]\n"
                     "  - name: b\n    image: busybox\n    script: echo\n    env: *env\n")
    assert lint_text(tmp_path, text) == (0, "ok: 1 object(s) in 1 file(s)\n")


@pytest.mark.parametrize(("literal", "value"), [
    ("12", 12),
    ("-9223372036854775808", -(2**63)),
    ("9223372036854775807", 2**63 - 1),
    ("9" * 30, 1e30),  # beyond int64: a number, as kubectl converts it
    ("9" * 5000, "9" * 5000),  # beyond a float too: kubectl sends the text
    ("0x1F", 31),
    ("1_000", 1000),
])
def test_integers_are_read_as_kubectl_reads_them(literal: str, value: Any) -> None:
    assert list(yaml_input.load_all(f"v: {literal}")) == [{"v": value}]


def test_a_self_referring_alias_is_refused() -> None:
    with pytest.raises(yaml_input.RefusedYaml):
        list(yaml_input.load_all("a: &x [*x]"))
