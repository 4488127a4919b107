"""The in-cluster dashboard shows each viewer only what that viewer may see.

The API server's answers (TokenReview, SubjectAccessReview) come from a stand-in that knows
two users: alice, who may read namespace `team-a`, and root, who may read everything. The
dashboard's own identity may read all namespaces (its watch holds both); what a viewer is
shown is decided per viewer.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from jobchain.cli.dashboard.access import Access, Unauthenticated, Viewer
from jobchain.cli.dashboard.hub import Hub
from jobchain.cli.dashboard.server import allowed_hosts, build_app
from tests.unit.fakes import FakeClient, dashboard_execution

TOKENS = {"alice-token": {"username": "alice", "groups": ["devs"]}, "root-token": {"username": "root"}}
RIGHTS = {"alice": {"team-a"}, "root": {"", "team-a", "team-b"}}  # "" = in all namespaces


class ReviewingClient(FakeClient):
    def __init__(self) -> None:
        super().__init__()
        self.down = False
        self.reviews: list[tuple[str, str, str]] = []

    def review_token(self, token: str) -> dict[str, Any] | None:
        return TOKENS.get(token)

    def review_access(self, viewer: dict[str, Any], attributes: dict[str, str]) -> bool:
        self.reviews.append((viewer["user"], attributes["verb"], attributes["namespace"]))
        return attributes["namespace"] in RIGHTS.get(viewer["user"], set())

    def namespaces(self) -> list[str]:
        return ["team-a", "team-b"]

    def node_pods(self, namespace: str, execution: str, node: str) -> list[dict[str, Any]]:
        return []


def _in(namespace: str, name: str) -> dict[str, Any]:
    obj = dashboard_execution([{"name": "extract", "phase": "Succeeded"}], name=name)
    obj["metadata"]["namespace"] = namespace
    return obj


async def _serve(mode: str) -> tuple[TestClient[Any, Any], ReviewingClient]:
    client = ReviewingClient()
    hub = Hub(client, None, asyncio.get_running_loop())  # type: ignore[arg-type]
    hub.cache[("team-a", "mine")] = _in("team-a", "mine")
    hub.cache[("team-b", "theirs")] = _in("team-b", "theirs")
    hub.synced.set()
    app = build_app(hub, client, {"allowedHosts": allowed_hosts("127.0.0.1")},  # type: ignore[arg-type]
                    Access(client, mode))
    http: TestClient[Any, Any] = TestClient(TestServer(app, host="127.0.0.1"))
    await http.start_server()
    return http, client


ALICE = {"Authorization": "Bearer alice-token"}


def test_a_viewer_without_rights_to_a_namespace_sees_nothing_of_it() -> None:
    async def scenario() -> None:
        http, _ = await _serve("token")
        try:
            rows = await (await http.get("/api/executions", headers=ALICE)).json()
            assert [r["name"] for r in rows["items"]] == ["mine"]
            info = await (await http.get("/api/info", headers=ALICE)).json()
            assert info["namespaces"] == ["team-a"]
            theirs = await http.get("/api/executions/team-b/theirs", headers=ALICE)
            assert theirs.status == 403 and "alice may not get workflowexecutions in namespace 'team-b'" in (
                await theirs.json())["error"]
            assert (await http.get("/api/logs/team-b/theirs/extract", headers=ALICE)).status == 403
            assert (await http.get("/api/follow/team-b/theirs/extract?pod=p", headers=ALICE)).status == 403
            assert (await http.get("/api/workflows?namespace=team-b", headers=ALICE)).status == 403
            assert (await http.get("/api/events?namespace=team-b", headers=ALICE)).status == 403
            # The live stream's first snapshot holds only alice's namespace too.
            events = await http.get("/api/events", headers=ALICE)
            text = ""
            while "event: snapshot" not in text:
                text += (await asyncio.wait_for(events.content.readline(), 5)).decode()
            text += (await asyncio.wait_for(events.content.readline(), 5)).decode()
            events.close()
            assert '"mine"' in text and "theirs" not in text and "team-b" not in text
            # Someone with rights everywhere sees everything.
            root = {"Authorization": "Bearer root-token"}
            everything = await (await http.get("/api/executions", headers=root)).json()
            assert sorted(r["name"] for r in everything["items"]) == ["mine", "theirs"]
        finally:
            await http.close()

    asyncio.run(scenario())


def test_without_a_valid_token_nothing_is_shown_and_the_reason_is_given() -> None:
    async def scenario() -> None:
        http, _ = await _serve("token")
        try:
            anonymous = await http.get("/api/executions")
            assert anonymous.status == 401
            body = await anonymous.json()
            assert "no bearer token" in body["error"] and body["login"] == "token"
            forged = await http.get("/api/executions", headers={"Authorization": "Bearer made-up"})
            assert forged.status == 401 and "not accepted" in (await forged.json())["error"]
            # The page's token prompt keeps the token in a cookie: it counts as the header does.
            cookie = await http.get("/api/executions", cookies={"jobchain-token": "alice-token"})
            assert [r["name"] for r in (await cookie.json())["items"]] == ["mine"]
            # The page itself and the probes need no token.
            assert (await http.get("/")).status == 200 and (await http.get("/healthz")).status == 200
        finally:
            await http.close()

    asyncio.run(scenario())


def test_behind_an_authenticating_proxy_its_user_header_names_the_viewer() -> None:
    async def scenario() -> None:
        http, client = await _serve("proxy")
        try:
            assert (await http.get("/api/executions")).status == 401
            rows = await (await http.get("/api/executions", headers={"X-Forwarded-User": "alice",
                                                                     "X-Forwarded-Groups": "devs,ops"})).json()
            assert [r["name"] for r in rows["items"]] == ["mine"]
            assert ("alice", "list", "team-a") in client.reviews
        finally:
            await http.close()

    asyncio.run(scenario())


def test_answers_are_kept_for_a_while_then_asked_again() -> None:
    client = ReviewingClient()
    now = [0.0]
    access = Access(client, "token", clock=lambda: now[0], ttl=30)
    alice = access.identify({"Authorization": "Bearer alice-token"}, {})
    assert alice == Viewer("alice", ("devs",))
    assert access.may(alice, "list", "workflowexecutions", "team-a")
    assert not access.may(alice, "list", "workflowexecutions", "team-b")
    assert access.may(alice, "list", "workflowexecutions", "team-a")
    assert len(client.reviews) == 2
    now[0] = 31.0
    RIGHTS["alice"] = set()  # the RoleBinding was removed
    try:
        assert not access.may(alice, "list", "workflowexecutions", "team-a")
    finally:
        RIGHTS["alice"] = {"team-a"}
    assert len(client.reviews) == 3


def test_the_local_dashboard_asks_nothing_its_kubeconfig_user_is_the_viewer() -> None:
    client = ReviewingClient()
    access = Access(client, "none")
    assert access.identify({}, {}) is None
    assert access.may(None, "list", "workflowexecutions", "team-b")
    assert client.reviews == []
    with pytest.raises(ValueError, match="must be one of none, token, proxy"):
        Access(client, "basic")
    with pytest.raises(Unauthenticated, match="X-Forwarded-User"):
        Access(client, "proxy").identify({}, {})
