"""Arguments and the errors a user can cause without a cluster: one line on stderr, a documented exit status.

The CLI runs as a subprocess (`python -m jobchain.cli.main`), as a user runs it, so that a
traceback or a wrong exit status cannot hide behind an in-process call.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from kubernetes.client.exceptions import ApiException

from jobchain.api.vocabulary import EXECUTIONS, WORKFLOWS
from jobchain.cli.cluster import api_error
from jobchain.cli.errors import CliError
from jobchain.cli.run import parse_params

UNREACHABLE_KUBECONFIG = """\
apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:9"}}]
users: [{name: u, user: {token: t}}]
contexts: [{name: here, context: {cluster: c, user: u, namespace: team-a}}]
current-context: here
"""


def jobchain(*args: str, kubeconfig: str | None = None, stdin: str = "") -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if k not in ("KUBECONFIG", "JOBCHAIN_DEBUG")}
    env["KUBECONFIG"] = kubeconfig or "/nonexistent/jobchain-test/kubeconfig"
    env["HOME"] = "/nonexistent/jobchain-test"  # no ~/.kube/config to fall back to
    env.pop("KUBERNETES_SERVICE_HOST", None)
    return subprocess.run([sys.executable, "-m", "jobchain.cli.main", *args], input=stdin, capture_output=True,
                          text=True, env=env, timeout=60, check=False)


def one_error_line(result: subprocess.CompletedProcess[str]) -> str:
    assert "Traceback" not in result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("jobchain: error: ")
    return lines[0]


@pytest.mark.parametrize("args", [["run", "wf"], ["get", "x"], ["list"], ["logs", "x"], ["cancel", "x"],
                                  ["graph", "wf"]])
def test_missing_kubeconfig_is_one_line_and_exit_4(args: list[str]) -> None:
    result = jobchain(*args)
    assert result.returncode == 4
    line = one_error_line(result)
    assert "/nonexistent/jobchain-test/kubeconfig (KUBECONFIG) does not exist" in line


def test_unreachable_cluster_is_one_line_and_exit_4(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text(UNREACHABLE_KUBECONFIG)
    result = jobchain("list", kubeconfig=str(kubeconfig))
    assert result.returncode == 4
    assert "cannot reach the Kubernetes API server at https://127.0.0.1:9" in one_error_line(result)


def test_unknown_context_is_a_usage_error(tmp_path: Path) -> None:
    kubeconfig = tmp_path / "config"
    kubeconfig.write_text(UNREACHABLE_KUBECONFIG)
    result = jobchain("get", "x", "--context", "there", kubeconfig=str(kubeconfig))
    assert result.returncode == 3
    assert "kubeconfig context 'there' not found" in one_error_line(result)


@pytest.mark.parametrize(
    ("param", "message"),
    [
        ("size", "-p 'size': expected KEY=VALUE"),
        ("=3", "'' is not a param name"),
        ("1st=3", "'1st' is not a param name"),
    ],
)
def test_bad_param_syntax_exits_3_before_touching_the_cluster(param: str, message: str) -> None:
    result = jobchain("run", "wf", "-p", param)  # no kubeconfig: a cluster error would be exit 4
    assert result.returncode == 3
    assert message in one_error_line(result)


def test_run_of_a_bad_file_exits_3_before_touching_the_cluster(tmp_path: Path) -> None:
    path = tmp_path / "wf.yaml"
    path.write_text("apiVersion: jobchain.dev/v1alpha1\nkind: Workflow\nmetadata: {name: w}\n"
                    "spec: {nodes: [{name: a}]}\n")
    result = jobchain("run", str(path))
    assert result.returncode == 3
    assert f"{path}: spec.workflow.nodes[0].image: no image" in one_error_line(result)


def test_a_param_given_twice_exits_3() -> None:
    result = jobchain("run", "wf", "-p", "a=1", "-p", "a=2")
    assert result.returncode == 3
    assert "given twice" in one_error_line(result)


def test_parse_params_keeps_equals_signs_and_empty_values() -> None:
    assert parse_params(["q=a=b", "empty=", "x_1=y"]) == {"q": "a=b", "empty": "", "x_1": "y"}


@pytest.mark.parametrize(
    "args",
    [
        ["nonsense"],
        ["run"],
        ["run", "wf", "--watch", "--wait"],
        ["get", "x", "-o", "table"],
        ["graph", "wf", "--format", "png"],
        ["operator", "--namespace", "a", "--all-namespaces"],
    ],
)
def test_usage_errors_exit_3_not_argparse_2(args: list[str]) -> None:
    result = jobchain(*args)
    assert result.returncode == 3  # 2 means Cancelled
    assert "error:" in result.stderr
    assert "Traceback" not in result.stderr


def test_timeout_must_be_positive() -> None:
    result = jobchain("run", "wf", "--timeout", "0")
    assert result.returncode == 3
    assert "--timeout 0" in one_error_line(result)


def test_help_lists_commands_and_exit_statuses() -> None:
    result = jobchain("--help")
    assert result.returncode == 0
    for word in ("run", "get", "list", "logs", "cancel", "lint", "graph", "operator", "exit status:"):
        assert word in result.stdout


def test_lint_missing_file_exits_3_without_a_traceback(tmp_path: Path) -> None:
    result = jobchain("lint", str(tmp_path / "nope.yaml"))
    assert result.returncode == 3
    assert f"{tmp_path / 'nope.yaml'}: cannot read: No such file or directory" in result.stdout
    assert "Traceback" not in result.stderr


def test_lint_reads_stdin_and_exits_1_on_problems() -> None:
    result = jobchain("lint", "-", stdin="apiVersion: jobchain.dev/v1alpha1\nkind: Workflow\nmetadata: {name: w}\n"
                      "spec: {nodes: [{name: a}]}\n")
    assert result.returncode == 1
    assert result.stdout.startswith("<stdin>: Workflow/w: spec.nodes[0].image: no image")


def test_graph_of_bad_yaml_is_one_line_and_exit_3(tmp_path: Path) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("kind: Workflow\nspec: [\n")
    result = jobchain("graph", str(path))
    assert result.returncode == 3
    assert "not valid YAML" in one_error_line(result)


def test_lint_and_graph_files_do_not_load_the_kubernetes_client(tmp_path: Path) -> None:
    """Offline commands stay fast and work where only the models are installed."""
    code = ("import sys, jobchain.cli.main as m; sys.argv=['jobchain','lint','-']; rc=m.main(); "
            "print(rc, 'kubernetes' in sys.modules, 'kopf' in sys.modules)")
    result = subprocess.run([sys.executable, "-c", code], input="", capture_output=True, text=True, check=False)
    assert result.stdout.strip().splitlines()[-1] == "0 False False"


def test_a_bug_is_one_line_with_exit_5_and_a_traceback_only_on_request(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    from jobchain.cli import main as cli_main

    def broken(*_: object) -> int:
        raise KeyError("oops")

    monkeypatch.setattr(cli_main, "dispatch", broken)
    monkeypatch.delenv("JOBCHAIN_DEBUG", raising=False)
    assert cli_main.main(["list"]) == 5
    err = capsys.readouterr().err
    assert err == ("jobchain: error: unexpected KeyError: 'oops'; this is a bug in jobchain, please report it "
                   "with the traceback that JOBCHAIN_DEBUG=1 shows\n")
    monkeypatch.setenv("JOBCHAIN_DEBUG", "1")
    with pytest.raises(KeyError):
        cli_main.main(["list"])


# ---- translation of API errors (pure) ---------------------------------------------------
def api_exception(status: int, body: object) -> ApiException:
    exc = ApiException(status=status, reason="Not Found" if status == 404 else "Error")
    exc.body = body if isinstance(body, str) else json.dumps(body)
    return exc


def test_404_without_a_status_body_means_the_crds_are_not_installed() -> None:
    err = api_error(api_exception(404, "404 page not found"), EXECUTIONS, "x", "ns")
    assert err.code == 4
    assert "the jobchain CRDs are not installed" in err.message
    assert "kubectl apply -f crds/" in err.message


def test_404_of_an_object_names_it_and_is_a_usage_error() -> None:
    body = {"kind": "Status", "reason": "NotFound", "message": 'workflows.jobchain.dev "etl" not found',
            "details": {"name": "etl", "group": "jobchain.dev", "kind": "workflows"}}
    err = api_error(api_exception(404, body), WORKFLOWS, "etl", "team-a")
    assert (err.code, err.message) == (3, "workflow 'etl' not found in namespace 'team-a'; list them with "
                                          "`kubectl get workflows -n team-a`")


def test_404_of_the_namespace_says_so() -> None:
    body = {"kind": "Status", "message": 'namespaces "nope" not found',
            "details": {"name": "nope", "kind": "namespaces"}}
    err = api_error(api_exception(404, body), EXECUTIONS, None, "nope")
    assert err.message == "namespace 'nope' does not exist; pick another with -n/--namespace"


def test_403_is_a_cluster_error_that_names_the_resource() -> None:
    body = {"kind": "Status", "message": 'workflowexecutions.jobchain.dev is forbidden: User "bob" cannot list'}
    err = api_error(api_exception(403, body), EXECUTIONS, None, "ns")
    assert err.code == 4
    assert err.message.startswith("forbidden: workflowexecutions.jobchain.dev is forbidden")
    assert "RBAC" in err.message


def test_cli_error_defaults_to_usage() -> None:
    assert CliError("x").code == 3
