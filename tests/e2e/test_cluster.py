"""The cluster itself, as a user of it would notice: the node is Ready, a Job runs to
completion, its log and termination message come back through the API, and a pod reaches
the API server through the ``kubernetes`` service with its service-account token."""

from __future__ import annotations

import time
from typing import Any

from kubernetes import client

BUSYBOX = "docker.io/library/busybox:1.36"
KUBECTL = "localhost/jobchain-kubectl:dev"  # busybox + kubectl, made by hack/images/build-images.sh


def job(name: str, image: str, script: str, **pod_spec: Any) -> client.V1Job:
    container = client.V1Container(
        name="main",
        image=image,
        image_pull_policy="IfNotPresent",  # there is no registry: images are imported
        command=["sh", "-c", script],
        env=[
            client.V1EnvVar(
                name="POD_NAME",
                value_from=client.V1EnvVarSource(field_ref=client.V1ObjectFieldSelector(field_path="metadata.name")),
            )
        ],
    )
    return client.V1Job(
        metadata=client.V1ObjectMeta(name=name),
        spec=client.V1JobSpec(
            backoff_limit=0,
            template=client.V1PodTemplateSpec(
                spec=client.V1PodSpec(restart_policy="Never", containers=[container], **pod_spec)
            ),
        ),
    )


def run_job(api: client.ApiClient, namespace: str, body: client.V1Job, timeout: float = 120) -> client.V1Pod:
    """Create the Job, wait until it succeeds, return its pod."""
    batch, core = client.BatchV1Api(api), client.CoreV1Api(api)
    name = body.metadata.name
    batch.create_namespaced_job(namespace, body)
    deadline = time.monotonic() + timeout
    while True:
        status = batch.read_namespaced_job_status(name, namespace).status
        if status.succeeded:
            break
        pods = core.list_namespaced_pod(namespace, label_selector=f"job-name={name}").items
        if status.failed or time.monotonic() > deadline:
            raise AssertionError(f"job {name} did not succeed (status {status}); pods: {[p.status for p in pods]}")
        time.sleep(0.5)
    pods = core.list_namespaced_pod(namespace, label_selector=f"job-name={name}").items
    assert len(pods) == 1, pods
    return pods[0]


def test_node_is_ready(api: client.ApiClient) -> None:
    nodes = client.CoreV1Api(api).list_node().items
    assert nodes, "the cluster has no node"
    ready = {n.metadata.name: c.status for n in nodes for c in n.status.conditions if c.type == "Ready"}
    assert "True" in ready.values(), f"no node is Ready: {ready}"


def test_busybox_job_log_and_termination_message(api: client.ApiClient, namespace: str) -> None:
    script = 'echo "hello from $POD_NAME"; echo second line; printf "all good" > /dev/termination-log'
    pod = run_job(api, namespace, job("hello", BUSYBOX, script))
    name = pod.metadata.name

    # the log travels container -> kubelet -> API server (kubelet serving cert, apiserver client cert)
    log = client.CoreV1Api(api).read_namespaced_pod_log(name, namespace, container="main")
    assert log == f"hello from {name}\nsecond line\n"

    terminated = pod.status.container_statuses[0].state.terminated
    assert terminated.exit_code == 0
    assert terminated.reason == "Completed"
    assert terminated.message == "all good"


def test_pod_reaches_api_server_through_kubernetes_service(api: client.ApiClient, namespace: str) -> None:
    rbac = client.RbacAuthorizationV1Api(api)
    rbac.create_namespaced_role(
        namespace,
        client.V1Role(
            metadata=client.V1ObjectMeta(name="annotate-pods"),
            rules=[client.V1PolicyRule(api_groups=[""], resources=["pods"], verbs=["get", "patch"])],
        ),
    )
    rbac.create_namespaced_role_binding(
        namespace,
        client.V1RoleBinding(
            metadata=client.V1ObjectMeta(name="default-annotate-pods"),
            role_ref=client.V1RoleRef(api_group="rbac.authorization.k8s.io", kind="Role", name="annotate-pods"),
            subjects=[client.RbacV1Subject(kind="ServiceAccount", name="default", namespace=namespace)],
        ),
    )
    # kubectl in a pod uses the in-cluster config: $KUBERNETES_SERVICE_HOST and the projected token
    script = (
        "set -e; echo host=$KUBERNETES_SERVICE_HOST:$KUBERNETES_SERVICE_PORT; "
        "kubectl get --raw /version; kubectl auth whoami -o jsonpath='user={.status.userInfo.username}'; echo; "
        'kubectl annotate pod "$POD_NAME" jobchain.dev/e2e=reached-api'
    )
    pod = run_job(api, namespace, job("api", KUBECTL, script))

    core = client.CoreV1Api(api)
    service_ip = core.read_namespaced_service("kubernetes", "default").spec.cluster_ip
    log = core.read_namespaced_pod_log(pod.metadata.name, namespace, container="main")
    assert f"host={service_ip}:443" in log
    assert '"gitVersion"' in log
    assert f"user=system:serviceaccount:{namespace}:default" in log
    annotations = core.read_namespaced_pod(pod.metadata.name, namespace).metadata.annotations or {}
    assert annotations.get("jobchain.dev/e2e") == "reached-api"
