"""Retry from the failed node, or from any node (spec.resumeFrom): which executions may be resumed,
and what is copied.

A retry runs the same Workflow snapshot as the execution it resumes (not the Workflow as it is
now: the nodes that are reused ran that spec), with its params unless spec.params overrides them
(a reused node keeps what it ran with). With resumeFrom.node, that node and everything downstream
of it run again whatever they did there (`rerun_from`). A node that Succeeded there
is copied as it was (phase, output, input, times), marked `reused`, when nothing upstream of it
runs again: a node downstream of one that reruns (a cleanup after `always`, a `failure` handler,
a join) is decided again from what the rerun does. Every other node runs.

An output kept whole in a ConfigMap (outputRef) is copied into a ConfigMap of the retry's own:
the retry's next node and conditions need the whole value (status holds only a preview), and the
execution resumed from may be deleted meanwhile (ttlSecondsAfterFinished). A reused node whose
whole output is gone runs again. The execution resumed from is only read, never changed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from jobchain.api.models import (
    TERMINAL_EXECUTION_PHASES,
    ExecutionPhase,
    ExecutionStatus,
    NodePhase,
    NodeStatus,
    OutputRef,
    WorkflowExecutionSpec,
    WorkflowSpec,
)
from jobchain.engine.execution import status as st
from jobchain.engine.spec.graph import Graph
from jobchain.engine.spec.outputs import input_json, text_sha256
from jobchain.engine.spec.render import (
    OUTPUT_KEY,
    ExecutionRef,
    item_key,
    output_config_map_name,
    render_output_config_map,
)
from jobchain.engine.timefmt import iso


def problem(source_name: str, source: ExecutionStatus | None, node: str | None = None) -> str | None:
    """Why `source` cannot be resumed (from `node`, if given) (InvalidResume), or None."""
    where = f"spec.resumeFrom.name {source_name!r}"
    if source is None:
        return f"{where}: no such execution in this namespace; name a Failed or Cancelled execution"
    if source.phase not in TERMINAL_EXECUTION_PHASES:
        return (f"{where} is still {source.phase}: wait until it finishes (or cancel it), then retry; "
                "a running execution cannot be resumed")
    if source.phase == ExecutionPhase.SUCCEEDED and node is None:
        return (f"{where} Succeeded: there is nothing that failed to retry; name the node to rerun from in "
                "spec.resumeFrom.node (`jobchain retry NAME --from NODE`), or create a new execution")
    if source.workflowSpec is None:
        return (f"{where} failed before it started ({source.reason}: no node ran), so there is nothing to "
                "reuse; fix the cause and create a new execution")
    return node_problem(source_name, source.workflowSpec, node)


def node_problem(source_name: str, workflow: WorkflowSpec, node: str | None) -> str | None:
    """Why `node` cannot be rerun from: it is not a node of the snapshot `workflow` runs."""
    names = [n.name for n in workflow.nodes]
    if node is None or node in names:
        return None
    return (f"spec.resumeFrom.node {node!r} is not a node of the workflow {source_name!r} ran; its nodes: "
            f"{', '.join(names)}")


def rerun_from(workflow: WorkflowSpec, node: str | None) -> set[str]:
    """The nodes a rerun from `node` runs again whatever they did: it and every node downstream of it."""
    if node is None:
        return set()
    graph = Graph.of(workflow)
    return {node} | {name for name in graph.nodes if node in graph.upstream(name)}


def secrets_problem(source_name: str, source: ExecutionStatus, spec: WorkflowExecutionSpec) -> str | None:
    """Why the retry `spec` cannot run the secret params of `source` (InvalidResume), or None.

    A retry runs with the params of the execution it resumes; the values of secret params are never
    in status, only the Secret keys named in spec.paramsFrom give them. A retry made with kubectl
    that names none would run its nodes without them."""
    given = {p.name for p in spec.paramsFrom}
    missing = [name for name in source.secretParams or [] if name not in given]
    if not missing:
        return None
    return (f"spec.paramsFrom: the execution resumed ({source_name!r}) has the secret params {missing}, set from "
            "Secrets by its spec.paramsFrom, and a retry runs with the same params; create the retry again with "
            "the same spec.paramsFrom entries (`jobchain retry` copies them)")


def wanted_outputs(source_name: str, source: ExecutionStatus) -> dict[str, OutputRef]:
    """The whole outputs of `source` a retry may copy: its Succeeded nodes' outputRefs, by node, and
    those of the Succeeded items of its forEach nodes that did not succeed, by node#index."""
    refs = {n.name: n.outputRef for n in source.nodes if n.phase == NodePhase.SUCCEEDED and n.outputRef}
    for node in source.nodes:
        if node.phase != NodePhase.SUCCEEDED:
            for entry in node.itemResults or []:
                if entry.phase == NodePhase.SUCCEEDED and entry.outputBytes is not None:
                    key = item_key(node.name, entry.index)
                    refs[key] = OutputRef(configMap=output_config_map_name(source_name, key), key=OUTPUT_KEY,
                                          bytes=entry.outputBytes)
    return refs


def reusable(source: ExecutionStatus, outputs: Mapping[str, Any], from_node: str | None = None) -> set[str]:
    """The nodes of `source` a retry copies: Succeeded, with their whole output at hand if kept
    in a ConfigMap, not rerun from `from_node`, and every node upstream of them copied too (nothing
    upstream runs again). Never a finally node: it runs again, to see the retry's outcome."""
    assert source.workflowSpec is not None
    graph = Graph.of(source.workflowSpec)
    rerun = rerun_from(source.workflowSpec, from_node)
    done = {n.name for n in source.nodes if n.phase == NodePhase.SUCCEEDED and n.name not in rerun
            and not n.finally_
            and (n.outputRef is None or n.name in outputs)}
    return {name for name in done if graph.upstream(name) <= done}


def seed(status: ExecutionStatus, source_name: str, source: ExecutionStatus, at: datetime,
         execution: ExecutionRef, outputs: Mapping[str, Any] | None = None, from_node: str | None = None,
         params: Mapping[str, str] | None = None) -> list[dict[str, Any]]:
    """Starts `status` from the snapshot of `source` with its reusable nodes copied (`outputs`: the
    whole values of `wanted_outputs`, as read; `from_node`: rerun from it; `params`: overrides of the
    source's params for the nodes that run). Returns the ConfigMaps to create, before the status
    that names them, for the copied outputs kept whole."""
    assert source.workflowSpec is not None
    outputs = outputs or {}
    st.begin(status, source.workflowName or source_name, source.workflowSpec,
             {**(source.params or {}), **(params or {})}, at, secret_params=source.secretParams)
    execution = dataclasses.replace(execution, workflow=status.workflowName or execution.name)
    keep = reusable(source, outputs, from_node)
    rerun = rerun_from(source.workflowSpec, from_node)
    done = {n.name: n for n in source.nodes if n.name in keep}
    limit = st.node_message_limit(len(status.nodes))
    config_maps = []
    by_name = {n.name: n for n in source.nodes}
    graph = Graph.of(source.workflowSpec)
    for node in status.nodes:
        old = done.get(node.name)
        if old is None:
            if node.name not in rerun and graph.upstream(node.name) <= keep and by_name.get(node.name) is not None:
                config_maps += _carry_items(node, by_name[node.name], source_name, execution, outputs, at)
            continue
        ref = None
        if old.outputRef is not None:
            text = input_json(outputs[node.name])
            config_maps.append(render_output_config_map(execution, node.name, text))
            ref = OutputRef(configMap=output_config_map_name(execution.name, node.name), key=OUTPUT_KEY,
                            bytes=len(text.encode()), sha256=text_sha256(text))
        st.mark_node(node, NodePhase.SUCCEEDED, old.finishedAt or iso(at),
                     f"reused from {source_name} (Succeeded there; not run again)", message_limit=limit,
                     startedAt=old.startedAt, exitCode=old.exitCode, inputFrom=old.inputFrom, output=old.output,
                     outputTruncated=old.outputTruncated, outputRef=ref, reused=True)
    return config_maps


def _carry_items(node: NodeStatus, old: NodeStatus, source_name: str, execution: ExecutionRef,
                 outputs: Mapping[str, Any], at: datetime) -> list[dict[str, Any]]:
    """A forEach node that did not succeed, with nothing upstream running again (so its item list
    is the same): its Succeeded items are carried over (and kept when it starts, see
    `engine.execution.items`), only the others run again, as Argo's retry does. An item whose whole
    output (kept in a ConfigMap) is gone runs again. Returns the ConfigMaps of the carried outputs."""
    if old.phase == NodePhase.SUCCEEDED or not old.itemResults:
        return []
    previews = old.output if isinstance(old.output, list) else []
    carried, config_maps = [], []
    output: list[Any] = [None] * len(previews)
    for entry in old.itemResults:
        key = item_key(node.name, entry.index)
        if entry.phase != NodePhase.SUCCEEDED or entry.index >= len(previews) or (
                entry.outputBytes is not None and key not in outputs):
            continue
        if entry.outputBytes is not None:
            config_maps.append(render_output_config_map(execution, node.name, input_json(outputs[key]), entry.index))
        carried.append(entry.model_copy(update={"jobName": None}))
        output[entry.index] = previews[entry.index]
    if carried:
        st.mark_node(node, NodePhase.PENDING, at,
                     f"{len(carried)} item(s) reused from {source_name} (Succeeded there; not run again)",
                     itemResults=carried, output=output, outputTruncated=old.outputTruncated)
    return config_maps
