"""The dashboard's HTTP server (aiohttp): the page, its static files, a JSON API and event streams.

Every route reads; none writes. Blocking client calls run in worker threads so one slow
API request never stalls the other pages. Failures of the cluster become a JSON error
with the one-line reason (the page shows it), never a dead server.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
from collections.abc import Awaitable, Callable
from importlib import resources
from pathlib import Path
from typing import Any

import urllib3
from aiohttp import web
from kubernetes.client.exceptions import ApiException

from jobchain.api.vocabulary import EXECUTIONS, WORKFLOWS
from jobchain.cli.dashboard import views
from jobchain.cli.dashboard.hub import Hub, Subscriber, describe_failure
from jobchain.cli.dashboard.kube import ReadOnlyClient

HEARTBEAT_SECONDS = 15.0
STATIC = Path(str(resources.files("jobchain.cli.dashboard") / "static"))
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

HUB: web.AppKey[Hub] = web.AppKey("hub", Hub)
CLIENT: web.AppKey[ReadOnlyClient] = web.AppKey("client", ReadOnlyClient)
INFO = web.AppKey("info", dict[str, Any])


def _json(data: Any, status: int = 200) -> web.Response:
    return web.json_response(data, status=status, dumps=lambda v: json.dumps(v, separators=(",", ":")))


def _error(exc: Exception, request: web.Request) -> web.Response:
    client = request.app[CLIENT]
    message = describe_failure(exc, client.host, request.match_info.get("namespace"))
    status = exc.status if isinstance(exc, ApiException) and exc.status in (401, 403, 404) else 502
    return _json({"error": message}, status)


CLUSTER_ERRORS = (ApiException, urllib3.exceptions.HTTPError, OSError)


@web.middleware
async def guard(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Read-only and same-origin: only GET/HEAD; on loopback, only Host names of this machine.

    The Host check stops a web page elsewhere from reading the user's cluster through this
    server with DNS rebinding (its name resolving to 127.0.0.1)."""
    if request.method not in ("GET", "HEAD"):
        return _json({"error": "the dashboard is read-only"}, 405)
    allowed = request.app[INFO].get("allowedHosts")
    host = (request.host or "").rsplit(":", 1)[0].strip("[]")
    if allowed and host not in allowed:
        return _json({"error": f"host {host!r} not allowed; open the dashboard as http://127.0.0.1"}, 403)
    response = await handler(request)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    response.headers.setdefault(
        "Content-Security-Policy",
        "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'",
    )
    return response


async def index(request: web.Request) -> web.StreamResponse:
    return web.FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})


async def healthz(request: web.Request) -> web.Response:
    return _json({"ok": True, "cluster": request.app[HUB].state.as_json()})


async def info(request: web.Request) -> web.Response:
    hub, client = request.app[HUB], request.app[CLIENT]
    namespaces: list[str] = []
    if hub.namespace is None:
        with contextlib.suppress(*CLUSTER_ERRORS):
            namespaces = await asyncio.to_thread(client.namespaces)
        namespaces = sorted(set(namespaces) | {ns for ns, _ in hub.cache})
    else:
        namespaces = [hub.namespace]
    details: dict[str, Any] = request.app[INFO]
    return _json({**details, "scope": hub.namespace, "namespaces": namespaces,
                  "cluster": hub.state.as_json()})


def _namespace_param(request: web.Request) -> str | None:
    return request.query.get("namespace") or None


async def executions(request: web.Request) -> web.Response:
    hub = request.app[HUB]
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(hub.synced.wait(), 5)
    items = [views.execution_summary(obj) for obj in hub.objects(_namespace_param(request))]
    return _json({"items": items, "cluster": hub.state.as_json()})


async def _execution_view(request: web.Request, obj: dict[str, Any]) -> dict[str, Any]:
    """The page's view of an execution; the Workflow is read only when the execution carries no spec."""
    workflow = None
    if views.spec_of(obj) is None:
        ref = ((obj.get("spec") or {}).get("workflowRef") or {}).get("name")
        if ref:
            with contextlib.suppress(*CLUSTER_ERRORS):
                workflow = await asyncio.to_thread(
                    request.app[CLIENT].get, WORKFLOWS, obj["metadata"]["namespace"], ref
                )
    return await asyncio.to_thread(views.execution_view, obj, workflow, await _whole_outputs(request, obj))


async def _whole_outputs(request: web.Request, obj: dict[str, Any]) -> dict[str, Any]:
    """The whole outputs of nodes whose status holds a preview (outputRef): edges are decided on them,
    as the planner decided. One that cannot be read leaves the preview."""
    found: dict[str, Any] = {}
    namespace = obj["metadata"]["namespace"]
    for node in (obj.get("status") or {}).get("nodes") or []:
        ref = node.get("outputRef") or {}
        if not ref.get("configMap"):
            continue
        with contextlib.suppress(*CLUSTER_ERRORS):
            ok, value = await asyncio.to_thread(request.app[CLIENT].output_value, namespace, ref["configMap"],
                                                ref.get("key") or "output.json")
            if ok:
                found[node["name"]] = value
    return found


async def execution(request: web.Request) -> web.Response:
    namespace, name = request.match_info["namespace"], request.match_info["name"]
    hub = request.app[HUB]
    obj = hub.cache.get((namespace, name))
    if obj is None:
        try:
            obj = await asyncio.to_thread(request.app[CLIENT].get, EXECUTIONS, namespace, name)
        except CLUSTER_ERRORS as exc:
            return _error(exc, request)
    if obj is None:
        return _json({"error": f"workflowexecution {name!r} not found in namespace {namespace!r}"}, 404)
    return _json(await _execution_view(request, obj))


async def workflows(request: web.Request) -> web.Response:
    try:
        listing = await asyncio.to_thread(request.app[CLIENT].list_objects, WORKFLOWS, _namespace_param(request)
                                          or request.app[HUB].namespace)
    except CLUSTER_ERRORS as exc:
        return _error(exc, request)
    return _json({"items": [views.workflow_summary(w) for w in listing.get("items") or []]})


async def workflow(request: web.Request) -> web.Response:
    namespace, name = request.match_info["namespace"], request.match_info["name"]
    try:
        obj = await asyncio.to_thread(request.app[CLIENT].get, WORKFLOWS, namespace, name)
    except CLUSTER_ERRORS as exc:
        return _error(exc, request)
    if obj is None:
        return _json({"error": f"workflow {name!r} not found in namespace {namespace!r}"}, 404)
    return _json(await asyncio.to_thread(views.workflow_view, obj))


def _node_status(obj: dict[str, Any] | None, node: str) -> Any:
    from jobchain.cli.tables import status_of

    return next((n for n in status_of(obj or {}).nodes if n.name == node), None)


async def logs(request: web.Request) -> web.Response:
    """Each attempt's log tail; where the pod is gone, the output recorded in status."""
    namespace, name, node = (request.match_info[k] for k in ("namespace", "name", "node"))
    client = request.app[CLIENT]
    status = _node_status(request.app[HUB].cache.get((namespace, name)), node)
    try:
        pods = await asyncio.to_thread(client.node_pods, namespace, name, node)
    except CLUSTER_ERRORS as exc:
        return _error(exc, request)
    attempts = []
    for pod in pods:
        pod_name = pod["metadata"]["name"]
        try:
            text: str | None = await asyncio.to_thread(client.read_log, namespace, pod_name)
            note = ""
        except ApiException as exc:
            text = None
            note = describe_failure(exc, client.host, namespace) if exc.status != 400 else (
                "no log yet: the container has not started")
        except CLUSTER_ERRORS as exc:
            return _error(exc, request)
        running = any(not (c.get("state") or {}).get("terminated")
                      for c in (pod.get("status") or {}).get("containerStatuses") or [{}])
        attempts.append({"pod": pod_name, "text": text, "note": note, "running": running})
    recorded: str | None = None
    note = ""
    if not pods and status is not None and status.startedAt:
        # Pods do not live forever (Job TTL, deletion); the output kept in status does.
        which = f"pod {status.podName}" if status.podName else "its pod"
        if status.output is None:
            recorded, note = "", f"{which} is gone and no output was recorded"
        else:
            value = status.output
            recorded = value if isinstance(value, str) else json.dumps(value, indent=2, sort_keys=True)
            truncated = ", truncated" if status.outputTruncated else ""
            note = f"{which} is gone; its log with it. The output recorded in status{truncated}:"
    return _json({"attempts": attempts, "recorded": recorded, "recordedNote": note})


def _sse(event: str, data: Any) -> bytes:
    payload = json.dumps(data, separators=(",", ":"))
    return f"event: {event}\ndata: {payload}\n\n".encode()


async def _open_stream(request: web.Request) -> web.StreamResponse:
    response = web.StreamResponse(headers={
        "Content-Type": "text/event-stream",
        "Cache-Control": "no-cache",
        "X-Accel-Buffering": "no",  # proxies (the cluster's auth proxy) must not buffer the stream
    })
    await response.prepare(request)
    await response.write(b"retry: 2000\n\n")
    return response


async def follow_log(request: web.Request) -> web.StreamResponse:
    """A running node's pod log as it is written (server-sent `chunk` events), then `end`.

    Only a pod of that node is followed (found by its labels): the dashboard shows the logs of
    workflow steps, never of any other pod its identity could read."""
    namespace, name, node = (request.match_info[k] for k in ("namespace", "name", "node"))
    pod = request.query.get("pod", "")
    client = request.app[CLIENT]
    response = await _open_stream(request)
    queue: asyncio.Queue[bytes | None] = asyncio.Queue()
    loop = asyncio.get_running_loop()
    try:
        pods = await asyncio.to_thread(client.node_pods, namespace, name, node)
        if pod not in {p["metadata"]["name"] for p in pods}:
            await response.write(_sse("end", {"note": f"pod {pod!r} is not a pod of node {node!r} of {name!r}"}))
            return response
        stream = await asyncio.to_thread(client.open_log_stream, namespace, pod)
    except CLUSTER_ERRORS as exc:
        await response.write(_sse("end", {"note": describe_failure(exc, client.host, namespace)}))
        return response

    def pump() -> None:
        try:
            for chunk in stream.stream(4096, decode_content=False):
                loop.call_soon_threadsafe(queue.put_nowait, bytes(chunk))
        except Exception:  # closed by us (the browser left), or the connection dropped
            pass
        finally:
            loop.call_soon_threadsafe(queue.put_nowait, None)

    reader = loop.run_in_executor(None, pump)
    try:
        while True:
            try:
                chunk = await asyncio.wait_for(queue.get(), HEARTBEAT_SECONDS)
            except TimeoutError:
                await response.write(b": keep-alive\n\n")
                continue
            if chunk is None:
                await response.write(_sse("end", {"note": ""}))
                break
            await response.write(_sse("chunk", chunk.decode(errors="replace")))
    except ConnectionResetError:
        pass  # the browser left
    finally:
        with contextlib.suppress(Exception):
            stream.release_conn()
            stream.close()
        with contextlib.suppress(Exception):
            await asyncio.wait_for(reader, 2)
    return response


async def events(request: web.Request) -> web.StreamResponse:
    """Live updates: `snapshot`, then `upsert`/`remove` of rows; or `execution` views of one execution."""
    hub = request.app[HUB]
    namespace = _namespace_param(request)
    name = request.query.get("execution") or None
    subscriber = hub.subscribe(namespace, name)
    response = await _open_stream(request)
    try:
        await response.write(_sse("cluster", hub.state.as_json()))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(hub.synced.wait(), 5)
        await _send_snapshot(request, response, subscriber)
        while not subscriber.overflowed:
            try:
                kind, payload = await asyncio.wait_for(subscriber.queue.get(), HEARTBEAT_SECONDS)
            except TimeoutError:
                await response.write(b": keep-alive\n\n")
                continue
            if kind == "cluster":
                await response.write(_sse("cluster", payload))
            elif kind == "snapshot":
                await _send_snapshot(request, response, subscriber)
            elif name is not None:
                if kind == "deleted":
                    await response.write(_sse("gone", {"name": name}))
                else:
                    await response.write(_sse("execution", await _execution_view(request, payload)))
            elif kind == "deleted":
                await response.write(_sse("remove", views.execution_summary(payload)))
            else:
                await response.write(_sse("upsert", views.execution_summary(payload)))
    except ConnectionResetError:
        pass  # the browser left
    finally:
        hub.unsubscribe(subscriber)
    return response


async def _send_snapshot(request: web.Request, response: web.StreamResponse, subscriber: Subscriber) -> None:
    hub = request.app[HUB]
    if subscriber.name is None:
        items = [views.execution_summary(o) for o in hub.objects(subscriber.namespace)]
        await response.write(_sse("snapshot", items))
        return
    obj = hub.cache.get((subscriber.namespace or "", subscriber.name))
    if obj is None and subscriber.namespace:
        # Created a moment ago, its watch event not here yet: read it rather than say it is gone.
        with contextlib.suppress(*CLUSTER_ERRORS):
            obj = await asyncio.to_thread(request.app[CLIENT].get, EXECUTIONS, subscriber.namespace, subscriber.name)
    if obj is None:
        await response.write(_sse("gone", {"name": subscriber.name}))
    else:
        await response.write(_sse("execution", await _execution_view(request, obj)))


def allowed_hosts(address: str) -> list[str]:
    """Host names a browser may use to reach a loopback server; empty (any) for other addresses."""
    try:
        loopback = ipaddress.ip_address(address).is_loopback
    except ValueError:
        loopback = address == "localhost"
    return ["127.0.0.1", "localhost", "::1", address] if loopback else []


def build_app(hub: Hub, client: ReadOnlyClient, details: dict[str, Any]) -> web.Application:
    app = web.Application(middlewares=[guard])
    app[HUB] = hub
    app[CLIENT] = client
    app[INFO] = details
    app.router.add_get("/", index)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/api/info", info)
    app.router.add_get("/api/executions", executions)
    app.router.add_get("/api/executions/{namespace}/{name}", execution)
    app.router.add_get("/api/workflows", workflows)
    app.router.add_get("/api/workflows/{namespace}/{name}", workflow)
    app.router.add_get("/api/logs/{namespace}/{name}/{node}", logs)
    app.router.add_get("/api/follow/{namespace}/{name}/{node}", follow_log)
    app.router.add_get("/api/events", events)
    app.router.add_static("/static/", STATIC, append_version=False)
    return app
