"""A secret param named in a `when` or a forEach: conditions never see secret params, so
`jobchain lint` (and the operator, through the same validation) says so before any run."""

from __future__ import annotations

from pathlib import Path

import pytest

from jobchain.engine.spec import cel
from tests.unit.builders import lint_text

WORKFLOW = """\
apiVersion: jobchain.dev/v1alpha1
kind: Workflow
metadata:
  name: deploy
spec:
  params:
    - {name: token, secret: true}
    - {name: env, default: prod}
  defaults:
    image: busybox:1.36
  nodes:
    - name: check
      script: "echo '{\\"ok\\": true}' > $JOBCHAIN_OUTPUT"
      next:
        - node: push
          type: condition
          when: {when}
    - name: push
      script: echo push
"""


@pytest.mark.parametrize("when", ["params.token == 'abc'", "has(params.token)", "params['token'] != ''"])
def test_lint_flags_a_secret_param_in_a_when(tmp_path: Path, when: str) -> None:
    code, out = lint_text(tmp_path, WORKFLOW.replace("{when}", f'"{when}"'))
    assert code != 0, out
    assert "Workflow/deploy: spec.nodes[0].next[0].when: param token is secret" in out, out
    assert "cannot see secret params" in out


def test_lint_flags_a_secret_param_in_a_for_each(tmp_path: Path) -> None:
    text = WORKFLOW.replace("{when}", "output.ok").replace(
        "    - name: push\n", "    - name: push\n      forEach: '[params.token]'\n")
    code, out = lint_text(tmp_path, text)
    assert code != 0, out
    assert "spec.nodes[1].forEach: param token is secret" in out, out


def test_lint_accepts_plain_params_and_other_fields_named_params(tmp_path: Path) -> None:
    code, out = lint_text(tmp_path, WORKFLOW.replace("{when}", '"params.env == \'prod\' && output.params == 1"'))
    assert code == 0, out


def test_param_names_reads_dot_and_index_access_only_on_params() -> None:
    assert cel.param_names("params.a == 'x' || params['b'] == 'y' || nodes.n.output.params.c == 1") == {"a", "b"}
    assert cel.param_names("this does not compile (") == set()
