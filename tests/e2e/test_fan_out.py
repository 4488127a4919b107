"""forEach on a real cluster: one Job per item, items in parallel, results gathered in order."""

from __future__ import annotations

import hashlib
import json
from datetime import datetime
from typing import Any

import pytest

from tests.e2e.support import ROOT, Objects, kubectl, nodes, wait_for, workflow

pytestmark = pytest.mark.usefixtures("current_crds", "operator")


def _time(value: Any) -> datetime:
    return value if isinstance(value, datetime) else datetime.fromisoformat(str(value).replace("Z", "+00:00"))


def item_jobs(objects: Objects, execution: str, node: str) -> dict[int, Any]:
    return {int(j.metadata.labels["jobchain.dev/item"]): j for j in objects.jobs(execution)
            if j.metadata.labels.get("jobchain.dev/node") == node}


def test_example_gathers_item_outputs_in_order_and_runs_items_at_once(kubeconfig: str, namespace: str,
                                                                       objects: Objects) -> None:
    created = kubectl(kubeconfig, "-n", namespace, "create", "-f", str(ROOT / "examples" / "fan-out.yaml"),
                      "-o", "name").split()
    name = next(ref.split("/", 1)[1] for ref in created if ref.startswith("workflowexecution"))
    done = objects.wait_phase(name, timeout=300)
    assert done["status"]["phase"] == "Succeeded", done["status"]
    result = nodes(done)
    expected = [{"file": f, "rows": 10} for f in ("a.csv", "b.csv", "c.csv")]
    assert result["convert"]["output"] == expected
    assert result["convert"]["items"] == {"total": 3, "succeeded": 3, "failed": 0, "running": 0}
    assert [e["index"] for e in result["convert"]["itemResults"]] == [0, 1, 2]
    assert result["report"]["output"] == "total: " + json.dumps(expected, separators=(",", ":"), sort_keys=True)
    # One Job per item, named from node and index; with parallelism 3 they ran at the same time.
    # (the Job controller sets completionTime about a second after the pod ended: the operator need not wait)
    wait_for(lambda: all(j.status.completion_time for j in item_jobs(objects, name, "convert").values()),
             timeout=60, what="the item Jobs' completionTime")
    jobs = item_jobs(objects, name, "convert")
    assert sorted(jobs) == [0, 1, 2]
    assert {e["jobName"] for e in result["convert"]["itemResults"]} == {j.metadata.name for j in jobs.values()}
    job_spans = sorted((i, _time(j.status.start_time), _time(j.status.completion_time)) for i, j in jobs.items())
    print("item Jobs (index, startTime, completionTime):", [(i, s.isoformat(), f.isoformat()) for i, s, f in job_spans])
    assert max(s for _, s, _ in job_spans) < min(f for _, _, f in job_spans), f"the Jobs did not overlap: {job_spans}"
    pods = objects.core.list_namespaced_pod(namespace, label_selector="jobchain.dev/node=convert").items
    spans = []
    for pod in pods:
        state = pod.status.container_statuses[0].state.terminated
        spans.append((pod.metadata.labels["jobchain.dev/item"], _time(state.started_at), _time(state.finished_at)))
    print("item containers (index, started, finished):", [(i, s.isoformat(), f.isoformat()) for i, s, f in spans])
    assert len(spans) == 3
    latest_start = max(s for _, s, _ in spans)
    earliest_finish = min(f for _, _, f in spans)
    assert latest_start < earliest_finish, f"the three items did not overlap: {spans}"


def test_failed_item_fails_the_node_after_the_others_and_routes_the_failure(objects: Objects) -> None:
    objects.create(workflow("items-fail", [
        {"name": "each", "forEach": "[0, 1, 2, 3]",
         "script": 'if [ "$(item.index)" = 1 ]; then echo "bad row" >&2; exit 3; fi; echo "$(item)" > $JOBCHAIN_OUTPUT',
         "next": [{"node": "alert", "type": "failure"}, {"node": "publish"}]},
        {"name": "alert", "script": "echo alerting", "output": {"from": "logs"}},
        {"name": "publish", "script": "echo published"},
    ]))  # parallelism 1: items 2 and 3 start only after item 1 failed
    done = objects.run("items-fail", timeout=900)
    result = nodes(done)
    each = result["each"]
    assert each["phase"] == "Failed"
    assert "item(s) 1 of 4 failed" in each["message"] and "exit code 3" in each["message"], each["message"]
    assert each["items"] == {"total": 4, "succeeded": 3, "failed": 1, "running": 0}
    assert each["output"] == [0, None, 2, 3]
    assert [e["phase"] for e in each["itemResults"]] == ["Succeeded", "Failed", "Succeeded", "Succeeded"]
    assert result["alert"]["phase"] == "Succeeded" and result["alert"]["output"] == "alerting"
    assert result["publish"]["phase"] == "Skipped"
    assert done["status"]["phase"] == "Succeeded"  # the failure was handled by its edge


def test_fail_fast_starts_no_further_item(objects: Objects) -> None:
    objects.create(workflow("items-fail-fast", [
        {"name": "each", "forEach": "['a', 'b', 'c', 'd']", "failFast": True,
         "script": 'test "$(item)" != b'},
    ]))
    done = objects.run("items-fail-fast", timeout=900)
    each = nodes(done)["each"]
    assert done["status"]["phase"] == "Failed"
    assert each["phase"] == "Failed"
    assert "failFast: 2 item(s) not started" in each["message"], each["message"]
    assert sorted(item_jobs(objects, done["metadata"]["name"], "each")) == [0, 1]


def test_empty_list_non_list_and_too_many_items(objects: Objects) -> None:
    objects.create(workflow("items-edges", [
        {"name": "empty", "forEach": "[]", "script": "echo never", "next": [{"node": "after-empty"}]},
        {"name": "after-empty", "script": 'echo "got $(input)"', "output": {"from": "logs"}},
        # (a map literal would be refused when the Workflow is validated: only an output can surprise at run time)
        {"name": "not-a-list", "forEach": "input", "script": "echo never"},
        {"name": "too-many", "forEach": "[1, 2, 3, 4, 5]", "maxItems": 3, "script": "echo never"},
        {"name": "mapper", "script": """printf '{"a":1}' > $JOBCHAIN_OUTPUT""", "next": [{"node": "not-a-list"}]},
    ], parallelism=3))
    done = objects.run("items-edges", timeout=600)
    result = nodes(done)
    assert result["empty"]["phase"] == "Succeeded" and result["empty"]["output"] == []
    assert result["after-empty"]["output"] == "got []"
    assert result["not-a-list"]["phase"] == "Failed"
    assert result["not-a-list"]["message"].startswith("ConditionError: spec.nodes[2].forEach"), result["not-a-list"]
    assert "must give a list, got a map" in result["not-a-list"]["message"]
    assert result["too-many"]["phase"] == "Failed"
    assert "gave 5 items, more than maxItems (3); no item was started" in result["too-many"]["message"]
    made = {j.metadata.labels["jobchain.dev/node"] for j in objects.jobs(done["metadata"]["name"])}
    assert made == {"after-empty", "mapper"}, made
    assert done["status"]["phase"] == "Failed" and done["status"]["reason"] == "NodeFailed"


def test_two_hundred_items_finish(objects: Objects) -> None:
    objects.create(workflow("items-200", [
        {"name": "list", "script": "(printf '['; seq -s, 0 199 | tr -d '\\n'; printf ']') > $JOBCHAIN_OUTPUT",
         "next": [{"node": "each"}]},
        {"name": "each", "forEach": "input", "script": "echo $(item) > $JOBCHAIN_OUTPUT"},
    ], parallelism=20))
    done = objects.run("items-200", timeout=1200)
    status = done["status"]
    each = nodes(done)["each"]
    assert status["phase"] == "Succeeded", status.get("message")
    assert each["output"] == list(range(200))
    assert each["items"] == {"total": 200, "succeeded": 200, "failed": 0, "running": 0}
    wall = (_time(status["finishedAt"]) - _time(status["startedAt"])).total_seconds()
    size = len(json.dumps(status, separators=(",", ":")))
    print(f"200 items: wall time {wall:.0f} s, status {size} bytes")
    assert size < 256 * 1024


def test_large_item_outputs_reach_the_next_node_whole_and_in_order(objects: Objects, namespace: str) -> None:
    # Three items print 100 KiB each to their log: over an item's inline cap, each is kept whole in its own
    # ConfigMap, and the node's output list (300 KiB) whole in the node's; the next node reads it as a file.
    size = 100 * 1024
    objects.create(workflow("items-large", [
        {"name": "each", "forEach": "['a', 'b', 'c']", "output": {"from": "logs"},
         "script": f"printf '\"'; head -c {size} /dev/zero | tr '\\0' \"$(item)\"; printf '\"\\n'",
         "next": [{"node": "gather"}]},
        {"name": "gather", "script": 'f="$JOBCHAIN_INPUT_FILE"; printf \'{"sha":"%s","bytes":%d}\' '
                                     '"$(sha256sum < "$f" | cut -d" " -f1)" "$(wc -c < "$f")" > "$JOBCHAIN_OUTPUT"'},
    ], defaults={"image": "busybox:1.36", "timeoutSeconds": 300}, parallelism=3))
    done = objects.run("items-large", timeout=480)
    assert done["status"]["phase"] == "Succeeded", done["status"]
    result = nodes(done)
    each = result["each"]
    whole = [letter * size for letter in "abc"]
    text = json.dumps(whole, separators=(",", ":"))
    assert each["outputRef"]["bytes"] == len(text) and each["outputTruncated"] is True
    assert all(e.get("outputBytes") == size + 2 for e in each["itemResults"]), each["itemResults"]
    assert result["gather"]["output"] == {"sha": hashlib.sha256(text.encode()).hexdigest(), "bytes": len(text)}
    core = objects.core
    kept = json.loads(core.read_namespaced_config_map(each["outputRef"]["configMap"], namespace).data["output.json"])
    assert kept == whole
    print(f"\n3 items of 100 KiB: list kept whole in ConfigMap {each['outputRef']['configMap']} ({len(text)} bytes); "
          f"the next node's file sha256 matched")
