"""The workflows the chaos tier runs, each with the end it must reach whatever happens to the operator.

Why expected ends written out by hand, not computed by the engine: the tier checks the
operator against what a user was promised (README semantics), so the oracle must not share
code with what it checks. Each shape is deterministic: sleeps are spread so that "the
predecessor that finished last" (inputFrom) is never a tie, even at the 1 s resolution of
container timestamps.
"""

from __future__ import annotations

import json
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from tests.e2e.support import workflow


@dataclass(frozen=True)
class Expected:
    """What one execution must show at its end; None in a node field means "not checked"."""

    phase: str
    reason: str
    nodes: dict[str, dict[str, Any]]  # node -> {phase, output?, inputFrom?, exitCode?}


@dataclass(frozen=True)
class Shape:
    name: str
    manifest: dict[str, Any]
    expected: Expected
    spec: dict[str, Any] = field(default_factory=dict)  # extra execution spec (timeoutSeconds)
    cancel_when_running: str | None = None  # the chaos loop sets spec.cancel once this node runs


def chain(length: int = 5) -> Shape:
    """Outputs passed along: node i outputs i, computed from its input."""
    nodes = []
    for i in range(length):
        script = ("sleep 2; echo 1 > \"$JOBCHAIN_OUTPUT\"" if i == 0 else
                  "sleep 2; n=\"$JOBCHAIN_INPUT\"; echo $((n + 1)) > \"$JOBCHAIN_OUTPUT\"")
        node: dict[str, Any] = {"name": f"s{i}", "script": script}
        if i + 1 < length:
            node["next"] = [{"node": f"s{i + 1}"}]
        nodes.append(node)
    expected = {f"s{i}": {"phase": "Succeeded", "output": i + 1, "inputFrom": f"s{i - 1}" if i else None}
                for i in range(length)}
    return Shape("chain", workflow("chain", nodes), Expected("Succeeded", "Succeeded", expected))


def failure_routing() -> Shape:
    """A failure routed to its handler; an `always` edge and a join after both branches."""
    nodes = [
        {"name": "extract", "script": "sleep 1; echo '{\"rows\": 3}' > \"$JOBCHAIN_OUTPUT\"",
         "next": [{"node": "load"}]},
        {"name": "load", "script": "sleep 2; echo half-loaded; exit 3",
         "next": [{"node": "recover", "type": "failure"}, {"node": "notify", "type": "always"}]},
        {"name": "recover", "script": "echo '\"recovered\"' > \"$JOBCHAIN_OUTPUT\"",
         "next": [{"node": "done", "type": "always"}]},
        {"name": "notify", "script": "sleep 3; echo '\"notified\"' > \"$JOBCHAIN_OUTPUT\"",
         "next": [{"node": "done", "type": "always"}]},
        {"name": "done", "script": "echo \"$JOBCHAIN_INPUT\" > \"$JOBCHAIN_OUTPUT\""},
    ]
    expected = {
        "extract": {"phase": "Succeeded", "output": {"rows": 3}, "inputFrom": None},
        "load": {"phase": "Failed", "exitCode": 3, "inputFrom": "extract"},
        "recover": {"phase": "Succeeded", "output": "recovered", "inputFrom": "load"},
        "notify": {"phase": "Succeeded", "output": "notified", "inputFrom": "load"},
        # parallelism 1: notify runs after recover, so it finished last and is done's input
        "done": {"phase": "Succeeded", "output": "notified", "inputFrom": "notify"},
    }
    return Shape("routing", workflow("routing", nodes), Expected("Succeeded", "Succeeded", expected))


def fan_in() -> Shape:
    """Three branches at once (parallelism 3) and a join that reads every branch's output."""
    branches = {"a": 1, "b": 2, "c": 6}  # seconds of sleep: c finishes last
    nodes: list[dict[str, Any]] = [{"name": "start", "script": "echo '{\"base\": 10}' > \"$JOBCHAIN_OUTPUT\"",
                                    "next": [{"node": b} for b in branches]}]
    for i, (branch, sleep) in enumerate(branches.items(), start=1):
        nodes.append({"name": branch, "next": [{"node": "sum"}],
                      "script": f"sleep {sleep}; echo \"{{\\\"v\\\": $(( $(input.base) + {i} ))}}\" "
                                "> \"$JOBCHAIN_OUTPUT\""})
    nodes.append({"name": "sum", "script": "echo $(( $(nodes.a.output.v) + $(nodes.b.output.v) + "
                                           "$(nodes.c.output.v) )) > \"$JOBCHAIN_OUTPUT\""})
    expected: dict[str, dict[str, Any]] = {"start": {"phase": "Succeeded", "output": {"base": 10}, "inputFrom": None}}
    for i, branch in enumerate(branches, start=1):
        expected[branch] = {"phase": "Succeeded", "output": {"v": 10 + i}, "inputFrom": "start"}
    expected["sum"] = {"phase": "Succeeded", "output": 36, "inputFrom": "c"}
    return Shape("fan-in", workflow("fan-in", nodes, parallelism=3), Expected("Succeeded", "Succeeded", expected))


def log_output() -> Shape:
    """An output read from the pod log, a key of it passed on."""
    nodes = [
        {"name": "gen", "output": {"from": "logs"}, "next": [{"node": "use"}],
         "script": "sleep 2; echo '{\"items\": [1, 2, 3], \"note\": \"from the log\"}'"},
        {"name": "use", "script": "sleep 1; echo \"$(input.items)\" > \"$JOBCHAIN_OUTPUT\""},
    ]
    expected = {
        "gen": {"phase": "Succeeded", "output": {"items": [1, 2, 3], "note": "from the log"}, "inputFrom": None},
        "use": {"phase": "Succeeded", "output": [1, 2, 3], "inputFrom": "gen"},
    }
    return Shape("logs", workflow("logs", nodes), Expected("Succeeded", "Succeeded", expected))


def _slow_chain(name: str) -> list[dict[str, Any]]:
    return [
        {"name": "first", "script": "sleep 2; echo 1 > \"$JOBCHAIN_OUTPUT\"", "next": [{"node": "slow"}]},
        {"name": "slow", "script": "sleep 300", "next": [{"node": "after"}]},
        {"name": "after", "script": "echo never"},
    ]


def cancelled() -> Shape:
    """Cancelled by the user once its slow node runs."""
    expected = {
        "first": {"phase": "Succeeded", "output": 1},
        "slow": {"phase": "Cancelled"},
        "after": {"phase": "Cancelled"},
    }
    return Shape("cancel", workflow("cancel", _slow_chain("cancel")), Expected("Cancelled", "Cancelled", expected),
                 cancel_when_running="slow")


def deadline() -> Shape:
    """Runs past spec.timeoutSeconds."""
    expected = {
        "first": {"phase": "Succeeded", "output": 1},
        "slow": {"phase": "Cancelled"},
        "after": {"phase": "Cancelled"},
    }
    return Shape("deadline", workflow("deadline", _slow_chain("deadline")),
                 Expected("Failed", "DeadlineExceeded", expected), spec={"timeoutSeconds": 45})


FILES = ["a", "b", "c", "d", "e"]


def fan_out() -> Shape:
    """forEach: five items, two at a time, each sleeping so that kills land while items run; the
    next node gets the list of their outputs, complete and in item order (no item runs twice:
    job_mismatches counts each item's Jobs)."""
    nodes = [
        {"name": "list", "script": f"echo '{{\"files\": {json.dumps(FILES)}}}' > \"$JOBCHAIN_OUTPUT\"",
         "next": [{"node": "each"}]},
        {"name": "each", "forEach": "input.files", "maxParallel": 2, "next": [{"node": "gather"}],
         "script": "sleep 3; echo \"\\\"$(item)-$(item.index)\\\"\" > \"$JOBCHAIN_OUTPUT\""},
        {"name": "gather", "script": "echo \"$JOBCHAIN_INPUT\" > \"$JOBCHAIN_OUTPUT\""},
    ]
    done = [f"{f}-{i}" for i, f in enumerate(FILES)]
    expected = {
        "list": {"phase": "Succeeded", "output": {"files": FILES}, "inputFrom": None},
        "each": {"phase": "Succeeded", "output": done, "inputFrom": "list"},
        "gather": {"phase": "Succeeded", "output": done, "inputFrom": "each"},
    }
    return Shape("fan-out", workflow("fan-out", nodes, parallelism=3), Expected("Succeeded", "Succeeded", expected))


def _slow_fan_out() -> list[dict[str, Any]]:
    return [
        {"name": "first", "script": "sleep 2; echo 1 > \"$JOBCHAIN_OUTPUT\"", "next": [{"node": "each"}]},
        {"name": "each", "forEach": "[1, 2, 3]", "script": "sleep 300", "next": [{"node": "after"}]},
        {"name": "after", "script": "echo never"},
    ]


def fan_out_cancelled() -> Shape:
    """Cancelled by the user while its items run: their Jobs deleted, the items and the node Cancelled."""
    expected = {"first": {"phase": "Succeeded", "output": 1}, "each": {"phase": "Cancelled"},
                "after": {"phase": "Cancelled"}}
    return Shape("fan-cancel", workflow("fan-cancel", _slow_fan_out(), parallelism=3),
                 Expected("Cancelled", "Cancelled", expected), cancel_when_running="each")


def fan_out_deadline() -> Shape:
    """Its items run past spec.timeoutSeconds."""
    expected = {"first": {"phase": "Succeeded", "output": 1}, "each": {"phase": "Cancelled"},
                "after": {"phase": "Cancelled"}}
    return Shape("fan-deadline", workflow("fan-deadline", _slow_fan_out(), parallelism=3),
                 Expected("Failed", "DeadlineExceeded", expected), spec={"timeoutSeconds": 45})


def mixed() -> list[Shape]:
    """At least a dozen executions of every shape the issue names."""
    return [chain(), chain(), chain(), failure_routing(), failure_routing(), fan_in(), fan_in(),
            log_output(), log_output(), cancelled(), cancelled(), deadline(), deadline(),
            fan_out(), fan_out(), fan_out_cancelled(), fan_out_deadline()]


def mismatches(shape: Shape, status: dict[str, Any]) -> list[str]:
    """Where an execution's final status differs from the shape's expected end."""
    wrong = []
    exp = shape.expected
    if status.get("phase") != exp.phase or status.get("reason") != exp.reason:
        wrong.append(f"phase/reason {status.get('phase')}/{status.get('reason')}, expected {exp.phase}/{exp.reason}")
    by_name = {n["name"]: n for n in status.get("nodes") or []}
    for node, fields in exp.nodes.items():
        got = by_name.get(node, {})
        for key, value in fields.items():
            if got.get(key) != value:
                wrong.append(f"node {node}: {key} is {got.get(key)!r}, expected {value!r}")
        if fields.get("phase") in ("Cancelled", "Succeeded") and got.get("itemResults") is not None:
            # the items of a node cancelled are Succeeded (finished before) or Cancelled, never Failed
            failed = [e["index"] for e in got["itemResults"] if e.get("phase") == "Failed"]
            if failed:
                wrong.append(f"node {node}: item(s) {failed} Failed, expected none")
    return wrong


def job_mismatches(status: dict[str, Any], job_labels: list[dict[str, str]]) -> list[str]:
    """Where the Jobs of an execution (their labels) differ from one Job per node, or per forEach
    item, that ran, and none for one that never started."""
    per_key = Counter(
        f"{labels['jobchain.dev/node']}#{labels['jobchain.dev/item']}" if "jobchain.dev/item" in labels
        else labels["jobchain.dev/node"] for labels in job_labels)
    wrong = []
    for node in status.get("nodes") or []:
        runs = [(f"{node['name']}#{e['index']}", e) for e in node.get("itemResults") or []]
        if node.get("items") is None:
            runs = [(node["name"], node)]
        for key, run in runs:
            count = per_key.pop(key, 0)
            if run["phase"] in ("Succeeded", "Failed") and run.get("jobName") and count != 1:
                wrong.append(f"{key} has {count} Jobs, expected 1")
            if not run.get("jobName") and count:
                wrong.append(f"{key} never started but has {count} Job(s)")
    wrong += [f"{key} is in no status entry but has {count} Job(s)" for key, count in sorted(per_key.items())]
    return wrong
