"""The dashboard's HTTP server (aiohttp): the page, its static files, a JSON API and event streams.

Every route reads; none writes. Blocking client calls run in worker threads so one slow
API request never stalls the other pages; followed logs, which hold a thread for as long as
they are open, have a pool of their own (FOLLOW_LIMIT; one more is refused with 429), so they
can never take the threads the pages need. Failures of the cluster become a JSON error
with the one-line reason (the page shows it), never a dead server.

Where viewers are authenticated (the in-cluster dashboard, `access.py`), every namespace a
route shows is first asked of the API server for that viewer: a viewer without rights to a
namespace sees nothing of it, not even its name.
"""

from __future__ import annotations

import asyncio
import contextlib
import ipaddress
import json
from collections.abc import Awaitable, Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from importlib import resources
from pathlib import Path
from typing import Any

import urllib3
from aiohttp import web
from kubernetes.client.exceptions import ApiException

from jobchain.api.vocabulary import EXECUTIONS, WORKFLOWS
from jobchain.cli.dashboard import views
from jobchain.cli.dashboard.access import Access, Unauthenticated, Viewer
from jobchain.cli.dashboard.hub import Hub, Subscriber, describe_failure
from jobchain.cli.dashboard.kube import ReadOnlyClient

HEARTBEAT_SECONDS = 15.0
FOLLOW_LIMIT = 6  # logs followed at once, by all browsers together (each holds a thread and a connection)
STATIC = Path(str(resources.files("jobchain.cli.dashboard") / "static"))
Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]

HUB: web.AppKey[Hub] = web.AppKey("hub", Hub)
CLIENT: web.AppKey[ReadOnlyClient] = web.AppKey("client", ReadOnlyClient)
INFO = web.AppKey("info", dict[str, Any])


class FollowPool:
    """The threads that pump followed logs: at most `limit`, apart from the pages' threads."""

    def __init__(self, limit: int = FOLLOW_LIMIT) -> None:
        self.limit = limit
        self.active = 0
        self.executor = ThreadPoolExecutor(max_workers=limit, thread_name_prefix="log-follow")
        self.idle = asyncio.Event()  # set while no log is followed
        self.idle.set()

    def take(self) -> None:
        self.active += 1
        self.idle.clear()

    def give_back(self) -> None:
        self.active -= 1
        if not self.active:
            self.idle.set()


ACCESS = web.AppKey("access", Access)
FOLLOWS = web.AppKey("follows", FollowPool)
VIEWER = web.RequestKey("viewer", Viewer)  # absent where viewers are not authenticated


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
    """Read-only and same-origin: only GET/HEAD; only Host names of the allow-list; a known viewer.

    The Host check stops a web page elsewhere from reading the cluster through this server
    with DNS rebinding (its name resolving to 127.0.0.1, or to a port-forward). /healthz is
    exempt (the kubelet's probes name the pod's IP) and tells nothing but "the cluster answers"."""
    if request.method not in ("GET", "HEAD"):
        return _json({"error": "the dashboard is read-only"}, 405)
    if request.path != "/healthz":
        allowed = request.app[INFO].get("allowedHosts") or []
        host = _host_name(request.host or "")
        if host not in allowed:
            return _json({"error": f"host {host!r} not allowed; open the dashboard as http://127.0.0.1 or add "
                                   f"the name with --allowed-host (allowed: {', '.join(allowed)})"}, 403)
    if request.path.startswith("/api/") and request.app[ACCESS].enforced:
        try:
            viewer = await asyncio.to_thread(request.app[ACCESS].identify, request.headers, request.cookies)
        except Unauthenticated as exc:
            return _json({"error": str(exc), "login": request.app[ACCESS].mode}, 401)
        except CLUSTER_ERRORS as exc:
            return _error(exc, request)
        if viewer is not None:
            request[VIEWER] = viewer
    response = await handler(request)
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("Referrer-Policy", "no-referrer")
    response.headers.setdefault(
        "Content-Security-Policy",
        "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; frame-ancestors 'none'",
    )
    return response


def _host_name(host: str) -> str:
    if host.startswith("["):
        return host[1:].split("]", 1)[0]
    return host.rsplit(":", 1)[0] if host.count(":") == 1 else host


async def _may(request: web.Request, verb: str, resource: str, namespace: str, group: str | None = None,
               subresource: str = "") -> bool:
    """Whether the request's viewer may do this (always, where viewers are not authenticated)."""
    viewer = request.get(VIEWER)
    if viewer is None:
        return True
    access = request.app[ACCESS]
    try:
        if group is None:
            return await asyncio.to_thread(access.may, viewer, verb, resource, namespace)
        return await asyncio.to_thread(access.may, viewer, verb, resource, namespace, group, subresource)
    except CLUSTER_ERRORS:
        return False  # cannot ask: show nothing rather than everything


async def _visible(request: web.Request, namespaces: Iterable[str], resource: str = EXECUTIONS) -> set[str] | None:
    """The namespaces of `namespaces` whose `resource` the viewer may list (None: all of them)."""
    if request.get(VIEWER) is None or await _may(request, "list", resource, ""):
        return None
    return {ns for ns in set(namespaces) if await _may(request, "list", resource, ns)}


def _refused(request: web.Request, verb: str, what: str, namespace: str) -> web.Response:
    viewer = request[VIEWER]
    return _json({"error": f"{viewer.user} may not {verb} {what} in namespace {namespace!r}: ask its owners "
                           "for a RoleBinding (docs/dashboard.md)"}, 403)


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
    visible = await _visible(request, namespaces)
    if visible is not None:
        namespaces = [ns for ns in namespaces if ns in visible]
    details: dict[str, Any] = request.app[INFO]
    return _json({**details, "scope": hub.namespace, "namespaces": namespaces,
                  "cluster": hub.state.as_json()})


def _namespace_param(request: web.Request) -> str | None:
    return request.query.get("namespace") or None


async def executions(request: web.Request) -> web.Response:
    hub = request.app[HUB]
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(hub.synced.wait(), 5)
    objects = hub.objects(_namespace_param(request))
    visible = await _visible(request, {o["metadata"]["namespace"] for o in objects})
    items = [views.execution_summary(obj) for obj in objects
             if visible is None or obj["metadata"]["namespace"] in visible]
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
    if not await _may(request, "get", EXECUTIONS, namespace):
        return _refused(request, "get", EXECUTIONS, namespace)
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
    namespace = _namespace_param(request) or request.app[HUB].namespace
    if namespace is not None and not await _may(request, "list", WORKFLOWS, namespace):
        return _refused(request, "list", WORKFLOWS, namespace)
    try:
        listing = await asyncio.to_thread(request.app[CLIENT].list_objects, WORKFLOWS, namespace)
    except CLUSTER_ERRORS as exc:
        return _error(exc, request)
    items = listing.get("items") or []
    visible = await _visible(request, {w["metadata"]["namespace"] for w in items}, WORKFLOWS)
    return _json({"items": [views.workflow_summary(w) for w in items
                            if visible is None or w["metadata"]["namespace"] in visible]})


async def workflow(request: web.Request) -> web.Response:
    namespace, name = request.match_info["namespace"], request.match_info["name"]
    if not await _may(request, "get", WORKFLOWS, namespace):
        return _refused(request, "get", WORKFLOWS, namespace)
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
    if not await _may(request, "get", "pods", namespace, "", "log"):
        return _refused(request, "read", "pod logs", namespace)
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
    if not await _may(request, "get", "pods", namespace, "", "log"):
        return _refused(request, "read", "pod logs", namespace)
    follows = request.app[FOLLOWS]
    if follows.active >= follows.limit:
        return _json({"error": f"{follows.limit} logs are followed already (by all viewers together); the log "
                               "shown is its last tail: reload it, or follow again when one is closed"}, 429)
    follows.take()
    try:
        return await _follow(request, namespace, name, node, pod, follows)
    finally:
        follows.give_back()


async def _follow(request: web.Request, namespace: str, name: str, node: str, pod: str,
                  follows: FollowPool) -> web.StreamResponse:
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

    reader = loop.run_in_executor(follows.executor, pump)
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
    if namespace is not None and not await _may(request, "list" if name is None else "get", EXECUTIONS, namespace):
        return _refused(request, "read", EXECUTIONS, namespace)
    if name is not None and namespace is None:
        return _json({"error": "?execution= needs ?namespace="}, 400)
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
            elif not await _may(request, "list", EXECUTIONS, payload["metadata"]["namespace"]):
                continue  # a namespace this viewer may not see
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
        objects = hub.objects(subscriber.namespace)
        visible = await _visible(request, {o["metadata"]["namespace"] for o in objects})
        items = [views.execution_summary(o) for o in objects
                 if visible is None or o["metadata"]["namespace"] in visible]
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


def allowed_hosts(address: str, extra: Iterable[str] = ()) -> list[str]:
    """Host names a browser may use: this machine's (a port-forward's too), the address if it is
    a loopback one, and those given (--allowed-host: the Service's or an ingress's name)."""
    try:
        loopback = ipaddress.ip_address(address).is_loopback
    except ValueError:
        loopback = address == "localhost"
    names = ["127.0.0.1", "localhost", "::1", *([address] if loopback else []), *extra]
    return list(dict.fromkeys(names))


def build_app(hub: Hub, client: ReadOnlyClient, details: dict[str, Any], access: Access | None = None,
              follows: FollowPool | None = None) -> web.Application:
    app = web.Application(middlewares=[guard])
    app[HUB] = hub
    app[CLIENT] = client
    app[INFO] = details
    app[ACCESS] = access or Access(client, "none")
    app[FOLLOWS] = follows or FollowPool()
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
