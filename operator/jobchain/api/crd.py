"""Generates the CustomResourceDefinitions in crds/ from the pydantic models.

Why generated: the models are the one source of truth, and a unit test fails when crds/
drifts from them (`python -m jobchain.api.crd --check`). Kubernetes needs a structural
schema, so pydantic's JSON schema is rewritten: $refs inlined, `anyOf [X, null]` turned into
`nullable`, free-form JSON marked `x-kubernetes-preserve-unknown-fields`, defaults dropped
(the models apply them) and CEL validation rules added where a rule spans several fields.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

import yaml

from jobchain.api.models import (
    ExecutionStatus,
    WorkflowExecutionSpec,
    WorkflowScheduleSpec,
    WorkflowScheduleStatus,
    WorkflowSpec,
    WorkflowStatus,
)
from jobchain.api.vocabulary import (
    EXECUTIONS,
    GROUP,
    KIND_EXECUTION,
    KIND_SCHEDULE,
    KIND_WORKFLOW,
    SCHEDULES,
    VERSION,
    WORKFLOWS,
)

# CEL rules that no single field's schema can say; keyed by the path of the object they sit on.
_RULES: dict[str, list[dict[str, str]]] = {
    "WorkflowExecutionSpec": [
        {
            # A retry (resumeFrom) may set neither: it inherits what the resumed execution ran.
            "rule": "has(self.workflowRef) != has(self.workflow) || "
                    "(has(self.resumeFrom) && !has(self.workflowRef) && !has(self.workflow))",
            "message": "set exactly one of spec.workflowRef (a Workflow's name) or spec.workflow (an inline spec), "
                       "or neither with spec.resumeFrom",
        },
        {
            # What an execution runs is fixed when it is created: a change would be ignored (the
            # operator works from its snapshot), so it is refused instead. cancel, timeoutSeconds
            # and ttlSecondsAfterFinished may change.
            "rule": "(has(self.workflowRef) ? self.workflowRef.name : '') == "
                    "(has(oldSelf.workflowRef) ? oldSelf.workflowRef.name : '') && "
                    "has(self.workflow) == has(oldSelf.workflow) && "
                    "(has(self.params) ? self.params : {}) == (has(oldSelf.params) ? oldSelf.params : {}) && "
                    "(has(self.paramsFrom) ? self.paramsFrom : []) == "
                    "(has(oldSelf.paramsFrom) ? oldSelf.paramsFrom : [])",
            "message": "spec.workflowRef, spec.workflow, spec.params and spec.paramsFrom cannot change after the "
                       "execution is created; create a new execution instead",
        },
    ],
    "ExecutionTemplate": [
        {
            "rule": "has(self.workflowRef) != has(self.workflow)",
            "message": "set exactly one of spec.executionTemplate.workflowRef or spec.executionTemplate.workflow",
        },
    ],
    "Node": [
        {
            "rule": "!(has(self.script) && (has(self.command) || has(self.args)))",
            "message": "a node sets either script or command/args, not both",
        },
    ],
    "Edge": [
        {
            "rule": "(has(self.type) && self.type == 'condition') == has(self.when)",
            "message": "an edge with type: condition needs `when` (a CEL expression); other edges must not set it",
        },
    ],
}

# Lists whose items are identified by name: the API server refuses duplicates at apply time.
_MAP_LISTS = {("WorkflowSpec", "nodes"), ("WorkflowSpec", "params"), ("WorkflowExecutionSpec", "paramsFrom"),
              ("ExecutionTemplate", "paramsFrom")}


def structural(schema: dict[str, Any]) -> dict[str, Any]:
    """Turns a pydantic JSON schema into a Kubernetes structural schema."""
    defs: dict[str, Any] = schema.get("$defs", {})

    def convert(node: dict[str, Any], name: str | None) -> dict[str, Any]:
        node = dict(node)
        ref = node.pop("$ref", None)
        if ref is not None:
            ref_name = ref.rsplit("/", 1)[-1]
            merged = {**defs[ref_name], **node}
            return convert(merged, ref_name)
        any_of = node.pop("anyOf", None)
        if any_of is not None:
            options = [o for o in any_of if o.get("type") != "null"]
            nullable = len(options) < len(any_of)
            if len(options) != 1:
                raise ValueError(f"cannot express anyOf {any_of} structurally")
            inner = convert({**options[0], **node}, None)
            if nullable:
                inner["nullable"] = True
            return inner
        out: dict[str, Any] = {}
        for key in ("description", "type", "enum", "pattern", "minimum", "maximum", "minLength", "maxLength",
                    "minItems", "maxItems", "minProperties", "maxProperties", "format"):
            if key in node:
                out[key] = node[key]
        if "title" in node and "description" not in out and name is None:
            pass
        if "exclusiveMinimum" in node:
            out["minimum"] = node["exclusiveMinimum"]
            out["exclusiveMinimum"] = True
        if "enum" in out and "type" not in out:
            out["type"] = "string"
        if node.get("x-kubernetes-preserve-unknown-fields"):
            out["x-kubernetes-preserve-unknown-fields"] = True
            if out.get("type") != "object":
                out.pop("type", None)
            return out
        if "properties" in node:
            out["type"] = "object"
            props = {}
            for prop, sub in node["properties"].items():
                converted = convert(sub, None)
                if name and (name, prop) in _MAP_LISTS:
                    converted["x-kubernetes-list-type"] = "map"
                    converted["x-kubernetes-list-map-keys"] = ["name"]
                props[prop] = converted
            out["properties"] = props
            if node.get("required"):
                out["required"] = list(node["required"])
        elif "additionalProperties" in node and isinstance(node["additionalProperties"], dict):
            out["type"] = "object"
            out["additionalProperties"] = convert(node["additionalProperties"], None)
        if "items" in node:
            out["items"] = convert(node["items"], None)
        if name and name in _RULES:
            out["x-kubernetes-validations"] = _RULES[name]
        return out

    return convert(schema, schema.get("title"))


def _schema(model: type[Any]) -> dict[str, Any]:
    return structural(model.model_json_schema(by_alias=True, mode="validation"))


def _crd(kind: str, plural: str, short: list[str], spec_model: type[Any], status_model: type[Any],
         columns: list[dict[str, Any]], description: str) -> dict[str, Any]:
    spec_schema = _schema(spec_model)
    status_schema = _schema(status_model)
    return {
        "apiVersion": "apiextensions.k8s.io/v1",
        "kind": "CustomResourceDefinition",
        "metadata": {"name": f"{plural}.{GROUP}", "labels": {"app.kubernetes.io/part-of": "jobchain"}},
        "spec": {
            "group": GROUP,
            "scope": "Namespaced",
            "names": {
                "kind": kind,
                "listKind": f"{kind}List",
                "plural": plural,
                "singular": kind.lower(),
                "shortNames": short,
                "categories": ["jobchain"],
            },
            "versions": [
                {
                    "name": VERSION,
                    "served": True,
                    "storage": True,
                    "subresources": {"status": {}},
                    "additionalPrinterColumns": columns,
                    "schema": {
                        "openAPIV3Schema": {
                            "type": "object",
                            "description": description,
                            "required": ["spec"],
                            "properties": {
                                "apiVersion": {"type": "string", "description": "API version: jobchain.dev/v1alpha1."},
                                "kind": {"type": "string", "description": f"Kind: {kind}."},
                                "metadata": {"type": "object"},
                                "spec": spec_schema,
                                "status": status_schema,
                            },
                        }
                    },
                }
            ],
        },
    }


def workflow_crd() -> dict[str, Any]:
    return _crd(
        KIND_WORKFLOW,
        WORKFLOWS,
        ["jcwf"],
        WorkflowSpec,
        WorkflowStatus,
        [
            {"name": "Nodes", "type": "integer", "jsonPath": ".status.nodeCount"},
            {"name": "Ready", "type": "string", "jsonPath": '.status.conditions[?(@.type=="Ready")].status'},
            {"name": "Reason", "type": "string", "priority": 1,
             "jsonPath": '.status.conditions[?(@.type=="Ready")].reason'},
            {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
        ],
        "A Workflow declares nodes (container steps) and the edges between them. Run it by "
        "creating a WorkflowExecution that names it.",
    )


def execution_crd() -> dict[str, Any]:
    return _crd(
        KIND_EXECUTION,
        EXECUTIONS,
        ["jcex"],
        WorkflowExecutionSpec,
        ExecutionStatus,
        [
            {"name": "Workflow", "type": "string", "jsonPath": ".status.workflowName"},
            {"name": "Phase", "type": "string", "jsonPath": ".status.phase"},
            {"name": "Progress", "type": "string", "jsonPath": ".status.progress"},
            {"name": "Running", "type": "string", "jsonPath": ".status.running"},
            {"name": "Reason", "type": "string", "priority": 1, "jsonPath": ".status.reason"},
            {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
            {"name": "Duration", "type": "string", "jsonPath": ".status.duration"},
        ],
        "A WorkflowExecution runs a Workflow once: one Kubernetes Job per node, outputs passed "
        "forward, every node's result recorded in status.",
    )


def schedule_crd() -> dict[str, Any]:
    return _crd(
        KIND_SCHEDULE,
        SCHEDULES,
        ["jcsched"],
        WorkflowScheduleSpec,
        WorkflowScheduleStatus,
        [
            {"name": "Schedule", "type": "string", "jsonPath": ".spec.schedule"},
            {"name": "TimeZone", "type": "string", "priority": 1, "jsonPath": ".spec.timeZone"},
            {"name": "Suspend", "type": "boolean", "jsonPath": ".spec.suspend"},
            {"name": "Active", "type": "integer", "jsonPath": ".status.activeCount"},
            {"name": "Last Run", "type": "date", "jsonPath": ".status.lastScheduleTime"},
            {"name": "Next Run", "type": "string", "jsonPath": ".status.nextScheduleTime"},
            {"name": "Ready", "type": "string", "priority": 1,
             "jsonPath": '.status.conditions[?(@.type=="Ready")].status'},
            {"name": "Reason", "type": "string", "priority": 1,
             "jsonPath": '.status.conditions[?(@.type=="Ready")].reason'},
            {"name": "Age", "type": "date", "jsonPath": ".metadata.creationTimestamp"},
        ],
        "A WorkflowSchedule creates a WorkflowExecution from its template at each time of its "
        "schedule (cron, a macro or @every), as a CronJob creates Jobs.",
    )


def render_all() -> dict[str, str]:
    """File name in crds/ -> YAML text."""
    header = "# Generated from operator/jobchain/api/models.py by `python -m jobchain.api.crd`. Do not edit.\n"
    return {
        f"{GROUP}_workflows.yaml": header + yaml.safe_dump(workflow_crd(), sort_keys=False, width=120),
        f"{GROUP}_workflowexecutions.yaml": header + yaml.safe_dump(execution_crd(), sort_keys=False, width=120),
        f"{GROUP}_workflowschedules.yaml": header + yaml.safe_dump(schedule_crd(), sort_keys=False, width=120),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Write (or check) the CRDs generated from the models.")
    parser.add_argument("--out", default="crds", help="folder to write to (default: crds)")
    parser.add_argument("--check", action="store_true", help="exit 1 if the files differ from the models")
    args = parser.parse_args(argv)
    out = Path(args.out)
    stale = []
    for name, text in render_all().items():
        path = out / name
        if args.check:
            if not path.exists() or path.read_text() != text:
                stale.append(str(path))
        else:
            out.mkdir(parents=True, exist_ok=True)
            path.write_text(text)
    if stale:
        print(f"CRDs out of date: {', '.join(stale)}; run `python -m jobchain.api.crd`", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
