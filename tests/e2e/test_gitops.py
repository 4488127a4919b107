"""examples/gitops/ on a real cluster: the synced objects applied as Argo CD applies them, the PostSync
hook execution created as Argo CD creates it (kubectl create of the manifest, annotations and all),
and the Argo CD health check (the same Lua, run by lupa) saying Progressing until it Succeeded."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.e2e.support import Objects, kubectl, reinstall_crds, wait_for
from tests.support import to_lua

pytestmark = pytest.mark.usefixtures("operator")
ROOT = Path(__file__).resolve().parents[2]
GITOPS = ROOT / "examples" / "gitops"
HEALTH = ROOT / "argocd" / "health" / "jobchain.dev"


def health(kind: str, obj: dict[str, Any]) -> str:
    lua51 = pytest.importorskip("lupa.lua51")
    runtime = lua51.LuaRuntime(unpack_returned_tuples=True)
    runtime.globals().obj = to_lua(runtime, obj)
    return str(runtime.execute((HEALTH / kind / "health.lua").read_text())["status"])


def test_gitops_example_syncs_and_its_post_sync_hook_runs_to_succeeded(kubeconfig: str, namespace: str,
                                                                     objects: Objects) -> None:
    reinstall_crds(kubeconfig, objects)  # this tree's CRDs (the cluster is shared with other sessions)
    kubectl(kubeconfig, "apply", "-n", namespace, "-f", str(GITOPS / "app"))
    schedule = wait_for(lambda: (s := objects.custom.get_namespaced_custom_object(
        "jobchain.dev", "v1alpha1", namespace, "workflowschedules", "nightly-etl")).get("status") and s, 60,
        "nightly-etl read by the operator")
    assert health("WorkflowSchedule", schedule) == "Healthy", schedule["status"]
    created = kubectl(kubeconfig, "create", "-n", namespace, "-f", str(GITOPS / "hooks" / "smoke-test.yaml"),
                      "-o", "name")
    name = created.strip().split("/")[-1]
    first = objects.execution(name)
    assert first["metadata"]["annotations"]["argocd.argoproj.io/hook"] == "PostSync"
    seen = [health("WorkflowExecution", first)]
    done = objects.wait_phase(name, timeout=180)
    seen.append(health("WorkflowExecution", done))
    print(f"{name}: health {seen}, phase {done['status']['phase']}: {done['status']['message']}")
    assert done["status"]["phase"] == "Succeeded"
    assert seen == ["Progressing", "Healthy"]
    extract = next(n for n in done["status"]["nodes"] if n["name"] == "extract")
    # Not a scheduled run: its "scheduled time" is when it started.
    assert extract["output"] == {"rows": 3, "for": done["status"]["startedAt"]}
