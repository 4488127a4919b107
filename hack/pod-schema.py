#!/usr/bin/env python3
"""Writes operator/jobchain/engine/spec/pod_schema.json: the Kubernetes schema of the pod fields a
node passes through (podTemplate, resources, env[].valueFrom), trimmed to field names and shapes.

Why a file in the package: `jobchain lint` runs without a cluster, and the operator must not
depend on the kubernetes client in the engine. Regenerate it when hack/versions.env moves
KUBE_VERSION:  kubectl get --raw /openapi/v3/api/v1 > v1.json && python3 hack/pod-schema.py v1.json
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

ROOTS = {"podTemplate": "PodTemplateSpec", "resources": "ResourceRequirements", "valueFrom": "EnvVarSource"}
OUT = Path(__file__).resolve().parent.parent / "operator/jobchain/engine/spec/pod_schema.json"


def short(ref: str) -> str:
    return ref.rsplit("/", 1)[-1].rsplit(".", 1)[-1]


def main() -> None:
    doc = json.loads(Path(sys.argv[1]).read_text())
    schemas: dict[str, Any] = doc["components"]["schemas"]
    by_short = {short(name): name for name in schemas}
    types: dict[str, Any] = {}

    def shape(schema: dict[str, Any]) -> Any:
        if "allOf" in schema:
            return shape(schema["allOf"][0])
        if "$ref" in schema:
            name = short(schema["$ref"])
            if name not in types:
                types[name] = "*"  # recursion guard
                types[name] = shape_of(schemas[by_short[name]])
            return name
        return shape_of(schema)

    def shape_of(schema: dict[str, Any]) -> Any:
        if "allOf" in schema or "$ref" in schema:
            return shape(schema)
        if schema.get("type") == "array":
            return {"l": shape(schema["items"])}
        if "properties" in schema:
            return {"o": {k: shape(v) for k, v in sorted(schema["properties"].items())}}
        if isinstance(schema.get("additionalProperties"), dict):
            return {"m": shape(schema["additionalProperties"])}
        if schema.get("type") in ("string", "integer", "number", "boolean") or schema.get("x-kubernetes-int-or-string"):
            return "s"
        return "*"  # free-form (RawExtension, an object without properties)

    roots = {field: shape({"$ref": f"#/{name}"}) for field, name in ROOTS.items()}
    version = doc.get("info", {}).get("version", "")
    OUT.write_text(json.dumps({"kubernetes": version, "roots": roots, "types": dict(sorted(types.items()))},
                              separators=(",", ":")) + "\n")
    print(f"wrote {OUT} ({len(types)} types, Kubernetes {version})")


if __name__ == "__main__":
    main()
