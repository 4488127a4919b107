"""Starts the operator: logging, the metrics server, and kopf with our handlers."""

from __future__ import annotations

import logging

import kopf

from jobchain.controller import metrics


def run_operator(namespaces: list[str] | None = None, metrics_port: int = 8080, health_port: int = 8081,
                 log_format: str = "plain", verbose: bool = False) -> int:
    """Runs until stopped (SIGTERM/SIGINT). Watches `namespaces`, or all when None or empty."""
    kopf.configure(verbose=verbose, log_format=kopf.LogFormat.JSON if log_format == "json" else kopf.LogFormat.PLAIN)
    logging.getLogger("kubernetes").setLevel(logging.WARNING)
    logging.getLogger("urllib3").setLevel(logging.WARNING)
    from jobchain.controller import handlers  # noqa: F401  (registers the handlers)

    metrics.serve(metrics_port)
    kopf.run(
        standalone=True,  # one operator per cluster (Deployment strategy Recreate); no peering objects needed
        clusterwide=not namespaces,
        namespaces=namespaces or (),
        liveness_endpoint=f"http://0.0.0.0:{health_port}/healthz" if health_port else None,
    )
    return 0
