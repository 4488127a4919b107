"""User stories of the operator core on a real cluster: real Jobs, pods, logs and termination messages."""

from __future__ import annotations

import threading
import time
from typing import Any

import pytest
from kubernetes import client, watch
from kubernetes.client.exceptions import ApiException

from tests.e2e.support import Objects, OperatorProcess, nodes, wait_for, workflow

pytestmark = pytest.mark.usefixtures("operator")




def test_three_node_chain_passes_outputs(objects: Objects) -> None:
    objects.create(workflow("chain", [
        {"name": "a", "script": "printf '{\"rows\": 42, \"date\": \"%s\"}' '$(params.date)' > $JOBCHAIN_OUTPUT",
         "next": [{"node": "b"}]},
        {"name": "b", "script": "printf '{\"double\": %d, \"seen\": %s}' $(( $(input.rows) * 2 )) "
                                "\"$JOBCHAIN_INPUT\" > $JOBCHAIN_OUTPUT",
         "next": [{"node": "c"}]},
        {"name": "c", "env": [{"name": "DATE", "value": "$(nodes.a.output.date)"}],
         "script": "echo \"$DATE $(input.double) $(execution.name)\"", "output": {"from": "logs"}},
    ], params=[{"name": "date", "default": "2026-01-01"}]))
    done = objects.run("chain", {"date": "2026-11-27"})
    status = done["status"]
    assert status["phase"] == "Succeeded", status
    result = nodes(done)
    assert result["a"]["output"] == {"rows": 42, "date": "2026-11-27"}
    assert result["b"]["output"] == {"double": 84, "seen": {"rows": 42, "date": "2026-11-27"}}
    assert result["c"]["output"] == f"2026-11-27 84 {done['metadata']['name']}"
    assert result["b"]["inputFrom"] == "a"
    assert status["progress"] == "3/3"
    assert all(n["exitCode"] == 0 and n["jobName"] and n["podName"] for n in result.values())
    # One Job per node, labelled and owned by the execution.
    jobs = objects.jobs(done["metadata"]["name"])
    assert sorted(j.metadata.labels["jobchain.dev/node"] for j in jobs) == ["a", "b", "c"]
    assert all(j.metadata.owner_references[0].uid == done["metadata"]["uid"] for j in jobs)
    def reasons() -> list[str]:  # Events are posted in the background, moments after status
        return [e.reason for e in objects.events(done["metadata"]["name"])]

    wait_for(lambda: "ExecutionSucceeded" in reasons(), 30, "the ExecutionSucceeded Event")
    assert reasons().count("NodeStarted") == 3 and reasons().count("NodeSucceeded") == 3


def test_failure_is_routed_to_the_failure_edge(objects: Objects) -> None:
    objects.create(workflow("routing", [
        {"name": "load", "script": "echo 'disk full' >&2; exit 3",
         "next": [{"node": "publish", "type": "success"}, {"node": "alert", "type": "failure"}]},
        {"name": "publish", "script": "echo published"},
        {"name": "alert", "script": "echo alerting", "output": {"from": "logs"}},
    ]))
    done = objects.run("routing")
    result = nodes(done)
    assert result["load"]["phase"] == "Failed"
    assert result["load"]["exitCode"] == 3
    assert "disk full" in result["load"]["message"]
    assert result["publish"]["phase"] == "Skipped"
    assert result["alert"]["phase"] == "Succeeded" and result["alert"]["output"] == "alerting"
    # The failure had a failure edge, so it was handled: the execution succeeds.
    assert done["status"]["phase"] == "Succeeded"


def test_unhandled_failure_fails_the_execution_naming_the_node(objects: Objects) -> None:
    objects.create(workflow("unhandled", [
        {"name": "boom", "script": "exit 1", "next": [{"node": "after"}]},
        {"name": "after", "script": "echo never"},
    ]))
    done = objects.run("unhandled")
    assert done["status"]["phase"] == "Failed"
    assert done["status"]["reason"] == "NodeFailed"
    assert "boom" in done["status"]["message"]
    assert nodes(done)["after"]["phase"] == "Skipped"


def test_cel_condition_takes_each_branch(objects: Objects) -> None:
    objects.create(workflow("branch", [
        {"name": "count", "script": "printf '{\"rows\": %s}' $(params.rows) > $JOBCHAIN_OUTPUT",
         "next": [{"node": "big", "type": "condition", "when": "output.rows > 10"},
                  {"node": "small", "type": "condition", "when": "output.rows <= 10 && params.rows == '3'"}]},
        {"name": "big", "script": "echo big"},
        {"name": "small", "script": "echo small"},
    ], params=[{"name": "rows"}]))
    big = objects.run("branch", {"rows": "42"})
    small = objects.run("branch", {"rows": "3"})
    assert big["status"]["phase"] == small["status"]["phase"] == "Succeeded"
    assert (nodes(big)["big"]["phase"], nodes(big)["small"]["phase"]) == ("Succeeded", "Skipped")
    assert (nodes(small)["big"]["phase"], nodes(small)["small"]["phase"]) == ("Skipped", "Succeeded")


def test_cel_runtime_error_fails_with_condition_error(objects: Objects) -> None:
    objects.create(workflow("badwhen", [
        {"name": "a", "script": "echo '{}' > $JOBCHAIN_OUTPUT",
         "next": [{"node": "b", "type": "condition", "when": "output.missing > 1"}]},
        {"name": "b", "script": "echo b"},
    ]))
    done = objects.run("badwhen")
    assert done["status"]["phase"] == "Failed"
    assert done["status"]["reason"] == "ConditionError"
    assert "a -> b" in done["status"]["message"] and "missing" in done["status"]["message"]


def test_a_node_output_is_read_from_each_of_the_three_sources(
        objects: Objects, api: client.ApiClient, namespace: str) -> None:
    # The annotation source: the step annotates its own pod, so its ServiceAccount may patch pods.
    core, rbac = client.CoreV1Api(api), client.RbacAuthorizationV1Api(api)
    core.create_namespaced_service_account(namespace, {"metadata": {"name": "step"}})
    rbac.create_namespaced_role(namespace, {
        "metadata": {"name": "annotate-own-pod"},
        "rules": [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get", "patch"]}],
    })
    rbac.create_namespaced_role_binding(namespace, {
        "metadata": {"name": "step-annotate"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "annotate-own-pod"},
        "subjects": [{"kind": "ServiceAccount", "name": "step", "namespace": namespace}],
    })
    objects.create(workflow("sources", [
        {"name": "by-message", "script": "echo ignored; echo '{\"via\": \"message\"}' > $JOBCHAIN_OUTPUT",
         "next": [{"node": "by-logs"}]},
        {"name": "by-logs", "output": {"from": "logs"}, "script": "echo '{\"via\": \"logs\"}'",
         "next": [{"node": "by-annotation"}]},
        {"name": "by-annotation", "output": {"from": "annotation"}, "image": "localhost/jobchain-kubectl:dev",
         "serviceAccountName": "step",
         "script": "kubectl annotate pod \"$JOBCHAIN_POD_NAME\" --overwrite "
                   "jobchain.dev/output='{\"via\": \"annotation\", \"from\": \"'$(input.via)'\"}'"},
    ]))
    done = objects.run("sources", timeout=180)
    assert done["status"]["phase"] == "Succeeded", done["status"]
    result = nodes(done)
    assert result["by-message"]["output"] == {"via": "message"}
    assert result["by-logs"]["output"] == {"via": "logs"}
    assert result["by-annotation"]["output"] == {"via": "annotation", "from": "logs"}


def test_join_any_runs_after_whichever_branch_ran(objects: Objects) -> None:
    objects.create(workflow("joins", [
        {"name": "check", "script": "exit 0",
         "next": [{"node": "left", "type": "success"}, {"node": "right", "type": "failure"}]},
        {"name": "left", "script": "echo '\"left\"' > $JOBCHAIN_OUTPUT", "next": [{"node": "any", "type": "always"},
                                                                            {"node": "all", "type": "always"}]},
        {"name": "right", "script": "echo right", "next": [{"node": "any", "type": "always"},
                                                          {"node": "all", "type": "always"}]},
        {"name": "any", "join": "any", "script": "echo '$(input)' > $JOBCHAIN_OUTPUT"},
        {"name": "all", "script": "echo never"},
    ]))
    done = objects.run("joins")
    result = nodes(done)
    assert result["right"]["phase"] == "Skipped"
    assert result["any"]["phase"] == "Succeeded" and result["any"]["output"] == "left"
    assert result["all"]["phase"] == "Skipped"
    assert done["status"]["phase"] == "Succeeded"


def test_parallelism_two_runs_two_jobs_at_once(objects: Objects) -> None:
    objects.create(workflow("wide", [
        {"name": f"n{i}", "script": "sleep 4"} for i in range(4)
    ], parallelism=2))
    created = objects.create({
        "apiVersion": "jobchain.dev/v1alpha1", "kind": "WorkflowExecution",
        "metadata": {"generateName": "wide-"}, "spec": {"workflowRef": {"name": "wide"}},
    })
    name = created["metadata"]["name"]
    most_running = 0
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        status = objects.execution(name).get("status") or {}
        running = [n["name"] for n in status.get("nodes", []) if n.get("phase") == "Running"]
        most_running = max(most_running, len(running))
        assert len(running) <= 2, running
        if status.get("phase") in ("Succeeded", "Failed"):
            break
        time.sleep(0.3)
    done = objects.execution(name)
    assert done["status"]["phase"] == "Succeeded"
    assert most_running == 2
    result = nodes(done)
    # Declaration order: n0 and n1 first, n2 and n3 after them.
    assert max(result["n0"]["startedAt"], result["n1"]["startedAt"]) <= min(
        result["n2"]["startedAt"], result["n3"]["startedAt"])


def test_cancel_deletes_running_jobs(objects: Objects) -> None:
    objects.create(workflow("slow", [
        {"name": "wait", "script": "sleep 300", "next": [{"node": "after"}]},
        {"name": "after", "script": "echo after"},
    ]))
    created = objects.create({
        "apiVersion": "jobchain.dev/v1alpha1", "kind": "WorkflowExecution",
        "metadata": {"generateName": "slow-"}, "spec": {"workflowRef": {"name": "slow"}},
    })
    name = created["metadata"]["name"]
    objects.wait_phase(name, ("Running",))
    wait_for(lambda: nodes(objects.execution(name))["wait"]["phase"] == "Running", 60, "node wait running")
    # Nothing of the operator's blocks deleting a running execution (no finalizer).
    assert not objects.execution(name)["metadata"].get("finalizers")
    objects.patch_execution(name, {"spec": {"cancel": True}})
    done = objects.wait_phase(name, timeout=60)
    assert done["status"]["phase"] == "Cancelled"
    assert {n["phase"] for n in done["status"]["nodes"]} == {"Cancelled"}
    wait_for(lambda: not [j for j in objects.jobs(name) if not j.metadata.deletion_timestamp], 60,
             "the running Job to be deleted")


def test_execution_deadline_fails_with_deadline_exceeded(objects: Objects) -> None:
    objects.create(workflow("forever", [{"name": "wait", "script": "sleep 300"}]))
    started = time.monotonic()
    done = objects.run("forever", timeoutSeconds=5, timeout=60)
    assert done["status"]["phase"] == "Failed"
    assert done["status"]["reason"] == "DeadlineExceeded"
    assert nodes(done)["wait"]["phase"] == "Cancelled"
    elapsed = time.monotonic() - started
    print(f"a 5 s deadline reported Failed after {elapsed:.1f}s")
    # Event-timed, not found by the resync (RESYNC_SECONDS, 60 s after the start): the margin is
    # what separates the two, not a promised latency.
    assert elapsed < 50, f"the deadline was found after {elapsed:.0f}s: by the resync, not its own timer"


def test_operator_killed_mid_run_resumes_without_duplicate_jobs(objects: Objects, operator: OperatorProcess) -> None:
    objects.create(workflow("restart", [
        {"name": "one", "script": "sleep 2; echo 1 > $JOBCHAIN_OUTPUT", "next": [{"node": "two"}]},
        {"name": "two", "script": "sleep 6; echo $(( $(input) + 1 )) > $JOBCHAIN_OUTPUT", "next": [{"node": "three"}]},
        {"name": "three", "script": "echo $(( $(input) + 1 )) > $JOBCHAIN_OUTPUT"},
    ]))
    created = objects.create({
        "apiVersion": "jobchain.dev/v1alpha1", "kind": "WorkflowExecution",
        "metadata": {"generateName": "restart-"}, "spec": {"workflowRef": {"name": "restart"}},
    })
    name = created["metadata"]["name"]
    wait_for(lambda: nodes(objects.execution(name))["two"]["phase"] == "Running"
             if (objects.execution(name).get("status") or {}).get("nodes") else False, 90, "node two running")
    operator.kill()
    # Node two's Job finishes while no operator runs; its finish is recorded only after the restart.
    wait_for(lambda: any(j.metadata.labels["jobchain.dev/node"] == "two" and (j.status.succeeded or 0) >= 1
                         for j in objects.jobs(name)), 90, "node two's Job to succeed while the operator is down")
    assert nodes(objects.execution(name))["two"]["phase"] == "Running"  # nobody recorded it yet
    assert "three" not in {j.metadata.labels["jobchain.dev/node"] for j in objects.jobs(name)}
    operator.start()
    done = objects.wait_phase(name, timeout=90)
    assert done["status"]["phase"] == "Succeeded"
    assert nodes(done)["three"]["output"] == 3
    jobs = objects.jobs(name)
    assert sorted(j.metadata.labels["jobchain.dev/node"] for j in jobs) == ["one", "three", "two"]
    # Each node ran exactly once: one pod per Job. (The Job controller reports a Job complete
    # about a second after its pod, which the operator has already acted on.)
    for job in jobs:
        pods = objects.core.list_namespaced_pod(
            objects.namespace, label_selector=f"batch.kubernetes.io/job-name={job.metadata.name}").items
        assert len(pods) == 1, [p.metadata.name for p in pods]
    wait_for(lambda: all((j.status.succeeded or 0) == 1 and not j.status.failed for j in objects.jobs(name)),
             30, "the Job controller to report each Job succeeded once")


def test_invalid_workflow_is_refused_with_its_reason(objects: Objects) -> None:
    # What the schema can see is refused at apply time...
    with pytest.raises(ApiException) as refused:
        objects.create(workflow("Bad_Name", [{"name": "Not A Label", "script": "true"}]))
    assert refused.value.status == 422 and "Not A Label" in str(refused.value.body)
    with pytest.raises(ApiException) as refused_edge:
        objects.create(workflow("no-when", [{"name": "a", "script": "true",
                                             "next": [{"node": "b", "type": "condition"}]},
                                            {"name": "b", "script": "true"}]))
    assert refused_edge.value.status == 422 and "condition" in str(refused_edge.value.body)
    # ...the rest shows as the Workflow's Ready condition and fails executions at once.
    objects.create(workflow("cyclic", [
        {"name": "a", "script": "true", "next": [{"node": "b"}]},
        {"name": "b", "script": "true", "next": [{"node": "a"}]},
    ]))
    ready = wait_for(lambda: next((c for c in (objects.workflow("cyclic").get("status") or {}).get("conditions", [])
                                   if c["type"] == "Ready"), None), 30, "Ready condition")
    assert ready["status"] == "False" and "cycle" in ready["message"]
    done = objects.run("cyclic")
    assert done["status"]["phase"] == "Failed"
    assert done["status"]["reason"] == "InvalidWorkflow"
    assert "cycle" in done["status"]["message"]
    missing = objects.run("no-such-workflow")
    assert missing["status"]["reason"] == "WorkflowNotFound"
    assert not objects.jobs(done["metadata"]["name"])


def test_finished_execution_is_deleted_after_its_ttl(objects: Objects) -> None:
    objects.create(workflow("short-lived", [{"name": "a", "script": "echo done"}]))
    done = objects.run("short-lived", ttlSecondsAfterFinished=3)
    name = done["metadata"]["name"]
    assert done["status"]["phase"] == "Succeeded"

    def gone() -> bool:
        try:
            objects.execution(name)
            return False
        except ApiException as exc:
            return exc.status == 404

    wait_for(gone, 30, "the execution to be deleted after its TTL")
    wait_for(lambda: not objects.jobs(name), 60, "its Job to be garbage-collected")


def test_job_refused_by_the_api_server_fails_its_node_and_routes_on(objects: Objects) -> None:
    objects.create(workflow("refused", [
        {"name": "bad", "script": "true",
         "podTemplate": {"spec": {"containers": [{"name": "main", "resources": {"limits": {"cpu": "lots"}}}]}},
         "next": [{"node": "cleanup", "type": "failure"}]},
        {"name": "cleanup", "script": "echo cleaning up"},
    ]))
    done = objects.run("refused", timeout=60)
    result = nodes(done)
    assert result["bad"]["phase"] == "Failed"
    assert "Kubernetes refused the node's Job" in result["bad"]["message"]
    assert "quantities must match" in result["bad"]["message"]  # the API server's own words
    assert result["cleanup"]["phase"] == "Succeeded"
    assert done["status"]["phase"] == "Succeeded"  # the failure was handled


def test_what_an_execution_runs_cannot_change_after_it_is_created(objects: Objects) -> None:
    objects.create(workflow("fixed", [{"name": "wait", "script": "sleep 300"}],
                            params=[{"name": "day", "default": "monday"}]))
    created = objects.create({
        "apiVersion": "jobchain.dev/v1alpha1", "kind": "WorkflowExecution",
        "metadata": {"generateName": "fixed-"},
        "spec": {"workflowRef": {"name": "fixed"}, "params": {"day": "tuesday"}},
    })
    name = created["metadata"]["name"]
    for change in ({"params": {"day": "friday"}}, {"workflowRef": {"name": "other"}}):
        with pytest.raises(ApiException) as refused:
            objects.patch_execution(name, {"spec": change})
        assert refused.value.status == 422 and "cannot change after the execution is created" in refused.value.body
    objects.patch_execution(name, {"spec": {"timeoutSeconds": 600}})  # a deadline may move
    objects.patch_execution(name, {"spec": {"cancel": True}})
    done = objects.wait_phase(name, timeout=60)
    assert done["status"]["phase"] == "Cancelled" and done["status"]["params"] == {"day": "tuesday"}


NODE_RANK = {"Pending": 0, "Running": 1, "Succeeded": 2, "Failed": 2, "Skipped": 2, "Cancelled": 2}


def _status_history(api: client.ApiClient, namespace: str, name: str, stop: threading.Event,
                    seen: list[dict[str, Any]]) -> None:
    """Every version of the execution's status the API server sends on a watch."""
    custom = client.CustomObjectsApi(api)
    while not stop.is_set():
        stream = watch.Watch().stream(custom.list_namespaced_custom_object, "jobchain.dev", "v1alpha1", namespace,
                                      "workflowexecutions", field_selector=f"metadata.name={name}", timeout_seconds=5)
        for event in stream:
            seen.append(event["object"].get("status") or {})
            if stop.is_set():
                break


def test_operator_killed_while_its_store_is_cold_duplicates_nothing_and_never_moves_status_back(
        objects: Objects, operator: OperatorProcess, api: client.ApiClient, namespace: str) -> None:
    # Issue 10: passes read from a store the watches fill. Killed again and again right after it
    # starts (while the store is still being filled from the first listing), the operator must
    # never plan from a store that has not seen the cluster: a Job it does not hold yet would
    # look deleted (the node failed) or missing (a second Job).
    steps = [{"name": f"s{i}", "script": f"sleep 2; echo {i} > $JOBCHAIN_OUTPUT",
              **({"next": [{"node": f"s{i + 1}"}]} if i < 4 else {})} for i in range(5)]
    objects.create(workflow("cold", steps))
    created = objects.create({"apiVersion": "jobchain.dev/v1alpha1", "kind": "WorkflowExecution",
                              "metadata": {"generateName": "cold-"}, "spec": {"workflowRef": {"name": "cold"}}})
    name = created["metadata"]["name"]
    history: list[dict[str, Any]] = []
    stop = threading.Event()
    watcher = threading.Thread(target=_status_history, args=(api, namespace, name, stop, history), daemon=True)
    watcher.start()
    try:
        wait_for(lambda: any(n.get("phase") == "Running" for n in (objects.execution(name).get("status") or {})
                             .get("nodes") or []), 90, "the first node running")
        for delay in (0.5, 1.5, 3.0, 0.0, 2.0, 4.0):
            operator.kill()
            operator.start(wait=delay == 0.0)  # 0.0: killed the moment its health endpoint answers
            time.sleep(delay)
        operator.kill()
        operator.start()
        done = objects.wait_phase(name, timeout=180)
    finally:
        stop.set()
        watcher.join(timeout=10)
    assert done["status"]["phase"] == "Succeeded", done["status"].get("message")
    assert [nodes(done)[f"s{i}"]["output"] for i in range(5)] == [0, 1, 2, 3, 4]
    jobs = objects.jobs(name)
    assert sorted(j.metadata.labels["jobchain.dev/node"] for j in jobs) == [f"s{i}" for i in range(5)]
    for job in jobs:
        pods = objects.core.list_namespaced_pod(
            namespace, label_selector=f"batch.kubernetes.io/job-name={job.metadata.name}").items
        assert len(pods) == 1, [p.metadata.name for p in pods]
    # Status never went backwards: per node, phases only move forward and a finished node never
    # changes; the execution's progress never drops.
    assert len(history) > 5
    last: dict[str, dict[str, Any]] = {}
    for status in history:
        for node in status.get("nodes") or []:
            before = last.get(node["name"])
            if before is not None:
                assert NODE_RANK[node["phase"]] >= NODE_RANK[before["phase"]], (before, node)
                if NODE_RANK[before["phase"]] == 2:
                    kept = (before["phase"], before.get("output"))
                    assert (node["phase"], node.get("output")) == kept, (before, node)
            last[node["name"]] = node
    finished = [sum(NODE_RANK[n["phase"]] == 2 for n in s.get("nodes") or []) for s in history]
    assert finished == sorted(finished), finished


def test_finished_nodes_jobs_pods_and_logs_are_kept_when_the_execution_ends(objects: Objects) -> None:
    # Issue 8, defect 7: two nodes end moments apart; the execution ends with the second,
    # about a second before the Job controller says the first one's Job is Complete. That Job
    # is not "still running": deleting it took its pod and log (`jobchain logs` found nothing).
    objects.create(workflow("keep", [
        {"name": "a", "script": "echo log-of-a; sleep 1; echo 1 > $JOBCHAIN_OUTPUT"},
        {"name": "b", "script": "echo log-of-b; sleep 1; echo 2 > $JOBCHAIN_OUTPUT"},
    ]))
    done = objects.run("keep")
    assert done["status"]["phase"] == "Succeeded"
    # The defect struck when the Job controller caught up: wait until it reports both Jobs succeeded
    # (a Job deleted meanwhile never does), then nothing may be deleting them.
    wait_for(lambda: len(objects.jobs(done["metadata"]["name"])) == 2
             and all((j.status.succeeded or 0) == 1 for j in objects.jobs(done["metadata"]["name"])),
             60, "the Job controller to report both Jobs succeeded")
    jobs = objects.jobs(done["metadata"]["name"])
    assert sorted((j.metadata.labels["jobchain.dev/node"], j.metadata.deletion_timestamp) for j in jobs) == [
        ("a", None), ("b", None)]
    for node in ("a", "b"):
        pod = nodes(done)[node]["podName"]
        assert f"log-of-{node}" in objects.core.read_namespaced_pod_log(pod, objects.namespace, container="main")
