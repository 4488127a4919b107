"""Values are data: a reference's value is never parsed as shell code, and arrives byte for byte.

The rendered Job is run the way a node would run it: the kubelet's `$(VAR)` / `$$` expansion of
env values, command and args (reimplemented in shell_support.py after k8s.io/kubernetes
third_party/forked/golang/expansion), then the real `/bin/sh -c` of this machine with that
environment.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest

from jobchain.engine.spec.refs import Scope, UnresolvedReference
from jobchain.engine.spec.render import MAX_ARG_BYTES, ValueTooLarge, render_job
from jobchain.engine.spec.shell import Quoting, contexts

from .builders import node, spec
from .shell_support import REF, container_env, kubelet_expand

SH = shutil.which("sh")
needs_sh = pytest.mark.skipif(SH is None, reason="no /bin/sh")

INJECTIONS = [
    'x"; touch PWNED; echo "',
    "$(touch PWNED)",
    "`touch PWNED`",
    "'; touch PWNED; echo '",
    "pa$$w0rd",
    "costs $$5, see $(JOBCHAIN_NODE)",
    "a\nb\\c ${HOME} $HOME %s",
]


def run(job: dict[str, Any], cwd: Path, secrets: dict[str, str] | None = None) -> str:
    """Runs the Job's container command here, as the kubelet and the shell would; returns stdout."""
    container = job["spec"]["template"]["spec"]["containers"][0]
    env = container_env(job, secrets)
    argv = [kubelet_expand(a, env) for a in container["command"] + container.get("args", [])]
    done = subprocess.run(argv, env={**env, "PATH": "/usr/bin:/bin"}, cwd=cwd, capture_output=True,
                          timeout=10, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout.decode()


def render(script: str | None = None, scope: Scope | None = None, **fields: Any) -> dict[str, Any]:
    body = node("a", script=script, **fields) if script is not None else node("a", **fields)
    return render_job(REF, spec(body), spec(body).nodes[0], scope or scope_of("x"))


def scope_of(who: str, greeting: Any = "hi", secrets: dict[str, Any] | None = None) -> Scope:
    return Scope(params={"who": who}, execution_name="run-1", namespace="team-a",
                 input={"greeting": greeting}, has_input=True, outputs={}, secrets=secrets)


# ---- the README's hello-chain, with hostile values ------------------------------------------

GREET = """printf '{"greeting": "hello %s", "count": 1}' "$(params.who)" > "$JOBCHAIN_OUTPUT"
cat "$JOBCHAIN_OUTPUT\""""


@needs_sh
@pytest.mark.parametrize("value", INJECTIONS)
def test_a_param_in_double_quotes_is_expanded_never_run(value: str, tmp_path: Path) -> None:
    job = render(GREET.replace("$JOBCHAIN_OUTPUT", "out"), scope_of(value))
    out = run(job, tmp_path)
    assert not (tmp_path / "PWNED").exists()
    assert out == '{"greeting": "hello ' + value + '", "count": 1}'


QUOTINGS = [
    ("double quotes", 'printf "%s" "$(params.who)"'),
    ("single quotes", "printf '%s' '$(params.who)'"),
    ("inside a word in single quotes", "printf '%s' 'pre-$(params.who)-post'"),
    ("inside $( ) in double quotes", "printf '%s' \"$(printf '%s' '$(params.who)')\""),
    ("unquoted here-document", "cat <<EOF\n$(params.who)\nEOF"),
    ("here-document with tabs stripped", "cat <<-END\n\t$(params.who)\n\tEND"),
    ("json from an upstream output", "printf '%s' '$(input.greeting)'"),
]


@needs_sh
@pytest.mark.parametrize("value", INJECTIONS)
@pytest.mark.parametrize(("case", "script"), QUOTINGS, ids=[q[0] for q in QUOTINGS])
def test_every_quoting_delivers_the_value_byte_for_byte(case: str, script: str, value: str, tmp_path: Path) -> None:
    job = render(script, scope_of(value, greeting=value))
    out = run(job, tmp_path)
    assert not (tmp_path / "PWNED").exists()
    expected = {"inside a word in single quotes": f"pre-{value}-post"}.get(case, value)
    if "here-document" in case:
        expected += "\n"
    assert out == expected


@needs_sh
def test_a_json_object_is_substituted_as_compact_json(tmp_path: Path) -> None:
    job = render('printf "%s" "$(input)"', scope_of("x", greeting={"k": "v $(x) $$"}))
    assert run(job, tmp_path) == '{"greeting":{"k":"v $(x) $$"}}'


@needs_sh
@pytest.mark.parametrize("value", INJECTIONS)
def test_params_and_input_env_arrive_byte_for_byte(value: str, tmp_path: Path) -> None:
    job = render('printf "%s|%s" "$JOBCHAIN_PARAMS" "$JOBCHAIN_INPUT"', scope_of(value, greeting=value))
    import json

    params, input_ = run(job, tmp_path).split("|", 1)
    assert json.loads(params) == {"who": value}
    assert json.loads(input_) == {"greeting": value}


@needs_sh
@pytest.mark.parametrize("value", INJECTIONS)
def test_command_args_and_env_values_arrive_byte_for_byte(value: str, tmp_path: Path) -> None:
    job = render(None, scope_of(value, greeting=value),
                 command=["/bin/sh", "-c", 'printf "%s|%s|%s" "$0" "$1" "$GREETING"'],
                 args=["$(params.who)", "<$(input.greeting)>"],
                 env=[{"name": "GREETING", "value": "g=$(input.greeting)"}])
    assert run(job, tmp_path) == f"{value}|<{value}>|g={value}"
    assert not (tmp_path / "PWNED").exists()


def test_the_same_reference_twice_is_one_variable() -> None:
    job = render('echo "$(params.who)" "$(params.who)" "$(input.greeting)"')
    assert kubelet_expand(job["spec"]["template"]["spec"]["containers"][0]["command"][-1], {}) == (
        'echo "${JOBCHAIN_REF_1}" "${JOBCHAIN_REF_1}" "${JOBCHAIN_REF_2}"')


def test_a_reference_in_a_quoted_here_document_is_refused_with_the_fix() -> None:
    with pytest.raises(UnresolvedReference, match=r"quoted here-document.*<<EOF"):
        render("cat <<'EOF'\n$(params.who)\nEOF")


@pytest.mark.parametrize(("script", "expected"), [
    ("a $(params.x) b", [Quoting.NONE]),
    ("'$(params.x)' \"$(params.x)\"", [Quoting.SINGLE, Quoting.DOUBLE]),
    ("\"it's $(params.x)\" '$(params.x)'", [Quoting.DOUBLE, Quoting.SINGLE]),
    ("echo \\' $(params.x)", [Quoting.NONE]),
    ("# it's a comment $(params.x)\necho '$(params.x)'", [Quoting.NONE, Quoting.SINGLE]),
    ("cat <<'X'\nit's $(params.x)\nX\necho '$(params.x)'", [Quoting.QUOTED_HEREDOC, Quoting.SINGLE]),
    ("cat <<X\nit's $(params.x)\nX\necho \"$(params.x)\"", [Quoting.HEREDOC, Quoting.DOUBLE]),
    ("\"$(echo '$(params.x)')\"", [Quoting.SINGLE]),
])
def test_each_reference_is_found_in_its_shell_quoting_context(script: str, expected: list[Quoting]) -> None:
    spans = [m.span() for m in re.finditer(r"\$\(params\.x\)", script)]
    assert contexts(script, spans) == expected


# ---- Linux's limit of one env string ---------------------------------------------------------


@pytest.mark.parametrize(("script", "fields"), [
    ('echo "$(input.greeting)"', {}),
    (None, {"command": ["echo", "$(input.greeting)"]}),
])
def test_a_value_over_128_kib_fails_the_node_with_a_clear_message(script: str | None, fields: dict[str, Any]) -> None:
    with pytest.raises(ValueTooLarge, match=rf"over Linux's limit of {MAX_ARG_BYTES} bytes"):
        render(script, scope_of("x", greeting="y" * MAX_ARG_BYTES), **fields)


def test_an_input_over_128_kib_is_only_in_the_input_file() -> None:
    """JOBCHAIN_INPUT cannot carry it (execve would fail): it is empty, and the file holds the input."""
    job = render('wc -c < "$JOBCHAIN_INPUT_FILE"', scope_of("x", greeting="y" * MAX_ARG_BYTES))
    pod = job["spec"]["template"]
    env = {e["name"]: e.get("value") for e in pod["spec"]["containers"][0]["env"]}
    assert env["JOBCHAIN_INPUT"] == ""
    assert env["JOBCHAIN_INPUT_FILE"] == "/var/run/jobchain/input/input.json"
    assert len(pod["metadata"]["annotations"]["jobchain.dev/input"]) > MAX_ARG_BYTES


@needs_sh
def test_a_value_just_under_the_limit_reaches_the_script_whole(tmp_path: Path) -> None:
    value = "y" * (MAX_ARG_BYTES - 100)
    job = render('printf "%s" "$(input.greeting)"', scope_of("x", greeting=value))
    assert run(job, tmp_path) == value


# ---- secret params: a Secret reference, never a value ------------------------------------------

SECRET = {"token": {"name": "creds", "key": "token"}}


@needs_sh
def test_a_secret_param_reaches_script_and_args_through_the_secret_reference(tmp_path: Path) -> None:
    scope = Scope(params={"who": "w", "token": ""}, execution_name="run-1", namespace="team-a",
                  secrets=SECRET)
    job = render(None, scope, command=["/bin/sh", "-c", 'printf "%s|%s|%s" "$0" "$T" "$JOBCHAIN_PARAMS"'],
                 args=["$(params.token)"], env=[{"name": "T", "value": "t=$(params.token)"}])
    assert run(job, tmp_path, secrets={"token": "s3cr3t $$ $(X)"}) == 's3cr3t $$ $(X)|t=s3cr3t $$ $(X)|{"who":"w"}'
    script_job = render('printf "%s" "$(params.token)"', scope)
    assert run(script_job, tmp_path, secrets={"token": "s3'\"cr"}) == "s3'\"cr"
    env = {e["name"]: e for e in job["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert env["JOBCHAIN_SECRET_token"] == {"name": "JOBCHAIN_SECRET_token",
                                            "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token"}}}
