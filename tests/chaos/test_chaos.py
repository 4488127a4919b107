"""The chaos tier: executions that must end exactly right while their operator and the control plane die.

- A seeded random schedule of SIGKILLs of the (host) operator across a dozen concurrent
  executions of every shape (shapes.py). The seed is printed; JOBCHAIN_CHAOS_SEED=N replays it
  (the kill times follow the seed; the cluster's own timing still varies).
- kube-apiserver, then etcd, stopped for 15 s while executions run: they end right and the
  operator recovers on its own (same process), with the time from the API server's return to
  the operator's next status write printed.

Checked for every execution: phase and reason, each node's phase, output, inputFrom (and exit
code where it matters), one Job per node that ran, one pod per Job (no node sets retries).
"""

from __future__ import annotations

import os
import random
import subprocess
import time
from pathlib import Path
from typing import Any

import pytest
from kubernetes.client.exceptions import ApiException

from tests.chaos.shapes import Shape, chain, job_mismatches, mismatches, mixed
from tests.e2e.support import GROUP, VERSION, Objects, OperatorProcess, wait_for

ROOT = Path(__file__).resolve().parents[2]
MIN_KILLS = 50
CHAOS_TIMEOUT = 900.0  # seconds for the whole kill schedule
TERMINAL = ("Succeeded", "Failed", "Cancelled")
OUTAGE_SECONDS = 15.0


def _start(objects: Objects, shapes: list[Shape]) -> dict[str, Shape]:
    """Creates each shape's Workflow once and one execution per shape; execution name -> shape."""
    made: set[str] = set()
    started: dict[str, Shape] = {}
    for shape in shapes:
        if shape.name not in made:
            try:
                objects.create(shape.manifest)
            except ApiException as exc:
                if exc.status != 409:  # made by an earlier wave
                    raise
            made.add(shape.name)
        created = objects.create({
            "apiVersion": f"{GROUP}/{VERSION}", "kind": "WorkflowExecution",
            "metadata": {"generateName": f"{shape.name}-"},
            "spec": {"workflowRef": {"name": shape.name}, **shape.spec},
        })
        started[created["metadata"]["name"]] = shape
    return started


def _statuses(objects: Objects) -> dict[str, dict[str, Any]]:
    listed = objects.custom.list_namespaced_custom_object(GROUP, VERSION, objects.namespace, "workflowexecutions")
    return {item["metadata"]["name"]: item for item in listed["items"]}


def _cancel_when_running(objects: Objects, started: dict[str, Shape], pending: set[str],
                         items: dict[str, dict[str, Any]]) -> None:
    for name in list(pending):
        node = started[name].cancel_when_running
        nodes = {n["name"]: n for n in (items[name].get("status") or {}).get("nodes") or []}
        if nodes.get(node or "", {}).get("phase") == "Running":
            objects.patch_execution(name, {"spec": {"cancel": True}})
            pending.discard(name)


def _check(objects: Objects, started: dict[str, Shape]) -> list[str]:
    """Every difference from the expected ends, one line each (empty: all right)."""
    items = _statuses(objects)
    wrong: list[str] = []
    for name, shape in sorted(started.items()):
        status = items[name].get("status") or {}
        wrong += [f"{name}: {w}" for w in mismatches(shape, status)]
        jobs = objects.batch.list_namespaced_job(
            objects.namespace, label_selector=f"jobchain.dev/execution={name}").items
        wrong += [f"{name}: {w}" for w in job_mismatches(status, [j.metadata.labels for j in jobs])]
        for job in jobs:
            if job.metadata.deletion_timestamp:
                continue
            pods = objects.core.list_namespaced_pod(
                objects.namespace, label_selector=f"batch.kubernetes.io/job-name={job.metadata.name}").items
            if len(pods) > 1:
                wrong.append(f"{name}: Job {job.metadata.name} ran {len(pods)} pods, expected 1")
    return wrong


def _summary(objects: Objects, started: dict[str, Shape]) -> str:
    items = _statuses(objects)
    lines = []
    for name, shape in sorted(started.items()):
        status = items[name].get("status") or {}
        lines.append(f"  {name:<22} {shape.name:<9} {status.get('phase', '-'):<10} {status.get('reason', '-'):<17} "
                     f"{status.get('progress', '-')}")
    return "\n".join(lines)


def test_operator_killed_at_random_moments(chaos_objects: Objects, chaos_operator: OperatorProcess) -> None:
    seed = int(os.environ.get("JOBCHAIN_CHAOS_SEED") or random.SystemRandom().randrange(1, 10**6))
    print(f"\nchaos seed {seed} (replay: JOBCHAIN_CHAOS_SEED={seed})")
    rng = random.Random(seed)
    objects = chaos_objects
    started = _start(objects, mixed())
    pending_cancel = {name for name, shape in started.items() if shape.cancel_when_running}
    print(f"wave 1: {len(started)} executions started: {', '.join(sorted(started))}")
    waves = 1

    begin = time.monotonic()
    kills: list[tuple[float, float]] = []  # (seconds since start, alive before the kill)

    def watch_for(seconds: float) -> dict[str, dict[str, Any]]:
        end = time.monotonic() + seconds
        items = _statuses(objects)
        while True:
            _cancel_when_running(objects, started, pending_cancel, items)
            if time.monotonic() >= end:
                return items
            time.sleep(min(0.3, max(0.0, end - time.monotonic())))
            items = _statuses(objects)

    while True:
        alive = rng.uniform(0.2, 3.0)
        items = watch_for(alive)
        finished = all((items[n].get("status") or {}).get("phase") in TERMINAL for n in started)
        if finished and not pending_cancel:
            if len(kills) >= MIN_KILLS:
                break
            # Only kills that hit running executions count: while fewer than MIN_KILLS did, the
            # next wave of executions starts when one has ended.
            wave = _start(objects, mixed())
            started.update(wave)
            pending_cancel |= {name for name, shape in wave.items() if shape.cancel_when_running}
            waves += 1
            print(f"wave {waves}: {len(wave)} executions started")
            continue
        chaos_operator.kill()
        kills.append((time.monotonic() - begin, alive))
        watch_for(rng.uniform(0.0, 1.5))  # down for a moment, as a crashed pod is
        chaos_operator.start()
        if time.monotonic() - begin > CHAOS_TIMEOUT:
            pytest.fail(f"seed {seed}: not every execution ended within {CHAOS_TIMEOUT:.0f}s and "
                        f"{len(kills)} kills:\n{_summary(objects, started)}")

    wait_for(lambda: all((i.get("status") or {}).get("phase") in TERMINAL for i in _statuses(objects).values()),
             120, "every execution to end")
    elapsed = time.monotonic() - begin
    print(f"{len(kills)} SIGKILLs while executions ran, in {elapsed:.0f}s and {waves} wave(s); alive between kills "
          f"{min(a for _, a in kills):.1f}-{max(a for _, a in kills):.1f}s; kill times (s): "
          + " ".join(f"{t:.0f}" for t, _ in kills))
    print(_summary(objects, started))
    wrong = _check(objects, started)
    assert not wrong, f"seed {seed} (replay: JOBCHAIN_CHAOS_SEED={seed}):\n" + "\n".join(wrong)
    print(f"result: all {len(started)} executions ended as expected, one Job per node, one pod per Job")


def _local_cluster(kubeconfig: str) -> bool:
    local = os.environ.get("JOBCHAIN_CLUSTER_DIR", "/var/lib/jobchain-cluster")
    return Path(kubeconfig).resolve() == (Path(local) / "kubeconfig").resolve()


def _stop_component(name: str) -> None:
    subprocess.run(["bash", "-c", f'source "{ROOT}/hack/lib-cluster.sh" && jc_stop {name} 5'],
                   check=True, capture_output=True, text=True, timeout=60)


def _restart_cluster(objects: Objects) -> tuple[subprocess.Popen[str], float]:
    """Starts hack/cluster-up.sh (it starts again what is missing; no smoke Job: the executions
    under test are the check) and returns it with the monotonic time at which the API server
    first answered /readyz again, polled every 0.1 s: that is the moment the outage ended for a
    client, whatever cluster-up still does after it."""
    up = subprocess.Popen(["bash", str(ROOT / "hack/cluster-up.sh")], env={**os.environ, "JOBCHAIN_SMOKE": "0"},
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)

    def ready() -> bool:
        try:
            api = objects.core.api_client
            return bool(api.call_api("GET", api.configuration.host + "/readyz", _request_timeout=2).status == 200)
        except Exception:
            return False

    wait_for(ready, 180, "the API server's /readyz after the restart", interval=0.1)
    return up, time.monotonic()


@pytest.mark.parametrize("component", ["kube-apiserver", "etcd"])
def test_control_plane_restart(component: str, kubeconfig: str, chaos_objects: Objects,
                               chaos_operator: OperatorProcess) -> None:
    if not _local_cluster(kubeconfig):
        pytest.skip("restarts parts of the control plane: only on the project's local cluster")
    objects = chaos_objects
    started = _start(objects, [chain(6) for _ in range(6)])
    wait_for(lambda: all(any(n["phase"] == "Succeeded" for n in (i.get("status") or {}).get("nodes") or [])
                         for i in _statuses(objects).values()), 180, "every execution to have a node done")
    pid = chaos_operator.proc.pid if chaos_operator.proc else None
    before = {name: item["metadata"]["resourceVersion"] for name, item in _statuses(objects).items()}

    stopped = time.monotonic()
    _stop_component(component)
    time.sleep(OUTAGE_SECONDS)  # nodes finish meanwhile: the operator has work waiting on the return
    up, back = _restart_cluster(objects)

    def changed() -> bool:
        try:
            now = _statuses(objects)
        except Exception:
            return False
        return any(now[n]["metadata"]["resourceVersion"] != before[n] for n in before)

    wait_for(changed, 120, "the operator's first status write after the API server returned", interval=0.1)
    recovered = time.monotonic() - back
    output, _ = up.communicate(timeout=300)
    assert up.returncode == 0, f"cluster-up failed after the {component} restart:\n{output[-3000:]}"
    print(f"\n{component} down for {back - stopped:.1f}s (stopped {OUTAGE_SECONDS:.0f}s, then restarted); "
          f"first status write {recovered:.2f}s after the API server answered /readyz again")
    wait_for(lambda: all((i.get("status") or {}).get("phase") in TERMINAL for i in _statuses(objects).values()),
             240, "every execution to end")
    assert chaos_operator.proc is not None and chaos_operator.proc.pid == pid and chaos_operator.running(), \
        "the operator was restarted or died; it must recover on its own"
    print(_summary(objects, started))
    wrong = _check(objects, started)
    assert not wrong, "\n".join(wrong)
    print(f"result: all {len(started)} executions ended as expected after the {component} restart")
