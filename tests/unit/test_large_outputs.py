"""Outputs never lost to size: kept whole in a ConfigMap past the inline cap, given to the next node
as a file, used whole by `$(input.key)` and CEL; over 1 MiB the node fails, saying so.

The passes below are planned one after the other as the controller runs them: each sees only the
status the previous one wrote and the whole outputs read back from the ConfigMaps it created.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import timedelta
from typing import Any

from jobchain.api.models import ExecutionStatus
from jobchain.engine.execution.planner import plan
from jobchain.engine.execution.types import ExecutionInput, Plan
from jobchain.engine.spec.outputs import INLINE_INPUT_FILE_BYTES, MAX_OUTPUT_BYTES, keep_output
from jobchain.engine.spec.render import INPUT_FILE
from tests.unit.builders import T0, edge, env_of, execution, job, node, node_status, observed, script_seen, spec

BIG = {"small": "hi", "n": 7, "blob": "a" * (300 * 1024)}
BIG_TEXT = json.dumps(BIG, separators=(",", ":"))


def test_keep_output_inline_in_a_config_map_or_not_at_all() -> None:
    small = keep_output('{"a": 1}', 32768)
    assert (small.output, small.truncated, small.whole) == ({"a": 1}, False, None)
    big = keep_output(BIG_TEXT + "\n", 32768)
    assert big.whole == BIG_TEXT and big.value == BIG and big.truncated
    assert isinstance(big.output, str) and len(big.output.encode()) <= 32768 and BIG_TEXT.startswith(big.output)
    assert BIG_TEXT.endswith(keep_output(BIG_TEXT, 32768, keep_end=True).output), "a log's preview is its end"
    # fits its (raised) inline cap but is too large for the annotation the input file is projected from
    mid_value = {"x": "b" * (INLINE_INPUT_FILE_BYTES + 10)}
    mid = keep_output(json.dumps(mid_value), 262144)
    assert (mid.output, mid.truncated) == (mid_value, False) and mid.whole is not None
    huge = keep_output("c" * (2 * 1024 * 1024), 32768)
    assert huge.too_large == 2 * 1024 * 1024 and huge.whole is None and huge.truncated
    edge_case = keep_output("d" * MAX_OUTPUT_BYTES, 32768)
    assert not edge_case.too_large and edge_case.whole is not None


def _pass(ex: ExecutionInput, seen: dict[str, Any], now_s: int, config_maps: dict[str, dict[str, Any]]) -> Plan:
    p = plan(ex, seen, T0 + timedelta(seconds=now_s))
    for cm in p.config_maps:
        assert cm["immutable"] is True
        assert cm["metadata"]["ownerReferences"][0]["uid"] == ex.uid
        config_maps[cm["metadata"]["name"]] = cm
    return p


def _next(ex: ExecutionInput, status: ExecutionStatus, config_maps: dict[str, dict[str, Any]]) -> ExecutionInput:
    """The execution as the next pass sees it: status as written, whole outputs read from the ConfigMaps."""
    outputs = {n.name: json.loads(config_maps[n.outputRef.configMap]["data"][n.outputRef.key])
               for n in status.nodes if n.outputRef is not None}
    return dataclasses.replace(ex, status=status, outputs=outputs)


def test_a_300_kib_output_is_kept_whole_and_reaches_the_next_node_whole() -> None:
    wf = spec(
        node("produce", edge("consume", "condition", "size(output.blob) == 307200 && output.small == 'hi'"),
             output={"from": "logs"}),
        node("consume", script='echo "$(input.small)"; wc -c < "$JOBCHAIN_INPUT_FILE"'),
    )
    config_maps: dict[str, dict[str, Any]] = {}
    ex = execution(wf)
    p = _pass(ex, {}, 0, config_maps)
    ex = _next(ex, p.status, config_maps)
    # produce finished; its log is the 300 KiB JSON
    p = _pass(ex, observed(job("produce", "Succeeded", BIG_TEXT + "\n", finished_at=T0)), 1, config_maps)
    produce = node_status(p.status, "produce")
    assert produce.outputRef is not None and produce.outputTruncated
    assert produce.outputRef.bytes == len(BIG_TEXT)
    assert json.loads(config_maps[produce.outputRef.configMap]["data"]["output.json"]) == BIG
    assert len(json.dumps(p.status.model_dump(mode="json"))) < 64 * 1024, "status holds a preview only"
    # the condition saw the whole output (size of the blob), and consume started with it as a file
    (consume_job,) = p.create
    env = env_of(consume_job)
    assert env["JOBCHAIN_INPUT"] == "", "300 KiB cannot be one environment string"
    assert env["JOBCHAIN_INPUT_FILE"] == INPUT_FILE
    volumes = consume_job["spec"]["template"]["spec"]["volumes"]
    assert volumes[0]["configMap"]["name"] == produce.outputRef.configMap
    assert "hi" in json.dumps(env) and "$(input.small)" not in script_seen(consume_job)


def test_the_whole_output_is_used_by_a_later_pass_from_the_config_map() -> None:
    """The condition is decided in a pass after the one that read the output (as after a restart)."""
    wf = spec(
        node("produce", "gate", output={"from": "logs"}),
        node("gate", edge("after", "condition", "input.n == 7 && size(input.blob) > 300000")),
        node("after"),
    )
    config_maps: dict[str, dict[str, Any]] = {}
    ex = execution(wf)
    ex = _next(ex, _pass(ex, {}, 0, config_maps).status, config_maps)
    ex = _next(ex, _pass(ex, observed(job("produce", "Succeeded", BIG_TEXT, finished_at=T0)), 1, config_maps).status,
               config_maps)
    finished = observed(job("produce", "Succeeded", BIG_TEXT, finished_at=T0),
                        job("gate", "Succeeded", "{}", finished_at=T0 + timedelta(seconds=2)))
    p = _pass(ex, finished, 3, config_maps)
    assert [j["metadata"]["labels"]["jobchain.dev/node"] for j in p.create] == ["after"]


def test_an_output_over_1_mib_fails_its_node_with_a_clear_message() -> None:
    wf = spec(node("produce", "next", output={"from": "logs"}), node("next"))
    ex = execution(wf)
    p = plan(ex, {}, T0)
    ex = _next(ex, p.status, {})
    p = plan(ex, observed(job("produce", "Succeeded", "x" * (2 * 1024 * 1024), finished_at=T0)), T0)
    produce = node_status(p.status, "produce")
    assert str(produce.phase) == "Failed" and produce.outputTruncated and produce.outputRef is None
    assert f"output is over the {MAX_OUTPUT_BYTES} bytes (1 MiB) a node's output may be" in produce.message
    assert not p.config_maps and not p.create
    assert str(p.status.phase) == "Failed"


def test_a_small_input_reaches_the_file_through_a_pod_annotation() -> None:
    wf = spec(node("a", "b"), node("b"))
    ex = execution(wf)
    ex = _next(ex, plan(ex, {}, T0).status, {})
    p = plan(ex, observed(job("a", "Succeeded", '{"k": "v"}', finished_at=T0)), T0)
    (b_job,) = p.create
    template = b_job["spec"]["template"]
    assert template["metadata"]["annotations"]["jobchain.dev/input"] == '{"k":"v"}' == env_of(b_job)["JOBCHAIN_INPUT"]
    (volume,) = template["spec"]["volumes"]
    assert volume["downwardAPI"]["items"][0]["fieldRef"]["fieldPath"] == "metadata.annotations['jobchain.dev/input']"
    assert not p.config_maps
