"""What a step and a run may touch, decided by the API server: the shipped admission policies
(manifests/base/step-policy.yaml, run-policy.yaml) evaluated on the real cluster.

A step (a ServiceAccount bound to jobchain-step) may set the jobchain.dev/output annotation of
its own pod and nothing else; a person may name a ServiceAccount, or privileged pod fields, in a
run only with the verb `use` on them (docs/security.md). The policies are this session's copies
(tests/e2e/support.py), judging only this session's namespaces.
"""

from __future__ import annotations

import copy
import subprocess
from typing import Any

import pytest
import yaml
from kubernetes import client

from tests.e2e.support import (
    BUSYBOX,
    Objects,
    kubectl,
    nodes,
    session_name,
    tool,
    wait_for,
    workflow,
)

pytestmark = pytest.mark.usefixtures("operator")

KUBECTL_IMAGE = "localhost/jobchain-kubectl:dev"  # busybox + kubectl (hack/images/build-images.sh)


def bind(rbac: client.RbacAuthorizationV1Api, namespace: str, name: str, role: dict[str, Any],
         subject: dict[str, Any]) -> None:
    """A RoleBinding of `role` ({kind, name}) to `subject` in `namespace`."""
    rbac.create_namespaced_role_binding(namespace, {
        "metadata": {"name": name},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", **role},
        "subjects": [subject],
    })


def step_account(api: client.ApiClient, namespace: str) -> None:
    """ServiceAccount `step`, bound to the shipped jobchain-step role as the docs say."""
    client.CoreV1Api(api).create_namespaced_service_account(namespace, {"metadata": {"name": "step"}})
    bind(client.RbacAuthorizationV1Api(api), namespace, "step-jobchain-step",
         {"kind": "ClusterRole", "name": session_name("jobchain-step")},
         {"kind": "ServiceAccount", "name": "step", "namespace": namespace})


ATTEMPTS = {  # what a compromised step tries with its own token; each line of its output says how it went
    "other-image": 'kubectl set image pod/"$(params.victim)" main=busybox:1.35',
    "bystander-annotation": "kubectl annotate pod bystander --overwrite jobchain.dev/output=forged",
    "own-image": 'kubectl set image pod/"$JOBCHAIN_POD_NAME" main=busybox:1.35',
    "own-other-annotation": 'kubectl annotate pod "$JOBCHAIN_POD_NAME" example.com/mine=1',
    "own-label": 'kubectl label pod "$JOBCHAIN_POD_NAME" example.com/mine=1',
}


def test_a_step_may_set_its_own_output_annotation_and_nothing_else(objects: Objects, api: client.ApiClient,
                                                                    namespace: str) -> None:
    core = client.CoreV1Api(api)
    step_account(api, namespace)
    core.create_namespaced_pod(namespace, {  # not a jobchain pod: the old policy never looked at it
        "metadata": {"name": "bystander"},
        "spec": {"restartPolicy": "Never", "containers": [
            {"name": "main", "image": BUSYBOX, "imagePullPolicy": "IfNotPresent", "command": ["sleep", "300"]}]},
    })
    objects.create(workflow("victim", [{"name": "v", "script": "sleep 30; echo '{\"mine\": 1}' > $JOBCHAIN_OUTPUT"}]))
    victim = objects.create({"apiVersion": "jobchain.dev/v1alpha1", "kind": "WorkflowExecution",
                             "metadata": {"generateName": "victim-"}, "spec": {"workflowRef": {"name": "victim"}}})
    selector = f"jobchain.dev/execution={victim['metadata']['name']}"
    pod = wait_for(lambda: (core.list_namespaced_pod(namespace, label_selector=selector).items or [None])[0],
                   60, "the victim's pod")
    script = "".join(f'{{ {cmd}; }} > out 2>&1; echo "{name}: exit $? $(tail -1 out)" >> log\n'
                     for name, cmd in ATTEMPTS.items())
    script += 'kubectl annotate pod "$JOBCHAIN_POD_NAME" --overwrite jobchain.dev/output="$(cat log)"'
    objects.create(workflow("attacker", [{
        "name": "x", "output": {"from": "annotation"}, "image": KUBECTL_IMAGE, "serviceAccountName": "step",
        "script": script}], params=[{"name": "victim"}]))
    done = objects.run("attacker", {"victim": pod.metadata.name}, timeout=120)
    assert done["status"]["phase"] == "Succeeded", done["status"]  # its own output annotation: allowed
    said = dict(line.split(": ", 1) for line in nodes(done)["x"]["output"].splitlines())
    print(said)
    assert said.keys() == ATTEMPTS.keys(), said
    for name in ATTEMPTS:
        assert said[name].startswith("exit 1 ") and ("Forbidden" in said[name] or "denied" in said[name]), said
    assert "may change only its own pod, not " + pod.metadata.name in said["other-image"]
    assert "may change only its own pod, not bystander" in said["bystander-annotation"]
    assert "not change its spec" in said["own-image"]
    assert "no other annotation" in said["own-other-annotation"]
    assert "not change its labels" in said["own-label"]
    victim_pod = core.read_namespaced_pod(pod.metadata.name, namespace)
    assert victim_pod.spec.containers[0].image == BUSYBOX
    assert "jobchain.dev/output" not in (core.read_namespaced_pod("bystander", namespace).metadata.annotations or {})
    assert nodes(objects.wait_phase(victim["metadata"]["name"]))["v"]["output"] == {"mine": 1}


def test_a_step_token_bound_to_no_pod_is_refused(api: client.ApiClient, kubeconfig: str, namespace: str) -> None:
    core = client.CoreV1Api(api)
    step_account(api, namespace)
    core.create_namespaced_pod(namespace, {
        "metadata": {"name": "target"},
        "spec": {"restartPolicy": "Never", "containers": [
            {"name": "main", "image": BUSYBOX, "imagePullPolicy": "IfNotPresent", "command": ["sleep", "60"]}]},
    })
    token = kubectl(kubeconfig, "-n", namespace, "create", "token", "step", "--duration=10m").strip()
    config = copy.copy(api.configuration)
    config.cert_file = config.key_file = None
    config.api_key = {"authorization": f"Bearer {token}"}
    with client.ApiClient(config) as as_step, pytest.raises(client.ApiException) as refused:
        client.CoreV1Api(as_step).patch_namespaced_pod(
            "target", namespace, {"metadata": {"annotations": {"jobchain.dev/output": "forged"}}})
    assert refused.value.status == 403
    assert "bound to no pod" in str(refused.value.body), refused.value.body


# ---- what a run may do -------------------------------------------------------------------------


def as_user(kubeconfig: str, user: str, namespace: str, doc: dict[str, Any]) -> subprocess.CompletedProcess[str]:
    """`kubectl create` of `doc` as `user` (impersonated by the admin): the API server's answer."""
    return subprocess.run([tool("kubectl"), "--kubeconfig", kubeconfig, "--as", user, "-n", namespace,
                           "create", "-f", "-"], input=yaml.safe_dump(doc), capture_output=True, text=True,
                          timeout=60)


def grant(rbac: client.RbacAuthorizationV1Api, namespace: str, name: str, rule: dict[str, Any], user: str) -> None:
    rbac.create_namespaced_role(namespace, {"metadata": {"name": name}, "rules": [rule]})
    bind(rbac, namespace, name, {"kind": "Role", "name": name},
         {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user})


def test_naming_a_service_account_or_privileged_fields_needs_the_verb_use(api: client.ApiClient, kubeconfig: str,
                                                                         namespace: str) -> None:
    rbac = client.RbacAuthorizationV1Api(api)
    client.CoreV1Api(api).create_namespaced_service_account(namespace, {"metadata": {"name": "deployer"}})
    bind(rbac, namespace, "alice-edit", {"kind": "ClusterRole", "name": session_name("jobchain-edit")},
         {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "alice"})
    plain = workflow("plain", [{"name": "a", "script": "echo hi"}])
    assert as_user(kubeconfig, "alice", namespace, plain).returncode == 0  # no pod fields: nothing to ask

    as_deployer = workflow("deploy", [{"name": "a", "script": "echo hi", "serviceAccountName": "deployer"}])
    refused = as_user(kubeconfig, "alice", namespace, as_deployer)
    assert refused.returncode != 0
    assert "runs as a ServiceAccount you may not use (this spec names: deployer)" in refused.stderr, refused.stderr
    assert "verbs [use]" in refused.stderr
    inline = {"apiVersion": "jobchain.dev/v1alpha1", "kind": "WorkflowExecution",
              "metadata": {"name": "inline"}, "spec": {"workflow": as_deployer["spec"]}}
    assert "you may not use" in as_user(kubeconfig, "alice", namespace, inline).stderr
    grant(rbac, namespace, "alice-use-deployer", {"apiGroups": [""], "resources": ["serviceaccounts"],
                                                  "resourceNames": ["deployer"], "verbs": ["use"]}, "alice")
    allowed = wait_for(lambda: as_user(kubeconfig, "alice", namespace, as_deployer).returncode == 0 or None, 30,
                       "alice may use deployer (RBAC caches for a moment)")
    assert allowed

    host = workflow("host", [{"name": "a", "script": "echo hi", "podTemplate": {"spec": {"hostNetwork": True}}}])
    refused = as_user(kubeconfig, "alice", namespace, host)
    assert refused.returncode != 0
    assert "sets a privileged pod field" in refused.stderr and "jobchain.dev/privileged" in refused.stderr
    grant(rbac, namespace, "alice-privileged", {"apiGroups": ["jobchain.dev"], "resources": ["privileged"],
                                                "verbs": ["use"]}, "alice")
    assert wait_for(lambda: as_user(kubeconfig, "alice", namespace, host).returncode == 0 or None, 30,
                    "alice may use privileged fields")
    # bob may run alice's Workflows by reference: their author was checked when she wrote them
    bind(rbac, namespace, "bob-edit", {"kind": "ClusterRole", "name": session_name("jobchain-edit")},
         {"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": "bob"})
    by_ref = {"apiVersion": "jobchain.dev/v1alpha1", "kind": "WorkflowExecution",
              "metadata": {"name": "by-ref"}, "spec": {"workflowRef": {"name": "deploy"}}}
    assert as_user(kubeconfig, "bob", namespace, by_ref).returncode == 0
