"""`python -m jobchain.controller`: runs the operator without the CLI (used by the e2e tier)."""

from __future__ import annotations

import argparse
import sys

from jobchain.controller.main import run_operator


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jobchain.controller")
    parser.add_argument("--namespace", "-n", action="append", default=[],
                        help="namespace (or kopf glob pattern) to watch; repeatable; default all")
    parser.add_argument("--metrics-port", type=int, default=8080)
    parser.add_argument("--health-port", type=int, default=8081)
    parser.add_argument("--bind-address", default="0.0.0.0", help="address of the metrics and health servers")
    parser.add_argument("--log-format", choices=["plain", "json"], default="plain")
    parser.add_argument("--verbose", action="store_true")
    args = parser.parse_args(argv)
    return run_operator(args.namespace or None, args.metrics_port, args.health_port, args.log_format, args.verbose,
                        args.bind_address)


if __name__ == "__main__":
    sys.exit(main())
