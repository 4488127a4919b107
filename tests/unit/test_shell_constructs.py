"""The script constructs issue 19 (finding 2) named: each is read as every sh reads it, or the
script is refused with a message naming the construct; a value never ends up unquoted by a guess.
(tests/unit/test_shell_differential.py runs thousands of generated scripts in the real shells.)
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import pytest

from jobchain.engine.spec.refs import Scope, UnresolvedReference
from jobchain.engine.spec.render import render_job
from jobchain.engine.spec.shell import Quoting, Refused, contexts

from .builders import node, spec
from .shell_support import REF, container_env, kubelet_expand


def quoting(script: str) -> list[Quoting]:
    return contexts(script, [m.span() for m in re.finditer(r"\$\(params\.x\)", script)])


@pytest.mark.parametrize(("script", "expected"), [
    pytest.param("(:)# it's\necho \"$(params.x)\"", [Quoting.DOUBLE], id="a comment right after )"),
    pytest.param("echo a>#it's\necho \"$(params.x)\"", [Quoting.DOUBLE], id="a comment right after >"),
    pytest.param("cat <<!\nit's\n!\necho \"$(params.x)\"", [Quoting.DOUBLE], id="here-document delimiter !"),
    pytest.param("cat <<END-DATA\nit's\nEND-DATA\necho \"$(params.x)\"", [Quoting.DOUBLE],
                 id="here-document delimiter END-DATA"),
    pytest.param("cat <<'E O'\nit's\nE O\necho \"$(params.x)\"", [Quoting.DOUBLE], id="quoted delimiter with a space"),
    pytest.param("cat <<E\\OF\nx\nEOF\necho '$(params.x)'", [Quoting.SINGLE], id="delimiter with a backslash"),
    pytest.param("cat <<<\"it's\"\necho '$(params.x)'", [Quoting.SINGLE], id="a here-string is not a here-document"),
    pytest.param("cat <<<\"$(params.x)\"", [Quoting.DOUBLE], id="a reference in a here-string"),
    pytest.param("echo $((a<<b))\necho '$(params.x)'", [Quoting.SINGLE], id="<< in arithmetic is a shift"),
    pytest.param("echo \"$(( $(params.x) + 1 ))\" '$(params.x)'", [Quoting.NONE, Quoting.SINGLE],
                 id="a reference in arithmetic"),
    pytest.param("cat <<EOF\n$(echo '$(params.x)')\nEOF", [Quoting.SINGLE], id="$( ) in an unquoted here-document"),
    pytest.param("cat <<EOF\nit's \"$(params.x)\"\nEOF", [Quoting.HEREDOC], id="quotes are text in a here-document"),
    pytest.param("echo \"$(echo \"$(echo 'a')\" '$(params.x)')\"", [Quoting.SINGLE], id="nested substitutions"),
    pytest.param("echo ${#x} $# \"it's $(params.x)\"", [Quoting.DOUBLE], id="${#x} and $# are no comments"),
    pytest.param("case a in (a) x=1;; b) y=\"it's\";; esac\necho '$(params.x)'", [Quoting.SINGLE],
                 id="case at the top level"),
])
def test_constructs_are_modelled(script: str, expected: list[Quoting]) -> None:
    assert quoting(script) == expected


@pytest.mark.parametrize(("script", "named"), [
    pytest.param("x=$(case a in a) echo it;; esac)\necho \"$(params.x)\"", "`case` inside $( )", id="case in $( )"),
    pytest.param("x=\"$(case a in a) echo it;; esac)\"\necho \"$(params.x)\"", "`case` inside $( )",
                 id="case in \"$( )\""),
    pytest.param("echo \"`echo it's`\" \"$(params.x)\"", "backquotes", id="backquotes in double quotes"),
    pytest.param("echo $'it\\'s' \"$(params.x)\"", "$'...' quoting", id="$'...'"),
    pytest.param("cat <<$X\nx\n$X\necho \"$(params.x)\"", "'$' in a here-document delimiter", id="delimiter $X"),
    pytest.param("((a<<b))\necho \"$(params.x)\"", "`((`", id="bash's (( ))"),
    pytest.param("echo ${v:-$(params.x)}", "a reference inside ${...}", id="a reference in ${ }"),
    pytest.param("echo ${v:-'it'} \"$(params.x)\"", "quotes inside ${...}", id="quotes in ${ }"),
    pytest.param("echo \\$(params.x)", "a reference inside a backslash escape", id="backslash before a reference"),
    pytest.param("cat <<EOF\n$(echo '\n)\nEOF\necho \"$(params.x)\"", "spans lines inside a here-document",
                 id="$( ) spanning lines in a here-document"),
])
def test_constructs_not_modelled_are_refused_by_name(script: str, named: str) -> None:
    with pytest.raises(Refused, match=re.escape(named)):
        quoting(script)


DASH = shutil.which("dash")


@pytest.mark.skipif(DASH is None, reason="no dash: run hack/test-deps.sh")
def test_find_gets_the_value_as_one_argument_after_a_comment_with_a_quote(tmp_path: Path) -> None:
    """Before: `(cmd)# it's` made the scanner take the later "..." for '...', so the value was
    unquoted and `find` ran `-exec touch pwned`."""
    script = "(:)# it's a comment\nfind \"$(params.x)\" 2>/dev/null; echo \"rc=$?\""
    scope = Scope(params={"x": " . -exec touch pwned ; -name "}, execution_name="run-1", namespace="team-a")
    workflow = spec(node("n", script=script))
    job = render_job(REF, workflow, workflow.nodes[0], scope)
    env = container_env(job)
    command = [kubelet_expand(a, env) for a in job["spec"]["template"]["spec"]["containers"][0]["command"]]
    (tmp_path / "f").write_text("")
    done = subprocess.run([str(DASH), *command[1:]], env={**env, "PATH": "/usr/bin:/bin"}, cwd=tmp_path,
                          capture_output=True, text=True, timeout=10, check=False)
    assert done.stdout == "rc=1\n"  # find: ` . -exec touch pwned ; -name `: no such file
    assert not (tmp_path / "pwned").exists()


def test_a_refused_script_fails_the_node_with_the_construct() -> None:
    workflow = spec(node("n", script="echo `date` \"$(params.x)\""))
    scope = Scope(params={"x": "v"}, execution_name="run-1", namespace="team-a")
    with pytest.raises(UnresolvedReference, match=r"script of node n: the script uses backquotes.*write \$\("):
        render_job(REF, workflow, workflow.nodes[0], scope)
