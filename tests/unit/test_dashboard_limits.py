"""The dashboard's limits as a server: which Host names it answers, how many logs it follows at once.

Why these matter: the chart runs the dashboard on 0.0.0.0 and the docs reach it through a
port-forward, so a web page elsewhere could read it by DNS rebinding unless the Host is checked;
and each followed log holds a thread for as long as it is open, so followed logs must never take
the threads every other page needs.
"""

from __future__ import annotations

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from jobchain.cli.dashboard.hub import Hub
from jobchain.cli.dashboard.server import FOLLOW_LIMIT, FOLLOWS, allowed_hosts, build_app
from tests.unit.fakes import FakeClient, dashboard_execution


class _Stream:
    """A followed log that stays open (a long-running step) until released."""

    def __init__(self, released: threading.Event) -> None:
        self.released = released

    def stream(self, size: int, decode_content: bool = False) -> Any:
        yield b"started\n"
        self.released.wait(30)

    def release_conn(self) -> None:
        self.released.set()

    def close(self) -> None:
        self.released.set()


class _FollowingClient(FakeClient):
    def __init__(self) -> None:
        super().__init__()
        self.down = False
        self.released = threading.Event()

    def open_log_stream(self, namespace: str, pod: str) -> Any:
        return _Stream(self.released)


def _app(client: FakeClient, address: str, hosts: list[str]) -> tuple[Hub, Any]:
    hub = Hub(client, None, asyncio.get_running_loop())  # type: ignore[arg-type]
    hub.cache[("ns", "routing-abc")] = dashboard_execution([{"name": "extract", "phase": "Running"}])
    hub.synced.set()
    return hub, build_app(hub, client, {"allowedHosts": allowed_hosts(address, hosts)})  # type: ignore[arg-type]


def test_the_in_cluster_dashboard_refuses_a_host_name_not_on_its_list() -> None:
    async def scenario() -> None:
        _, app = _app(FakeClient(), "0.0.0.0", ["jobchain-dashboard.jobchain-system.svc"])
        async with TestClient(TestServer(app, host="127.0.0.1")) as http:
            rebound = await http.get("/api/info", headers={"Host": "attacker.example:8090"})
            assert rebound.status == 403
            assert "host 'attacker.example' not allowed" in (await rebound.json())["error"]
            # The port-forward of the docs, and the Service's name, are on the list.
            assert (await http.get("/api/info", headers={"Host": "localhost:8090"})).status == 200
            assert (await http.get("/", headers={"Host": "jobchain-dashboard.jobchain-system.svc:8090"})).status == 200
            # The kubelet probes the pod's IP: /healthz answers it, and tells nothing else.
            assert (await http.get("/healthz", headers={"Host": "10.244.0.7:8090"})).status == 200

    asyncio.run(scenario())


def test_the_seventh_follow_is_refused_while_the_pages_keep_answering() -> None:
    async def scenario() -> None:
        # The default executor of a 2-CPU machine (min(32, cpus + 4) threads), where six follows froze it.
        asyncio.get_running_loop().set_default_executor(ThreadPoolExecutor(max_workers=6))
        client = _FollowingClient()
        _, app = _app(client, "127.0.0.1", [])
        url = "/api/follow/ns/routing-abc/extract?pod=routing-abc-extract-pod"
        async with TestClient(TestServer(app, host="127.0.0.1")) as http:
            follows = []
            try:
                for _ in range(FOLLOW_LIMIT):
                    response = await asyncio.wait_for(http.get(url), 5)
                    assert response.status == 200
                    assert b"started" in await asyncio.wait_for(response.content.readuntil(b"started"), 5)
                    follows.append(response)
                seventh = await asyncio.wait_for(http.get(url), 5)
                assert seventh.status == 429
                assert "logs are followed already" in (await seventh.json())["error"]
                page = await asyncio.wait_for(http.get("/api/workflows?namespace=ns"), 5)
                assert page.status == 200
            finally:
                client.released.set()
                for response in follows:
                    response.close()
            # A follow that ended frees its place.
            await asyncio.wait_for(app[FOLLOWS].idle.wait(), 5)
            assert app[FOLLOWS].active == 0
            client.released.clear()
            again = await asyncio.wait_for(http.get(url), 5)
            assert again.status == 200
            client.released.set()
            again.close()

    asyncio.run(scenario())
