"""The planner's invariants over random workflows, driven by a simulated cluster.

The cluster finishes random running Jobs with random results; the controller around plan() is
simulated too, including its failure modes: a kopf retry calls plan() twice with the same inputs,
and a crash between creating Jobs and writing status loses the status write. Whatever happens:
a node never gets a second Job, a finished node never changes, running Jobs never exceed
parallelism, and the execution ends within a bounded number of steps.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import pytest
from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st
from hypothesis.control import currently_in_test_context

from jobchain.api.models import (
    FINISHED_NODE_PHASES,
    TERMINAL_EXECUTION_PHASES,
    ExecutionStatus,
    NodeStatus,
    WorkflowSpec,
)
from jobchain.engine.execution.conditions import PassBudget
from jobchain.engine.execution.planner import JobState, ObservedJob, plan
from jobchain.engine.execution.status import item_message_limit, output_refs
from jobchain.engine.execution.status_write import status_patch
from jobchain.engine.spec.graph import Graph
from jobchain.engine.spec.outputs import MAX_OUTPUT_BYTES, keep_output
from jobchain.engine.spec.refs import render_value
from jobchain.engine.spec.render import MAX_ARG_BYTES, split_key
from jobchain.engine.spec.validation import validate_workflow

from .builders import (
    T0,
    created_nodes,
    env_of,
    execution,
    job,
    json_patch,
    script_seen,
    spec,
    with_status,
)

KINDS = ["success", "failure", "always", "condition"]
WHENS = ["true", "false", "has(output.ok) && output.ok", "output.ok", "node.exitCode == 0",
         "has(input.ok) && input.ok"]
XS = json.dumps({"ok": True, "xs": list(range(30))})
OUTPUTS = [None, '{"ok": true}', '{"ok": false}', '{"v": 1}', "plain text", '{"ok": true, "v": "x"}', XS]
# forEach over its input that costs more than one evaluation may (30^3 steps over `xs`; an error
# without it): the node Fails, ConditionError, before any item, whatever writes are lost.
COSTLY = "input.xs.filter(a, input.xs.all(b, input.xs.all(c, true)))"
# forEach lists (CEL literal -> the items), and `input` (a list, or not: the node then Fails)
FOR_EACH = {"[1, 2, 3]": [1, 2, 3], "[]": [], "['a', 'b']": ["a", "b"], "[0, 1, 2, 3, 4]": [0, 1, 2, 3, 4],
            "input": None, COSTLY: None}
# A failed item's message, as the observer makes it: exit code and the log's last 4 KiB. Item
# messages share one budget (status.item_message_limit), however many items fail.
ITEM_LOG_TAIL = "exit code 1; last log lines:\n" + "log line\n" * 455
STATUS_LIMIT = 1024 * 1024  # every status written stays well under etcd's 1.5 MiB
MAX_ITEMS = 5
MAX_DROPS = 4
# More examples for a longer hunt: JOBCHAIN_PROPERTY_EXAMPLES=5000 pytest tests/unit/test_planner_properties.py
EXAMPLES = int(os.environ.get("JOBCHAIN_PROPERTY_EXAMPLES", "300"))


@st.composite
def workflows(draw: st.DrawFn, fan_out: bool = False) -> WorkflowSpec:
    """A random DAG: edges only go forward in a hidden topological order; declared in random order."""
    n = draw(st.integers(1, 7))
    names = [f"n{i}" for i in range(n)]
    bodies: list[dict[str, Any]] = []
    has_incoming: set[str] = set()
    for i, name in enumerate(names):
        nxt = []
        for target in names[i + 1:]:
            if draw(st.booleans()):
                kind = draw(st.sampled_from(KINDS))
                e: dict[str, Any] = {"node": target, "type": kind}
                if kind == "condition":
                    e["when"] = draw(st.sampled_from(WHENS))
                nxt.append(e)
                has_incoming.add(target)
        bodies.append({"name": name, "image": "busybox", "next": nxt,
                       "join": draw(st.sampled_from(["all", "any"]))})
    for body in bodies:
        # Some nodes fan out: one Job per item, the output the list of the items' outputs.
        if draw(st.integers(0, 3)) == 0 or (fan_out and body is bodies[0]):
            body["forEach"] = draw(st.sampled_from(sorted(FOR_EACH)))
            if body["forEach"] in ("input", COSTLY) and body["name"] not in has_incoming:
                body["forEach"] = "[1, 2, 3]"
            body["failFast"] = draw(st.booleans())
            if draw(st.booleans()):
                body["maxParallel"] = draw(st.integers(1, 2))
            body["script"] = draw(st.sampled_from(["echo $(item)", "true"]))
            continue
        # Some nodes use their input: unresolvable when the predecessor's output lacks the key.
        if body["name"] in has_incoming and draw(st.booleans()):
            body["script"] = draw(st.sampled_from(["echo $(input)", "echo $(input.v)"]))
        else:
            body["script"] = "true"
    order = draw(st.permutations(bodies))
    workflow = spec(*order, parallelism=draw(st.integers(1, 4)))
    assert validate_workflow(workflow) == []
    return workflow


def unchanged_finished_nodes(before: ExecutionStatus, after: ExecutionStatus) -> None:
    later = {n.name: n for n in after.nodes}
    for node in before.nodes:
        if node.phase in FINISHED_NODE_PHASES:
            assert later[node.name] == node, f"finished node {node.name} changed"


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


# Outputs of realistic sizes (the status budget of 256 KiB runs out with a few of the large ones) and
# values that do not survive a careless trip through JSON and the API server.
BIG = 150_000
OUTPUT_CHOICES = [
    *OUTPUTS,
    json.dumps({"ok": True, "v": "x" * BIG}),
    json.dumps({"ok": False, "v": "y" * BIG}),
    "z" * (2 * BIG),
    '{"ok": true, "v": null}',
    '{"v": 18446744073709551615, "ok": true}',
    '{"v": 2.0}',
    "NaN",
    '{"v": NaN}',
    "[" * 300 + "]" * 300,
]


# The Job controller sets a Job's Complete/Failed condition about a second after its pod ended (it
# batches pod events); a little more than the time between passes here, so passes fall in the gap.
JOB_CONDITION_LAG = timedelta(seconds=1.5)


@dataclass(frozen=True)
class Scenario:
    """What happens, fixed before the run: so a run with lost writes can be compared with one without."""

    workflow: WorkflowSpec
    # node (node#index of a forEach item) -> (state, raw output, seconds its pod runs)
    results: dict[str, tuple[str, str | None, int]]
    timeout: int | None
    cancel_at: int | None
    # CEL steps one pass may spend (None: the limits' budget): conditions and forEach lists it
    # cannot pay wait for the next pass. The clock stands still, so the steps alone decide.
    pass_steps: int | None = None


@st.composite
def scenarios(draw: st.DrawFn, big_items: bool = False) -> Scenario:
    """With `big_items`, a node fans out and its items' outputs are mostly large (over their share
    of the status budget, or together over 1 MiB)."""
    workflow = draw(workflows(fan_out=big_items))
    if draw(st.booleans()):
        workflow = workflow.model_copy(update={"outputLimitBytes": 262144})
    keys = [n.name for n in workflow.nodes]
    keys += [f"{n.name}#{i}" for n in workflow.nodes if n.forEach is not None for i in range(MAX_ITEMS)]
    item_choices = OUTPUT_CHOICES[len(OUTPUTS):len(OUTPUTS) + 3] if big_items else OUTPUT_CHOICES
    results = {key: (draw(st.sampled_from(["Succeeded", "Failed"])),
                     draw(st.sampled_from(item_choices if "#" in key else OUTPUT_CHOICES)),
                     draw(st.integers(1, 3))) for key in keys}
    for target in (n.name for n in workflow.nodes if n.forEach == COSTLY):
        for e in Graph.of(workflow).incoming[target]:  # often given what it needs to cost
            if e.source in results and draw(st.booleans()):
                results[e.source] = ("Succeeded", XS, results[e.source][2])
    return Scenario(workflow, results, draw(st.none() | st.integers(3, 30)), draw(st.none() | st.integers(0, 15)),
                    draw(st.sampled_from([None, None, 30, 200])))


def pass_budget(sc: Scenario) -> PassBudget | None:
    return None if sc.pass_steps is None else PassBudget(steps=sc.pass_steps, seconds=1.0, clock=lambda: 0.0)


@dataclass
class SimJob:
    manifest: dict[str, Any]
    pod_done: datetime  # the pod's container has terminated: the result can be read
    job_done: datetime  # the Job controller has set Complete/Failed (about a second later)


@dataclass
class Outcome:
    status: ExecutionStatus
    manifests: dict[str, dict[str, Any]]  # node (node#index) -> the one Job it was given
    lost: int
    config_maps: dict[str, Any] = dataclasses.field(default_factory=dict)  # name -> whole output kept there
    # What the pass whose written status ended the run saw: (spec.cancel set, deadline passed).
    ended_seeing: tuple[bool, bool] = (False, False)


def observe(sc: Scenario, jobs: dict[str, SimJob], status: ExecutionStatus, now: datetime) -> dict[str, ObservedJob]:
    """What k8s/observe.py reports: a node not finished in status is read from its pod (finished as
    soon as the pod is); one finished in status only from the Job's conditions (Running until set)."""
    finished = {n.name for n in status.nodes if n.phase in FINISHED_NODE_PHASES}
    finished |= {f"{n.name}#{e.index}" for n in status.nodes for e in n.itemResults or []
                 if e.phase in FINISHED_NODE_PHASES}
    finished |= {f"{n.name}#{i}" for n in status.nodes if n.phase in FINISHED_NODE_PHASES
                 for i in range(n.items.total if n.items else 0)}
    seen = {}
    for name, sim in jobs.items():
        job_name_ = sim.manifest["metadata"]["name"]
        state, raw, _ = result_of(sc, name)
        if name in finished:
            seen[name] = ObservedJob(name, job_name_, JobState(state) if now >= sim.job_done else JobState.RUNNING)
        elif now >= sim.pod_done:
            message = ITEM_LOG_TAIL if "#" in name and state == "Failed" else ""
            seen[name] = job(name, state, raw, finished_at=sim.pod_done, message=message)
        else:
            seen[name] = ObservedJob(name, job_name_, JobState.RUNNING)
    return seen


def result_of(sc: Scenario, key: str) -> tuple[str, str | None, int]:
    """What a node's or an item's Job does (items past MAX_ITEMS, of an `input` list, succeed)."""
    return sc.results.get(key, ("Succeeded", '{"v": 1}', 1))


def run(sc: Scenario, data: st.DataObject | None) -> Outcome:
    """Runs a scenario through plan(), a simulated API server and cluster. With `data`, kopf retries
    (the same pass twice) and lost status writes (a crash after the Jobs were created) are drawn."""
    workflow = sc.workflow
    stored: dict[str, Any] = {"status": {}}  # the execution as the API server keeps it
    jobs: dict[str, SimJob] = {}
    manifests: dict[str, dict[str, Any]] = {}
    config_maps: dict[str, Any] = {}  # output ConfigMaps: created before the status write, so kept when it is lost
    now = T0
    lost = 0
    n = len(workflow.nodes)
    parallelism = workflow.parallelism
    incoming = Graph.of(workflow).incoming
    for step in range(4 * n + MAX_DROPS + 10 + (3 * n if sc.pass_steps else 0)):
        status = ExecutionStatus.model_validate(stored["status"])
        cancel = sc.cancel_at is not None and step >= sc.cancel_at
        late = sc.timeout is not None and now >= T0 + timedelta(seconds=sc.timeout)
        ex = with_status(execution(workflow, timeout=sc.timeout, created=T0), status, cancel=cancel)
        ex = dataclasses.replace(ex, outputs={key: config_maps[ref.configMap]
                                              for key, ref in output_refs(status, ex.name).items()})
        seen = observe(sc, jobs, status, now)
        p = plan(ex, seen, now, cel_budget=pass_budget(sc))
        if p.wake_at == now and p.status.phase not in TERMINAL_EXECUTION_PHASES:
            event("a pass left CEL (conditions or a forEach list) to the next")
        if data is not None and data.draw(st.integers(0, 4), label="kopf retry") == 0:
            again = plan(ex, seen, now, cel_budget=pass_budget(sc))
            assert again.create == p.create and again.delete == p.delete and again.status == p.status

        assert not set(created_nodes(p)) & set(seen), "a Job was planned for a node or item whose Job is observed"
        running_after = {m.name for m in p.status.nodes if m.phase == "Running"}
        assert {split_key(k)[0] for k in created_nodes(p)} <= running_after, \
            "a Job was planned for a node that is not Running"
        jobs_after = sum((m.items.running if m.items is not None else 1) for m in p.status.nodes
                         if m.phase == "Running")
        assert jobs_after <= parallelism
        unchanged_finished_nodes(status, p.status)
        if p.status.reason in ("Running", "Succeeded", "NodeFailed"):
            # (A stop right after a lost status write may leave an adopted node's input unknown:
            # nothing is decided after a stop, so nothing depends on it.)
            for m in p.status.nodes:
                if m.jobName and incoming[m.name]:
                    assert m.inputFrom is not None, f"{m.name} has a Job but no recorded input"
        if status.phase in TERMINAL_EXECUTION_PHASES:
            assert p.status == status and p.create == []
        # (e) A Job whose pod has finished is never deleted as if it were still running.
        done_pods = {jobs[name].manifest["metadata"]["name"] for name in jobs if now >= jobs[name].pod_done}
        assert not set(p.delete) & done_pods, f"deleted the Job of a finished pod: {set(p.delete) & done_pods}"

        for cm in p.config_maps:
            config_maps[cm["metadata"]["name"]] = json.loads(cm["data"]["output.json"])
        for manifest, name in zip(p.create, created_nodes(p), strict=True):
            assert name not in manifests, f"{name} got a second Job"
            manifests[name] = manifest
            duration = timedelta(seconds=result_of(sc, name)[2])
            jobs[name] = SimJob(manifest, now + duration, now + duration + JOB_CONDITION_LAG)
        for deleted in p.delete:
            jobs = {k: v for k, v in jobs.items() if v.manifest["metadata"]["name"] != deleted}
        running_jobs = [j for j in jobs.values() if now < j.pod_done]
        assert len(running_jobs) <= parallelism, "more Jobs running than parallelism"

        crash = data is not None and lost < MAX_DROPS and data.draw(st.integers(0, 5), label="lost write") == 0
        if crash:
            lost += 1
        else:
            patch = status_patch(status, p.status)
            if patch is not None:
                # (c) Written as the controller writes it, through JSON and the API server's rules.
                stored = json_patch(stored, patch)
        written = ExecutionStatus.model_validate(stored["status"])
        # (f) Every write lands: the status stays within its budget, failed items' logs included.
        assert len(json.dumps(stored["status"], separators=(",", ":")).encode()) < STATUS_LIMIT
        for m in written.nodes:
            for entry in m.itemResults or []:
                assert len((entry.message or "").encode()) <= item_message_limit(m.items.total if m.items else 1)
        if written.phase in TERMINAL_EXECUTION_PHASES:
            later = plan(with_status(ex, written), observe(sc, jobs, written, now + timedelta(hours=1)),
                         now + timedelta(hours=1), cel_budget=pass_budget(sc))
            assert later.status == written and later.create == [] and later.delete == []
            return Outcome(written, manifests, lost, config_maps, (cancel, late))
        now += timedelta(seconds=1)
    raise AssertionError(f"not finished: {[(m.name, str(m.phase)) for m in status.nodes]}")


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
