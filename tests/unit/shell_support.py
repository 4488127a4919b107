"""The kubelet's side of a rendered Job, for the tests that run its script: a shared ExecutionRef
(`REF`), the kubelet's `$(VAR)` / `$$` expansion (`kubelet_expand`, reimplemented after
k8s.io/kubernetes third_party/forked/golang/expansion) and the container environment it builds
(`container_env`).
"""

from __future__ import annotations

from typing import Any

from jobchain.engine.spec.render import ExecutionRef

REF = ExecutionRef(name="run-1", namespace="team-a", uid="uid-123", workflow="hello-chain")


def kubelet_expand(text: str, env: dict[str, str]) -> str:
    """The kubelet's expansion: `$$` -> `$`, `$(NAME)` -> env[NAME] when defined, else unchanged."""
    out, i = [], 0
    while i < len(text):
        if text[i] == "$" and i + 1 < len(text):
            nxt = text[i + 1]
            if nxt == "$":
                out.append("$")
                i += 2
                continue
            if nxt == "(":
                end = text.find(")", i + 2)
                if end > 0:
                    name = text[i + 2:end]
                    out.append(env[name] if name in env else text[i:end + 1])
                    i = end + 1
                    continue
        out.append(text[i])
        i += 1
    return "".join(out)


def container_env(job: dict[str, Any], secrets: dict[str, str] | None = None) -> dict[str, str]:
    """The container's environment as the kubelet builds it (in order; secretKeyRef from `secrets`)."""
    env: dict[str, str] = {}
    for item in job["spec"]["template"]["spec"]["containers"][0]["env"]:
        if "value" in item:
            env[item["name"]] = kubelet_expand(item["value"], env)
        elif "secretKeyRef" in item.get("valueFrom", {}):
            env[item["name"]] = (secrets or {})[item["valueFrom"]["secretKeyRef"]["key"]]
        else:
            env[item["name"]] = "fieldref"
    return env
