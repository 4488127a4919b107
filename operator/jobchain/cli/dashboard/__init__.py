"""`jobchain dashboard`: a read-only web dashboard of workflows and executions, live.

It talks to the cluster as the user of the kubeconfig context, so it shows exactly what that
user may see. In the cluster it reads as its ServiceAccount and serves many viewers: there
`--viewer-auth token|proxy` identifies each one and shows only what they may see (access.py).
Before serving it checks that the cluster answers, so a missing or unreachable cluster is one line and exit status 4;
once serving, the cluster may go away and come back and the pages follow.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
import webbrowser
from collections.abc import Callable
from typing import IO

import urllib3
from aiohttp import web
from kubernetes.client.exceptions import ApiException

from jobchain.cli.cluster import CliCluster, api_error, connection_error
from jobchain.cli.errors import CliError, usage_error

DEFAULT_PORT = 8090


TRANSIENT = (429, 500, 503, 504)  # an API server starting or overloaded: it answers, just not yet
STARTUP_PATIENCE = 30.0  # seconds the first check waits out such answers before giving up


def _scope(
    cluster: CliCluster, namespace_given: bool, err: IO[str], sleep: Callable[[float], None] = time.sleep
) -> str | None:
    """The namespace to watch: the one given, else all when the user may list them cluster-wide.

    An unreachable cluster fails at once (one line, exit 4); an API server that answers "not
    yet" (429 while its storage initializes after a restart, 503) is given STARTUP_PATIENCE."""
    from jobchain.api.vocabulary import EXECUTIONS
    from jobchain.cli.dashboard.kube import ReadOnlyClient

    client = ReadOnlyClient(cluster.api)
    wanted = cluster.namespace if namespace_given else None
    deadline = time.monotonic() + STARTUP_PATIENCE
    try:
        while True:
            try:
                client.list_objects(EXECUTIONS, wanted)
                return wanted
            except ApiException as exc:
                if exc.status not in TRANSIENT or time.monotonic() > deadline:
                    raise
                sleep(1.0)
    except ApiException as exc:
        if exc.status == 403 and wanted is None:
            print(
                f"jobchain dashboard: you may not list executions in all namespaces; showing namespace "
                f"{cluster.namespace!r} (pick another with -n)",
                file=err,
            )
            return _scope(cluster, True, err, sleep)
        raise api_error(exc, EXECUTIONS, None, wanted or "(all namespaces)") from None
    except (urllib3.exceptions.HTTPError, OSError) as exc:
        raise connection_error(exc, client.host) from None


async def _serve(cluster: CliCluster, scope: str | None, address: str, port: int, open_page: bool,
                 out: IO[str], hosts: list[str] | None = None, viewer_auth: str = "none") -> None:
    from jobchain.cli.dashboard.access import Access
    from jobchain.cli.dashboard.hub import Hub
    from jobchain.cli.dashboard.kube import ReadOnlyClient
    from jobchain.cli.dashboard.server import allowed_hosts, build_app

    client = ReadOnlyClient(cluster.api)
    hub = Hub(client, scope, asyncio.get_running_loop())
    details = {"allowedHosts": allowed_hosts(address, hosts or []), "server": client.host, "viewerAuth": viewer_auth}
    app = build_app(hub, client, details, Access(client, viewer_auth))
    runner = web.AppRunner(app, handle_signals=False, shutdown_timeout=2)
    await runner.setup()
    site = web.TCPSite(runner, address, port)
    try:
        await site.start()
    except OSError as exc:
        await runner.cleanup()
        raise usage_error(
            f"cannot listen on {address}:{port} ({exc.strerror or exc}); pick another with --port or --address"
        ) from None
    hub.start()
    port = int(runner.addresses[0][1]) if runner.addresses else port  # --port 0: the one picked
    shown = f"[{address}]" if ":" in address else address
    url = f"http://{'127.0.0.1' if address in ('0.0.0.0', '::') else shown}:{port}/"
    where = f"namespace {scope}" if scope else "all namespaces"
    who = "" if viewer_auth == "none" else f", viewers authenticated by {viewer_auth}"
    print(f"jobchain dashboard on {url} ({where}, read-only{who}, cluster {client.host}); Ctrl-C stops it",
          file=out, flush=True)
    if open_page:
        webbrowser.open(url)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError, RuntimeError):
            loop.add_signal_handler(sig, stop.set)
    try:
        await stop.wait()
    finally:
        hub.stop()
        await runner.cleanup()


def run_dashboard(
    cluster: CliCluster, namespace_given: bool, address: str, port: int, open_page: bool, out: IO[str], err: IO[str],
    hosts: list[str] | None = None, viewer_auth: str = "none",
) -> int:
    if not 0 <= port <= 65535:
        raise usage_error(f"--port {port}: must be between 0 and 65535")
    if viewer_auth == "none" and address not in ("127.0.0.1", "::1", "localhost"):
        print(f"jobchain dashboard: warning: listening on {address} without --viewer-auth: whoever reaches it "
              "sees what your kubeconfig's user may see", file=err)
    scope = _scope(cluster, namespace_given, err)
    try:
        asyncio.run(_serve(cluster, scope, address, port, open_page, out, hosts or [], viewer_auth))
    except CliError:
        raise
    print("jobchain dashboard: stopped", file=out)
    return 0
