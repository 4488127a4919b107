"""WorkflowSchedule on a real cluster: executions on time, history limits, concurrency policies,
suspend, a bad schedule, and an operator killed across a scheduled time."""

from __future__ import annotations

import time
from datetime import UTC, datetime
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from jobchain.api.vocabulary import LABEL_SCHEDULE
from tests.e2e.support import (
    GROUP,
    VERSION,
    Objects,
    OperatorProcess,
    nodes,
    wait_for,
    workflow,
)

pytestmark = pytest.mark.usefixtures("current_crds", "operator")


LABEL = LABEL_SCHEDULE


def schedule(name: str, workflow_name: str, **spec: Any) -> dict[str, Any]:
    return {"apiVersion": f"{GROUP}/{VERSION}", "kind": "WorkflowSchedule", "metadata": {"name": name},
            "spec": {"schedule": "@every 10s", "executionTemplate": {"workflowRef": {"name": workflow_name}}, **spec}}


def runs(objects: Objects, name: str) -> list[dict[str, Any]]:
    items = objects.custom.list_namespaced_custom_object(
        GROUP, VERSION, objects.namespace, "workflowexecutions", label_selector=f"{LABEL}={name}")["items"]
    return sorted(items, key=lambda e: e["metadata"]["name"])


def get_schedule(objects: Objects, name: str) -> dict[str, Any]:
    obj: dict[str, Any] = objects.custom.get_namespaced_custom_object(
        GROUP, VERSION, objects.namespace, "workflowschedules", name)
    return obj


def patch_schedule(objects: Objects, name: str, spec: dict[str, Any]) -> None:
    objects.custom.patch_namespaced_custom_object(GROUP, VERSION, objects.namespace, "workflowschedules", name,
                                                  {"spec": spec})


def stamp(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


def scheduled_at(execution: dict[str, Any]) -> datetime:
    return datetime.fromtimestamp(int(execution["metadata"]["labels"]["jobchain.dev/scheduled-unix"]), UTC)


def report(executions: list[dict[str, Any]]) -> list[float]:
    """Prints scheduled vs actual (creation) time of each execution; returns the delays."""
    delays = []
    for ex in executions:
        planned, actual = scheduled_at(ex), stamp(ex["metadata"]["creationTimestamp"])
        delay = (actual - planned).total_seconds()
        delays.append(delay)
        print(f"{ex['metadata']['name']}: scheduled {planned:%H:%M:%S}, created {actual:%H:%M:%S} (+{delay:.0f}s)")
    return delays


def until_next_time(margin: float) -> None:
    """Sleeps until `margin` seconds after the next multiple of 10 s."""
    now = time.time()
    time.sleep((now // 10 + 1) * 10 - now + margin)


def test_every_10s_runs_on_time_keeps_its_history_and_survives_an_operator_killed_across_a_time(
        objects: Objects, operator: OperatorProcess) -> None:
    objects.create(workflow("stamp", [{
        "name": "stamp",
        "script": "printf '{\"ref\": \"%s\", \"env\": \"%s\"}' '$(execution.scheduledTime)' "
                  "\"$JOBCHAIN_SCHEDULED_TIME\" > $JOBCHAIN_OUTPUT",
    }]))
    objects.create(schedule("tick", "stamp", successfulExecutionsHistoryLimit=2))
    wait_for(lambda: len(runs(objects, "tick")) >= 3, 45, "three executions of tick")
    delays = report(runs(objects, "tick"))  # the figures; the promise is: never early, each before the next time
    assert all(0 <= d < 10 for d in delays), f"executions early, or later than the next time: {delays}"

    # Kill the operator just after a time, keep it down across the next one, restart it after.
    until_next_time(margin=1.5)
    operator.kill()
    down_from = time.time()
    until_next_time(margin=3)
    operator.start()
    back = time.time()
    # The times it was down for: (kill, back]. By the missed-time rule exactly one of them runs, the
    # latest one due when its first pass ran (a slow start may span two times: then the later one).
    missed = [datetime.fromtimestamp(t, UTC) for t in range(int(down_from // 10 + 1) * 10, int(back) + 1, 10)]
    assert missed, "the operator was not down across a scheduled time"

    def ran_for_missed() -> list[dict[str, Any]]:
        return [e for e in runs(objects, "tick") if scheduled_at(e) in missed]
    ran = wait_for(ran_for_missed, 60, f"the run of one of the times the operator was down for ({missed})")
    # Once status records that run, no later pass can make another missed time due.
    wait_for(lambda: stamp(get_schedule(objects, "tick")["status"]["lastScheduleTime"]) >= scheduled_at(ran[0]),
             60, "tick's status to record the run of the missed time")
    seen = runs(objects, "tick")
    down, up = datetime.fromtimestamp(down_from, UTC), datetime.fromtimestamp(back, UTC)
    print(f"down from {down:%H:%M:%S} to {up:%H:%M:%S}, missed " + ", ".join(f"{m:%H:%M:%S}" for m in missed)
          + "; after the restart:")
    report(seen)
    assert len(ran_for_missed()) == 1
    # Nothing doubled: one execution per scheduled time.
    times = [scheduled_at(e) for e in seen]
    assert len(times) == len(set(times))

    # History: at most two Succeeded executions are kept once more have finished.
    def trimmed() -> bool:
        done = [e for e in runs(objects, "tick") if (e.get("status") or {}).get("phase") == "Succeeded"]
        return len(done) == 2 and bool(get_schedule(objects, "tick").get("status", {}).get("lastSuccessfulTime"))
    wait_for(trimmed, 120, "tick's history trimmed to 2 succeeded executions")  # slow pods on a loaded machine
    status = get_schedule(objects, "tick")["status"]
    print(f"tick status: {status}")
    assert status["nextScheduleTime"] > status["lastScheduleTime"]
    assert status["conditions"][0]["status"] == "True"
    ex = next(e for e in runs(objects, "tick") if (e.get("status") or {}).get("phase") == "Succeeded")
    output = nodes(objects.execution(ex["metadata"]["name"]))["stamp"]["output"]
    expected = scheduled_at(ex).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert output == {"ref": expected, "env": expected}
    patch_schedule(objects, "tick", {"suspend": True})


def test_forbid_skips_replace_cancels_suspend_stops_and_a_bad_schedule_runs_nothing(objects: Objects) -> None:
    objects.create(workflow("slow", [{"name": "sleep", "script": "sleep $(params.seconds)"}],
                            params=[{"name": "seconds"}]))
    template = {"workflowRef": {"name": "slow"}}
    objects.create(schedule("forbid", "slow", concurrencyPolicy="Forbid",
                            executionTemplate={**template, "params": {"seconds": "14"}}))
    objects.create(schedule("replace", "slow", concurrencyPolicy="Replace",
                            executionTemplate={**template, "params": {"seconds": "300"}}))
    objects.create(schedule("pause", "slow", executionTemplate={**template, "params": {"seconds": "1"}}))
    objects.create(schedule("bad", "slow", schedule="61 * * * *", executionTemplate={**template}))
    objects.create(schedule("mars", "slow", timeZone="Mars/Olympus", schedule="@daily", executionTemplate={**template}))
    with pytest.raises(ApiException) as refused:
        objects.create(schedule("typo", "slow", schedule="every 10s"))
    assert refused.value.status == 422 and "spec.schedule" in str(refused.value.body)
    with pytest.raises(ApiException) as refused:
        objects.create(schedule("tz", "slow", timeZone="Central European Time"))
    assert refused.value.status == 422 and "spec.timeZone" in str(refused.value.body)

    wait_for(lambda: runs(objects, "pause"), 25, "pause's first execution")
    patch_schedule(objects, "pause", {"suspend": True})
    paused_at = len(runs(objects, "pause"))

    most_active = 0
    deadline = time.monotonic() + 36
    while time.monotonic() < deadline:
        active = [e for e in runs(objects, "forbid")
                  if (e.get("status") or {}).get("phase") not in ("Succeeded", "Failed", "Cancelled")]
        most_active = max(most_active, len(active))
        time.sleep(1)
    forbid = get_schedule(objects, "forbid")
    reasons = [e.reason for e in objects.events("forbid")]
    print(f"forbid: {[e['metadata']['name'] for e in runs(objects, 'forbid')]}, skipped "
          f"{forbid['status'].get('lastSkippedTime')}, events {reasons}")
    assert most_active == 1
    assert "Skipped" in reasons and forbid["status"].get("lastSkippedTime")

    replaced = runs(objects, "replace")
    phases = {e["metadata"]["name"]: (e.get("status") or {}).get("phase") for e in replaced}
    print(f"replace: {phases}")
    assert len(replaced) >= 2
    for old in replaced[:-1]:
        objects.wait_phase(old["metadata"]["name"], ("Cancelled",), timeout=30)
    assert "Replaced" in [e.reason for e in objects.events("replace")]

    pause = get_schedule(objects, "pause")
    assert len(runs(objects, "pause")) <= paused_at + 1  # a time already due when the patch landed
    assert "nextScheduleTime" not in pause["status"] and pause["status"]["conditions"][0]["reason"] == "Suspended"

    for name, says in (("bad", "minute '61'"), ("mars", "Mars/Olympus")):
        status = get_schedule(objects, name)["status"]
        ready = status["conditions"][0]
        assert (ready["status"], ready["reason"]) == ("False", "InvalidSchedule") and says in ready["message"]
        assert runs(objects, name) == []
        assert "InvalidSchedule" in [e.reason for e in objects.events(name)]
    for name in ("forbid", "replace"):
        patch_schedule(objects, name, {"suspend": True})
