"""The dashboard without a browser: what its pages are told, its server's rules, its failures.

The views are pure functions of objects; the server is exercised through aiohttp's test
client with a hub whose cache is filled by hand; the watch loop runs against a stand-in
client that fails like an unreachable cluster and then answers, as a real one coming back.
"""

from __future__ import annotations

import asyncio
import io
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from jobchain.cli.dashboard import views
from jobchain.cli.dashboard.hub import Hub
from jobchain.cli.dashboard.server import allowed_hosts, build_app
from jobchain.cli.main import main

from .fakes import ROUTING_SPEC, FakeClient, dashboard_execution


def _edges(view: dict[str, Any]) -> dict[str, str]:
    return {f"{e['source']}>{e['target']}": e["state"] for e in view["graph"]["edges"]}


def test_the_condition_that_held_fired_and_the_others_did_not() -> None:
    view = views.execution_view(dashboard_execution([
        {"name": "extract", "phase": "Succeeded", "output": {"rows": 7}},
        {"name": "small-load", "phase": "Running", "inputFrom": "extract"},
        {"name": "bulk-load", "phase": "Skipped"},
    ]))
    assert _edges(view) == {
        "extract>bulk-load": "not-held", "extract>small-load": "fired", "extract>alert": "not-held",
        "bulk-load>done": "not-held", "small-load>done": "undecided",
    }
    assert view["statuses"]["extract"]["output"] == {"rows": 7}
    assert view["workflow"] == "routing" and view["params"] == {"rows": "7"}
    assert set(view["graph"]["layout"]["nodes"]) == {"extract", "bulk-load", "small-load", "done", "alert"}


@pytest.mark.parametrize(("phase", "kind", "state"), [
    ("Succeeded", "success", "fired"), ("Succeeded", "failure", "not-held"), ("Succeeded", "always", "fired"),
    ("Failed", "success", "not-held"), ("Failed", "failure", "fired"), ("Failed", "always", "fired"),
    ("Skipped", "always", "not-held"), ("Cancelled", "failure", "not-held"), ("Running", "always", "undecided"),
])
def test_edge_states_follow_the_engine_rules(phase: str, kind: str, state: str) -> None:
    from jobchain.api.models import NodeStatus

    source = NodeStatus(name="a", phase=phase)
    assert views.edge_state(kind, None, source, {"a": source}, {}) == state


def test_a_condition_that_cannot_be_evaluated_did_not_hold() -> None:
    from jobchain.api.models import NodeStatus

    source = NodeStatus(name="a", phase="Succeeded", output={"other": 1})
    assert views.edge_state("condition", "output.rows > 1", source, {"a": source}, {}) == "not-held"


def test_an_execution_not_started_yet_is_drawn_from_its_workflow() -> None:
    fresh = {"metadata": {"name": "x", "namespace": "ns"}, "spec": {"workflowRef": {"name": "routing"}}}
    assert views.execution_view(fresh)["graph"] is None
    view = views.execution_view(fresh, {"spec": ROUTING_SPEC})
    assert view["phase"] == "" and len(view["graph"]["nodes"]) == 5
    assert set(_edges(view).values()) == {"undecided"}


def test_an_inline_workflow_is_shown_as_inline() -> None:
    obj = {"metadata": {"name": "x", "namespace": "ns"}, "spec": {"workflow": ROUTING_SPEC}}
    assert views.execution_summary(obj)["workflow"] == "(inline)"
    assert views.execution_view(obj)["graph"] is not None


def test_a_workflow_page_shows_params_scripts_and_an_unknown_edge_target() -> None:
    spec = {"nodes": [{"name": "a", "image": "busybox", "script": "echo hi", "next": [{"node": "ghost"}]}],
            "params": [{"name": "p", "default": "1"}]}
    view = views.workflow_view({"metadata": {"name": "w", "namespace": "ns"}, "spec": spec,
                                "status": {"conditions": [{"type": "Ready", "status": "False", "message": "bad"}]}})
    assert view["ready"] == "False" and view["message"] == "bad"
    assert view["paramSpecs"] == [{"name": "p", "default": "1"}]
    nodes = {n["name"]: n for n in view["graph"]["nodes"]}
    assert nodes["a"]["script"] == "echo hi" and nodes["ghost"]["unknown"] is True


# ---- the server ----------------------------------------------------------------------------
def _run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_the_server_reads_only_and_refuses_foreign_host_names() -> None:
    async def scenario() -> None:
        hub = Hub(FakeClient(), None, asyncio.get_running_loop())  # type: ignore[arg-type]
        hub.cache[("ns", "routing-abc")] = dashboard_execution([{"name": "extract", "phase": "Succeeded"}])
        hub.synced.set()
        app = build_app(hub, hub.client, {"allowedHosts": allowed_hosts("127.0.0.1")})
        async with TestClient(TestServer(app, host="127.0.0.1")) as http:
            page = await http.get("/")
            assert page.status == 200 and "app.js" in await page.text()
            script = await http.get("/static/app.js")
            assert script.status == 200 and "drawGraph" in await script.text()
            rows = await (await http.get("/api/executions?namespace=ns")).json()
            assert [r["name"] for r in rows["items"]] == ["routing-abc"]
            assert (await (await http.get("/api/executions?namespace=other")).json())["items"] == []
            view = await (await http.get("/api/executions/ns/routing-abc")).json()
            assert view["graph"]["edges"][0]["source"] == "extract"
            missing = await http.get("/api/executions/ns/nope")
            assert missing.status == 404 and "not found" in (await missing.json())["error"]
            assert (await http.post("/api/executions")).status == 405
            assert (await http.delete("/api/executions/ns/routing-abc")).status == 405
            foreign = await http.get("/api/executions", headers={"Host": "evil.example:8090"})
            assert foreign.status == 403
            # Only a pod of the node is followed, never any other pod the identity could read.
            other = await http.get("/api/follow/kube-system/x/n?pod=kube-apiserver")
            assert "is not a pod of node" in await other.text()
            info = await (await http.get("/api/info")).json()
            assert info["scope"] is None and info["namespaces"] == ["ns", "other"]

    _run(scenario())


def test_the_watch_survives_an_unreachable_cluster_and_picks_up_when_it_is_back() -> None:
    async def scenario() -> None:
        client = FakeClient()
        # The hub's wait between retries ends when the cluster is back, not after a time.
        hub = Hub(client, None, asyncio.get_running_loop(), sleep=lambda s: client.back.wait(30))  # type: ignore[arg-type]
        listener = hub.subscribe("ns", None)
        hub.start()
        try:
            kind, _ = await asyncio.wait_for(listener.queue.get(), 30)
            assert kind == "cluster" and not hub.state.connected
            assert "cannot reach the Kubernetes API server at https://127.0.0.1:1" in hub.state.message
            client.items = [dashboard_execution([], name="came-back")]
            client.down = False
            client.back.set()
            kinds = [(await asyncio.wait_for(listener.queue.get(), 30))[0]]
            while kinds[-1] != "cluster":  # the listing, then the state "connected"
                kinds.append((await asyncio.wait_for(listener.queue.get(), 30))[0])
            assert hub.state.connected and ("ns", "came-back") in hub.cache
            assert kinds == ["snapshot", "cluster"]
        finally:
            client.hang.set()
            hub.stop()

    _run(scenario())


# ---- the command -----------------------------------------------------------------------------
def _main(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(args)
    return code, capsys.readouterr().err


def test_without_a_kubeconfig_it_says_so_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, err = _main(["--kubeconfig", str(tmp_path / "none"), "dashboard"], capsys)
    assert code == 4
    assert err.count("\n") == 1 and "cannot load a kubeconfig" in err and "Traceback" not in err


def test_with_the_cluster_down_it_says_so_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    import socket

    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    config = tmp_path / "kubeconfig"
    config.write_text(
        "apiVersion: v1\nkind: Config\ncurrent-context: c\n"
        f"clusters: [{{name: c, cluster: {{server: 'https://127.0.0.1:{port}', insecure-skip-tls-verify: true}}}}]\n"
        "users: [{name: u, user: {token: t}}]\ncontexts: [{name: c, context: {cluster: c, user: u}}]\n"
    )
    code, err = _main(["--kubeconfig", str(config), "dashboard", "--port", "0"], capsys)
    assert code == 4, err
    assert err.count("\n") == 1 and "cannot reach the Kubernetes API server" in err and "Traceback" not in err


def test_the_static_files_ship_inside_the_package_and_fetch_nothing_from_elsewhere() -> None:
    from importlib import resources

    static = resources.files("jobchain.cli.dashboard") / "static"
    names = {p.name for p in static.iterdir()}
    assert {"index.html", "app.js", "app.css"} <= names
    for name in ("index.html", "app.js", "app.css"):
        text = (static / name).read_text()
        assert "http://" not in text.replace("http://www.w3.org/2000/svg", "") and "https://" not in text, name


def test_a_port_in_use_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    import socket

    from jobchain.cli import dashboard
    from jobchain.cli.errors import CliError

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]

        class _Cluster:
            api = type("A", (), {"configuration": type("C", (), {"host": "https://x"})()})()
            namespace = "ns"

        with pytest.raises(CliError) as err:
            asyncio.run(dashboard._serve(_Cluster(), "ns", "127.0.0.1", port, False, io.StringIO()))  # type: ignore[arg-type]
        assert f"cannot listen on 127.0.0.1:{port}" in err.value.message


def test_an_api_server_still_starting_is_waited_for_then_a_refusal_is_one_line(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """429 "storage is (re)initializing" right after a control-plane restart is not a reason to quit."""
    from kubernetes.client.exceptions import ApiException

    from jobchain.cli import dashboard
    from jobchain.cli.dashboard import kube
    from jobchain.cli.errors import CliError

    answers: list[int] = [429, 503, 200]

    def list_objects(self: Any, plural: str, namespace: str | None) -> dict[str, Any]:
        status = answers.pop(0) if answers else 429
        if status != 200:
            raise ApiException(status=status, reason="Too Many Requests")
        return {"items": []}

    monkeypatch.setattr(kube.ReadOnlyClient, "list_objects", list_objects)
    cluster: Any = type("C", (), {"api": type("A", (), {"configuration": type("K", (), {"host": "h"})()})(),
                                  "namespace": "ns"})()
    slept: list[float] = []
    assert dashboard._scope(cluster, False, io.StringIO(), slept.append) is None
    assert len(slept) == 2
    monkeypatch.setattr(dashboard, "STARTUP_PATIENCE", 0.0)
    with pytest.raises(CliError) as err:
        dashboard._scope(cluster, False, io.StringIO(), slept.append)
    assert "429" in err.value.message
