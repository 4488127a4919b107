"""Starts the operator: logging, the metrics server, and kopf with our handlers."""

from __future__ import annotations

import contextlib
import ctypes
import logging

import kopf

from jobchain.controller import election_loop as leader
from jobchain.controller import metrics
from jobchain.engine.coordination.election import Timing


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


def release_free_heap() -> None:
    """Gives the C heap's free pages back to the system (glibc's malloc_trim).

    Why: glibc keeps what it freed for reuse, so after a pass of a large execution (hundreds of
    MiB of parsed JSON and models, freed when it ends) the operator's resident memory, which its
    container limit counts, stayed at that pass's peak (docs/performance.md). A few milliseconds;
    no effect where the C library is not glibc.
    """
    with contextlib.suppress(OSError, AttributeError):
        ctypes.CDLL("libc.so.6").malloc_trim(0)


def run_operator(namespaces: list[str] | None = None, metrics_port: int = 8080, health_port: int = 8081,
                 log_format: str = "plain", verbose: bool = False, bind_address: str = "0.0.0.0",
                 leader_election: leader.Settings | None = None) -> int:
    """Runs until stopped (SIGTERM/SIGINT). Watches `namespaces`, or all when None or empty.

    `leader_election`: run as one of several replicas, acting only while holding that Lease
    (controller/leader.py). None: act alone, at once (one replica, or an operator on a laptop).

    The metrics and health servers listen on `bind_address` (all interfaces by default, as a pod
    needs for its probes and for Prometheus; 127.0.0.1 keeps them off the network elsewhere)."""
    _few_malloc_arenas()
    kopf.configure(verbose=verbose, log_format=kopf.LogFormat.JSON if log_format == "json" else kopf.LogFormat.PLAIN)
    logging.getLogger("kubernetes").setLevel(logging.WARNING)
    logging.getLogger("urllib3").setLevel(logging.WARNING)
    if leader_election is not None:
        problems = leader_election.timing.problems()
        if problems:
            raise ValueError("leader election: " + "; ".join(problems))
    leader.SETTINGS = leader_election
    from jobchain.controller import handlers  # noqa: F401  (registers the handlers)

    metrics.serve(metrics_port, bind_address)
    kopf.run(
        # No kopf peering: replicas take turns through jobchain's own Lease (controller/leader.py),
        # which Kubernetes users know from every other controller.
        standalone=True,
        clusterwide=not namespaces,
        namespaces=namespaces or (),
        liveness_endpoint=f"http://{_host(bind_address)}:{health_port}/healthz" if health_port else None,
    )
    return 0


def leader_settings(enabled: bool, namespace: str | None, name: str, lease_duration: float, renew_deadline: float,
                    retry_period: float) -> leader.Settings | None:
    """The election's settings from the command line; the Lease lives in the operator's own namespace."""
    if not enabled:
        return None
    if not namespace:
        raise ValueError("--leader-elect needs the operator's namespace for its Lease: set --lease-namespace "
                         "or JOBCHAIN_OPERATOR_NAMESPACE (the shipped Deployment sets it from the downward API)")
    timing = Timing(lease_duration, renew_deadline, retry_period)
    if timing.problems():
        raise ValueError("; ".join(timing.problems()))
    return leader.Settings(namespace, name, timing)
