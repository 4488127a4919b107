"""User story: install the chart with its admission policies on (stepPolicy and runPolicy, as the
chart defaults them), and see them at work on the real API server (issue 26).

The other Helm installs of the tier (test_install.py, test_replicas.py) turn both policies and the
cluster-wide user roles off: those objects have fixed cluster-wide names, so only this module
installs them, and its fixture refuses to start when they already exist (another release, or a
run that was killed before it could uninstall). The release runs the locally built image, as in
test_install.py; it watches only its own workloads namespace.
The tests run in file order: install -> operator namespace -> policy check -> step -> uninstall.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterator

import pytest
from kubernetes import client
from kubernetes.client.exceptions import ApiException

from tests.e2e.support import (
    BUSYBOX,
    CHART,
    Install,
    create_namespace,
    helm,
    install_crds,
    install_metrics,
    metric_total,
    wait_for,
)

POLICIES = ("jobchain-step-own-pod", "jobchain-run-rights")  # the chart's names: cluster-wide
USER_ROLES = ("jobchain-edit", "jobchain-view", "jobchain-step")
KUBECTL_IMAGE = "localhost/jobchain-kubectl:dev"  # busybox + kubectl (hack/images/build-images.sh)


def _cluster_objects(api: client.ApiClient) -> dict[str, set[str]]:
    """The chart's cluster-scoped objects of fixed name that exist now, by kind."""
    admission = client.AdmissionregistrationV1Api(api)
    rbac = client.RbacAuthorizationV1Api(api)
    return {
        "ValidatingAdmissionPolicy": {p.metadata.name for p in admission.list_validating_admission_policy().items}
        & set(POLICIES),
        "ValidatingAdmissionPolicyBinding": {
            b.metadata.name for b in admission.list_validating_admission_policy_binding().items} & set(POLICIES),
        "ClusterRole": {r.metadata.name for r in rbac.list_cluster_role().items} & set(USER_ROLES),
    }


@pytest.fixture(scope="module")
def install(kubeconfig: str, api: client.ApiClient) -> Iterator[Install]:
    present = {kind: names for kind, names in _cluster_objects(api).items() if names}
    if present:
        raise AssertionError(
            f"the chart's cluster-wide objects already exist ({present}): another release owns them, or an "
            "earlier run was killed before `helm uninstall`; remove that release (helm list -A) and run again")
    suffix = secrets.token_hex(3)
    inst = Install(kubeconfig, api, f"jc-policy-sys-{suffix}", f"jc-policy-{suffix}", f"jc-{suffix}")
    create_namespace(client.CoreV1Api(api), inst.system, {"pod-security.kubernetes.io/enforce": "restricted"})
    create_namespace(client.CoreV1Api(api), inst.workloads)
    install_crds(kubeconfig)
    try:
        helm(kubeconfig, "install", inst.release, str(CHART), "-n", inst.system,
             *inst.helm_values("crds.install=false", "stepPolicy.enabled=true", "runPolicy.enabled=true",
                               "rbac.userRoles=true"),
             "--wait", "--timeout", "4m")
        yield inst
    finally:
        helm(kubeconfig, "uninstall", inst.release, "-n", inst.system, "--wait", check=False)
        core = client.CoreV1Api(api)
        for ns in (inst.workloads, inst.system):
            core.delete_namespace(ns, body=client.V1DeleteOptions(propagation_policy="Background"))


def test_operator_namespace_comes_from_the_downward_api(install: Install) -> None:
    pods = install.wait_operator_ready()
    for pod in pods:
        (container,) = pod.spec.containers
        (env,) = [e for e in container.env or [] if e.name == "JOBCHAIN_OPERATOR_NAMESPACE"]
        assert env.value is None and env.value_from.field_ref.field_path == "metadata.namespace", env
    # the operator uses it: its leader Lease lives in the release's namespace, held by one of its pods
    coordination = client.CoordinationV1Api(install.api)

    def held() -> str | None:
        try:
            lease = coordination.read_namespaced_lease(install.deployment, install.system)
        except ApiException as exc:
            if exc.status == 404:
                return None
            raise
        return lease.spec.holder_identity or None

    holder = wait_for(held, timeout=60, what=f"the Lease {install.system}/{install.deployment} to be held")
    names = {p.metadata.name for p in pods}
    assert holder.rsplit("_", 1)[0] in names, (holder, names)
    print(f"namespace: env JOBCHAIN_OPERATOR_NAMESPACE valueFrom fieldRef metadata.namespace on {len(pods)} pods; "
          f"Lease {install.system}/{install.deployment} held by {holder}")


def test_start_up_check_sees_the_policies_in_force(install: Install) -> None:
    pods = install.wait_operator_ready()
    samples = install_metrics(install)
    for policy in POLICIES:
        per_pod = [v for n, ls, v in samples if n == "jobchain_admission_policy_in_force" and ls["policy"] == policy]
        assert per_pod == [1.0] * len(pods), (policy, per_pod)
        assert metric_total(samples, "jobchain_admission_policy_in_force", policy=policy) == len(pods)
    events = client.CoreV1Api(install.api).list_namespaced_event(install.system).items
    missing = [e.message for e in events if e.reason == "AdmissionPolicyMissing"]
    assert missing == [], missing
    print(f"policy check: jobchain_admission_policy_in_force 1 for {', '.join(POLICIES)} on each of {len(pods)} "
          "replicas; 0 AdmissionPolicyMissing Events")


ATTEMPTS = {  # what a compromised step tries with its own (pod-bound) token
    "own-other-annotation": 'kubectl annotate pod "$JOBCHAIN_POD_NAME" example.com/mine=1',
    "other-pod-annotation": "kubectl annotate pod bystander --overwrite jobchain.dev/output=forged",
    "other-pod-image": "kubectl set image pod/bystander main=busybox:latest",
}


def test_a_step_sets_its_own_output_and_nothing_else(install: Install) -> None:
    core, rbac = client.CoreV1Api(install.api), client.RbacAuthorizationV1Api(install.api)
    ns = install.workloads
    core.create_namespaced_service_account(ns, {"metadata": {"name": "step"}})
    rbac.create_namespaced_role_binding(ns, {  # as the chart's NOTES and docs/security.md say
        "metadata": {"name": "step-jobchain-step"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "jobchain-step"},
        "subjects": [{"kind": "ServiceAccount", "name": "step", "namespace": ns}],
    })
    core.create_namespaced_pod(ns, {
        "metadata": {"name": "bystander"},
        "spec": {"restartPolicy": "Never", "containers": [
            {"name": "main", "image": BUSYBOX, "imagePullPolicy": "IfNotPresent", "command": ["sleep", "300"]}]},
    })
    script = "".join(f'{{ {cmd}; }} > out 2>&1; echo "{name}: exit $? $(tail -1 out)" >> log\n'
                     for name, cmd in ATTEMPTS.items())
    script += 'kubectl annotate pod "$JOBCHAIN_POD_NAME" --overwrite jobchain.dev/output="$(cat log)"'
    name = install.create_execution([{"name": "x", "output": {"from": "annotation"}, "image": KUBECTL_IMAGE,
                                      "serviceAccountName": "step", "script": script}])
    done = install.wait_phase(name, {"Succeeded", "Failed", "Cancelled"})
    assert done["status"]["phase"] == "Succeeded", done["status"]  # its own output annotation: admitted
    (node,) = done["status"]["nodes"]
    said = dict(line.split(": ", 1) for line in node["output"].splitlines())
    assert said.keys() == ATTEMPTS.keys(), said
    for attempt in ATTEMPTS:
        # refused by the API server through the chart's policy (not by RBAC, which allows pods patch)
        assert said[attempt].startswith("exit 1 "), said
        assert "is forbidden: ValidatingAdmissionPolicy 'jobchain-step-own-pod'" in said[attempt], said
    assert "no other annotation" in said["own-other-annotation"]
    assert "may change only its own pod, not bystander" in said["other-pod-annotation"]
    assert "may change only its own pod, not bystander" in said["other-pod-image"]
    bystander = core.read_namespaced_pod("bystander", ns)
    assert "jobchain.dev/output" not in (bystander.metadata.annotations or {})
    assert bystander.spec.containers[0].image == BUSYBOX
    print(f"step: {name} Succeeded with its annotation output; refused: {said}")


def test_helm_uninstall_removes_the_policies(install: Install) -> None:
    assert all(_cluster_objects(install.api).values()), "the release did not install its cluster-wide objects"
    helm(install.kubeconfig, "uninstall", install.release, "-n", install.system, "--wait")
    left = _cluster_objects(install.api)
    assert not any(left.values()), left
    print(f"uninstall: none of {POLICIES} (policy and binding) nor {USER_ROLES} is left")
