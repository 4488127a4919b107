"""Security on a real cluster: values never become code, outputs cannot be forged, the operator's
namespace is off limits, and secret params never leave their Secret.

Every test here runs with the operator as its ServiceAccount, bound to the shipped RBAC
(conftest `operator_account`), and with the shipped step admission policy in force.
"""

from __future__ import annotations

import copy
import hashlib
import json
import secrets
import subprocess
import sys
from typing import Any

import pytest
import yaml
from kubernetes import client

from tests.e2e.support import (
    BUSYBOX,
    OPERATOR_NAMESPACE,
    ROOT,
    Objects,
    OperatorAccount,
    OperatorProcess,
    kubectl,
    nodes,
    session_name,
    wait_for,
    workflow,
)

pytestmark = pytest.mark.usefixtures("operator")

PWNED_CHECK = "\ntest ! -e /tmp/pwned || { echo 'an injected command ran' >&2; exit 1; }\n"


def hello_chain() -> dict[str, Any]:
    """The README's hello-chain Workflow, with a check appended to each script: the node fails if
    /tmp/pwned exists, i.e. if a value was run as a command in that container."""
    docs = list(yaml.safe_load_all((ROOT / "examples/hello-chain.yaml").read_text()))
    wf = copy.deepcopy(next(d for d in docs if d["kind"] == "Workflow"))
    for n in wf["spec"]["nodes"]:
        n["script"] = n["script"] + PWNED_CHECK
    return dict(wf)


@pytest.mark.parametrize("who", ['x"; touch /tmp/pwned; echo "', "$(touch /tmp/pwned)"])
def test_hello_chain_param_is_never_run_and_arrives_byte_for_byte(objects: Objects, who: str) -> None:
    objects.create(hello_chain())
    done = objects.run("hello-chain", {"who": who})
    greet = nodes(done)["greet"]
    assert greet["phase"] == "Succeeded", greet  # the /tmp/pwned check passed: nothing ran
    printed = '{"greeting": "hello ' + who + '", "count": 1}'
    # JSON when the value keeps it JSON, else the string as printed: byte for byte either way
    expected = json.loads(printed) if '"' not in who else printed
    assert greet["output"] == expected
    if '"' not in who:
        assert nodes(done)["shout"]["output"] == {"shout": f"hello {who}!", "count": 2}
        assert done["status"]["phase"] == "Succeeded"


def test_hello_chain_upstream_output_is_never_run(objects: Objects) -> None:
    wf = hello_chain()
    greet = wf["spec"]["nodes"][0]
    greet["script"] = "printf '%s' \"$(params.who)\" > \"$JOBCHAIN_OUTPUT\"" + PWNED_CHECK
    objects.create(wf)
    upstream = '{"greeting": "hi\\"; touch /tmp/pwned; echo \\"", "count": 1}'
    done = objects.run("hello-chain", {"who": upstream})
    result = nodes(done)
    assert result["greet"]["output"] == {"greeting": 'hi"; touch /tmp/pwned; echo "', "count": 1}
    assert result["shout"]["phase"] == "Succeeded", result["shout"]  # nothing ran in shout's container
    assert result["shout"]["output"] == '{"shout": "hi"; touch /tmp/pwned; echo "!", "count": 2}'


def test_dollar_signs_arrive_unchanged_in_script_params_and_input(objects: Objects) -> None:
    password, note = "pa$$w0rd", "costs $$5, see $(JOBCHAIN_NODE)"
    objects.create(workflow("dollars", [
        {"name": "a", "script": "printf '%s' \"$(params.note)\" > $JOBCHAIN_OUTPUT", "next": [{"node": "b"}]},
        {"name": "b", "output": {"from": "logs"},
         "script": "printf '%s\\n' \"$(params.pw)\" '$(input.note)' \"$JOBCHAIN_PARAMS\" \"$JOBCHAIN_INPUT\"",
         "next": [{"node": "c"}]},
        {"name": "c", "output": {"from": "logs"}, "command": ["/bin/sh", "-c", 'printf "%s|%s" "$1" "$E"', "-"],
         "args": ["$(params.pw)"], "env": [{"name": "E", "value": "$(nodes.a.output.note)"}]},
    ], params=[{"name": "pw"}, {"name": "note"}]))
    done = objects.run("dollars", {"pw": password, "note": json.dumps({"note": note})})
    assert done["status"]["phase"] == "Succeeded", done["status"]
    result = nodes(done)
    assert result["a"]["output"] == {"note": note}
    lines = result["b"]["output"].split("\n")
    assert lines[0] == password
    assert lines[1] == note
    assert json.loads(lines[2]) == {"pw": password, "note": json.dumps({"note": note})}
    assert json.loads(lines[3]) == {"note": note}
    assert result["c"]["output"] == f"{password}|{note}"


# ---- outputs bound to their Job --------------------------------------------------------------


def start(objects: Objects, workflow_name: str, **spec: Any) -> str:
    """Creates an execution of `workflow_name` without waiting; returns its name."""
    created = objects.create({"apiVersion": "jobchain.dev/v1alpha1", "kind": "WorkflowExecution",
                              "metadata": {"generateName": f"{workflow_name}-"},
                              "spec": {"workflowRef": {"name": workflow_name}, **spec}})
    return str(created["metadata"]["name"])


def _job_pods(core: client.CoreV1Api, namespace: str, execution: str) -> list[client.V1Pod]:
    return list(core.list_namespaced_pod(namespace, label_selector=f"jobchain.dev/execution={execution}").items)


def test_a_pod_with_a_nodes_labels_but_not_owned_by_its_job_is_ignored(objects: Objects, api: client.ApiClient,
                                                                         namespace: str) -> None:
    core = client.CoreV1Api(api)
    objects.create(workflow("slow-real", [
        {"name": "a", "script": "sleep 15; echo '{\"real\": true}' > $JOBCHAIN_OUTPUT"},
    ]))
    name = start(objects, "slow-real")
    job = wait_for(lambda: (objects.jobs(name) or [None])[0], 60, "the node's Job")
    labels = dict(job.spec.template.metadata.labels)
    labels = {k: v for k, v in labels.items() if "controller-uid" not in k}  # no adoption by the Job controller
    labels.update({"batch.kubernetes.io/job-name": job.metadata.name, "job-name": job.metadata.name})
    forged = core.create_namespaced_pod(namespace, {
        "metadata": {"name": "forged", "labels": labels},
        "spec": {"restartPolicy": "Never", "containers": [{
            "name": "main", "image": BUSYBOX, "imagePullPolicy": "IfNotPresent",
            "command": ["sh", "-c", "echo '{\"forged\": true}' > /dev/termination-log"]}]},
    })
    wait_for(lambda: core.read_namespaced_pod("forged", namespace).status.phase == "Succeeded", 60,
             "the forged pod to succeed")
    # No fixed wait for "the operator did not take it": the real step runs 15 s, long after the forged
    # pod ended; had the operator read the forged pod, the node would have finished with its output.
    done = objects.wait_phase(name, timeout=120)
    a = nodes(done)["a"]
    assert a["output"] == {"real": True}
    assert a["podName"] != forged.metadata.name


def test_a_step_cannot_patch_a_pod_of_another_execution(objects: Objects, api: client.ApiClient,
                                                        namespace: str) -> None:
    core, rbac = client.CoreV1Api(api), client.RbacAuthorizationV1Api(api)
    core.create_namespaced_service_account(namespace, {"metadata": {"name": "step"}})
    rbac.create_namespaced_role_binding(namespace, {  # the shipped jobchain-step role, as the docs say
        "metadata": {"name": "step-jobchain-step"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                    "name": session_name("jobchain-step")},
        "subjects": [{"kind": "ServiceAccount", "name": "step", "namespace": namespace}],
    })
    objects.create(workflow("victim", [{"name": "v", "script": "sleep 20; echo '{\"mine\": 1}' > $JOBCHAIN_OUTPUT"}]))
    victim_name = start(objects, "victim")
    pod = wait_for(lambda: (_job_pods(core, namespace, victim_name) or [None])[0], 60, "the victim's pod")
    objects.create(workflow("attacker", [{
        "name": "x", "output": {"from": "annotation"}, "image": "localhost/jobchain-kubectl:dev",
        "serviceAccountName": "step",
        "script": "kubectl -v=6 annotate pod \"$(params.pod)\" --overwrite jobchain.dev/output=forged > log 2>&1\n"
                  "echo \"exit $?\" >> log\n"
                  "kubectl label pod \"$JOBCHAIN_POD_NAME\" jobchain.dev/node=v --overwrite >> log 2>&1\n"
                  "grep -o -e 'PATCH.*403 Forbidden' -e 'Error from server.*' -e '^exit .*' log > out\n"
                  "kubectl annotate pod \"$JOBCHAIN_POD_NAME\" --overwrite jobchain.dev/output=\"$(cat out)\"",
    }], params=[{"name": "pod"}]))
    done = objects.run("attacker", {"pod": pod.metadata.name}, timeout=120)
    assert done["status"]["phase"] == "Succeeded", done["status"]  # it could annotate its own pod
    said = nodes(done)["x"]["output"]
    print(said)
    lines = said.split("\n")
    assert any(line.startswith("PATCH") and line.endswith("403 Forbidden") for line in lines), said
    assert any("may change only its own pod" in line for line in lines), said
    assert "exit 1" in lines, said
    assert any("not change its labels" in line for line in lines), said  # nor relabel itself
    annotations = core.read_namespaced_pod(pod.metadata.name, namespace).metadata.annotations or {}
    assert "jobchain.dev/output" not in annotations
    assert nodes(objects.wait_phase(victim_name))["v"]["output"] == {"mine": 1}


# ---- the operator's own namespace ----------------------------------------------------------


def test_an_execution_in_the_operators_namespace_is_refused(api: client.ApiClient) -> None:
    objects = Objects(api, OPERATOR_NAMESPACE)
    created = objects.create({
        "apiVersion": "jobchain.dev/v1alpha1", "kind": "WorkflowExecution",
        "metadata": {"generateName": "borrow-"},
        "spec": {"workflow": {"nodes": [{"name": "a", "image": BUSYBOX, "serviceAccountName": "jobchain-operator",
                                         "script": "echo hi"}]}},
    })
    name = created["metadata"]["name"]
    try:
        done = objects.wait_phase(name, timeout=60)
        assert done["status"]["phase"] == "Failed"
        assert done["status"]["reason"] == "RefusedNamespace"
        assert "operator's own namespace" in done["status"]["message"]
        assert objects.jobs(name) == []
    finally:
        objects.custom.delete_namespaced_custom_object("jobchain.dev", "v1alpha1", OPERATOR_NAMESPACE,
                                                       "workflowexecutions", name)



# ---- secret params ------------------------------------------------------------------------


def test_a_secret_param_reaches_the_container_and_nowhere_else(objects: Objects, api: client.ApiClient,
                                                               namespace: str, kubeconfig: str,
                                                               operator: OperatorProcess) -> None:
    secret = f"s3cr3t-{secrets.token_hex(6)}-$$-$(JOBCHAIN_NODE)"
    digest = hashlib.sha256(secret.encode()).hexdigest()
    client.CoreV1Api(api).create_namespaced_secret(namespace, {
        "metadata": {"name": "creds"}, "stringData": {"token": secret}})
    objects.create(workflow("with-secret", [
        {"name": "a", "script": "echo \"using $(params.token)\"\n"
                                "printf '%s' \"$(params.token)\" | sha256sum | cut -c1-64 > $JOBCHAIN_OUTPUT",
         "next": [{"node": "b"}, {"node": "c"}]},
        {"name": "b", "command": ["/bin/sh", "-c", "printf '%s' \"$1\" | sha256sum | cut -c1-64 > $JOBCHAIN_OUTPUT",
                                  "-"], "args": ["$(params.token)"]},
        {"name": "c", "script": "echo \"leaking $(params.token) now\"; exit 3"},
    ], params=[{"name": "token", "secret": True}]))
    started = subprocess.run([sys.executable, "-m", "jobchain.cli.main", "--kubeconfig", kubeconfig, "-n", namespace,
                              "run", "with-secret", "--secret-param", "token=creds:token"],
                             capture_output=True, text=True, timeout=60, check=False)
    assert started.returncode == 0, started.stderr
    name = started.stdout.strip()
    assert objects.execution(name)["spec"]["paramsFrom"] == [
        {"name": "token", "valueFrom": {"secretKeyRef": {"name": "creds", "key": "token"}}}]
    done = objects.wait_phase(name, timeout=180)
    result = nodes(done)
    assert result["a"]["output"] == digest  # the value reached the script byte for byte
    assert result["b"]["output"] == digest  # ... and the args
    assert result["c"]["phase"] == "Failed"
    assert "leaking <secret> now" in result["c"]["message"], result["c"]["message"]
    assert done["status"]["secretParams"] == ["token"]
    seen = {
        "kubectl get jcex -o yaml": kubectl(kubeconfig, "-n", namespace, "get", "jcex", name, "-o", "yaml"),
        "the Job specs": kubectl(kubeconfig, "-n", namespace, "get", "jobs", "-o", "yaml"),
        "the Events": kubectl(kubeconfig, "-n", namespace, "get", "events", "-o", "yaml"),
        "the operator log": operator.log_path.read_text(errors="replace"),
    }
    assert "leaking <secret> now" in seen["the Events"]  # the failure's event was posted, redacted
    for where, text in seen.items():
        assert secret not in text, f"the secret is in {where}"
        assert "s3cr3t-" not in text, f"part of the secret is in {where}"
    shown = subprocess.run([sys.executable, "-m", "jobchain.cli.main", "--kubeconfig", kubeconfig, "-n", namespace,
                            "get", name], capture_output=True, text=True, timeout=60, check=False)
    assert "token=<secret>" in shown.stdout, shown.stdout + shown.stderr
    assert secret not in shown.stdout


# ---- the operator's rights in this tier ------------------------------------------------------


def test_the_e2e_operator_runs_as_its_service_account_with_the_shipped_rights_only(
        operator_account: OperatorAccount, operator: OperatorProcess, namespace: str) -> None:
    assert operator.kubeconfig == str(operator_account.path)
    as_operator = str(operator_account.path)
    who = kubectl(as_operator, "auth", "whoami", "-o", "jsonpath={.status.userInfo.username}")
    assert who == f"system:serviceaccount:{OPERATOR_NAMESPACE}:jobchain-operator"

    def can(*what: str) -> bool:
        return kubectl(as_operator, "auth", "can-i", *what, "-n", namespace, check=False).strip() == "yes"

    assert can("delete", "workflowexecutions.jobchain.dev")  # ttlSecondsAfterFinished
    assert can("create", "jobs.batch") and can("get", "pods", "--subresource=log")
    assert not can("create", "pods")  # not cluster-admin: nothing beyond manifests/base
    assert not can("delete", "pods")
    assert not can("patch", "workflows.jobchain.dev")
    assert not can("list", "secrets")
