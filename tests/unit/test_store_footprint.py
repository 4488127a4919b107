"""What one execution costs the operator's watch store: bounded, whatever the workflow within the limits.

Why: the store held each execution whole as Python objects. A Workflow within every limit (500
nodes, 100 env entries each) is ~1.4 MB of JSON and ~12 MiB as Python dicts and strings, held
once for the inline spec and once for the snapshot in status: ~43 executions filled the chart's
512 MiB limit and the operator crash-looped for every namespace. The bulk is now kept packed.
"""

from __future__ import annotations

import random
import sys
from collections.abc import Iterable
from typing import Any

from jobchain.api.limits import MAX_ENV, MAX_NODES
from jobchain.engine.coordination.admission import member_of
from jobchain.engine.schedules.decide import run_of
from jobchain.k8s.store import Store

MIB = 1024 * 1024


def deep_size(objects: Iterable[Any]) -> int:
    """Bytes held by `objects` and everything they reach, each object counted once."""
    seen: set[int] = set()
    stack = list(objects)
    total = 0
    while stack:
        obj = stack.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        total += sys.getsizeof(obj)
        if isinstance(obj, dict):
            stack.extend(obj.keys())
            stack.extend(obj.values())
        elif isinstance(obj, list | tuple):
            stack.extend(obj)
    return total


def largest_workflow() -> dict[str, Any]:
    """MAX_NODES nodes of MAX_ENV env entries each (~1.5 MB of JSON: an execution holding it in
    status is at etcd's 1.5 MiB), with values that do not repeat (random hex)."""
    rng = random.Random(7)
    nodes = []
    for n in range(MAX_NODES):
        env = [{"name": f"E{i:02d}", "value": f"{rng.getrandbits(12):03x}"} for i in range(MAX_ENV)]
        nodes.append({"name": f"step-{n:03d}", "image": "busybox:1.36", "script": f"echo step {n}", "env": env,
                      "next": [{"node": f"step-{n + 1:03d}"}] if n + 1 < MAX_NODES else []})
    return {"nodes": nodes}


def big_execution(name: str = "big-1", rv: str = "5") -> dict[str, Any]:
    workflow = largest_workflow()
    return {
        "metadata": {"namespace": "tenant", "name": name, "uid": "u-" + name, "resourceVersion": rv,
                     "creationTimestamp": "2026-01-01T00:00:00Z", "labels": {"jobchain.dev/schedule": "nightly"},
                     "managedFields": [{"manager": "kubectl", "fieldsV1": {"f:spec": {}}}],
                     "annotations": {"kubectl.kubernetes.io/last-applied-configuration": "{\"spec\": \"...\"}",
                                     "team": "data"}},
        "spec": {"workflowRef": {"name": "etl"}, "params": {"day": "monday"}},
        "status": {"phase": "Running", "workflowSpec": workflow, "startedAt": "2026-01-01T00:00:01Z",
                   "nodes": [{"name": f"step-{n:03d}", "phase": "Succeeded", "output": {"rows": n}}
                             for n in range(MAX_NODES)]},
    }


def test_the_largest_workflow_costs_the_store_at_most_one_mib_per_execution() -> None:
    store = Store()
    execution = big_execution()
    whole = deep_size([execution])
    assert whole > 8 * MIB  # what the store held before, as a sanity floor of the measure
    store.put_execution(execution)
    held = deep_size(store._executions.values())
    assert held <= 1 * MIB, f"the store holds {held / MIB:.2f} MiB for one execution"


def test_a_pass_reads_the_execution_as_it_was_written_byte_for_byte() -> None:
    store = Store()
    execution = big_execution()
    execution["status"]["nodes"][0]["output"] = {"text": "tab\there \u00e9\u4e2d \\n not a newline", "n": 1.5e300}
    store.put_execution(execution)
    read = store.execution("tenant", "big-1")
    expected = {**execution, "metadata": {k: v for k, v in execution["metadata"].items() if k != "managedFields"}}
    expected["metadata"]["annotations"] = {"team": "data"}
    assert read == expected
    read["status"]["phase"] = "Failed"  # a pass's own copy: the store's stays as written
    held = store.execution("tenant", "big-1")
    assert held is not None and held["status"]["phase"] == "Running"


def test_lists_of_executions_answer_queues_and_schedules_as_the_whole_objects_do() -> None:
    store = Store()
    by_ref = {"metadata": {"namespace": "tenant", "name": "queued", "uid": "q", "resourceVersion": "3",
                           "creationTimestamp": "2026-01-01T00:00:00Z"},
              "spec": {"workflowRef": {"name": "etl"}},
              "status": {"phase": "Running", "workflowSpec": {"nodes": [{"name": "a"}]}, "nodes": []}}
    store.put_execution(by_ref)
    store.put_execution(big_execution())
    listed = {b["metadata"]["name"]: b for b in store.executions_in("tenant")}
    assert member_of(listed["queued"], "etl") == member_of(by_ref, "etl")
    assert member_of(listed["big-1"], "etl") == member_of(big_execution(), "etl")
    inline = {**by_ref, "metadata": {**by_ref["metadata"], "name": "inline"}, "spec": {"workflow": {"nodes": []}}}
    store.put_execution(inline)
    assert member_of(next(b for b in store.executions_in("tenant") if b["metadata"]["name"] == "inline"),
                     "etl") is None
    assert run_of(listed["big-1"]) == run_of(big_execution())


def test_an_older_copy_is_still_refused_after_packing() -> None:
    store = Store()
    assert store.put_execution(big_execution(rv="12"))
    assert not store.put_execution(big_execution(rv="11"))
    held = store.execution("tenant", "big-1")
    assert held is not None and held["metadata"]["resourceVersion"] == "12"
