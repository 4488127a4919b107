"""The planner's invariants over random workflows, driven by a simulated cluster (planner_sim.py).

The cluster finishes random running Jobs with random results; the controller around plan() is
simulated too, including its failure modes: a kopf retry calls plan() twice with the same inputs,
and a crash between creating Jobs and writing status loses the status write. Whatever happens:
a node never gets a second Job, a finished node never changes, running Jobs never exceed
parallelism, and the execution ends within a bounded number of steps.
"""

from __future__ import annotations

import json
import os
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context

from jobchain.api.models import (
    FINISHED_NODE_PHASES,
    ExecutionStatus,
    NodeStatus,
    WorkflowSpec,
)
from jobchain.engine.spec.graph import Graph
from jobchain.engine.spec.outputs import MAX_OUTPUT_BYTES, keep_output
from jobchain.engine.spec.refs import render_value
from jobchain.engine.spec.render import MAX_ARG_BYTES, split_key

from .builders import env_of, script_seen, spec
from .planner_sim import (
    COSTLY,
    EXAMPLES,
    FOR_EACH,
    XS,
    Outcome,
    Scenario,
    result_of,
    run,
    scenarios,
)


class ConditionFails(Exception):
    pass


def expected_when(when: str, output: Any, input: Any, exit_code: int | None) -> bool:
    """What each generated `when` means, written out independently of CEL."""
    if when in ("true", "false"):
        return when == "true"
    if when == "has(output.ok) && output.ok":
        return isinstance(output, dict) and output.get("ok") is True
    if when == "has(input.ok) && input.ok":
        return isinstance(input, dict) and input.get("ok") is True
    if when == "output.ok":
        if isinstance(output, dict) and "ok" in output:
            return bool(output["ok"])
        raise ConditionFails(when)
    assert when == "node.exitCode == 0"
    return exit_code == 0


def whole(node: NodeStatus, config_maps: dict[str, Any]) -> Any:
    """A node's whole output: the one kept in its ConfigMap when status holds a preview (outputRef)."""
    return config_maps[node.outputRef.configMap] if node.outputRef is not None else node.output


def input_of(node: NodeStatus, nodes: dict[str, NodeStatus], config_maps: dict[str, Any] | None = None) -> Any:
    return whole(nodes[node.inputFrom], config_maps or {}) if node.inputFrom else None


def check_edge_semantics(workflow: WorkflowSpec, status: ExecutionStatus,
                         config_maps: dict[str, Any] | None = None) -> None:
    """Each node ran iff its join held over its incoming edges; its input is the last finished holder."""
    graph = Graph.of(workflow)
    nodes = {m.name: m for m in status.nodes}
    kept = config_maps or {}
    for spec_node in workflow.nodes:
        incoming = graph.incoming[spec_node.name]
        held = []
        for e in incoming:
            source = nodes[e.source]
            if source.phase == "Succeeded":
                ok = e.kind in ("success", "always") or (
                    e.kind == "condition" and expected_when(e.when or "", whole(source, kept),
                                                            input_of(source, nodes, kept),
                                                            source.exitCode))
            else:
                ok = source.phase == "Failed" and e.kind in ("failure", "always")
            if ok:
                held.append(e.source)
        runs = not incoming or (len(held) == len(incoming) if spec_node.join == "all" else bool(held))
        me = nodes[spec_node.name]
        assert (me.phase in ("Succeeded", "Failed")) == runs, f"{spec_node.name} is {me.phase}, held: {held}"
        if runs and incoming:
            assert me.inputFrom in held
            assert all((nodes[h].finishedAt or "") <= (nodes[me.inputFrom].finishedAt or "") for h in held)


def handled(workflow: WorkflowSpec, name: str) -> bool:
    node = next(n for n in workflow.nodes if n.name == name)
    return any(e.type in ("failure", "always") for e in node.next)



def check_jobs_received_what_status_records(sc: Scenario, outcome: Outcome) -> None:
    """(a) The input and the substituted values a Job was given are what the final status says."""
    nodes = {m.name: m for m in outcome.status.nodes}
    check_items(sc, outcome)
    for name, manifest in outcome.manifests.items():
        me = nodes.get(name)
        if me is None or me.phase not in ("Succeeded", "Failed"):
            continue
        source = nodes[me.inputFrom] if me.inputFrom else None
        # An output kept whole in a ConfigMap (status holds a preview) is given whole: as the file,
        # mounted from that ConfigMap, and in JOBCHAIN_INPUT when it fits one environment string.
        ref = source.outputRef if source else None
        value = outcome.config_maps[ref.configMap] if ref and source else (source.output if source else None)
        expected_input = json.dumps(value, separators=(",", ":")) if source else ""
        template = manifest["spec"]["template"]
        if ref is not None:
            assert template["spec"]["volumes"][0]["configMap"]["name"] == ref.configMap
        else:
            assert template["metadata"]["annotations"]["jobchain.dev/input"] == expected_input
        if len(f"JOBCHAIN_INPUT={expected_input}".encode()) + 1 > MAX_ARG_BYTES:
            expected_input = ""
        received = str(env_of(manifest)["JOBCHAIN_INPUT"]).replace("$$", "$")  # the kubelet's unescape
        assert received == expected_input, f"{name} got another input than recorded"
        script = script_seen(manifest)  # as the container's shell runs it, references expanded
        spec_script = next(n.script for n in sc.workflow.nodes if n.name == name)
        if spec_script == "echo $(input)":
            assert source is not None
            assert script == "echo " + render_value(value)
        elif spec_script == "echo $(input.v)":
            assert source is not None and isinstance(value, dict)
            assert script == "echo " + render_value(value["v"])


def check_items(sc: Scenario, outcome: Outcome) -> None:
    """forEach: each item got at most one Job, given its item; a node that ran all its items has
    the complete list of their outputs, in item order; it Succeeded iff every item did."""
    nodes = {m.name: m for m in outcome.status.nodes}
    for spec_node in sc.workflow.nodes:
        me = nodes[spec_node.name]
        if spec_node.forEach == COSTLY:
            # Over one evaluation's budget (or an error without `xs`): Failed before any item, or never run.
            assert me.items is None and not any(split_key(k)[0] == me.name for k in outcome.manifests)
            assert me.phase != "Succeeded"
            if me.phase == "Failed":
                assert me.message.startswith("ConditionError: spec.nodes[") and "forEach" in me.message
                if "costs more than" in me.message and currently_in_test_context():
                    event("a forEach list over its CEL budget failed its node")
            continue
        if spec_node.forEach is None or me.items is None:
            continue
        made = {split_key(k)[1]: m for k, m in outcome.manifests.items() if split_key(k)[0] == me.name}
        source = nodes[me.inputFrom] if me.inputFrom else None
        items = FOR_EACH[spec_node.forEach]
        items = whole(source, outcome.config_maps) if items is None and source is not None else items
        assert isinstance(items, list) and me.items.total == len(items)
        for index, manifest in made.items():
            assert index is not None and 0 <= index < len(items)
            env = env_of(manifest)
            assert env["JOBCHAIN_ITEM_INDEX"] == str(index)
            assert str(env["JOBCHAIN_ITEM"]).replace("$$", "$") == json.dumps(items[index], separators=(",", ":"))
            if spec_node.script == "echo $(item)":
                assert script_seen(manifest) == "echo " + render_value(items[index])
        if me.phase not in ("Succeeded", "Failed"):
            continue
        assert isinstance(me.output, list) and len(me.output) == len(items)
        entries = {e.index: e for e in me.itemResults or []}
        for index in range(len(items)):
            entry = entries.get(index)
            if entry is None:  # failFast: never started
                assert spec_node.failFast and me.phase == "Failed" and index not in made
                assert me.output[index] is None
                continue
            if index not in made:  # failed before its Job (a value too large for the container)
                assert entry.phase == "Failed" and entry.jobName is None, f"{me.name}#{index}: no Job"
                continue
            state, _, _ = result_of(sc, f"{me.name}#{index}")
            assert entry.phase == state, f"{me.name}#{index}: {entry.phase}, ran {state}"
        all_ok = len(entries) == len(items) and all(e.phase == "Succeeded" for e in entries.values())
        too_large = "list of item outputs is over" in me.message
        assert (me.phase == "Succeeded") == (all_ok and not too_large)
        if too_large:
            assert me.outputRef is None
            event("a fan-out's list of outputs was over 1 MiB")
            continue
        # The output list is complete and in item order: each item's whole output (kept in the node's
        # ConfigMap when status holds previews), whatever status writes were lost.
        kept = whole(me, outcome.config_maps)
        assert isinstance(kept, list) and len(kept) == len(items)
        for index in range(len(items)):
            ran = index in made and entries[index].phase in ("Succeeded", "Failed")
            expected = keep_output(result_of(sc, f"{me.name}#{index}")[1], MAX_OUTPUT_BYTES).value if ran else None
            assert kept[index] == expected, f"{me.name}#{index}: output not kept whole"
        if me.outputRef is not None:
            event("a fan-out's list was kept in a ConfigMap")


def results_of(status: ExecutionStatus) -> list[tuple[str, str, Any, str | None, bool]]:
    """Phase, output and input of every node. (The input of a Cancelled node is left out: a node whose
    Job a cancel deleted in a pass whose write was lost is, to the next pass, one that never started.)"""
    return [(m.name, str(m.phase), m.output, m.inputFrom if m.phase != "Cancelled" else None, m.outputTruncated)
            for m in status.nodes]


def check_lost_writes_change_nothing(steady: Outcome, crashing: Outcome) -> bool:
    """(b) Lost writes and repeated passes change nothing of the result: the phase, output and input
    of every node, whatever the end, and the execution's phase and reason, but for one rule: True when
    the ends differ by it."""
    assert results_of(crashing.status) == results_of(steady.status)
    if steady.status.reason == crashing.status.reason:
        assert crashing.status.phase == steady.status.phase
        return False
    # The one end that may differ, by the rule of plan(): a pass that sees both spec.cancel and a
    # passed deadline ends the run Cancelled. spec.cancel has no time, so when the write of the
    # deadline's pass is lost and the cancel comes before the next pass, that pass cannot know the
    # deadline came first. Anything else (a cancel seen before the deadline ending as
    # DeadlineExceeded, a recorded end changed by a later cancel) is a counterexample.
    assert (steady.status.reason, steady.ended_seeing) == ("DeadlineExceeded", (False, True))
    assert (crashing.status.reason, crashing.ended_seeing) == ("Cancelled", (True, True))
    assert crashing.lost > 0
    return True


# derandomize: CI runs the same examples every time (a red CI blocks every landing, so a rare
# counterexample must not surface at random there); JOBCHAIN_PROPERTY_SEARCH=1 hunts with fresh
# random examples instead. Counterexamples found so far: test_counterexamples_of_invariant_b below.
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow],
          derandomize=not os.environ.get("JOBCHAIN_PROPERTY_SEARCH"), database=None)
@given(sc=scenarios(), data=st.data())
def test_invariants_hold_under_random_results_retries_and_crashes(sc: Scenario, data: st.DataObject) -> None:
    steady = run(sc, None)
    crashing = run(sc, data)
    event(f"ended {crashing.status.phase}/{crashing.status.reason}")
    event(f"lost writes: {crashing.lost}")
    if any(m.outputTruncated for m in crashing.status.nodes):
        event("an output was truncated")
    for outcome in (steady, crashing):
        check_jobs_received_what_status_records(sc, outcome)
        check_final(sc.workflow, outcome.status, outcome)
    if check_lost_writes_change_nothing(steady, crashing):
        event("the deadline's pass lost its write, then a cancel came: Cancelled, by the rule")


class LostWrites:
    """Stands for hypothesis' `data` in run(): the status writes of the passes numbered in `steps`
    are lost; no kopf retries."""

    def __init__(self, *steps: int) -> None:
        self.steps = set(steps)
        self.step = 0

    def draw(self, strategy: Any, label: str = "") -> int:
        if label == "kopf retry":
            return 1
        lost = self.step in self.steps
        self.step += 1
        return 0 if lost else 1


def _counterexample(bodies: list[dict[str, Any]], results: dict[str, tuple[str, str | None, int]],
                    timeout: int | None, cancel_at: int | None, parallelism: int = 1) -> Scenario:
    return Scenario(spec(*bodies, parallelism=parallelism), results, timeout, cancel_at)


def _n(name: str, *next_: dict[str, Any], script: str = "true", join: str = "all") -> dict[str, Any]:
    return {"name": name, "image": "busybox", "script": script, "join": join, "next": list(next_)}


def _e(to: str, kind: str = "success", when: str | None = None) -> dict[str, Any]:
    return {"node": to, "type": kind, **({"when": when} if when else {})}


# What JOBCHAIN_PROPERTY_SEARCH=1 found, each as a scenario and the lost writes that showed it.
COUNTEREXAMPLES = {
    # (i) n1 fails before it starts (its input, 300 KB, is over Linux's 128 KiB for one argument) when
    # n0 finishes; n3's condition errs once n2 finishes, at the cancel (step 2). With the write of step 1
    # lost, the replayed pass stopped at n3 (declared first) and cancelled n1: Failed, then Cancelled.
    "i: failure before start, then a cancel and a condition error after a lost write": (_counterexample(
        [_n("n0", _e("n1"), _e("n2")), _n("n3"), _n("n1", script="echo $(input)"),
         _n("n2", _e("n3", "condition", "output.ok"))],
        {"n0": ("Succeeded", "z" * 300_000, 1), "n1": ("Succeeded", None, 1), "n2": ("Succeeded", None, 1),
         "n3": ("Succeeded", None, 1)}, None, 2), (1,)),
    # (ii) the deadline (4 s) and a cancel (at 5 s) inside one lost write: DeadlineExceeded, or Cancelled
    # by the rule; every node ends the same.
    "ii: the deadline's write lost, then a cancel": (_counterexample(
        [_n(f"n{i}") for i in range(6)], {f"n{i}": ("Succeeded", None, 1) for i in range(6)}, 4, 5),
        (0, 1, 2, 4)),
    # (iii) seed 11: n5 is skipped when n1 finishes (n2 was skipped); n4's condition on n1 errs once n3
    # finishes too. The write of the skip lost, the replayed pass stopped at n4 and cancelled n5.
    "iii: a skip sealed before a condition error, its write lost": (_counterexample(
        [_n("n0", _e("n1", "condition", "true"), _e("n2", "condition", "has(input.ok) && input.ok"), _e("n3")),
         _n("n1", _e("n4", "condition", "output.ok"), _e("n5")), _n("n2", _e("n5")), _n("n3", _e("n4")),
         _n("n4"), _n("n5")],
        {f"n{i}": ("Succeeded", None, 1) for i in range(6)}, None, None), (0, 1, 2, 3)),
    # (iv) issue 18: n1's condition errs when n1 finishes (1 s) while n0's three items run (3 s): the stop
    # deletes their Jobs and cancels them. With that write lost, the replayed pass found the items'
    # Jobs gone and failed them, and n0 with them ("disappeared ... deleted outside jobchain?").
    "iv: a condition error stops a running fan-out, its write lost": (_counterexample(
        [{**_n("n0"), "forEach": "[1, 2, 3]"}, _n("n1", _e("n2", "condition", "output.ok")), _n("n2")],
        {"n0#0": ("Succeeded", None, 3), "n0#1": ("Succeeded", None, 3), "n0#2": ("Succeeded", None, 3),
         "n1": ("Succeeded", '{"v": 1}', 1), "n2": ("Succeeded", None, 1)}, None, None, parallelism=4), (1,)),
    # (v) a forEach list over one evaluation's CEL budget, the writes around it lost: Failed, ConditionError,
    # no item; the node after it routed by its failure edge.
    "v: a forEach over its CEL budget, writes lost": (_counterexample(
        [_n("n0", _e("n1")), {**_n("n1", _e("n2", "failure")), "forEach": COSTLY}, _n("n2")],
        {"n0": ("Succeeded", XS, 1), "n2": ("Succeeded", None, 1)}, None, None), (1, 2)),
    # (vi) every item fails with a 4 KiB log, writes lost: each message within its share, status in budget.
    "vi: failed items with long logs, writes lost": (_counterexample(
        [{**_n("n0"), "forEach": "[0, 1, 2, 3, 4]"}],
        {f"n0#{i}": ("Failed", None, 1) for i in range(5)}, None, None, parallelism=2), (0, 2)),
}


@pytest.mark.parametrize("name", COUNTEREXAMPLES)
def test_counterexamples_of_invariant_b(name: str) -> None:
    sc, lost = COUNTEREXAMPLES[name]
    steady = run(sc, None)
    crashing = run(sc, LostWrites(*lost))  # type: ignore[arg-type]
    assert crashing.lost == len(lost)
    for outcome in (steady, crashing):
        check_jobs_received_what_status_records(sc, outcome)
        check_final(sc.workflow, outcome.status, outcome)
    by_rule = check_lost_writes_change_nothing(steady, crashing)
    assert by_rule == name.startswith("ii:")


def check_final(workflow: WorkflowSpec, status: ExecutionStatus, outcome: Outcome) -> None:
    assert all(m.phase in FINISHED_NODE_PHASES for m in status.nodes)
    if status.nodes:
        assert status.progress == f"{len(status.nodes)}/{len(status.nodes)}"
    assert status.running is None
    failed = [m.name for m in status.nodes if m.phase == "Failed"]
    if status.phase == "Succeeded":
        assert all(handled(workflow, name) for name in failed)
    if status.reason == "NodeFailed":
        unhandled = [name for name in failed if not handled(workflow, name)]
        assert unhandled
        for name in unhandled[:3]:  # a few named, the rest counted
            assert name in status.message
        if len(unhandled) > 3:
            assert f"and {len(unhandled) - 3} more" in status.message
    if status.reason in ("Succeeded", "NodeFailed"):
        assert not any(m.phase == "Cancelled" for m in status.nodes)
        check_edge_semantics(workflow, status, outcome.config_maps)


@settings(max_examples=EXAMPLES // 2, deadline=None, suppress_health_check=[HealthCheck.too_slow],
          derandomize=not os.environ.get("JOBCHAIN_PROPERTY_SEARCH"), database=None)
@given(sc=scenarios(big_items=True), data=st.data())
def test_large_item_outputs_are_kept_whole_and_in_order_after_lost_writes(sc: Scenario, data: st.DataObject) -> None:
    """Item outputs over the status budget are kept whole (ConfigMaps), and lost writes change nothing."""
    test_invariants_hold_under_random_results_retries_and_crashes.hypothesis.inner_test(sc, data)  # type: ignore[attr-defined]
