"""A user's story with a WorkflowSchedule at the terminal: run its template now with
`jobchain run --from-schedule`, then find that run (and only the schedule's runs) with
`jobchain list --schedule`."""

from __future__ import annotations

import json

import pytest

from tests.e2e.support import GROUP, VERSION, Objects, jobchain, no_traceback, workflow

pytestmark = pytest.mark.usefixtures("current_crds", "operator")


def test_run_from_schedule_makes_a_manual_run_the_schedule_owns_and_list_schedule_finds_it(
        kubeconfig: str, namespace: str, objects: Objects) -> None:
    objects.create(workflow("report", [{"name": "say", "script": "echo '\"for $(params.team)\"' > $JOBCHAIN_OUTPUT"}],
                            params=[{"name": "team"}]))
    objects.create(workflow("other", [{"name": "x", "script": "true"}]))
    # Suspended: the only execution of this schedule is the one the user asks for.
    schedule = objects.create({"apiVersion": f"{GROUP}/{VERSION}", "kind": "WorkflowSchedule",
                               "metadata": {"name": "nightly"},
                               "spec": {"schedule": "0 3 * * *", "suspend": True,
                                        "executionTemplate": {"workflowRef": {"name": "report"},
                                                              "params": {"team": "data"}}}})
    ran = jobchain(kubeconfig, namespace, "run", "--from-schedule", "nightly", "--wait")
    no_traceback(ran)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    unrelated = jobchain(kubeconfig, namespace, "run", "other", "--wait")
    assert unrelated.returncode == 0, unrelated.stdout + unrelated.stderr

    listed = json.loads(jobchain(kubeconfig, namespace, "list", "--schedule", "nightly", "-o", "json").stdout)
    assert len(listed["items"]) == 1, [i["metadata"]["name"] for i in listed["items"]]
    manual = objects.execution(listed["items"][0]["metadata"]["name"])
    meta = manual["metadata"]
    print(f"manual run {meta['name']}: labels {meta['labels']}, annotations {meta['annotations']}")
    assert meta["name"].startswith("nightly-manual-")
    assert meta["labels"]["jobchain.dev/schedule"] == "nightly"
    assert meta["annotations"]["jobchain.dev/manual"] == "true"
    assert [o["uid"] for o in meta["ownerReferences"]] == [schedule["metadata"]["uid"]]
    assert manual["status"]["phase"] == "Succeeded"
    assert manual["status"]["nodes"][0]["output"] == "for data"

    table = jobchain(kubeconfig, namespace, "list", "--schedule", "nightly")
    assert table.returncode == 0 and meta["name"] in table.stdout and "other-" not in table.stdout
    none = jobchain(kubeconfig, namespace, "list", "--schedule", "weekly")
    assert none.returncode == 0
    assert f"no executions in namespace '{namespace}' matching --schedule weekly" in none.stdout
