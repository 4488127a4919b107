"""The Jobs a Workflow's nodes would create, rendered with placeholder values, for the API server
to judge in a dry run (strict field validation) when the operator validates the Workflow.

Why: a node's podTemplate, resources and env[].valueFrom go to Kubernetes as they are, and only
the cluster knows every rule about them (its version's fields, quantities, label syntax). The
shipped schema (pod_fields) catches misspelt fields offline; the dry run catches the rest before
an execution fails a node with JobRefused. Only nodes that set such fields are tried (the rest
render to Jobs the operator writes itself), and nodes with the same fields once.
"""

from __future__ import annotations

import json
from typing import Any

from jobchain.api.models import EnvVar, Node, WorkflowSpec
from jobchain.engine.spec.refs import Scope, UnresolvedReference
from jobchain.engine.spec.render import ExecutionRef, render_job

TRIAL_EXECUTION = "jobchain-dry-run"  # the name the rendered Jobs take: never created, only tried
TRIAL_UID = "00000000-0000-0000-0000-000000000000"


def _has_pod_fields(node: Node) -> bool:
    return bool(node.podTemplate or node.resources or any(e.valueFrom for e in node.env))


def _pod_fields(node: Node) -> str:
    return json.dumps([node.podTemplate, node.resources, [e.valueFrom for e in node.env]], sort_keys=True)


def trial_jobs(workflow: str, namespace: str, spec: WorkflowSpec) -> list[tuple[str, dict[str, Any]]]:
    """(path of the node, e.g. spec.nodes[2], its Job) for each node whose pod fields need the cluster's
    judgement. Texts (script, command, args, env values) are replaced by placeholders: they are the
    operator's to render, and their references have no values before a run."""
    ref = ExecutionRef(name=TRIAL_EXECUTION, namespace=namespace, uid=TRIAL_UID, workflow=workflow)
    scope = Scope(params={}, execution_name=TRIAL_EXECUTION, namespace=namespace)
    seen: set[str] = set()
    trials: list[tuple[str, dict[str, Any]]] = []
    for i, node in enumerate(spec.nodes):
        if not _has_pod_fields(node) or _pod_fields(node) in seen:
            continue
        seen.add(_pod_fields(node))
        placeholder = node.model_copy(update={
            "script": "true", "command": None, "args": None, "forEach": None,
            "env": [EnvVar(name=e.name, value=None if e.valueFrom else "x", valueFrom=e.valueFrom) for e in node.env],
        })
        try:
            trials.append((f"spec.nodes[{i}]", render_job(ref, spec, placeholder, scope)))
        except (UnresolvedReference, ValueError):
            continue  # what the render refuses, validation reports
    return trials
