"""`jobchain lint` accepts exactly what the API server accepts (defect 15).

A table of files, each given to `jobchain lint` and to `kubectl apply --dry-run=server` against
the real cluster with this branch's CRDs: both must accept it, or both refuse it. A second,
short table holds what the API server stores but the operator refuses (rules no schema can
say: a cycle, a nesting depth): lint refuses those too, because a file that lints clean must
also run.
"""

from __future__ import annotations

import io
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from jobchain.api import limits
from jobchain.api.vocabulary import API_VERSION
from jobchain.cli.lint import run_lint
from tests.e2e.support import BUSYBOX, Objects, install_crds, tool, wait_for, workflow
from tests.support import alias_bomb_lines, nested_all

API = API_VERSION


def wf(*nodes: dict[str, Any], **spec: Any) -> str:
    body = {"apiVersion": API, "kind": "Workflow", "metadata": {"name": "w"},
            "spec": {"nodes": list(nodes) or [{"name": "a", "image": "busybox", "script": "true"}], **spec}}
    return yaml.safe_dump(body, width=10**6)


def node(name: str = "a", **fields: Any) -> dict[str, Any]:
    return {"name": name, "image": "busybox", **({"script": "true"} if not ({"command", "args"} & set(fields))
                                                   else {}), **fields}


def ex(**spec: Any) -> str:
    return yaml.safe_dump({"apiVersion": API, "kind": "WorkflowExecution", "metadata": {"name": "e"}, "spec": spec},
                          width=10**6)


def raw_node(extra: str) -> str:
    return (f"apiVersion: {API}\nkind: Workflow\nmetadata: {{name: w}}\nspec:\n  nodes:\n"
            f"  - name: a\n    image: busybox\n    script: 'true'\n{extra}")


def bomb() -> str:
    lines = alias_bomb_lines(9)
    return raw_node("    podTemplate:\n" + "".join(f"      {line}\n" for line in lines))


B = node("b")
COND = {"node": "b", "type": "condition"}

# (id, file text, accepted)
AGREE: list[tuple[str, str, bool]] = [
    ("minimal workflow", wf(), True),
    ("args at 200", wf(node(command=["echo"], args=["x"] * limits.MAX_ARGS)), True),
    ("args at 201", wf(node(command=["echo"], args=["x"] * (limits.MAX_ARGS + 1))), False),
    ("command at 101", wf(node(command=["x"] * (limits.MAX_COMMAND + 1))), False),
    ("env at 100", wf(node(env=[{"name": f"E{i}", "value": "v"} for i in range(limits.MAX_ENV)])), True),
    ("env at 101", wf(node(env=[{"name": f"E{i}", "value": "v"} for i in range(limits.MAX_ENV + 1)])), False),
    ("next at 101", wf(node(next=[{"node": f"n{i}"} for i in range(limits.MAX_EDGES + 1)]),
                       *[node(f"n{i}") for i in range(limits.MAX_EDGES + 1)]), False),
    ("when at 1024", wf(node(next=[{**COND, "when": "true" + " " * (limits.MAX_WHEN - 4)}]), B), True),
    ("when at 1025", wf(node(next=[{**COND, "when": "true" + " " * (limits.MAX_WHEN - 3)}]), B), False),
    ("script at 65536", wf(node(script="#" * limits.MAX_TEXT)), True),
    ("script at 65537", wf(node(script="#" * (limits.MAX_TEXT + 1))), False),
    ("params at 101", wf(params=[{"name": f"p{i}", "default": "x"} for i in range(limits.MAX_PARAMS + 1)]), False),
    ("param default too long", wf(params=[{"name": "p", "default": "x" * (limits.MAX_PARAM_VALUE + 1)}]), False),
    ("timeoutSeconds at int32 max", wf(node(timeoutSeconds=2**31 - 1)), True),
    ("timeoutSeconds over int32", wf(node(timeoutSeconds=2**31)), False),
    ("30-digit timeoutSeconds", raw_node("    timeoutSeconds: " + "9" * 30 + "\n"), False),
    ("5,000-digit timeoutSeconds", raw_node("    timeoutSeconds: " + "9" * 5000 + "\n"), False),
    # (under a field the pod schema knows: an unknown one, as `x`, is refused by lint and the operator)
    ("30-digit number in podTemplate", raw_node("    podTemplate: {metadata: {annotations: {x: " + "9" * 30
                                                 + "}}}\n"), True),
    ("5,000-digit number in podTemplate", raw_node("    podTemplate: {metadata: {annotations: {x: " + "9" * 5000
                                                   + "}}}\n"), True),
    ("alias bomb", bomb(), False),
    ("nesting past kubectl's 10,000", raw_node("    podTemplate: " + "{a: " * 10_050 + "1" + "}" * 10_050 + "\n"),
     False),
    ("duplicate node names", wf(node("a"), node("a")), False),
    ("script and command", wf(node(script="true", command=["echo"])), False),
    ("unknown field", wf(node(scirpt="true")), False),
    ("edge with on:", raw_node("    next: [{node: b, on: failure}]\n  - {name: b, image: busybox, script: 'true'}\n"),
     False),
    ("when without condition", wf(node(next=[{"node": "b", "when": "true"}]), B), False),
    ("execution with workflowRef", ex(workflowRef={"name": "w"}, params={"p": "1"}), True),
    ("execution with both", ex(workflowRef={"name": "w"}, workflow={"nodes": [node()]}), False),
    ("execution with neither", ex(params={"p": "1"}), False),
    ("execution params at 101", ex(workflowRef={"name": "w"}, params={f"p{i}": "x" for i in range(101)}), False),
    ("execution param value too long", ex(workflowRef={"name": "w"}, params={"p": "x" * 8193}), False),
]

# What the API server stores but the operator would refuse (Ready=False, InvalidWorkflow): lint refuses.
OPERATOR_ONLY: list[tuple[str, str]] = [
    ("cycle", wf(node("a", next=[{"node": "b"}]), node("b", next=[{"node": "a"}]))),
    ("podTemplate 40 levels deep", raw_node("    podTemplate: " + "{a: " * 40 + "1" + "}" * 40 + "\n")),
    ("unknown param reference", wf(node(script="echo $(params.nope)"))),
    ("unknown pod field", raw_node("    podTemplate: {spec: {nodeSelektor: {disk: ssd}}}\n")),
    ("when that is not a bool", wf(node(next=[{**COND, "when": "output.rows + 1"}]), B)),
]


@pytest.fixture(scope="module")
def crds(kubeconfig: str) -> None:
    install_crds(kubeconfig)


def lint_accepts(path: Path) -> tuple[bool, str]:
    out = io.StringIO()
    code = run_lint([str(path)], out)
    assert code in (0, 1), out.getvalue()  # never "a bug in jobchain"
    return code == 0, out.getvalue()


def server_accepts(kubeconfig: str, namespace: str, path: Path) -> tuple[bool, str]:
    result = subprocess.run(
        [tool("kubectl"), "--kubeconfig", kubeconfig, "-n", namespace, "apply", "--dry-run=server", "-f", str(path)],
        capture_output=True, text=True, timeout=120, check=False,
    )
    return result.returncode == 0, (result.stdout + result.stderr)[-600:]


@pytest.mark.parametrize(("text", "accepted"), [c[1:] for c in AGREE], ids=[c[0] for c in AGREE])
def test_lint_agrees_with_the_api_server(crds: None, kubeconfig: str, namespace: str, tmp_path: Path, text: str,
                                         accepted: bool) -> None:
    path = tmp_path / "object.yaml"
    path.write_text(text)
    server, said = server_accepts(kubeconfig, namespace, path)
    lint, linted = lint_accepts(path)
    assert server == accepted, f"the API server said: {said}"
    assert lint == accepted, f"lint said: {linted}"


@pytest.mark.parametrize("text", [c[1] for c in OPERATOR_ONLY], ids=[c[0] for c in OPERATOR_ONLY])
def test_lint_also_refuses_what_only_the_operator_refuses(crds: None, kubeconfig: str, namespace: str,
                                                          tmp_path: Path, text: str) -> None:
    path = tmp_path / "object.yaml"
    path.write_text(text)
    server, said = server_accepts(kubeconfig, namespace, path)
    lint, _ = lint_accepts(path)
    assert server, f"the API server said: {said}"
    assert not lint


@pytest.mark.usefixtures("operator")
def test_a_costly_when_is_refused_at_once_while_other_executions_run(objects: Objects) -> None:
    """Defect 14 on the real operator: a 190-character `when` (about 60 CPU-s to check before)."""
    objects.create(workflow("costly", [{"name": "a", "script": "true",
                                        "next": [{"node": "b", "type": "condition", "when": nested_all(6)}]},
                                       {"name": "b", "script": "true"}]))
    # Node deadline and wait are long: on the shared 2-core machine a `true` pod has taken over 120 s.
    objects.create(workflow("plain", [{"name": "a", "script": "true", "next": [{"node": "b"}]},
                                      {"name": "b", "script": "true"}],
                            defaults={"image": BUSYBOX, "timeoutSeconds": 600}))
    ready = wait_for(lambda: next((c for c in (objects.workflow("costly").get("status") or {}).get("conditions", [])
                                   if c["type"] == "Ready"), None), 30, "Ready condition")
    assert ready["status"] == "False" and "costs more than 20000 evaluation steps" in ready["message"]
    costly = objects.run("costly")
    assert (costly["status"]["phase"], costly["status"]["reason"]) == ("Failed", "InvalidWorkflow")
    plain = objects.run("plain", timeout=600)
    assert plain["status"]["phase"] == "Succeeded", plain["status"]
