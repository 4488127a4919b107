"""Approval gates on a real cluster: a gate waits (phase Waiting, an Event, the metric), `jobchain
approve` lets the next node run with the decision as its input, `jobchain deny` routes the failure
edge, and a gate nobody decides times out. Each story prints the lines that show it."""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import pytest

from jobchain.api.vocabulary import GROUP, VERSION
from tests.e2e.support import (
    Objects,
    OperatorProcess,
    jobchain,
    kubectl,
    metric_total,
    no_traceback,
    nodes,
    operator_metrics,
    wait_for,
    workflow,
)

pytestmark = pytest.mark.usefixtures("current_crds", "operator")


def release(name: str, timeout: int) -> dict[str, Any]:
    return workflow(name, [
        {"name": "build", "script": "echo '{\"build\": 42}' > $JOBCHAIN_OUTPUT", "next": [{"node": "approve"}]},
        {"name": "approve", "approval": {"message": "Deploy build 42 to production?", "timeoutSeconds": timeout},
         "next": [{"node": "deploy"}, {"node": "notify", "type": "failure"}]},
        {"name": "deploy",
         "script": 'echo "deploying with $JOBCHAIN_INPUT"; printf %s "$JOBCHAIN_INPUT" > $JOBCHAIN_OUTPUT'},
        {"name": "notify", "script": "echo 'release not approved' > $JOBCHAIN_OUTPUT"},
    ])


def start(objects: Objects, workflow_name: str) -> str:
    created = objects.create({"apiVersion": f"{GROUP}/{VERSION}", "kind": "WorkflowExecution",
                              "metadata": {"generateName": f"{workflow_name}-"},
                              "spec": {"workflowRef": {"name": workflow_name}}})
    return str(created["metadata"]["name"])


def wait_waiting(objects: Objects, name: str) -> dict[str, Any]:
    def gate_waits() -> dict[str, Any] | None:
        obj = objects.execution(name)
        phase = nodes(obj).get("approve", {}).get("phase") if obj.get("status", {}).get("nodes") else None
        return obj if phase == "Waiting" else None
    result: dict[str, Any] = wait_for(gate_waits, 120, f"gate approve of {name} to wait")
    return result


def reasons(objects: Objects, name: str) -> list[str]:
    return [str(e.reason) for e in objects.events(name)]


def test_a_gate_waits_then_approve_runs_the_next_node_with_the_decision(
        kubeconfig: str, namespace: str, objects: Objects, operator: OperatorProcess) -> None:
    objects.create(release("release", 300))
    name = start(objects, "release")
    waiting = wait_waiting(objects, name)
    print("status.phase:", waiting["status"]["phase"], "| approve:", nodes(waiting)["approve"]["phase"])
    print("status.waiting:", json.dumps(waiting["status"]["waiting"]))
    assert waiting["status"]["phase"] == "Running"
    assert waiting["status"]["waiting"][0]["message"] == "Deploy build 42 to production?"
    assert len(objects.jobs(name)) == 1  # build's: the gate has no Job
    wait_for(lambda: "ApprovalRequested" in reasons(objects, name), 30, "the ApprovalRequested Event")
    requested = [e.message for e in objects.events(name) if e.reason == "ApprovalRequested"]
    print("Event ApprovalRequested:", requested)
    assert len(requested) == 1
    gauge = wait_for(lambda: metric_total(operator_metrics(operator), "jobchain_approvals_waiting") == 1, 30,
                     "jobchain_approvals_waiting 1")
    print("metric jobchain_approvals_waiting", metric_total(operator_metrics(operator), "jobchain_approvals_waiting"))
    assert gauge
    row = kubectl(kubeconfig, "-n", namespace, "get", "workflowexecution", name)
    print(row)
    assert "approve (waiting)" in row

    refused = jobchain(kubeconfig, namespace, "approve", name, "deploy")
    print("jobchain approve", name, "deploy ->", refused.returncode, refused.stderr.strip())
    no_traceback(refused)
    assert refused.returncode != 0 and "not an approval gate" in refused.stderr

    approved = jobchain(kubeconfig, namespace, "approve", name, "approve", "--message", "ok by e2e")
    print("jobchain approve:", approved.stdout.strip())
    assert approved.returncode == 0, approved.stderr
    done = objects.wait_phase(name)
    by_node = nodes(done)
    print({n: (s["phase"], s.get("output")) for n, s in by_node.items()})
    assert done["status"]["phase"] == "Succeeded"
    assert by_node["approve"]["output"] == {"approved": True, "message": "ok by e2e"}
    assert by_node["deploy"]["phase"] == "Succeeded"
    assert by_node["deploy"]["output"] == {"approved": True, "message": "ok by e2e"}  # its input, as it got it
    assert by_node["notify"]["phase"] == "Skipped"
    wait_for(lambda: metric_total(operator_metrics(operator), "jobchain_approvals_waiting") == 0, 30,
             "jobchain_approvals_waiting back to 0")


def test_deny_routes_the_failure_edge(kubeconfig: str, namespace: str, objects: Objects) -> None:
    objects.create(release("release", 300))
    name = start(objects, "release")
    wait_waiting(objects, name)
    denied = jobchain(kubeconfig, namespace, "deny", name, "approve", "--message", "not today")
    print("jobchain deny:", denied.stdout.strip())
    assert denied.returncode == 0, denied.stderr
    done = objects.wait_phase(name)
    by_node = nodes(done)
    print({n: (s["phase"], s.get("reason"), s.get("message")) for n, s in by_node.items()})
    assert (by_node["approve"]["phase"], by_node["approve"]["reason"]) == ("Failed", "Denied")
    assert by_node["deploy"]["phase"] == "Skipped"
    assert (by_node["notify"]["phase"], by_node["notify"]["output"]) == ("Succeeded", "release not approved")
    assert done["status"]["phase"] == "Succeeded"  # the failure edge handles the denial


def test_a_gate_nobody_decides_times_out(namespace: str, objects: Objects) -> None:
    objects.create(release("quick", 5))
    name = start(objects, "quick")
    done = objects.wait_phase(name, timeout=120)
    gate = nodes(done)["approve"]
    print("approve:", gate["phase"], gate["reason"], gate["message"], gate["startedAt"], "->", gate["finishedAt"])
    print("notify:", nodes(done)["notify"]["phase"])
    assert (gate["phase"], gate["reason"]) == ("Failed", "ApprovalTimeout")
    waited = datetime.fromisoformat(gate["finishedAt"]) - datetime.fromisoformat(gate["startedAt"])
    assert waited.total_seconds() == 5
    assert nodes(done)["notify"]["phase"] == "Succeeded"
