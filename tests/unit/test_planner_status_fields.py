"""The planner, what users read in status: outputs capped and bounded, progress, conditions and
node order."""

from __future__ import annotations

import json
from datetime import timedelta
from typing import Any

import pytest

from jobchain.api.models import ExecutionStatus
from jobchain.engine.execution.events import events_between
from jobchain.engine.execution.planner import iso, plan
from jobchain.engine.spec.outputs import MIN_OUTPUT_SHARE, STATUS_OUTPUT_BUDGET, stored_size

from .builders import (
    FAIL,
    T0,
    chain,
    execution,
    job,
    node,
    node_status,
    observed,
    simulate,
    spec,
    started,
    with_status,
)

# ---- outputs in status ---------------------------------------------------------------------

LIMITS: list[tuple[str, dict[str, Any], str, Any, bool]] = [
    ("small JSON output kept", {}, '{"a": 1}', {"a": 1}, False),
    ("over the default 32 KiB truncated", {}, "x" * 40000, "x" * 32768, True),
    ("outputLimitBytes set lower", {"outputLimitBytes": 300}, "y" * 1000, "y" * 300, True),
    ("outputLimitBytes set higher", {"outputLimitBytes": 65536}, "z" * 40000, "z" * 40000, False),
]


@pytest.mark.parametrize(("fields", "raw", "expected", "truncated"),
                         [c[1:] for c in LIMITS], ids=[c[0] for c in LIMITS])
def test_output_is_capped_and_marked(fields: dict[str, Any], raw: str, expected: Any, truncated: bool) -> None:
    run = simulate(spec(node("a"), **fields), {"a": ("Succeeded", raw)})
    a = node_status(run.status, "a")
    assert a.output == expected
    assert a.outputTruncated is truncated
    assert ("truncated" in a.message) is truncated
    assert run.status.phase == "Succeeded"


def test_status_stays_bounded_with_300_nodes_of_large_output() -> None:
    workflow = spec(*(node(f"n{i:03d}") for i in range(300)), parallelism=100)
    run = simulate(workflow, lambda name, _: ("Succeeded", json.dumps({"blob": name * 20000})))
    status = run.status
    assert status.phase == "Succeeded"
    outputs = sum(stored_size(n.output) for n in status.nodes)
    assert outputs <= STATUS_OUTPUT_BUDGET + 300 * MIN_OUTPUT_SHARE
    assert len(status.model_dump_json()) < 1_500_000  # etcd's object limit is 1.5 MiB
    assert all(n.outputTruncated for n in status.nodes)
    assert all(stored_size(n.output) >= MIN_OUTPUT_SHARE for n in status.nodes)


# ---- fields users read -----------------------------------------------------------------------

def test_progress_running_and_conditions_while_running() -> None:
    workflow = spec(node("a", "c"), node("b", "c"), node("c"), parallelism=2)
    ex, p1 = started(workflow)
    s = p1.status
    assert (s.phase, s.progress, s.running) == ("Running", "0/3", "a,b")
    assert s.startedAt == iso(T0)
    assert s.observedGeneration == 1
    assert [(c.type, c.status, c.reason) for c in s.conditions] == [("Succeeded", "Unknown", "Running")]
    assert [e.reason for e in events_between(ExecutionStatus(), s)] == ["ExecutionStarted", "NodeStarted",
                                                                        "NodeStarted"]
    p2 = plan(ex, observed(job("a", "Succeeded"), job("b")), T0 + timedelta(seconds=2))
    assert (p2.status.progress, p2.status.running) == ("1/3", "b")
    assert p2.status.conditions[0].lastTransitionTime == iso(T0)  # unchanged condition keeps its time


def test_progress_conditions_and_duration_are_set_when_finished() -> None:
    run = simulate(chain("a", "b"))
    s = run.status
    assert (s.progress, s.running) == ("2/2", None)
    cond = s.conditions[0]
    assert (cond.type, cond.status, cond.reason) == ("Succeeded", "True", "Succeeded")
    assert cond.lastTransitionTime == s.finishedAt
    assert s.duration == "2s"
    assert "2 succeeded, 0 failed, 0 skipped" in s.message


def test_failed_condition_is_false_with_the_reason() -> None:
    run = simulate(chain("a"), {"a": FAIL})
    cond = run.status.conditions[0]
    assert (cond.status, cond.reason) == ("False", "NodeFailed")
    assert "a" in cond.message


def test_nodes_are_listed_in_declaration_order() -> None:
    p = plan(execution(spec(node("z"), node("a", "m"), node("m"))), {}, T0)
    assert [n.name for n in p.status.nodes] == ["z", "a", "m"]


def test_input_status_is_not_modified() -> None:
    ex = execution(chain("a", "b"))
    before = ex.status.model_copy(deep=True)
    plan(ex, {}, T0)
    assert ex.status == before == ExecutionStatus()


def test_output_from_logs_keeps_the_end_of_the_log() -> None:
    # Issue 8, defect 10: a log's result is in its last lines; the first 32 KiB of the last
    # 64 KiB were kept, dropping them.
    wf = spec(node("a", output={"from": "logs"}))
    first = plan(execution(wf), {}, T0)
    log = "progress line\n" * 4000 + "RESULT 42"
    done = plan(with_status(execution(wf), first.status), observed(job("a", "Succeeded", log)), T0)
    a = node_status(done.status, "a")
    assert a.outputTruncated and str(a.output).endswith("RESULT 42")
