"""User stories of the `jobchain` CLI on a real cluster, run as a user runs it (a subprocess).

Each story is what a user does at a terminal: run a workflow and watch it, look at it
afterwards, read its logs (also once its pods are gone), cancel it from a second terminal.
"""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest
import yaml
from kubernetes import client

from tests.e2e.support import Objects, command, jobchain, no_traceback, wait_for, workflow

pytestmark = pytest.mark.usefixtures("operator")



CHAIN = workflow("chain", [
    {"name": "extract", "script": "echo extracting; echo '{\"rows\": $(params.rows)}' > $JOBCHAIN_OUTPUT",
     "next": [{"node": "load"}]},
    {"name": "load", "script": "echo loading $(input.rows) rows; echo \"loaded $(input.rows)\" > $JOBCHAIN_OUTPUT"},
], params=[{"name": "rows", "default": "3"}])

FAILING = workflow("failing", [
    {"name": "ok", "script": "echo fine", "next": [{"node": "broken"}]},
    {"name": "broken", "script": "echo about to fail; exit 3"},
])

SLOW = workflow("slow", [
    {"name": "wait", "script": "for i in $(seq 1 60); do echo tick $i; sleep 1; done", "next": [{"node": "after"}]},
    {"name": "after", "script": "echo after"},
])



def test_run_watch_then_get_list_and_graph(kubeconfig: str, namespace: str, objects: Objects) -> None:
    objects.create(CHAIN)
    watched = jobchain(kubeconfig, namespace, "run", "chain", "-p", "rows=5", "--watch")
    no_traceback(watched)
    assert watched.returncode == 0, watched.stdout + watched.stderr
    frames = watched.stdout.split("\n\n")
    assert len(frames) >= 3  # not a TTY: each change is printed again, below the last
    assert "\x1b[" not in watched.stdout
    final = watched.stdout[watched.stdout.rindex("\nchain-"):]
    name = final.split()[0]
    assert f"{name} Succeeded in " in final
    assert 'extract   Succeeded' in final and '{"rows":5}' in final
    assert "load      Succeeded" in final and "loaded 5" in final

    got = jobchain(kubeconfig, namespace, "get", name)
    assert got.returncode == 0
    assert "Phase:     Succeeded" in got.stdout and "Params:    rows=5" in got.stdout
    as_json = json.loads(jobchain(kubeconfig, namespace, "get", name, "-o", "json").stdout)
    assert as_json["status"]["phase"] == "Succeeded"
    assert "managedFields" not in as_json["metadata"]

    listed = jobchain(kubeconfig, namespace, "list", "--workflow", "chain")
    assert listed.stdout.splitlines()[0].split() == ["NAME", "WORKFLOW", "PHASE", "PROGRESS", "RUNNING", "AGE",
                                                     "DURATION"]
    assert listed.stdout.splitlines()[1].split()[:4] == [name, "chain", "Succeeded", "2/2"]
    assert "matching --workflow other" in jobchain(kubeconfig, namespace, "list", "--workflow", "other").stdout

    mermaid = jobchain(kubeconfig, namespace, "graph", "chain", "--format", "mermaid")
    assert mermaid.returncode == 0
    assert '  n0 -->|"success"| n1' in mermaid.stdout

    graph = jobchain(kubeconfig, namespace, "graph", "--execution", name)
    assert graph.stdout.splitlines()[1:] == ["extract  (Succeeded, start)", "  -> load [success]",
                                             "load     (Succeeded)"]


def test_run_wait_exits_1_when_the_execution_fails(kubeconfig: str, namespace: str, objects: Objects) -> None:
    objects.create(FAILING)
    result = jobchain(kubeconfig, namespace, "run", "failing", "--wait")
    no_traceback(result)
    assert result.returncode == 1, result.stdout + result.stderr
    first = result.stdout.splitlines()[0]
    assert " Failed in " in first and "broken" in first
    assert result.stdout.count(" Failed in ") == 1  # --wait: the end only


def test_run_without_wait_prints_the_name(kubeconfig: str, namespace: str, objects: Objects) -> None:
    objects.create(CHAIN)
    result = jobchain(kubeconfig, namespace, "run", "chain")
    assert result.returncode == 0
    name = result.stdout.strip()
    assert name.startswith("chain-")
    done = objects.wait_phase(name)
    assert done["spec"]["workflowRef"] == {"name": "chain"}
    assert done["status"]["phase"] == "Succeeded"


def test_run_a_workflow_file_without_installing_it(kubeconfig: str, namespace: str, tmp_path: Path) -> None:
    path = tmp_path / "chain.yaml"
    path.write_text(yaml.safe_dump(CHAIN))
    result = jobchain(kubeconfig, namespace, "run", str(path), "-p", "rows=7", "--wait")
    no_traceback(result)
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout.startswith("chain-") and " Succeeded in " in result.stdout.splitlines()[0]
    assert "loaded 7" in result.stdout
    listed = jobchain(kubeconfig, namespace, "list").stdout.splitlines()
    assert listed[1].split()[1:3] == ["(inline)", "Succeeded"]


def test_logs_in_node_order_and_recorded_output_once_a_pod_is_gone(kubeconfig: str, namespace: str,
                                                                   objects: Objects, api: client.ApiClient) -> None:
    objects.create(CHAIN)
    name = jobchain(kubeconfig, namespace, "run", "chain").stdout.strip()
    objects.wait_phase(name)

    logs = jobchain(kubeconfig, namespace, "logs", name)
    assert logs.returncode == 0, logs.stderr
    assert logs.stdout.splitlines() == ["[extract] extracting", "[load] loading 3 rows"]

    core = client.CoreV1Api(api)
    selector = f"jobchain.dev/execution={name},jobchain.dev/node=extract"
    core.delete_collection_namespaced_pod(namespace, label_selector=selector, grace_period_seconds=0)
    wait_for(lambda: not core.list_namespaced_pod(namespace, label_selector=selector).items, 60, "pod deletion")

    after = jobchain(kubeconfig, namespace, "logs", name)
    assert after.returncode == 0, after.stderr
    lines = after.stdout.splitlines()
    assert lines[0].startswith("[extract] (pod ") and lines[0].endswith(" is gone; the output recorded in status:)")
    assert lines[1:] == ['[extract] {"rows": 3}', "[load] loading 3 rows"]

    only = jobchain(kubeconfig, namespace, "logs", name, "--node", "load")
    assert only.stdout.splitlines() == ["[load] loading 3 rows"]


def test_logs_follow_streams_every_node_until_the_end(kubeconfig: str, namespace: str, objects: Objects) -> None:
    objects.create(CHAIN)
    name = jobchain(kubeconfig, namespace, "run", "chain").stdout.strip()
    followed = jobchain(kubeconfig, namespace, "logs", name, "--follow", timeout=180)
    assert followed.returncode == 0, followed.stderr
    assert followed.stdout.splitlines() == ["[extract] extracting", "[load] loading 3 rows"]


def test_cancel_ends_a_concurrent_wait_with_exit_2(kubeconfig: str, namespace: str, objects: Objects) -> None:
    objects.create(SLOW)
    waiting = subprocess.Popen(command(kubeconfig, namespace, "run", "slow", "--wait"), stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        def running_execution() -> str | None:
            items = json.loads(jobchain(kubeconfig, namespace, "list", "-o", "json").stdout)["items"]
            running = [i for i in items if (i.get("status") or {}).get("running") == "wait"]
            return str(running[0]["metadata"]["name"]) if running else None

        name = wait_for(running_execution, 90, "the slow execution to run its first node")
        cancelled = jobchain(kubeconfig, namespace, "cancel", name)
        assert cancelled.returncode == 0, cancelled.stderr
        assert cancelled.stdout.startswith(f"{name}: cancel requested")
        out, err = waiting.communicate(timeout=120)
    finally:
        if waiting.poll() is None:
            waiting.kill()
            waiting.wait()
    assert waiting.returncode == 2, out + err
    assert out.splitlines()[0].startswith(f"{name} Cancelled in ")
    again = jobchain(kubeconfig, namespace, "cancel", name)
    assert again.stdout.strip() == f"{name} already ended (Cancelled); nothing to cancel"


def test_mistakes_are_one_line_with_exit_3_and_create_nothing(kubeconfig: str, namespace: str,
                                                              objects: Objects) -> None:
    objects.create(workflow("needs", [{"name": "a", "script": "echo $(params.target)"}],
                            params=[{"name": "target"}]))
    cases = [
        (["get", "nope"], f"workflowexecution 'nope' not found in namespace '{namespace}'"),
        (["run", "nope"], f"workflow 'nope' not found in namespace '{namespace}'"),
        (["run", "needs"], "spec.params: must set 'target': Workflow 'needs' declares it without a default"),
        (["run", "needs", "-p", "target=x", "-p", "other=y"],
         "spec.params.other: Workflow 'needs' does not declare this param"),
        (["logs", "nope"], "workflowexecution 'nope' not found"),
        (["cancel", "nope"], "workflowexecution 'nope' not found"),
    ]
    for args, message in cases:
        result = jobchain(kubeconfig, namespace, *args)
        no_traceback(result)
        assert result.returncode == 3, (args, result.stderr)
        assert result.stderr.count("\n") == 1 and message in result.stderr, (args, result.stderr)
    assert "no executions" in jobchain(kubeconfig, namespace, "list").stdout


def test_a_namespace_that_does_not_exist(kubeconfig: str) -> None:
    result = jobchain(kubeconfig, f"jc-e2e-missing-{int(time.time())}", "run", "x", "-p", "a=b")
    no_traceback(result)
    assert result.returncode == 3
    assert "not found" in result.stderr
