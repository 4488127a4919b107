"""A simulated cluster and controller around plan(), for the planner's property tests.

What it simulates: random acyclic workflows (edges of every kind, joins, forEach fan-outs, scripts
using their input) and, per scenario, what each node's or item's Job does (result, output, how long
its pod runs), a deadline and a cancel. `run()` drives plan() pass after pass with a clock that
steps one second: Jobs are created as planned, their pods finish after their run time and the Job
controller sets Complete/Failed JOB_CONDITION_LAG later (`observe()` reports what k8s/observe.py
would), output ConfigMaps are kept, and status is written as the controller writes it (a JSON
merge patch through the API server's rules). With hypothesis `data`, it also draws the controller's
failure modes: a kopf retry (the same pass planned twice) and a lost status write (a crash after the
Jobs were created). It asserts the per-pass invariants as it goes and returns the final Outcome.
"""

from __future__ import annotations

import dataclasses
import json
import os
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from hypothesis import event
from hypothesis import strategies as st

from jobchain.api.limits import CEL_PASS_STEPS
from jobchain.api.models import (
    FINISHED_NODE_PHASES,
    TERMINAL_EXECUTION_PHASES,
    ApprovalDecision,
    ApprovalGiven,
    ExecutionStatus,
    WorkflowSpec,
)
from jobchain.engine.execution.conditions import PassBudget
from jobchain.engine.execution.finally_ import with_finally
from jobchain.engine.execution.planner import JobState, ObservedJob, plan
from jobchain.engine.execution.status import item_message_limit, output_refs
from jobchain.engine.execution.status_write import status_patch
from jobchain.engine.spec.graph import Graph
from jobchain.engine.spec.render import split_key
from jobchain.engine.spec.validation import validate_workflow

from .builders import (
    T0,
    created_nodes,
    execution,
    job,
    json_patch,
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
def workflows(draw: st.DrawFn, fan_out: bool = False, gates: bool = False) -> WorkflowSpec:
    """A random DAG: edges only go forward in a hidden topological order; declared in random order.
    With `gates`, some nodes are approval gates (no Job), with or without a timeout."""
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
        if gates and draw(st.integers(0, 2)) == 0:
            del body["image"]
            body["approval"] = {"message": f"may {body['name']} pass?",
                                **({"timeoutSeconds": draw(st.integers(1, 8))} if draw(st.booleans()) else {})}
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
            # (but for the one mark a decided gate takes: a later decision in spec, ignored)
            after_node = later[node.name].model_copy(update={"ignoredDecision": node.ignoredDecision})
            assert after_node == node, f"finished node {node.name} changed"


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
    stop_at: int | None = None  # the pass from which spec.stop is set (the graceful stop)
    # approval gate -> (decision, message, the step from which spec.approvals holds it; 0: at creation)
    approvals: dict[str, tuple[str, str, int]] = dataclasses.field(default_factory=dict)

    def approvals_at(self, step: int) -> dict[str, ApprovalGiven]:
        return {name: ApprovalGiven(decision=ApprovalDecision(d), message=m)
                for name, (d, m, at) in self.approvals.items() if at <= step}


@st.composite
def scenarios(draw: st.DrawFn, big_items: bool = False, gates: bool = False) -> Scenario:
    """With `big_items`, a node fans out and its items' outputs are mostly large (over their share
    of the status budget, or together over 1 MiB). With `gates`, some nodes are approval gates,
    each decided before it is reached, while it waits or after its timeout (or never: it times out)."""
    workflow = draw(workflows(fan_out=big_items, gates=gates))
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
    approvals: dict[str, tuple[str, str, int]] = {}
    for gate in (n for n in workflow.nodes if n.approval is not None):
        undecided_ok = gate.approval is not None and gate.approval.timeoutSeconds is not None
        if undecided_ok and draw(st.booleans()):
            continue  # nobody decides: it times out
        approvals[gate.name] = (draw(st.sampled_from(["approve", "deny"])), f"by user {gate.name}",
                                draw(st.integers(0, 12)))
    return Scenario(workflow, results, draw(st.none() | st.integers(3, 30)), draw(st.none() | st.integers(0, 15)),
                    draw(st.sampled_from([None, None, 30, 200])), approvals=approvals)


def pass_budget(sc: Scenario) -> PassBudget:
    """The CEL budget of each pass: its steps only, never the real clock's half second: a loaded
    machine would then defer an edge in one of two identical passes (the kopf retry compared below
    fails, at random). The time ceiling has its own tests (test_cel_pass_budget)."""
    return PassBudget(steps=sc.pass_steps or CEL_PASS_STEPS, seconds=1.0, clock=lambda: 0.0)


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
    incoming = Graph.of(with_finally(workflow)).incoming
    n += len(workflow.finally_)
    gates = {g.name: g.approval for g in workflow.nodes if g.approval is not None}
    for step in range(4 * n + MAX_DROPS + 10 + (3 * n if sc.pass_steps else 0) + (20 if gates else 0)):
        status = ExecutionStatus.model_validate(stored["status"])
        cancel = sc.cancel_at is not None and step >= sc.cancel_at
        late = sc.timeout is not None and now >= T0 + timedelta(seconds=sc.timeout)
        stop = sc.stop_at is not None and step >= sc.stop_at
        ex = with_status(execution(workflow, timeout=sc.timeout, created=T0), status, cancel=cancel, stop=stop,
                         approvals=sc.approvals_at(step))
        ex = dataclasses.replace(ex, outputs={key: config_maps[ref.configMap]
                                              for key, ref in output_refs(status, ex.name).items()})
        seen = observe(sc, jobs, status, now)
        p = plan(ex, seen, now, cel_budget=pass_budget(sc))
        if p.wake_at == now and p.status.phase not in TERMINAL_EXECUTION_PHASES and p.status.outcome == status.outcome:
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
        # The main graph's outcome, once in status, never changes; finally Jobs come only after it.
        if status.outcome is not None:
            assert p.status.outcome == status.outcome, "the main graph's outcome changed"
        finals = {m.name for m in p.status.nodes if m.finally_}
        assert status.outcome is not None or not {split_key(k)[0] for k in created_nodes(p)} & finals, \
            "a finally Job was planned before the main graph's outcome was in status"
        for m in p.status.nodes:  # a waiting gate is looked at again by its deadline, without any event
            timeout = gates[m.name].timeoutSeconds if m.name in gates else None
            if m.phase == "Waiting" and timeout is not None and m.startedAt:
                assert p.wake_at is not None
                assert p.wake_at <= datetime.fromisoformat(m.startedAt.replace("Z", "+00:00")) + timedelta(
                    seconds=timeout)
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

