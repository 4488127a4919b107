"""The dashboard's promise: one watch of the API server however many browsers are open.

Ten browsers' live streams are opened on a real `jobchain dashboard`; each gets a new execution as
it is created, and the API server's own gauge of open WATCH requests on workflowexecutions
(cluster scope, `apiserver_longrunning_requests`) does not grow with them. The e2e lock keeps
other sessions' dashboards off the cluster meanwhile; samples are taken a few times around, so an
operator elsewhere renewing its watch cannot make the test pass or fail by chance.
"""

from __future__ import annotations

import asyncio
import json
import re
import sys
import time
import urllib.request
from collections.abc import Callable
from pathlib import Path

import aiohttp
import pytest
from kubernetes import client

from tests.browser.support import Dashboard
from tests.e2e.support import free_port, install_crds, kubectl, wait_for

pytestmark = pytest.mark.e2e
BROWSERS = 10
GAUGE = re.compile(r'^apiserver_longrunning_requests\{[^}]*resource="workflowexecutions",scope="cluster"'
                   r'[^}]*verb="WATCH"[^}]*\} (\d+)', re.M)


def _watches(kubeconfig: str) -> int:
    found = GAUGE.search(kubectl(kubeconfig, "get", "--raw", "/metrics"))
    return int(found.group(1)) if found else 0


def _samples(kubeconfig: str) -> list[int]:
    values = []
    for _ in range(3):
        values.append(_watches(kubeconfig))
        time.sleep(0.5)
    return values


async def _browsers(url: str, namespace: str, create: Callable[[], str],
                    sample: Callable[[], list[int]]) -> tuple[list[str], list[int]]:
    """Opens BROWSERS live streams; with all of them open, samples the gauge and creates an
    execution; returns what each stream received and the samples."""
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as session:
        responses = [await session.get(f"{url}api/events?namespace={namespace}") for _ in range(BROWSERS)]
        texts = ["" for _ in responses]

        async def until(i: int, word: str) -> None:
            while word not in texts[i]:
                texts[i] += (await responses[i].content.readline()).decode()

        try:
            await asyncio.wait_for(asyncio.gather(*(until(i, "event: snapshot") for i in range(BROWSERS))), 60)
            with_browsers = await asyncio.to_thread(sample)
            name = await asyncio.to_thread(create)
            await asyncio.wait_for(asyncio.gather(*(until(i, f'"name":"{name}"') for i in range(BROWSERS))), 60)
        finally:
            for response in responses:
                response.close()
        return texts, with_browsers


def _healthy(url: str) -> bool:
    with urllib.request.urlopen(url + "healthz", timeout=10) as response:
        return bool(json.loads(response.read())["cluster"]["connected"])


def test_ten_browsers_cost_the_api_server_one_watch(
        kubeconfig: str, api: client.ApiClient, namespace: str, tmp_path: Path) -> None:
    install_crds(kubeconfig)
    dashboard = Dashboard([sys.executable, "-m", "jobchain.cli.main", "--kubeconfig", kubeconfig, "dashboard",
                           "--port", str(free_port())], tmp_path / "dashboard.log")
    before = _samples(kubeconfig)
    dashboard.start()
    try:
        wait_for(lambda: _healthy(dashboard.url), 30, "the dashboard's watch to be open")
        with_dashboard = _samples(kubeconfig)
        assert max(with_dashboard) >= min(before) + 1, f"the dashboard's own watch is not seen: {before} -> " \
                                                        f"{with_dashboard}"

        def create() -> str:
            body = client.CustomObjectsApi(api).create_namespaced_custom_object(
                "jobchain.dev", "v1alpha1", namespace, "workflowexecutions",
                {"apiVersion": "jobchain.dev/v1alpha1", "kind": "WorkflowExecution",
                 "metadata": {"generateName": "seen-"}, "spec": {"workflowRef": {"name": "absent"}}})
            return str(body["metadata"]["name"])

        texts, with_browsers = asyncio.run(_browsers(dashboard.url, namespace, create,
                                                     lambda: _samples(kubeconfig)))
        assert all("event: upsert" in t for t in texts), "every browser gets the new execution live"
        assert min(with_browsers) <= max(with_dashboard), (
            f"{BROWSERS} browsers opened watches of their own: {with_dashboard} -> {with_browsers}")
    finally:
        dashboard.stop()
