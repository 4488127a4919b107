"""Issue 20 on a real cluster: finally nodes that keep the failure, and stop versus cancel.

Each story prints the lines that show it (run with -s to see them).
"""

from __future__ import annotations

import json
from datetime import datetime
from typing import Any

import pytest

from tests.e2e.support import Objects, jobchain, nodes, wait_for, workflow

pytestmark = pytest.mark.usefixtures("operator")

NOTIFY = {"name": "notify",
          "script": 'echo "{\\"phase\\": \\"$(execution.phase)\\", \\"failed\\": $(execution.failedNodes)}" '
                    "> $JOBCHAIN_OUTPUT"}


def start(objects: Objects, name: str, **spec: Any) -> str:
    created = objects.create({"apiVersion": "jobchain.dev/v1alpha1", "kind": "WorkflowExecution",
                              "metadata": {"generateName": f"{name}-"},
                              "spec": {"workflowRef": {"name": name}, **spec}})
    return str(created["metadata"]["name"])


def show(execution: dict[str, Any]) -> None:
    status = execution["status"]
    print(f"\n{execution['metadata']['name']}: phase={status['phase']} reason={status['reason']}")
    for node in status["nodes"]:
        print(f"  {node['name']:8} {node['phase']:10} finally={node.get('finally', False)} "
              f"output={json.dumps(node.get('output'))}")


def test_a_failing_load_runs_its_finally_notify_and_stays_failed(objects: Objects) -> None:
    objects.create(workflow("etl", [{"name": "load", "script": "echo loading; exit 3"}], **{"finally": [NOTIFY]}))
    done = objects.run("etl")
    show(done)
    status = done["status"]
    assert (status["phase"], status["reason"]) == ("Failed", "NodeFailed")
    notify = nodes(done)["notify"]
    assert notify["phase"] == "Succeeded" and notify["finally"] is True
    assert notify["output"] == {"phase": "Failed", "failed": ["load"]}


def test_a_deadline_still_runs_finally_within_its_own_time(objects: Objects) -> None:
    objects.create(workflow("late", [{"name": "slow", "script": "sleep 60"}],
                            finallyTimeoutSeconds=60, **{"finally": [NOTIFY]}))
    name = start(objects, "late", timeoutSeconds=5)
    done = objects.wait_phase(name, timeout=120)
    show(done)
    assert (done["status"]["phase"], done["status"]["reason"]) == ("Failed", "DeadlineExceeded")
    assert nodes(done)["notify"]["output"] == {"phase": "Failed", "failed": []}
    ended, finished = done["status"]["outcome"]["endedAt"], nodes(done)["notify"]["finishedAt"]
    print(f"  main graph ended {ended}; notify finished {finished} (finallyTimeoutSeconds 60)")
    assert (datetime.fromisoformat(finished) - datetime.fromisoformat(ended)).total_seconds() <= 60


CHAIN = [{"name": "one", "script": "sleep 8; echo one", "next": [{"node": "two"}]},
         {"name": "two", "script": "echo two", "next": [{"node": "three"}]},
         {"name": "three", "script": "echo three"}]


STOPPED_CHAIN = [{"name": "one", "script": "echo one", "next": [{"node": "two"}]},
                 {"name": "two", "script": "sleep 8; echo two > $JOBCHAIN_OUTPUT", "next": [{"node": "three"}]},
                 {"name": "three", "script": "echo three"}]


def test_stop_lets_the_running_node_finish_then_runs_finally(kubeconfig: str, namespace: str,
                                                             objects: Objects) -> None:
    objects.create(workflow("chain", STOPPED_CHAIN, **{"finally": [NOTIFY]}))
    name = start(objects, "chain")
    wait_for(lambda: (objects.execution(name).get("status") or {}).get("running") == "two", 60, "two to run")
    stopped = jobchain(kubeconfig, namespace, "stop", name)
    print(stopped.stdout)
    assert stopped.returncode == 0, stopped.stderr
    done = objects.wait_phase(name, timeout=120)
    show(done)
    assert (done["status"]["phase"], done["status"]["reason"]) == ("Cancelled", "Stopped")
    got = nodes(done)
    assert got["one"]["phase"] == "Succeeded"
    assert got["two"]["phase"] == "Succeeded" and got["two"]["output"] == "two"  # finished and recorded
    assert got["three"]["phase"] == "Cancelled" and "jobName" not in got["three"]
    assert [j.metadata.name for j in objects.jobs(name) if "three" in j.metadata.name] == []
    assert got["notify"]["output"] == {"phase": "Cancelled", "failed": []}


def test_cancel_deletes_the_job_at_once_and_runs_no_finally(kubeconfig: str, namespace: str,
                                                            objects: Objects) -> None:
    objects.create(workflow("chain2", CHAIN, **{"finally": [NOTIFY]}))
    name = start(objects, "chain2")
    wait_for(lambda: (objects.execution(name).get("status") or {}).get("running") == "one", 60, "one to run")
    cancelled = jobchain(kubeconfig, namespace, "cancel", name)
    assert cancelled.returncode == 0, cancelled.stderr
    done = objects.wait_phase(name, timeout=60)
    show(done)
    assert (done["status"]["phase"], done["status"]["reason"]) == ("Cancelled", "Cancelled")
    assert nodes(done)["notify"]["phase"] == "Cancelled"
    wait_for(lambda: not [j for j in objects.jobs(name) if not j.metadata.deletion_timestamp], 30,
             "one's Job to be deleted")
    left = [j.metadata.name for j in objects.jobs(name) if not j.metadata.deletion_timestamp]
    print(f"  Jobs left (not being deleted): {left}")
