"""Issue 26: a Workflow edited while an execution of it runs. The execution runs the spec it started
with (its snapshot in status.workflowSpec); executions created after the edit run the new one."""

from __future__ import annotations

import pytest

from tests.e2e.support import GROUP, VERSION, Objects, nodes, wait_for, workflow

pytestmark = pytest.mark.usefixtures("operator")


def version(label: str) -> str:
    return f"printf '{{\"version\": \"{label}\"}}' > $JOBCHAIN_OUTPUT"


def test_a_workflow_edited_while_an_execution_of_it_runs_the_execution_runs_the_spec_it_started_with(
        objects: Objects) -> None:
    objects.create(workflow("edited", [
        {"name": "first", "script": "sleep 3", "next": [{"node": "second"}]},
        {"name": "second", "script": version("old")},
    ]))
    started = objects.create({"apiVersion": f"{GROUP}/{VERSION}", "kind": "WorkflowExecution",
                              "metadata": {"name": "edited-before"}, "spec": {"workflowRef": {"name": "edited"}}})
    name = started["metadata"]["name"]
    wait_for(lambda: (objects.execution(name).get("status") or {}).get("phase") == "Running", 120,
             "the execution to start")

    # While `first` runs: `second` is changed and a third node added after it.
    objects.custom.patch_namespaced_custom_object(GROUP, VERSION, objects.namespace, "workflows", "edited", {
        "spec": {"nodes": [
            {"name": "first", "script": "sleep 3", "next": [{"node": "second"}]},
            {"name": "second", "script": version("new"), "next": [{"node": "third"}]},
            {"name": "third", "script": version("third")},
        ]}})
    assert [n["name"] for n in objects.workflow("edited")["spec"]["nodes"]] == ["first", "second", "third"]

    done = objects.wait_phase(name)
    assert done["status"]["phase"] == "Succeeded", done["status"].get("message")
    ran = nodes(done)
    assert list(ran) == ["first", "second"]  # the snapshot's nodes: no `third`
    assert ran["second"]["output"] == {"version": "old"}
    assert [n["name"] for n in done["status"]["workflowSpec"]["nodes"]] == ["first", "second"]

    after = objects.run("edited")  # created after the edit: the Workflow as it is now
    assert after["status"]["phase"] == "Succeeded", after["status"].get("message")
    assert nodes(after)["second"]["output"] == {"version": "new"}
    assert nodes(after)["third"]["phase"] == "Succeeded"
