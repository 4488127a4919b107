"""The `jobchain-edit` and `jobchain-view` roles confine a team, as the API server enforces them.

Each check is a real request made with `kubectl --as` (impersonation): the API server's RBAC
authorizer decides, with the ClusterRoles exactly as manifests/base ships them (session copies,
see OperatorAccount). A team bound to `jobchain-edit` in its namespace creates and cancels runs
there, and nowhere else; a viewer reads and cannot create; nobody of them can forge a run's status.
"""

from __future__ import annotations

import json
import secrets

from tests.e2e.support import (
    OperatorAccount,
    kubectl,
    session_name,
    tool,
)

EXECUTION = {
    "apiVersion": "jobchain.dev/v1alpha1",
    "kind": "WorkflowExecution",
    "metadata": {"name": "team-run"},
    "spec": {"workflowRef": {"name": "nightly"}},
}


def bind(kubeconfig: str, namespace: str, role: str, user: str) -> None:
    kubectl(kubeconfig, "-n", namespace, "create", "rolebinding", f"{user}-{role}",
            f"--clusterrole={session_name(role)}", f"--user={user}")


def as_user(kubeconfig: str, user: str, *args: str, manifest: dict | None = None) -> tuple[int, str]:
    """kubectl as `user`: (exit code, stderr or stdout)."""
    import subprocess

    result = subprocess.run(
        [tool("kubectl"), "--kubeconfig", kubeconfig, "--as", user, *args],
        input=json.dumps(manifest) if manifest is not None else None,
        capture_output=True, text=True, timeout=60,
    )
    return result.returncode, (result.stderr or result.stdout).strip()


def test_edit_role_creates_runs_in_its_namespace_only_and_view_role_only_reads(
        kubeconfig: str, operator_account: OperatorAccount, namespace: str, other_namespace: str) -> None:
    team, viewer = f"team-{secrets.token_hex(3)}", f"viewer-{secrets.token_hex(3)}"
    bind(kubeconfig, namespace, "jobchain-edit", team)
    bind(kubeconfig, namespace, "jobchain-view", viewer)

    # jobchain-edit: create in its own namespace (RBAC lets it; the object is stored)
    code, out = as_user(kubeconfig, team, "-n", namespace, "create", "-f", "-", manifest=EXECUTION)
    assert code == 0, out
    stored = kubectl(kubeconfig, "-n", namespace, "get", "workflowexecution", "team-run", "-o", "name")
    assert stored.strip() == "workflowexecution.jobchain.dev/team-run"
    # ... and cancel it there (a merge patch of spec.cancel, what `jobchain cancel` sends)
    code, out = as_user(kubeconfig, team, "-n", namespace, "patch", "workflowexecution", "team-run",
                        "--type=merge", "-p", '{"spec": {"cancel": true}}')
    assert code == 0, out

    # ... but not in another team's namespace
    code, out = as_user(kubeconfig, team, "-n", other_namespace, "create", "-f", "-", manifest=EXECUTION)
    assert code != 0 and "forbidden" in out.lower(), out
    code, out = as_user(kubeconfig, team, "-n", other_namespace, "get", "workflowexecutions")
    assert code != 0 and "forbidden" in out.lower(), out

    # ... and it cannot write a run's status (the operator's alone: a forged Succeeded would lie to Argo CD)
    code, out = as_user(kubeconfig, team, "-n", namespace, "patch", "workflowexecution", "team-run",
                        "--subresource=status", "--type=merge", "-p", '{"status": {"phase": "Succeeded"}}')
    assert code != 0 and "forbidden" in out.lower(), out

    # jobchain-view: reads the run, cannot create, change or delete one
    code, out = as_user(kubeconfig, viewer, "-n", namespace, "get", "workflowexecution", "team-run", "-o", "name")
    assert code == 0 and out == "workflowexecution.jobchain.dev/team-run", out
    view_run = {**EXECUTION, "metadata": {"name": "viewer-run"}}
    code, out = as_user(kubeconfig, viewer, "-n", namespace, "create", "-f", "-", manifest=view_run)
    assert code != 0 and "forbidden" in out.lower(), out
    code, out = as_user(kubeconfig, viewer, "-n", namespace, "patch", "workflowexecution", "team-run",
                        "--type=merge", "-p", '{"spec": {"cancel": false}}')
    assert code != 0 and "forbidden" in out.lower(), out
    code, out = as_user(kubeconfig, viewer, "-n", namespace, "delete", "workflowexecution", "team-run")
    assert code != 0 and "forbidden" in out.lower(), out
    code, out = as_user(kubeconfig, viewer, "-n", other_namespace, "get", "workflowexecutions")
    assert code != 0 and "forbidden" in out.lower(), out
    print(f"\nroles: {team} (jobchain-edit) created and cancelled in {namespace}, was refused in "
          f"{other_namespace} and on /status; {viewer} (jobchain-view) read, was refused create/patch/delete")
