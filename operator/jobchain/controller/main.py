"""Starts the operator: logging, the metrics server, and kopf with our handlers."""

from __future__ import annotations

import contextlib
import ctypes
import logging

import kopf

from jobchain.controller import metrics


def _host(address: str) -> str:
    """An address as the host part of a URL (IPv6 in brackets)."""
    return f"[{address}]" if ":" in address and not address.startswith("[") else address


M_ARENA_MAX = -8  # glibc's mallopt() parameter


def _few_malloc_arenas() -> None:
    """Caps glibc's malloc arenas at 2 (what MALLOC_ARENA_MAX=2 does, set before any thread starts).

    Why: glibc gives each thread that allocates its own arena, up to 8 per core; the reconcile
    threads decode API responses in parallel and each arena keeps its high-water mark, which made
    the operator's resident memory grow with the thread count rather than with the work held
    (see docs/performance.md). No effect where the C library is not glibc.
    """
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").mallopt(M_ARENA_MAX, 2)


def run_operator(namespaces: list[str] | None = None, metrics_port: int = 8080, health_port: int = 8081,
                 log_format: str = "plain", verbose: bool = False, bind_address: str = "0.0.0.0") -> int:
    """Runs until stopped (SIGTERM/SIGINT). Watches `namespaces`, or all when None or empty.

    The metrics and health servers listen on `bind_address` (all interfaces by default, as a pod
    needs for its probes and for Prometheus; 127.0.0.1 keeps them off the network elsewhere)."""
    _few_malloc_arenas()
    kopf.configure(verbose=verbose, log_format=kopf.LogFormat.JSON if log_format == "json" else kopf.LogFormat.PLAIN)
    logging.getLogger("kubernetes").setLevel(logging.WARNING)
    logging.getLogger("urllib3").setLevel(logging.WARNING)
    from jobchain.controller import handlers  # noqa: F401  (registers the handlers)

    metrics.serve(metrics_port, bind_address)
    kopf.run(
        standalone=True,  # one operator per cluster (Deployment strategy Recreate); no peering objects needed
        clusterwide=not namespaces,
        namespaces=namespaces or (),
        liveness_endpoint=f"http://{_host(bind_address)}:{health_port}/healthz" if health_port else None,
    )
    return 0
