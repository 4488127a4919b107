"""A reference in `command`/`args` that a shell or an interpreter would run (issue 19, finding 1).

The operand of `-c` of a known shell gets the same rewrite as a `script` (the value is an env
var expansion), so `command: [sh, -c, 'echo "hello $(params.who)"']` prints the value and runs
none of it; a reference in code for another interpreter (python -c, perl -e, node -e, awk's
program) is refused by Workflow validation and `jobchain lint`, with the field path and the fix,
unless written `$(raw:...)`. Words after the code are data and are substituted as before.
"""

from __future__ import annotations

import io
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from jobchain.cli.lint import run_lint
from jobchain.engine.spec.argv import Role, roles
from jobchain.engine.spec.refs import Scope, UnresolvedReference
from jobchain.engine.spec.render import render_job
from jobchain.engine.spec.validation import validate_workflow

from .builders import node, spec
from .shell_support import REF, container_env, kubelet_expand

HOSTILE = ["$(touch pwned)", 'x"; touch pwned; echo "', "'; touch pwned; echo '", "*", "a\nb $$ $(JOBCHAIN_NODE)"]
D, S, C = Role.DATA, Role.SHELL, Role.CODE


@pytest.mark.parametrize(("command", "args", "expected"), [
    (["sh", "-c", "x"], [], [C, C, S]),
    (["/bin/sh"], ["-c", "x", "sh", "a"], [C, C, S, D, D]),
    (["/usr/bin/env", "-i", "A=1", "bash", "-euo", "pipefail", "-c", "x"], [], [C, C, C, C, C, C, C, S]),
    (["busybox", "sh", "-c", "x"], [], [C, C, C, S]),
    (["bash", "-lc"], ["x", "y"], [C, C, S, D]),
    (["sh", "script.sh", "a"], [], [C, D, D]),
    (["python3", "-c", "x", "a"], [], [C, C, C, D]),
    (["python3.12", "-W", "ignore", "-c", "x"], [], [C, C, C, C, C]),
    (["python3", "tool.py", "-c", "a"], [], [C, D, D, D]),
    (["perl", "-e", "x", "a"], [], [C, C, C, D]),
    (["node", "--eval", "x", "a"], [], [C, C, C, D]),
    (["awk", "-F", ":", "{print}", "f"], [], [C, C, C, C, D]),
    (["jq", "--arg", "v", "val", ".x"], [], [C, C, C, D, C]),
    (["echo", "-c", "x"], [], [D, D, D]),
    ([], ["-c", "x"], [C, Role.UNKNOWN_SHELL]),
    ([], ["serve", "-c", "x"], [D, D, D]),
])
def test_roles_of_words(command: list[str], args: list[str], expected: list[Role]) -> None:
    assert roles(command, args) == expected


SH = shutil.which("sh")


def run_node(tmp_path: Path, value: str, **fields: Any) -> str:
    workflow = spec(node("n", **fields), params=[{"name": "who"}])
    job = render_job(REF, workflow, workflow.nodes[0],
                     Scope(params={"who": value}, execution_name="run-1", namespace="team-a"))
    container = job["spec"]["template"]["spec"]["containers"][0]
    env = container_env(job)
    argv = [kubelet_expand(a, env) for a in container.get("command", []) + container.get("args", [])]
    done = subprocess.run(argv, env={**env, "PATH": "/usr/bin:/bin"}, cwd=tmp_path, capture_output=True,
                          timeout=10, check=False)
    return done.stdout.decode()


@pytest.mark.skipif(SH is None, reason="no sh")
@pytest.mark.parametrize("value", HOSTILE)
@pytest.mark.parametrize("fields", [
    {"command": ["sh", "-c", 'printf "hello %s" "$(params.who)"']},
    {"command": ["/bin/sh"], "args": ["-c", "printf 'hello %s' '$(params.who)'"]},
    {"command": ["/bin/sh", "-c"], "args": ['printf "hello %s" "$(params.who)"']},
    {"command": ["env", "A=1", "sh", "-ec", 'printf "hello %s" "$(params.who)"']},
], ids=["command", "args", "command and args", "env sh -ec"])
def test_the_operand_of_sh_c_gets_the_value_as_text(tmp_path: Path, fields: dict[str, Any], value: str) -> None:
    assert run_node(tmp_path, value, **fields) == f"hello {value}"
    assert not (tmp_path / "pwned").exists()


@pytest.mark.skipif(SH is None, reason="no sh")
def test_data_after_the_code_is_passed_as_an_argument(tmp_path: Path) -> None:
    value = 'x"; touch pwned; echo "'
    assert run_node(tmp_path, value, command=["sh", "-c", 'printf "%s" "$1"', "sh", "$(params.who)"]) == value
    assert not (tmp_path / "pwned").exists()


@pytest.mark.parametrize(("fields", "path"), [
    ({"command": ["python3", "-c", 'print("$(params.who)")']}, "command[2]"),
    ({"command": ["perl"], "args": ["-e", 'print "$(params.who)"']}, "args[1]"),
    ({"command": ["node", "-e", "console.log('$(params.who)')"]}, "command[2]"),
    ({"command": ["awk", "BEGIN { print \"$(params.who)\" }"]}, "command[1]"),
    ({"args": ["-c", "echo $(params.who)"]}, "args[1]"),
    ({"command": ["sh", "-c", "echo `date` $(params.who)"]}, "command[2]"),
])
def test_a_reference_in_interpreter_code_is_refused_with_the_path_and_the_fix(fields: dict[str, Any],
                                                                               path: str) -> None:
    problems = validate_workflow(spec(node("n", **fields), params=[{"name": "who"}]))
    assert [p.path for p in problems] == [f"spec.nodes[0].{path}"]
    assert "raw:" in problems[0].message or "backquotes" in problems[0].message


def test_raw_marks_code_on_purpose_and_is_pasted() -> None:
    fields = {"command": ["python3", "-c", "$(raw:params.who)", "$(params.who)"]}
    workflow = spec(node("n", **fields), params=[{"name": "who"}])
    assert validate_workflow(workflow) == []
    job = render_job(REF, workflow, workflow.nodes[0],
                     Scope(params={"who": "print(1)"}, execution_name="run-1", namespace="team-a"))
    assert job["spec"]["template"]["spec"]["containers"][0]["command"] == ["python3", "-c", "print(1)", "print(1)"]


def test_the_node_fails_at_render_too() -> None:
    workflow = spec(node("n", command=["perl", "-e", "print '$(params.who)'"]), params=[{"name": "who"}])
    with pytest.raises(UnresolvedReference, match=r"command\[2\] of node n: \$\(params.who\) is in a word"):
        render_job(REF, workflow, workflow.nodes[0], Scope(params={"who": "v"}, execution_name="r", namespace="n"))


def test_lint_refuses_python_c_with_the_path(tmp_path: Path) -> None:
    body = {"apiVersion": "jobchain.dev/v1alpha1", "kind": "Workflow", "metadata": {"name": "w"},
            "spec": {"params": [{"name": "who"}],
                     "nodes": [{"name": "a", "image": "python",
                                "command": ["python3", "-c", "print('$(params.who)')"]}]}}
    path = tmp_path / "wf.yaml"
    path.write_text(yaml.safe_dump(body))
    out = io.StringIO()
    assert run_lint([str(path)], out) != 0
    assert "spec.nodes[0].command[2]: $(params.who) is in a word that the program reads as code" in out.getvalue()
