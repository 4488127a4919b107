"""Hostile input through the whole controller path: models, validation, plan(), the status dump
and write, the Events. Generated workflows (bad names, broken references and CEL, deep pod
templates, odd types) run against a fake cluster whose Jobs leave hostile outputs and messages
(NaN, 1e999, integers past 64 bits, deep nesting, invalid escapes, megabytes of text).

Whatever comes in: no exception escapes reconcile_execution, every status written is strict JSON
within the size budget, and each execution is refused with a message or runs to an end.
More examples for a longer hunt: JOBCHAIN_FUZZ_EXAMPLES=5000 pytest tests/unit/test_fuzz.py
"""

from __future__ import annotations

import json
import os
from datetime import timedelta
from typing import Any

from hypothesis import HealthCheck, event, given, settings
from hypothesis import strategies as st

from jobchain.api.models import TERMINAL_EXECUTION_PHASES
from jobchain.controller.reconcile import reconcile_execution
from jobchain.engine.execution.planner import JobState

from .builders import EXECUTION, NAMESPACE, T0, FakeCluster, execution_body

EXAMPLES = int(os.environ.get("JOBCHAIN_FUZZ_EXAMPLES", "400"))
MAX_PASSES = 60
STATUS_LIMIT = 1024 * 1024  # etcd refuses 1.5 MiB; status must stay well under it

VALID_NAMES = st.sampled_from(["a", "b", "c", "d", "e", "f"])


def rarely(draw: st.DrawFn, usual: st.SearchStrategy[Any], hostile: st.SearchStrategy[Any], odd: bool) -> Any:
    """The usual (valid) value, or in an `odd` execution sometimes a value the models refuse: so about
    half of the executions get past the models and run with hostile content (scripts, `when`,
    pod templates, outputs), and the others exercise the refusals."""
    return draw(hostile) if odd and draw(st.integers(0, 4)) == 3 else draw(usual)  # not 0: hypothesis favours it


NAMES = st.text(max_size=70)
REFS = st.sampled_from([
    "$(input)", "$(input.k)", "$(input.k.0)", "$(params.p)", "$(params.q)", "$(nodes.a.output)",
    "$(nodes.b.output.k)", "$(execution.name)", "$(execution.namespace)", "$(", "$(params.)", "$(input..x)",
    "$(nodes.zz.output)", "$(nodes.a)", "$(HOME)", "$(input.k)" * 50,
])
SCRIPTS = st.lists(st.one_of(REFS, st.text(max_size=15)), max_size=5).map("".join)
GOOD_WHENS = st.sampled_from([  # they compile; at run time some hold, some do not, some err
    "true", "false", "output.k > 1", 'output.k == "18446744073709551615"', "has(output.k) && output.k == 1",
    "input.k", "nodes.a.output.k == 1", "1 / 0 == 1", "'a' + 1", "output", "params.p == 'x'",
    "node.exitCode == 0", "(" * 40 + "true" + ")" * 40, "output.k.size() > 0", "has(output.k)",
])
WHENS = st.one_of(GOOD_WHENS, st.sampled_from(["outptu.k", "", "((", "output.k >"]), st.text(max_size=30))
GOOD_SCRIPTS = st.lists(st.sampled_from([
    "echo hi; ", "$(execution.name) ", "$(params.p) ", "$(HOME) ", "$(input) ", "$(input.k) ", "$(input.k.0) ",
    "$(input.k)" * 50, "\u0000 ", "é ",
]), min_size=1, max_size=4).map("".join)
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=5), inner, max_size=3),
    max_leaves=12,
)


def nested(depth: int, leaf: str = "1") -> str:
    return "[" * depth + leaf + "]" * depth


DEEP = {"x": None}
for _ in range(300):
    DEEP = {"x": DEEP}

OUTPUTS = st.one_of(
    st.none(),
    JSON_VALUES.map(lambda v: json.dumps(v)),  # NaN / Infinity included, as Python writes them
    st.sampled_from([
        "NaN", "Infinity", "-Infinity", "1e999", '{"k": 1e999}', '{"k": NaN}', '"\\ud800"', '{"\\udfff": 1}',
        '{"k": 18446744073709551615}', '{"k": -9223372036854775809}', '{"k": 2.0, "n": null}', "[]", "{}",
        nested(256), nested(33), nested(32), '{"k": ' * 200 + "1" + "}" * 200, "x" * 300_000,
        json.dumps({"k": "y" * 200_000}), "\x00\x01\x02", "\ufffd" * 10, "   ", "true", "null",
    ]),
    st.text(max_size=200),
)
MESSAGES = st.one_of(st.just(""), st.text(max_size=50), st.sampled_from(["e" * 5000, "\ud800 lone", "é" * 3000]))


@st.composite
def edges(draw: st.DrawFn, target: str, odd: bool) -> dict[str, Any]:
    out: dict[str, Any] = {"node": rarely(draw, st.just(target), st.one_of(VALID_NAMES, NAMES), odd)}
    kind = rarely(draw, st.sampled_from(["success", "failure", "always", "condition", "condition", None]),
                  st.sampled_from(["bogus", "Success", ""]), odd)
    if kind is not None:
        out["type"] = kind
    if kind == "condition" or draw(st.integers(0, 19)) == 0:
        out["when"] = draw(WHENS)
    return out


@st.composite
def nodes(draw: st.DrawFn, name: str, later: list[str], start: bool, odd: bool) -> dict[str, Any]:
    """A node; in an execution that is not `odd`, its edges only lead to later nodes (no cycle)."""
    out: dict[str, Any] = {"name": rarely(draw, st.just(name), st.one_of(VALID_NAMES, NAMES), odd)}
    body = rarely(draw, st.sampled_from(["script", "script", "command"]), st.sampled_from(["both", "none"]), odd)
    scripts = SCRIPTS if odd else GOOD_SCRIPTS.map(lambda s: s.replace("$(input", "$(x") if start else s)
    if body in ("script", "both"):
        out["script"] = draw(scripts)
    if body in ("command", "both"):
        out["command"] = draw(st.lists(scripts, max_size=3))
        out["args"] = draw(st.lists(scripts, max_size=3))
    if odd and draw(st.integers(0, 4)) == 3:
        out["image"] = draw(st.sampled_from(["busybox:1.36", "", "x" * 300]))
    targets = draw(st.lists(st.sampled_from(later), unique=True, max_size=4)) if later else []
    out["next"] = [draw(edges(t, odd)) for t in targets]
    if draw(st.booleans()):
        out["join"] = rarely(draw, st.sampled_from(["all", "any"]), st.just("some"), odd)
    choice = draw(st.integers(0, 9))
    if choice == 7:
        out["podTemplate"] = {"spec": {"affinity": DEEP}}
    elif choice == 8:
        out["podTemplate"] = draw(st.dictionaries(st.text(max_size=8), JSON_VALUES, max_size=3))
    if draw(st.integers(0, 3)) == 0:
        out["env"] = [{"name": rarely(draw, st.sampled_from(["A", "B"]), st.sampled_from(["1bad", ""]), odd),
                       "value": draw(scripts)}]
    if odd and draw(st.integers(0, 4)) == 3:
        out[draw(st.sampled_from(["on", "retries", "timeoutSeconds", "unknown"]))] = draw(JSON_VALUES)
    return out


@st.composite
def executions(draw: st.DrawFn) -> dict[str, Any]:
    odd = draw(st.integers(0, 9)) >= 6
    names = ["a", "b", "c", "d", "e", "f"][: rarely(draw, st.integers(1, 6), st.just(0), odd)]
    workflow: dict[str, Any] = {"defaults": {"image": "busybox:1.36"},
                                "nodes": []}
    reached: set[str] = set()
    for i, name in enumerate(names):
        body = draw(nodes(name, names[i + 1:], name not in reached, odd))
        workflow["nodes"].append(body)
        reached.update(e["node"] for e in body["next"])
    if odd:
        workflow["params"] = draw(st.lists(st.fixed_dictionaries(
            {"name": st.sampled_from(["p", "q", "9x"])}, optional={"default": st.text(max_size=10)}), max_size=2))
    else:
        workflow["params"] = [{"name": "p", "default": draw(st.text(max_size=10))}]
    if draw(st.booleans()):
        workflow["parallelism"] = rarely(draw, st.integers(1, 4), st.one_of(st.integers(-1, 120), JSON_VALUES), odd)
    if draw(st.booleans()):
        workflow["outputLimitBytes"] = rarely(draw, st.integers(256, 262144), st.integers(0, 300_000), odd)
    spec: dict[str, Any] = {"workflow": workflow}
    if draw(st.booleans()):
        keys = st.sampled_from(["p", "q", "r"] if odd else ["p"])
        spec["params"] = draw(st.dictionaries(keys, st.text(max_size=10), max_size=3))
    if draw(st.integers(0, 3)) == 0:
        spec["timeoutSeconds"] = rarely(draw, st.integers(5, 60), st.integers(-5, 0) | st.text(max_size=3), odd)
    if draw(st.integers(0, 9)) == 3:
        spec["cancel"] = True
    return spec


def check_written(cluster: FakeCluster) -> None:
    status = cluster.executions[EXECUTION].get("status")
    if status is None:
        return
    text = json.dumps(status, allow_nan=False)  # the API server accepts strict JSON only
    assert len(text.encode()) < STATUS_LIMIT, len(text.encode())


# derandomize: the same inputs in every CI run; JOBCHAIN_PROPERTY_SEARCH=1 hunts with fresh ones.
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow],
          derandomize=not os.environ.get("JOBCHAIN_PROPERTY_SEARCH"), database=None)
@given(spec=executions(), data=st.data())
def test_hostile_workflows_and_outputs_are_refused_with_a_message_or_run_to_an_end(spec: dict[str, Any],
                                                                                  data: st.DataObject) -> None:
    body = execution_body()
    body["spec"] = spec
    cluster = FakeCluster(body)
    phase: str | None = None
    for step in range(MAX_PASSES):
        now = T0 + timedelta(seconds=step)
        phase = reconcile_execution(cluster, NAMESPACE, EXECUTION, now=now).phase
        check_written(cluster)
        if phase in TERMINAL_EXECUTION_PHASES:
            break
        for name, seen in list(cluster.seen.items()):
            if seen.state == JobState.RUNNING and data.draw(st.booleans(), label="finishes now"):
                cluster.finish(name, data.draw(st.sampled_from(["Succeeded", "Failed"])), data.draw(OUTPUTS),
                               now, message=data.draw(MESSAGES))
    status = cluster.status()
    assert phase in TERMINAL_EXECUTION_PHASES, f"still {phase} after {MAX_PASSES} passes: {status.nodes}"
    event(f"{status.phase}/{status.reason}")
    if status.phase != "Succeeded":
        assert status.message, "ended without saying why"
