"""The default output channel ($JOBCHAIN_OUTPUT, the termination message) carries outputs whole
(issue 18 defect 12): the kubelet keeps only the last 4096 bytes of the message, so a longer output
reached the next node as a string of its tail, and the node Succeeded.

The script of a rendered Job is run here by this machine's /bin/sh with the termination message
path pointed at a temporary file; what the kubelet would report (the file's last 4096 bytes, and
the container's stdout as its log) is then read by the observer, as in the cluster.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import signal
import subprocess
from pathlib import Path
from typing import Any

import pytest

from jobchain.api.models import OutputSource
from jobchain.engine.execution.planner import plan
from jobchain.engine.spec.outputs import MAX_OUTPUT_BYTES, parse_output
from jobchain.engine.spec.refs import Scope
from jobchain.engine.spec.render import OUTPUT_PATH, ExecutionRef, render_job
from jobchain.k8s.observe import NodeToRead
from jobchain.k8s.store import Store
from tests.unit.builders import T0, created_nodes, execution, job, node, node_status, observed, spec, with_status
from tests.unit.fakes import NoApi, k8s_job, k8s_pod
from tests.unit.shell_support import kubelet_expand

SH = shutil.which("sh")
needs_sh = pytest.mark.skipif(SH is None or shutil.which("wc") is None, reason="no /bin/sh or wc")

SIX_KB = {"k": "v", "rows": ["x" * 60] * 100}
BIG = {"k": "big", "blob": "é" * (150 * 1024)}  # 300 KiB of two-byte characters
KUBELET_KEEPS = 4096


def _container(workflow_node: dict[str, Any], **pod_template: Any) -> dict[str, Any]:
    wf = spec(node("a", **workflow_node, **({"podTemplate": pod_template} if pod_template else {})))
    manifest = render_job(ExecutionRef("run-1", "ns", "uid", "wf"), wf, wf.nodes[0], Scope({}, "run-1", "ns"))
    return dict(manifest["spec"]["template"]["spec"]["containers"][0])


def _run(container: dict[str, Any], tmp: Path, stdin: str = "") -> tuple[int, str, bytes]:
    """Runs the container's command here: (exit code, the message the kubelet reports, the log)."""
    message_file = tmp / "termination-log"
    message_file.write_bytes(b"")
    env = {"PATH": "/usr/bin:/bin", "JOBCHAIN_OUTPUT": str(message_file)}
    # as the kubelet hands the command to the container: `$$` -> `$`, `$(NAME)` of its env expanded
    argv = [kubelet_expand(arg, env).replace(OUTPUT_PATH, str(message_file)) for arg in container["command"]]
    done = subprocess.run(argv, env=env, input=stdin.encode(), capture_output=True, timeout=30, check=False)
    kept = message_file.read_bytes()[-KUBELET_KEEPS:].decode(errors="replace")
    return done.returncode, kept, done.stdout


class _Cluster(NoApi):
    """The observer, its store holding the finished pod, its log read from what the container wrote."""

    def __init__(self, message: str, log: bytes, containers: int = 1) -> None:
        store = Store()
        store.put_job(k8s_job("a", "job-uid"))
        finished = k8s_pod("a-x", "job-uid", "Succeeded", 0)
        finished["status"]["containerStatuses"][0]["state"]["terminated"]["message"] = message
        finished["spec"] = {"containers": [{"name": f"c{i}"} for i in range(containers)]}
        store.put_pod(finished)
        super().__init__(store)
        self.log = log
        self.asked: list[int] = []

    def log_end(self, pod: dict[str, Any], lines: int) -> bytes | None:
        self.asked.append(lines)
        return b"".join(self.log.splitlines(keepends=True)[-lines:])

    def read(self) -> Any:
        return self.observe("ns", "run-1", "ex-uid", [NodeToRead("a", OutputSource.TERMINATION_MESSAGE)]).jobs["a"]


@needs_sh
@pytest.mark.parametrize("value", [SIX_KB, BIG], ids=["6 KB", "300 KiB"])
def test_a_script_output_over_4096_bytes_reaches_the_operator_whole(value: Any, tmp_path: Path) -> None:
    text = json.dumps(value, ensure_ascii=False)
    (tmp_path / "out.json").write_text(text)
    script = f'echo "some log first"\ncat {tmp_path / "out.json"} > "$JOBCHAIN_OUTPUT"'
    code, message, log = _run(_container({"script": script}), tmp_path)
    seen = _Cluster(message, log).read()
    assert code == 0
    assert parse_output(seen.raw_output, MAX_OUTPUT_BYTES)[0] == value
    assert seen.output_error == ""


@needs_sh
def test_a_small_output_stays_in_the_message_and_no_log_is_read(tmp_path: Path) -> None:
    code, message, log = _run(_container({"script": 'echo \'{"k": 1}\' > "$JOBCHAIN_OUTPUT"; exit 3'}), tmp_path)
    cluster = _Cluster(message, log)
    assert code == 3, "the script's exit code is the container's"
    assert json.loads(cluster.read().raw_output) == {"k": 1} and log == b"" and cluster.asked == []


@needs_sh
def test_the_script_runs_as_before_stdin_and_arguments(tmp_path: Path) -> None:
    code, _, log = _run(_container({"script": 'read line; printf "%s|%s|%s" "$0" "$#" "$line"'}), tmp_path,
                        stdin="from stdin\n")
    assert (code, log) == (0, b"/bin/sh|0|from stdin")


@needs_sh
def test_the_script_gets_the_sigterm_the_container_gets(tmp_path: Path) -> None:
    # A deadline or a cancel stops the pod with SIGTERM: a script's own trap still runs.
    script = "trap 'echo stopped; exit 7' TERM; echo ready; while :; do sleep 1; done"
    argv = _container({"script": script})["command"]
    with subprocess.Popen(argv, stdout=subprocess.PIPE, stdin=subprocess.DEVNULL) as proc:
        assert proc.stdout is not None and proc.stdout.readline() == b"ready\n"
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=20) == 7 and proc.stdout.read() == b"stopped\n"


def test_a_long_message_without_the_marker_fails_the_node_as_cut() -> None:
    # A command node (no shell to wrap) wrote 6 KB: the kubelet kept its last 4096 bytes.
    text = json.dumps(SIX_KB)
    seen = _Cluster(text[-KUBELET_KEEPS:], b"").read()
    assert seen.raw_output is None
    assert "may have been cut" in seen.output_error and "script" in seen.output_error


def test_an_output_whose_log_was_cut_is_not_passed_on() -> None:
    log = b"\njobchain.dev/output-begin 6000\n" + b"x" * 100 + b"\njobchain.dev/output-end 6000\n"
    seen = _Cluster("jobchain.dev/output-in-log 6000 0", log).read()
    assert seen.raw_output is None and "could not be read back whole" in seen.output_error


def test_the_message_limit_counts_the_pods_containers() -> None:
    from jobchain.engine.spec.outputs import read_message, termination_message_limit

    assert termination_message_limit(1) == 4096 and termination_message_limit(4) == 3072
    assert read_message("x" * 3071, 3072).text is not None and read_message("x" * 3072, 3072).error
    # the wrapper is told the limit of the pod it runs in
    assert _container({"script": "true"})["command"][4] == "4096"
    sidecars = [{"name": f"side{i}", "image": "busybox"} for i in range(3)]
    assert _container({"script": "true"}, spec={"containers": sidecars})["command"][4] == "3072"


def test_command_and_log_nodes_are_not_wrapped() -> None:
    assert _container({"command": ["/app", "x"]})["command"] == ["/app", "x"]
    assert _container({"script": "true", "output": {"from": "logs"}})["command"] == ["/bin/sh", "-c", "true"]


def test_a_node_and_an_item_whose_output_was_cut_fail_saying_so() -> None:
    wf = spec(node("a", "b"), node("b"))
    cut = dataclasses.replace(job("a", "Succeeded"), output_error="output may have been cut: ...")
    p = plan(execution(wf), observed(cut), T0)
    a = node_status(p.status, "a")
    assert a.phase == "Failed" and "cut" in (a.message or "") and a.output is None
    assert [j["metadata"]["labels"]["jobchain.dev/node"] for j in p.create] == []


def test_a_fanout_item_whose_output_was_cut_fails() -> None:
    wf = spec(node("each", forEach="[0, 1]"), parallelism=2)
    first = plan(execution(wf), {}, T0)
    assert created_nodes(first) == ["each#0", "each#1"]
    cut = dataclasses.replace(job("each#1", "Succeeded"), output_error="output may have been cut: ...")
    second = plan(with_status(execution(wf), first.status), {"each#0": job("each#0", "Succeeded", "0"), "each#1": cut},
                  T0)
    results = {r.index: r for r in node_status(second.status, "each").itemResults or []}
    assert results[0].phase == "Succeeded" and results[1].phase == "Failed"
    assert "cut" in (results[1].message or "")
    assert node_status(second.status, "each").phase == "Failed"
