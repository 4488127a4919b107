"""Retry (spec.resumeFrom) over random workflows: the invariants a replayed, interrupted retry keeps.

A random execution runs and fails (test_planner_properties' scenarios); a retry of it is seeded
and run with new random results, through JSON and the API server's patch rules, with kopf retries
(the same pass twice) and lost status writes drawn. Whatever happens: a reused node has nothing
upstream that runs again, never gets a Job and never changes; a carried forEach item never runs
again; seeding is the same twice and survives the trip through the API server; the retry ends, and
ends as it does without the lost writes.
"""

from __future__ import annotations

import dataclasses
import json
from datetime import timedelta
from typing import Any

from hypothesis import HealthCheck, assume, event, given, settings
from hypothesis import strategies as st

from jobchain.api.models import (
    TERMINAL_EXECUTION_PHASES,
    ExecutionPhase,
    ExecutionStatus,
    ResumeFrom,
    WorkflowExecutionSpec,
    WorkflowRef,
)
from jobchain.controller.reconcile import status_patch
from jobchain.engine.execution.passes import resume_from
from jobchain.engine.execution.planner import plan
from jobchain.engine.execution.resume import rerun_from, reusable, seed, wanted_outputs
from jobchain.engine.execution.status import output_refs
from jobchain.engine.execution.types import ResumeSource
from jobchain.engine.spec.graph import Graph
from jobchain.engine.spec.render import ExecutionRef, item_key

from .builders import EXECUTION, NAMESPACE, T0, UID, created_nodes, execution, json_patch, with_status
from .planner_sim import (
    EXAMPLES,
    JOB_CONDITION_LAG,
    MAX_DROPS,
    Scenario,
    SimJob,
    observe,
    result_of,
    run,
    scenarios,
    unchanged_finished_nodes,
)

RETRY = ExecutionRef(EXECUTION, NAMESPACE, UID, "wf")


def outputs_of(source: ExecutionStatus, config_maps: dict[str, Any]) -> dict[str, Any]:
    """The whole outputs of `source` a retry may copy, as the controller reads them."""
    return {key: config_maps[ref.configMap] for key, ref in wanted_outputs(EXECUTION, source).items()
            if ref.configMap in config_maps}


def seeded(source: ExecutionStatus, config_maps: dict[str, Any],
           from_node: str | None = None) -> tuple[ExecutionStatus, dict[str, Any]]:
    status = ExecutionStatus()
    made = seed(status, "first", source, T0 + timedelta(hours=1), RETRY, outputs_of(source, config_maps), from_node)
    return status, {cm["metadata"]["name"]: json.loads(cm["data"]["output.json"]) for cm in made}


def retry_run(sc: Scenario, start: ExecutionStatus, config_maps: dict[str, Any], never: set[str],
              data: st.DataObject | None, source: ResumeSource | None = None,
              from_node: str | None = None) -> ExecutionStatus:
    """The retry's passes from its seeded status, as test_planner_properties.run runs an execution.
    With `source`: from an empty status, through the passes that pin and seed (spec.resumeFrom)."""
    stored: dict[str, Any] = json_patch({"status": {}}, status_patch(ExecutionStatus(), start) or [])
    jobs: dict[str, SimJob] = {}
    config_maps = dict(config_maps)
    now = T0 + timedelta(hours=1)
    lost = 0
    resume = {"resumeFrom": ResumeFrom(name="first", node=from_node)} if source is not None else {}
    for _ in range(4 * len(sc.workflow.nodes) + 2 * MAX_DROPS + 12):
        status = ExecutionStatus.model_validate(stored["status"])
        ex = with_status(execution(ref="wf", created=T0 + timedelta(hours=1)), status, **resume)
        ex = dataclasses.replace(ex, outputs={key: config_maps[ref.configMap]
                                              for key, ref in output_refs(status, ex.name).items()})
        seen = observe(sc, jobs, status, now)
        reads = source if source is not None and resume_from(ex.spec, status) else None
        p = plan(ex, seen, now, resume_source=reads)
        if data is not None and data.draw(st.integers(0, 4), label="kopf retry") == 0:
            again = plan(ex, seen, now, resume_source=reads)
            assert again.create == p.create and again.status == p.status
        assert not set(created_nodes(p)) & never, "a reused node or carried item was given a Job"
        unchanged_finished_nodes(status, p.status)
        for cm in p.config_maps:
            config_maps[cm["metadata"]["name"]] = json.loads(cm["data"]["output.json"])
        for manifest, name in zip(p.create, created_nodes(p), strict=True):
            assert name not in jobs, f"{name} got a second Job"
            duration = timedelta(seconds=result_of(sc, name)[2])
            jobs[name] = SimJob(manifest, now + duration, now + duration + JOB_CONDITION_LAG)
        if data is not None and lost < MAX_DROPS and data.draw(st.integers(0, 5), label="lost write") == 0:
            lost += 1
        else:
            stored = json_patch(stored, status_patch(status, p.status) or [])
        written = ExecutionStatus.model_validate(stored["status"])
        if written.phase in TERMINAL_EXECUTION_PHASES:
            return written
        now += timedelta(seconds=1)
    raise AssertionError(f"the retry did not finish: {[(m.name, str(m.phase)) for m in status.nodes]}")


@settings(max_examples=max(EXAMPLES // 3, 50), deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much])
@given(scenarios(), st.data())
def test_a_retry_keeps_what_it_reuses_and_ends_as_without_lost_writes(sc: Scenario, data: st.DataObject) -> None:
    sc = dataclasses.replace(sc, timeout=None, cancel_at=None)
    source = run(sc, None)
    assume(source.status.phase == ExecutionPhase.FAILED and source.status.workflowSpec is not None)
    start, config_maps = seeded(source.status, source.config_maps)

    # Seeding is a function of its inputs (a resume pass replayed after a lost write seeds the same)
    # and survives the trip through JSON and the API server's patch rules.
    assert seeded(source.status, source.config_maps)[0] == start
    through = json_patch({"status": {}}, status_patch(ExecutionStatus(), start) or [])
    assert ExecutionStatus.model_validate(through["status"]) == start

    graph = Graph.of(sc.workflow)
    reused = {n.name for n in start.nodes if n.reused}
    for name in reused:
        assert graph.upstream(name) <= reused, f"{name} reused below a node that runs again"
    carried = {item_key(n.name, e.index) for n in start.nodes if not n.reused for e in n.itemResults or []}
    old = {n.name: n for n in source.status.nodes}
    for key in carried:
        name, index = key.split("#")
        assert any(e.index == int(index) and e.phase == "Succeeded" for e in old[name].itemResults or [])

    event(f"reused nodes: {min(len(reused), 2)}+, carried items: {bool(carried)}")
    again = dataclasses.replace(sc, results={k: data.draw(st.sampled_from([("Succeeded", '{"ok": true}', 1),
                                                                              ("Failed", None, 2)]), label=k)
                                             for k in sc.results})
    plain = retry_run(again, start, config_maps, reused | carried, None)
    replayed = retry_run(again, start, config_maps, reused | carried, data)
    assert [(n.name, n.phase) for n in replayed.nodes] == [(n.name, n.phase) for n in plain.nodes]
    assert replayed.phase == plain.phase
    for node in plain.nodes:
        if node.name in reused:
            assert node == next(n for n in start.nodes if n.name == node.name), f"reused {node.name} changed"


@settings(max_examples=max(EXAMPLES // 3, 50), deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large, HealthCheck.filter_too_much])
@given(scenarios(), st.data())
def test_a_retry_from_a_random_node_reruns_it_and_below_and_ends_as_without_lost_writes(
        sc: Scenario, data: st.DataObject) -> None:
    # Any finished run (Succeeded too), resumed from a random node: the node and everything below
    # it run again, the rest Succeeded is reused; through the pin and seed passes, with kopf
    # retries and lost status writes drawn, it ends as it does without them.
    sc = dataclasses.replace(sc, timeout=None, cancel_at=None)
    source = run(sc, None)
    assume(source.status.workflowSpec is not None)
    names = [n.name for n in sc.workflow.nodes]
    from_node = data.draw(st.sampled_from(names), label="from node")
    start, _ = seeded(source.status, source.config_maps, from_node)
    rerun = rerun_from(sc.workflow, from_node)
    graph = Graph.of(sc.workflow)
    reused = {n.name for n in start.nodes if n.reused}
    assert reused == reusable(source.status, outputs_of(source.status, source.config_maps), from_node)
    assert not reused & rerun, f"a node rerun from {from_node} was reused"
    old = {n.name: n for n in source.status.nodes}
    for name in names:
        if name in rerun:
            assert not any(n.itemResults for n in start.nodes if n.name == name), f"{name} carried items"
        elif old[name].phase == "Succeeded" and old[name].outputRef is None and graph.upstream(name) <= reused:
            assert name in reused, f"{name} does not depend on {from_node} and Succeeded, yet runs again"
    carried = {item_key(n.name, e.index) for n in start.nodes if not n.reused for e in n.itemResults or []}
    event(f"rerun {len(rerun)} of {len(names)}, source {source.status.phase}")

    again = dataclasses.replace(sc, results={k: data.draw(st.sampled_from([("Succeeded", '{"ok": true}', 1),
                                                                              ("Failed", None, 2)]), label=k)
                                             for k in sc.results})
    resumed = ResumeSource("first", source.status, outputs_of(source.status, source.config_maps), uid="uid-first",
                           spec=WorkflowExecutionSpec(workflowRef=WorkflowRef(name="wf")))
    plain = retry_run(again, ExecutionStatus(), source.config_maps, reused | carried, None, resumed, from_node)
    replayed = retry_run(again, ExecutionStatus(), source.config_maps, reused | carried, data, resumed, from_node)
    assert plain.reason != "InvalidResume", plain.message
    assert [(n.name, n.phase) for n in replayed.nodes] == [(n.name, n.phase) for n in plain.nodes]
    assert replayed.phase == plain.phase
    assert replayed.resumedFrom == plain.resumedFrom and plain.resumedFrom is not None
    assert plain.resumedFrom.node == from_node and plain.resumedFrom.uid == "uid-first"
    for node in plain.nodes:
        if node.name in reused:
            assert node == next(n for n in start.nodes if n.name == node.name), f"reused {node.name} changed"
