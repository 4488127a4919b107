"""An execution deleted and created again with the same name, on a real cluster: the new one is given
its own outputs (not the old run's, kept under the same ConfigMap name), and the Workflow's queue of
one does not count the deleted one as running."""

from __future__ import annotations

from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from tests.e2e.support import GROUP, VERSION, Objects, nodes, wait_for, workflow

pytestmark = pytest.mark.usefixtures("operator")

# ~70 KB: over 64 KiB, so kept whole in the node's ConfigMap (named from execution and node)
PRODUCE = ("{ printf '{\"run\":\"%s\",\"pad\":\"' '$(params.run)'; yes x | head -c 140000 | tr -d '\\n'; "
           "printf '\"}'; }")  # to its log: a termination message holds 4 KiB


def execution(name: str, run: str) -> dict[str, Any]:
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "WorkflowExecution", "metadata": {"name": name},
            "spec": {"workflowRef": {"name": "again"}, "params": {"run": run}}}


def gone(objects: Objects, name: str) -> bool:
    try:
        objects.execution(name)
    except ApiException as exc:
        return exc.status == 404
    return False


def test_an_execution_re_created_with_the_same_name_gets_its_own_outputs_and_frees_its_slot(
        objects: Objects) -> None:
    objects.create(workflow("again", [
        {"name": "produce", "script": PRODUCE, "output": {"from": "logs"}, "next": [{"node": "between"}]},
        # consume starts in a later pass than the one that recorded produce: it is given produce's output
        # as read back from its ConfigMap (the read the operator caches)
        {"name": "between", "script": "true", "next": [{"node": "consume"}]},
        {"name": "consume", "script": "printf '{\"got\":\"%s\"}' '$(nodes.produce.output.run)' > $JOBCHAIN_OUTPUT"},
    ], params=[{"name": "run"}], maxConcurrentExecutions=1))

    objects.create(execution("same", "one"))
    first = objects.wait_phase("same", timeout=240)
    assert first["status"]["phase"] == "Succeeded", first["status"].get("message")
    assert nodes(first)["produce"].get("outputRef"), "the output is kept in a ConfigMap"
    assert nodes(first)["consume"]["output"] == {"got": "one"}

    objects.custom.delete_namespaced_custom_object(GROUP, VERSION, objects.namespace, "workflowexecutions", "same")
    wait_for(lambda: gone(objects, "same"), 60, "the execution to be deleted")
    objects.create(execution("same", "two"))
    second = objects.wait_phase("same", timeout=240)
    assert second["metadata"]["uid"] != first["metadata"]["uid"]
    assert second["status"]["phase"] == "Succeeded", second["status"].get("message")
    assert nodes(second)["consume"]["output"] == {"got": "two"}, "given the old run's output"

    # Deleted while it runs: its slot in the queue of one is freed, the next one starts.
    objects.create(execution("deleted-running", "three"))
    wait_for(lambda: (objects.execution("deleted-running").get("status") or {}).get("phase") == "Running", 120,
             "the third execution to start")
    objects.custom.delete_namespaced_custom_object(GROUP, VERSION, objects.namespace, "workflowexecutions",
                                                   "deleted-running")
    objects.create(execution("next", "four"))
    last = objects.wait_phase("next", timeout=240)
    assert last["status"]["phase"] == "Succeeded", last["status"].get("message")
