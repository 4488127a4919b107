"""Helpers of the browser tier: the dashboard as a process, and a TCP relay to the API server.

The relay forwards bytes (TLS passes through untouched, so the API server's certificate
still matches 127.0.0.1): stopping it closes every connection and refuses new ones, which
is what the dashboard sees when a cluster goes away; starting it again on the same port is
the cluster coming back. The shared cluster itself is never touched.
"""

from __future__ import annotations

import contextlib
import re
import select
import signal
import socket
import subprocess
import threading
import time
from pathlib import Path
from urllib.parse import urlparse

import yaml

from tests.e2e.support import ROOT, wait_for


class Relay:
    def __init__(self, server: str) -> None:
        url = urlparse(server)
        self.target = (url.hostname or "127.0.0.1", url.port or 443)
        self.listener: socket.socket | None = None
        self.port = 0
        self.sockets: set[socket.socket] = set()
        self.lock = threading.Lock()

    def start(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(64)
        self.port = listener.getsockname()[1]
        self.listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def stop(self) -> None:
        """The cluster goes away: no new connections, open ones are cut."""
        if self.listener is not None:
            with contextlib.suppress(OSError):
                self.listener.shutdown(socket.SHUT_RDWR)
            self.listener.close()
            self.listener = None
        with self.lock:
            for sock in self.sockets:
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)
                sock.close()
            self.sockets.clear()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(self.target, timeout=5)
            except OSError:
                client.close()
                continue
            with self.lock:
                self.sockets |= {client, upstream}
            threading.Thread(target=self._pipe, args=(client, upstream), daemon=True).start()

    def _pipe(self, a: socket.socket, b: socket.socket) -> None:
        try:
            while True:
                ready, _, _ = select.select([a, b], [], [], 1.0)
                for sock in ready:
                    data = sock.recv(65536)
                    if not data:
                        return
                    (b if sock is a else a).sendall(data)
        except (OSError, ValueError):
            return
        finally:
            with self.lock:
                self.sockets -= {a, b}
            for sock in (a, b):
                with contextlib.suppress(OSError):
                    sock.close()


def relayed_kubeconfig(kubeconfig: str, relay: Relay, path: Path) -> Path:
    """A copy of the kubeconfig whose server is the relay (same credentials, same CA)."""
    config = yaml.safe_load(Path(kubeconfig).read_text())
    for cluster in config["clusters"]:
        server = urlparse(cluster["cluster"]["server"])
        cluster["cluster"]["server"] = f"{server.scheme}://127.0.0.1:{relay.port}"
    for key in ("certificate-authority", "client-certificate", "client-key"):
        for section in ("clusters", "users"):
            for entry in config.get(section) or []:
                inner = entry.get("cluster" if section == "clusters" else "user") or {}
                if key in inner and not Path(inner[key]).is_absolute():
                    inner[key] = str(Path(kubeconfig).parent / inner[key])
    path.write_text(yaml.safe_dump(config))
    return path


class Dashboard:
    """`jobchain dashboard` as a process; `url` once it printed where it listens."""

    def __init__(self, args: list[str], log_path: Path) -> None:
        self.args = args
        self.log_path = log_path
        self.proc: subprocess.Popen[bytes] | None = None
        self.url = ""

    def start(self) -> None:
        log = self.log_path.open("ab")
        self.proc = subprocess.Popen(self.args, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)

        def listening() -> str | None:
            if self.proc is not None and self.proc.poll() is not None:
                raise AssertionError(f"jobchain dashboard exited {self.proc.returncode}:\n{self.log()}")
            found = re.search(r"dashboard on (http://\S+/)", self.log())
            return found.group(1) if found else None

        self.url = wait_for(listening, timeout=60, what="jobchain dashboard to listen", interval=0.2)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=15)


def set_viewport(driver: object, width: int, height: int, mobile: bool = False) -> None:
    """The page's viewport exactly (the window's size would include the browser's own frame)."""
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", {  # type: ignore[attr-defined]
        "width": width, "height": height, "deviceScaleFactor": 1, "mobile": mobile,
    })


def wait_js(driver: object, script: str, timeout: float, what: str) -> object:
    """Polls a JavaScript expression in the page until it is truthy."""
    return wait_for(lambda: driver.execute_script(script), timeout=timeout, what=what, interval=0.1)  # type: ignore[attr-defined]


def now() -> float:
    return time.monotonic()
