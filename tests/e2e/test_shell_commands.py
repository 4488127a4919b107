"""A value in `command`/`args` that run `sh -c` arrives as text on a real cluster (issue 19,
finding 1): the operand of -c gets the same env var rewrite as a `script`, so the container prints
the value byte for byte and no injected command runs in it."""

from __future__ import annotations

import pytest

from tests.e2e.support import Objects, nodes, workflow

pytestmark = pytest.mark.usefixtures("operator")

PRINT = 'printf "%s" "$(params.who)"; test ! -e /tmp/pwned || { echo "an injected command ran" >&2; exit 1; }'


@pytest.mark.parametrize("who", ["$(touch /tmp/pwned)", 'x"; touch /tmp/pwned; echo "'])
def test_a_value_in_sh_c_of_command_and_args_is_printed_never_run(objects: Objects, who: str) -> None:
    objects.create(workflow("shell-args", [
        {"name": "in-command", "output": {"from": "logs"}, "command": ["sh", "-c", PRINT]},
        {"name": "in-args", "output": {"from": "logs"}, "command": ["/bin/sh"], "args": ["-c", PRINT]},
    ], params=[{"name": "who"}]))
    done = objects.run("shell-args", {"who": who})
    result = nodes(done)
    for name in ("in-command", "in-args"):
        assert result[name]["phase"] == "Succeeded", result[name]  # /tmp/pwned did not exist
        assert result[name]["output"] == who  # byte for byte
    assert done["status"]["phase"] == "Succeeded", done["status"]
