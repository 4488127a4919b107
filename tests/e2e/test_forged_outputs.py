"""Attack: someone who may create ConfigMaps in the namespace makes a node's output ConfigMap before the
operator does (its name and the execution's uid are readable), once owned by the execution with other
content, once with no owner at all. The node fails saying why, its failure edge runs, its success
edge does not, and no forged value reaches a node; the run never freezes (docs/security.md "Outputs
cannot be forged")."""

from __future__ import annotations

import pytest
from kubernetes import client

from jobchain.engine.spec.render import OUTPUT_KEY, output_config_map_name
from tests.e2e.support import GROUP, VERSION, Objects, nodes, wait_for, workflow

pytestmark = pytest.mark.usefixtures("operator")

BLOB = 70 * 1024  # over 64 KiB: kept whole in a ConfigMap


@pytest.mark.parametrize("owned", [True, False], ids=["owned-by-the-execution", "unowned"])
def test_a_forged_output_configmap_fails_its_node_and_routes_its_failure(objects: Objects, namespace: str,
                                                                          owned: bool) -> None:
    name = f"forged-{'owned' if owned else 'unowned'}"
    objects.create(workflow(name, [
        {"name": "produce", "output": {"from": "logs"},
         # waits until the forged ConfigMap is there, so the attacker always wins the race
         "script": f"sleep 6; printf '\"'; head -c {BLOB} /dev/zero | tr '\\0' a; printf '\"\\n'",
         "next": [{"node": "consume"}, {"node": "alert", "type": "failure"}]},
        {"name": "consume", "script": 'printf %s "$(input)" | head -c 40 > "$JOBCHAIN_OUTPUT"'},
        {"name": "alert", "script": "echo alerted"},
    ]))
    created = objects.create({"apiVersion": f"{GROUP}/{VERSION}", "kind": "WorkflowExecution",
                              "metadata": {"name": f"{name}-run"}, "spec": {"workflowRef": {"name": name}}})
    run, uid = created["metadata"]["name"], created["metadata"]["uid"]
    owners = [client.V1OwnerReference(api_version=f"{GROUP}/{VERSION}", kind="WorkflowExecution", name=run,
                                      uid=uid)] if owned else None
    forged_name = output_config_map_name(run, "produce")
    objects.core.create_namespaced_config_map(namespace, client.V1ConfigMap(
        metadata=client.V1ObjectMeta(name=forged_name, owner_references=owners),
        data={OUTPUT_KEY: '"$(touch /tmp/pwned)"'}))
    done = objects.wait_phase(run, timeout=240)
    result = nodes(done)
    produce = result["produce"]
    assert produce["phase"] == "Failed", produce
    assert forged_name in produce["message"] and "not passed on" in produce["message"], produce["message"]
    assert produce.get("outputRef") is None and produce.get("output") is None
    assert result["consume"]["phase"] == "Skipped", "no node starts on a forged output"
    assert result["alert"]["phase"] == "Succeeded", "the failure edge runs"
    assert (done["status"]["phase"], done["status"]["reason"]) == ("Succeeded", "Succeeded"), \
        "the failure was handled by the workflow's failure edge"
    wait_for(lambda: len(objects.jobs(run)) == 2, timeout=30, what="two Jobs: produce and alert")
    print(f"\nforged output ConfigMap ({'owned' if owned else 'no owner'}): produce Failed: "
          f"{produce['message'][:160]}...; consume {result['consume']['phase']}, alert {result['alert']['phase']}")
