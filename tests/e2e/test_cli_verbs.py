"""The kubectl-like verbs on a real cluster, run as a user runs them (a subprocess): wait for a run
someone else started, list it across namespaces, by label and by phase, watch it to its end, delete it."""

from __future__ import annotations

import pytest

from tests.e2e.support import Objects, jobchain, no_traceback, wait_for, workflow

pytestmark = pytest.mark.usefixtures("operator")

QUICK = workflow("quick", [
    {"name": "one", "script": "sleep 10; echo one", "next": [{"node": "two"}]},
    {"name": "two", "script": "echo two"},
])
BROKEN = workflow("broken", [{"name": "fails", "script": "exit 2"}])


def started(objects: Objects, workflow_name: str, **labels: str) -> str:
    """An execution made as kubectl or a schedule would make it (not by `jobchain run`)."""
    created = objects.create({
        "apiVersion": "jobchain.dev/v1alpha1", "kind": "WorkflowExecution",
        "metadata": {"generateName": f"{workflow_name}-", "labels": labels},
        "spec": {"workflowRef": {"name": workflow_name}}})
    return str(created["metadata"]["name"])


def test_wait_get_watch_list_and_delete(kubeconfig: str, namespace: str, objects: Objects) -> None:
    objects.create(QUICK)
    objects.create(BROKEN)
    good = started(objects, "quick", team="data")
    bad = started(objects, "broken", team="ops")

    running = jobchain(kubeconfig, namespace, "wait", good, "--for", "Running", "--timeout", "120")
    assert (running.returncode, running.stdout) == (0, f"{good} Running\n"), running.stderr

    watched = jobchain(kubeconfig, namespace, "get", good, "--watch")
    no_traceback(watched)
    assert watched.returncode == 0, watched.stderr
    assert watched.stdout.startswith(f"{good} Running") and f"\n{good} Succeeded in " in watched.stdout
    assert objects.execution(good)["status"]["phase"] == "Succeeded"  # it returned because the run ended

    failed = jobchain(kubeconfig, namespace, "wait", bad, "--timeout", "120")
    assert (failed.returncode, failed.stdout) == (1, f"{bad} Failed\n"), failed.stderr
    never = jobchain(kubeconfig, namespace, "wait", bad, "--for", "Succeeded")
    assert never.returncode == 1 and "it will never be Succeeded" in never.stderr

    by_label = jobchain(kubeconfig, namespace, "list", "-l", "team=data")
    assert [line.split()[0] for line in by_label.stdout.splitlines()] == ["NAME", good]
    by_phase = jobchain(kubeconfig, namespace, "list", "--phase", "Failed")
    assert [line.split()[0] for line in by_phase.stdout.splitlines()] == ["NAME", bad]
    everywhere = jobchain(kubeconfig, namespace, "list", "-A", "-l", "team in (data,ops)")
    rows = {tuple(line.split()[:2]) for line in everywhere.stdout.splitlines()[1:]}
    assert {(namespace, good), (namespace, bad)} <= rows
    workflows = jobchain(kubeconfig, namespace, "list", "workflows")
    assert sorted(line.split()[0] for line in workflows.stdout.splitlines()[1:]) == ["broken", "quick"]

    deleted = jobchain(kubeconfig, namespace, "delete", good, bad, "nope")
    assert deleted.returncode == 3
    assert deleted.stdout == f"workflowexecution {good!r} deleted\nworkflowexecution {bad!r} deleted\n"
    assert "'nope' not found" in deleted.stderr
    wait_for(lambda: "no executions" in jobchain(kubeconfig, namespace, "list").stdout, 60, "the executions gone")


def test_wait_timeout_leaves_the_run_running(kubeconfig: str, namespace: str, objects: Objects) -> None:
    objects.create(workflow("slow", [{"name": "nap", "script": "sleep 60"}]))
    name = started(objects, "slow")
    result = jobchain(kubeconfig, namespace, "wait", name, "--timeout", "3")
    assert result.returncode == 6, result.stderr
    assert "after --timeout 3s; it keeps running" in result.stderr
    assert objects.execution(name).get("spec", {}).get("cancel") is not True
    jobchain(kubeconfig, namespace, "cancel", name)
