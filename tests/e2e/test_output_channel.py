"""User story: a step writes a 6 KB and a 300 KB JSON result to $JOBCHAIN_OUTPUT (the default output
channel, the termination message, of which Kubernetes keeps 4096 bytes); the next steps get them whole
through `$(input.KEY)` and a CEL `when`, and so do forEach items' outputs (issue 18 defect 12)."""

from __future__ import annotations

import pytest

from tests.e2e.support import Objects, nodes, workflow

pytestmark = pytest.mark.usefixtures("operator")


def produce(key: str, pad: int) -> str:
    return (f"{{ printf '{{\"k\":\"{key}\",\"pad\":\"'; head -c {pad} /dev/zero | tr '\\0' a; printf '\"}}'; }}"
            ' > "$JOBCHAIN_OUTPUT"')


CONSUME = 'printf \'{"got":"%s","bytes":%d}\' "$(input.k)" "$(wc -c < "$JOBCHAIN_INPUT_FILE")" > "$JOBCHAIN_OUTPUT"'


def test_6_kb_and_300_kb_outputs_reach_the_next_node_whole(objects: Objects) -> None:
    small, big = 6000, 300 * 1024
    objects.create(workflow("channel", [
        {"name": "six", "script": produce("six", small),
         "next": [{"node": "use-six", "type": "condition", "when": f'output.k == "six" && size(output.pad) == {small}'},
                  {"node": "items", "type": "condition", "when": f"size(output.pad) == {small}"},
                  {"node": "never", "type": "condition", "when": f"size(output.pad) != {small}"}]},
        {"name": "big", "script": produce("big", big),
         "next": [{"node": "use-big", "type": "condition", "when": f'output.k == "big" && size(output.pad) == {big}'},
                  {"node": "never", "type": "condition", "when": f"size(output.pad) != {big}"}], },
        {"name": "use-six", "script": CONSUME},
        {"name": "use-big", "script": CONSUME},
        {"name": "items", "forEach": "[1, 2]", "script": produce("item-$(item)", small),
         "next": [{"node": "gather", "type": "condition",
                   "when": f'size(output) == 2 && output[1].k == "item-2" && size(output[1].pad) == {small}'}]},
        {"name": "gather", "script": 'printf \'{"n":%d}\' "$(wc -c < "$JOBCHAIN_INPUT_FILE")" > "$JOBCHAIN_OUTPUT"'},
        {"name": "never", "script": "true", "join": "any"},
    ], defaults={"image": "busybox:1.36", "timeoutSeconds": 300}, parallelism=4))
    done = objects.run("channel", timeout=480)
    result = nodes(done)
    assert done["status"]["phase"] == "Succeeded", done["status"]
    assert result["use-six"]["output"] == {"got": "six", "bytes": len('{"k":"six","pad":""}') + small}
    assert result["use-big"]["output"] == {"got": "big", "bytes": len('{"k":"big","pad":""}') + big}
    assert result["gather"]["phase"] == "Succeeded" and result["never"]["phase"] == "Skipped"
    assert [r["phase"] for r in result["items"]["itemResults"]] == ["Succeeded", "Succeeded"]
    print(f"\n6 KB output: next node got $(input.k)={result['use-six']['output']['got']} and "
          f"{result['use-six']['output']['bytes']} bytes; 300 KiB: {result['use-big']['output']['bytes']} bytes; "
          f"forEach items of 6 KB gathered: {result['gather']['output']}")
