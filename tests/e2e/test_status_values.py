"""Outputs arrive in status exactly, through the real API server: nulls kept, numbers the API
server cannot hold kept as digits, non-JSON and deeply nested output kept as text (issue 8,
defects 5, 2, 8, 9)."""

from __future__ import annotations

import pytest

from tests.e2e.support import Objects, nodes, workflow

pytestmark = pytest.mark.usefixtures("operator")

DEEP = "[" * 256 + "]" * 256


def test_output_values_survive_the_api_server_and_reach_the_next_node(objects: Objects) -> None:
    objects.create(workflow("values", [
        {"name": "a", "script": "printf '{\"result\": null, \"n\": 1, \"big\": 18446744073709551615, "
                                "\"f\": 2.0, \"list\": [null, {\"k\": null}]}' > $JOBCHAIN_OUTPUT",
         "next": [{"node": "b"}]},
        {"name": "b", "script": "echo '$(nodes.a.output.result) $(input.big) $(input.list)'",
         "output": {"from": "logs"}, "next": [{"node": "c"}]},
        {"name": "c", "script": f"printf '{DEEP}' > $JOBCHAIN_OUTPUT", "next": [{"node": "d"}]},
        {"name": "d", "script": "printf 'NaN' > $JOBCHAIN_OUTPUT", "next": [{"node": "e"}]},
        {"name": "e", "script": "echo \"$JOBCHAIN_INPUT\"", "output": {"from": "logs"}},
    ]))
    done = objects.run("values")
    assert done["status"]["phase"] == "Succeeded", done["status"]
    result = nodes(done)
    assert result["a"]["output"] == {"result": None, "n": 1, "big": "18446744073709551615", "f": 2,
                                     "list": [None, {"k": None}]}
    assert result["b"]["output"] == 'null 18446744073709551615 [null,{"k":null}]'
    assert result["c"]["output"] == DEEP
    assert result["d"]["output"] == "NaN"
    assert result["e"]["output"] == "NaN"  # it got the JSON string "NaN", which it printed
