"""Renders the Kubernetes Job of a node as plain data (no client objects, no I/O).

Why pure: the Kubernetes layer only creates what this returns, so the Job a node gets is
decided by spec + scope alone and tested without a cluster. Names and labels are derived
from execution + node, so a retried handler or a restarted operator finds the same Job
instead of creating a second one.
"""

from __future__ import annotations

import copy
import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any

from jobchain.api.models import API_VERSION, Node, WorkflowSpec
from jobchain.engine.graph import node_texts
from jobchain.engine.refs import Scope

LABEL_EXECUTION = "jobchain.dev/execution"
LABEL_NODE = "jobchain.dev/node"
LABEL_WORKFLOW = "jobchain.dev/workflow"
LABEL_MANAGED_BY = "app.kubernetes.io/managed-by"
MANAGED_BY = "jobchain"
ANNOTATION_OUTPUT = "jobchain.dev/output"
ANNOTATION_EXECUTION_UID = "jobchain.dev/execution-uid"
ANNOTATION_EXECUTION = "jobchain.dev/execution"  # the full name: label values are capped at 63
CONTAINER = "main"
OUTPUT_PATH = "/dev/termination-log"
MAX_JOB_NAME = 52  # the Job controller appends "-xxxxx" to pod names; keep hostnames <= 63


def _hash(*parts: str, size: int = 8) -> str:
    return hashlib.sha256("/".join(parts).encode()).hexdigest()[:size]


def _shorten(text: str, limit: int, *key: str) -> str:
    """`text` if it fits, otherwise a prefix plus a hash of `key`, at most `limit` characters."""
    if len(text) <= limit:
        return text
    suffix = _hash(*key)
    return text[: limit - len(suffix) - 1].rstrip("-.") + "-" + suffix


def job_name(execution: str, node: str) -> str:
    """Deterministic, DNS-1123 and at most 52 characters.

    Always hashed: without it, execution "a" node "b-c" and execution "a-b" node "c" in one
    namespace would both get the Job "a-b-c".
    """
    base = re.sub(r"[^a-z0-9-]", "-", f"{execution}-{node}".lower())
    suffix = _hash(execution, node)
    prefix = base[: MAX_JOB_NAME - len(suffix) - 1].strip("-")
    return f"{prefix}-{suffix}" if prefix else suffix


def label_value(value: str) -> str:
    """A label value (at most 63 characters) that identifies `value`."""
    cleaned = re.sub(r"[^A-Za-z0-9._-]", "-", value)
    return _shorten(cleaned, 63, value).strip("-._") or _hash(value)


def execution_selector(execution: str) -> str:
    return f"{LABEL_EXECUTION}={label_value(execution)},{LABEL_MANAGED_BY}={MANAGED_BY}"


@dataclass(frozen=True)
class ExecutionRef:
    name: str
    namespace: str
    uid: str
    workflow: str  # the Workflow's name, or the execution's own for an inline spec


def _merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """Deep-merges an escape-hatch podTemplate into ours; lists of named items merge by name."""
    out = copy.deepcopy(base)
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key] = _merge(out[key], value)
        elif isinstance(value, list) and isinstance(out.get(key), list) and all(
            isinstance(v, dict) and "name" in v for v in [*value, *out[key]]
        ):
            merged = {item["name"]: item for item in out[key]}
            for item in value:
                merged[item["name"]] = _merge(merged[item["name"]], item) if item["name"] in merged else item
            out[key] = list(merged.values())
        else:
            out[key] = copy.deepcopy(value)
    return out


def render_job(
    execution: ExecutionRef,
    spec: WorkflowSpec,
    node: Node,
    scope: Scope,
) -> dict[str, Any]:
    """The batch/v1 Job for `node`. Raises refs.UnresolvedReference for a reference with no value."""
    defaults = spec.defaults
    texts = {rel: scope.substitute(text) for rel, text in node_texts(node)}

    env: list[dict[str, Any]] = [
        {"name": "JOBCHAIN_EXECUTION", "value": execution.name},
        {"name": "JOBCHAIN_NODE", "value": node.name},
        {"name": "JOBCHAIN_OUTPUT", "value": OUTPUT_PATH},
        {"name": "JOBCHAIN_PARAMS", "value": json.dumps(scope.params, sort_keys=True, separators=(",", ":"))},
        {"name": "JOBCHAIN_INPUT", "value": json.dumps(scope.input, separators=(",", ":")) if scope.has_input else ""},
        {"name": "JOBCHAIN_POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}},
        {"name": "JOBCHAIN_POD_NAMESPACE", "valueFrom": {"fieldRef": {"fieldPath": "metadata.namespace"}}},
    ]
    for i, var in enumerate(node.env):
        item: dict[str, Any] = {"name": var.name}
        if var.value is not None:
            item["value"] = texts[f"env[{i}].value"]
        if var.valueFrom is not None:
            item["valueFrom"] = copy.deepcopy(var.valueFrom)
        env.append(item)

    container: dict[str, Any] = {
        "name": CONTAINER,
        "image": node.image or defaults.image,
        "imagePullPolicy": "IfNotPresent",
        "env": env,
        "terminationMessagePath": OUTPUT_PATH,
        "terminationMessagePolicy": "File",
    }
    if node.script is not None:
        container["command"] = ["/bin/sh", "-c", texts["script"]]
    else:
        if node.command:
            container["command"] = [texts[f"command[{i}]"] for i in range(len(node.command))]
        if node.args:
            container["args"] = [texts[f"args[{i}]"] for i in range(len(node.args))]
    if node.resources:
        container["resources"] = copy.deepcopy(node.resources)

    labels = {
        LABEL_EXECUTION: label_value(execution.name),
        LABEL_NODE: node.name,
        LABEL_WORKFLOW: label_value(execution.workflow),
        LABEL_MANAGED_BY: MANAGED_BY,
    }
    annotations = {ANNOTATION_EXECUTION_UID: execution.uid, ANNOTATION_EXECUTION: execution.name}
    pod_spec: dict[str, Any] = {"restartPolicy": "Never", "containers": [container]}
    service_account = node.serviceAccountName or defaults.serviceAccountName
    if service_account:
        pod_spec["serviceAccountName"] = service_account
    template: dict[str, Any] = {
        "metadata": {"labels": dict(labels), "annotations": dict(annotations)},
        "spec": pod_spec,
    }
    if node.podTemplate:
        template = _merge(template, node.podTemplate)
        template["metadata"]["labels"].update(labels)  # ours win: the operator finds pods by them
        template["spec"]["restartPolicy"] = "Never"

    retries = node.retries if node.retries is not None else defaults.retries
    timeout = node.timeoutSeconds if node.timeoutSeconds is not None else defaults.timeoutSeconds
    job_spec: dict[str, Any] = {"backoffLimit": retries or 0, "template": template}
    if timeout is not None:
        job_spec["activeDeadlineSeconds"] = timeout
    return {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "metadata": {
            "name": job_name(execution.name, node.name),
            "namespace": execution.namespace,
            "labels": labels,
            "annotations": annotations,
            "ownerReferences": [
                {
                    "apiVersion": API_VERSION,
                    "kind": "WorkflowExecution",
                    "name": execution.name,
                    "uid": execution.uid,
                    "controller": True,
                    "blockOwnerDeletion": True,
                }
            ],
        },
        "spec": job_spec,
    }
