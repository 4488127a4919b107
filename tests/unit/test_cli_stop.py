"""`jobchain stop`: sets spec.stop on a running execution (a merge patch), leaves an ended one."""

from __future__ import annotations

import io

from jobchain.api.vocabulary import EXECUTIONS
from jobchain.cli import commands
from jobchain.cli.main import build_parser

from .fakes import FakeCluster, execution


def test_stop_patches_a_running_execution_and_leaves_an_ended_one() -> None:
    cluster = FakeCluster()
    cluster.objects[(EXECUTIONS, "a")] = execution("a", "Running", [])
    cluster.objects[(EXECUTIONS, "b")] = execution("b", "Cancelled", [])
    out = io.StringIO()
    assert commands.stop_execution(cluster, "a", out) == 0
    assert commands.stop_execution(cluster, "b", out) == 0
    assert cluster.stopped == ["a"] and cluster.patched == []
    lines = out.getvalue().splitlines()
    assert lines[0].startswith("a: stop requested (nothing new starts; running nodes finish, then the finally")
    assert lines[1] == "b already ended (Cancelled); nothing to stop"


def test_stop_is_a_command_of_the_cli() -> None:
    args = build_parser().parse_args(["stop", "etl-x7k2p"])
    assert (args.command, args.execution) == ("stop", "etl-x7k2p")
