"""A script arrives exactly as written (issue 19, finding 3), and a value never completes a `$`.

The kubelet expands `$(VAR)` and collapses `$$` in `command`, where a script travels: so every
`$` of a rendered script is written `$$`. `$$(params.x)` is refused in a script (the shell would
read the process id); in command, args and env values it is the kubelet's escape and is left as
text. A NUL byte, which no argument or env var can carry, is refused in a value.
"""

from __future__ import annotations

import io
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from jobchain.cli.lint import run_lint
from jobchain.engine.spec.refs import Scope, UnresolvedReference
from jobchain.engine.spec.render import render_job
from jobchain.engine.spec.validation import validate_params, validate_workflow

from .builders import node, spec
from .shell_support import REF, container_env, kubelet_expand

SH = shutil.which("sh")


def job_of(scope: Scope, **fields: Any) -> dict[str, Any]:
    workflow = spec(node("n", **fields), params=[{"name": "msg"}, {"name": "token", "secret": True}])
    return render_job(REF, workflow, workflow.nodes[0], scope)


def argv_of(job: dict[str, Any], secrets: dict[str, str] | None = None) -> tuple[list[str], dict[str, str]]:
    container = job["spec"]["template"]["spec"]["containers"][0]
    env = container_env(job, secrets)
    return [kubelet_expand(a, env) for a in container.get("command", []) + container.get("args", [])], env


SCOPE = Scope(params={"msg": "(JOBCHAIN_SECRET_token)", "token": ""}, execution_name="run-1", namespace="team-a",
              secrets={"token": {"name": "creds", "key": "token"}})


@pytest.mark.skipif(SH is None, reason="no sh")
def test_the_shells_process_id_reaches_the_script() -> None:
    job = job_of(SCOPE, script='tmp=/tmp/x.$$; kill -0 $$ && printf "%s %s" "$tmp" "$(params.msg)"')
    argv, env = argv_of(job)
    assert argv[-1] == 'tmp=/tmp/x.$$; kill -0 $$ && printf "%s %s" "$tmp" "${JOBCHAIN_REF_1}"'
    done = subprocess.run(argv, env=env, capture_output=True, text=True, timeout=10, check=False)
    assert re.fullmatch(r"/tmp/x\.\d+ \(JOBCHAIN_SECRET_token\)", done.stdout), done.stdout + done.stderr


def test_a_kubelet_variable_in_a_script_is_not_expanded() -> None:
    argv, _ = argv_of(job_of(SCOPE, script="echo $(JOBCHAIN_PARAMS) $(params.msg)"))
    assert argv[-1] == "echo $(JOBCHAIN_PARAMS) ${JOBCHAIN_REF_1}"


def test_dollar_right_before_a_reference_is_refused_in_a_script() -> None:
    with pytest.raises(UnresolvedReference, match=r"`\$` right before a reference"):
        job_of(SCOPE, script='echo "US$$(params.msg)"')


@pytest.mark.parametrize("field", ["command", "args", "env"])
def test_a_value_cannot_complete_the_kubelets_dollar(field: str) -> None:
    """msg=`(JOBCHAIN_SECRET_token)` after `US$` made `US$(JOBCHAIN_SECRET_token)`: the secret."""
    text = "US$$(params.msg) $(params.token)"
    fields: dict[str, Any] = {"command": ["echo", text]} if field == "command" else (
        {"command": ["echo"], "args": [text]} if field == "args" else
        {"command": ["echo"], "env": [{"name": "T", "value": text}]})
    job = job_of(SCOPE, **fields)
    argv, env = argv_of(job, secrets={"token": "s3cr3t"})
    shown = argv[-1] if field != "env" else env["T"]
    assert shown == "US$(params.msg) s3cr3t"


def test_a_nul_byte_in_a_param_is_refused() -> None:
    problems = validate_params({"msg": "a\x00b"}, spec(node("n"), params=[{"name": "msg"}]).params, "spec.workflow")
    assert [str(p) for p in problems] == [
        "spec.params.msg: contains a NUL byte, which no argument or environment variable can carry; remove it"]


def test_a_nul_byte_in_a_default_is_refused() -> None:
    problems = validate_workflow(spec(node("n"), params=[{"name": "msg", "default": "a\x00b"}]))
    assert [str(p) for p in problems] == [
        "spec.params[0].default: contains a NUL byte, which no argument or environment variable can carry; remove it"]


def test_a_nul_byte_in_a_value_fails_the_node() -> None:
    scope = Scope(params={"msg": "a", "token": ""}, execution_name="r", namespace="n", input={"k": "a\x00b"},
                  has_input=True)
    with pytest.raises(UnresolvedReference, match=r"\$\(input.k\) holds a NUL byte"):
        job_of(scope, script='echo "$(input.k)"')


def test_lint_refuses_an_execution_whose_param_holds_a_nul(tmp_path: Path) -> None:
    body = {"apiVersion": "jobchain.dev/v1alpha1", "kind": "WorkflowExecution", "metadata": {"name": "e"},
            "spec": {"params": {"msg": "a\x00b"},
                     "workflow": {"params": [{"name": "msg"}], "nodes": [{"name": "a", "image": "busybox",
                                                                          "script": 'echo "$(params.msg)"'}]}}}
    path = tmp_path / "ex.yaml"
    path.write_text(yaml.safe_dump(body))
    out = io.StringIO()
    assert run_lint([str(path)], out) != 0
    assert "spec.params.msg: contains a NUL byte" in out.getvalue()
