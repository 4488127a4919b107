"""The operator's RBAC is exactly what its code calls: no missing right, no unused right.

The calls are read from the code itself (its syntax tree): every Kubernetes client method the
operator's modules call (`create_namespaced_job`, `get_namespaced_custom_object(..., plural)`,
...), every resource kopf is told to watch (`@kopf.on.event(group, version, plural)`), and what
kopf itself lists and watches to discover resources and namespaces. They are compared, both
ways, with the rules manifests/ (kustomize base and namespaced overlay) and the Helm chart ship.
The e2e tier checks the same rules from the other side: its operator runs with nothing more.
"""

from __future__ import annotations

import ast
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from .rbac_support import (
    CLIENT_METHOD,
    CLUSTER_METHOD,
    CUSTOM_METHOD,
    KINDS,
    PLURAL_ARG,
    VERBS,
    Right,
    compare,
    granted,
)

ROOT = Path(__file__).resolve().parents[2]
PACKAGE = ROOT / "operator" / "jobchain"
# The operator process: everything but the CLI and the Python SDK (which run as their user, with
# the user's rights).
OPERATOR_CODE = sorted(p for p in PACKAGE.rglob("*.py") if not {"cli", "sdk"} & set(p.relative_to(PACKAGE).parts))

# kopf lists and watches CRDs to find the resources it serves, and namespaces to match
# namespace patterns (`--namespace 'team-*'`); neither appears as a call in our code.
KOPF_OWN: set[Right] = {
    ("apiextensions.k8s.io", "customresourcedefinitions", "list"),
    ("apiextensions.k8s.io", "customresourcedefinitions", "watch"),
    ("", "namespaces", "list"),
    ("", "namespaces", "watch"),
}
# Not API calls: the verbs the run admission policy (jobchain-run-rights) asks of whoever writes a
# run, here the operator writing a schedule's executions (docs/security.md).
ADMISSION_RIGHTS: set[Right] = {("", "serviceaccounts", "use"), ("jobchain.dev", "privileged", "use")}


class Code:
    """The operator's modules, parsed, with the string constants they define."""

    def __init__(self, paths: list[Path]) -> None:
        self.trees = {p: ast.parse(p.read_text(), str(p)) for p in paths}
        self.constants: dict[str, str] = {}
        for tree in self.trees.values():
            for stmt in tree.body:
                if (isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 and isinstance(stmt.targets[0], ast.Name)
                        and isinstance(stmt.value, ast.Constant) and isinstance(stmt.value.value, str)):
                    self.constants[stmt.targets[0].id] = stmt.value.value

    def calls(self) -> Iterator[tuple[ast.Call, list[ast.FunctionDef]]]:
        """Every call, with the functions it sits in (innermost last)."""
        def walk(node: ast.AST, scope: list[ast.FunctionDef]) -> Iterator[tuple[ast.Call, list[ast.FunctionDef]]]:
            for child in ast.iter_child_nodes(node):
                inner = [*scope, child] if isinstance(child, ast.FunctionDef | ast.AsyncFunctionDef) else scope
                if isinstance(child, ast.Call):
                    yield child, scope
                yield from walk(child, inner)  # type: ignore[arg-type]

        for tree in self.trees.values():
            yield from walk(tree, [])

    def values(self, expr: ast.expr, scope: list[ast.FunctionDef], arg_index: int | None = None,
               depth: int = 0) -> set[str]:
        """The strings `expr` can be: a literal, a module constant, or a parameter of the enclosing
        function, resolved at each of that function's call sites."""
        if isinstance(expr, ast.Constant) and isinstance(expr.value, str):
            return {expr.value}
        if isinstance(expr, ast.Name) and expr.id in self.constants:
            return {self.constants[expr.id]}
        if isinstance(expr, ast.Name) and scope and depth < 3:
            func = scope[-1]
            params = [a.arg for a in func.args.args]
            if expr.id in params:
                index = params.index(expr.id) - (1 if params and params[0] == "self" else 0)
                found: set[str] = set()
                sites = 0
                for call, outer in self.calls():
                    name = call.func.attr if isinstance(call.func, ast.Attribute) else getattr(call.func, "id", None)
                    if name != func.name:
                        continue
                    sites += 1
                    arg = next((k.value for k in call.keywords if k.arg == expr.id), None)
                    if arg is None and index < len(call.args):
                        arg = call.args[index]
                    if arg is not None:
                        found |= self.values(arg, outer, depth=depth + 1)
                if found:
                    return found
                if not sites:
                    # A function of the shared access layer (k8s.api) that only the CLI calls: the
                    # operator never calls it, so it needs no right of the operator's.
                    return set()
        raise AssertionError(f"cannot tell which resource {ast.unparse(expr)!r} names (line {expr.lineno}); "
                             "pass a constant, or teach tests/unit/test_rbac_calls.py")


def calls_made(code: Code) -> set[Right]:
    """Every (group, resource, verb) the operator's code asks of the API server."""
    rights = set(KOPF_OWN) | ADMISSION_RIGHTS
    for call, scope in code.calls():
        func = call.func
        if not isinstance(func, ast.Attribute):
            continue
        if (m := CUSTOM_METHOD.match(func.attr)) is not None:
            plural_expr = next((k.value for k in call.keywords if k.arg == "plural"), None)
            plural_expr = plural_expr or call.args[PLURAL_ARG]
            group = code.values(call.args[0], scope)
            for g in group:
                for plural in code.values(plural_expr, scope):
                    rights.add((g, plural + ("/status" if m.group(2) else ""), VERBS[m.group(1)]))
        elif (m := CLUSTER_METHOD.match(func.attr)) is not None:
            group, resource = KINDS[m.group(2)]
            rights.add((group, resource, VERBS[m.group(1)]))
        elif (m := CLIENT_METHOD.match(func.attr)) is not None:
            verb, kind, status = (m.group(1), m.group(2), m.group(3)) if m.group(1) else m.group(4, 5, 6)
            assert kind in KINDS, f"{func.attr}: add the kind {kind!r} to KINDS in tests/unit/rbac_support.py"
            group, resource = KINDS[kind]
            rights.add((group, resource + ("/status" if status else ""), VERBS[verb]))
        elif ast.unparse(func) == "kopf.on.event":
            group, _version, plural = (code.values(a, scope) for a in call.args[:3])
            for g in group:
                for p in plural:
                    rights |= {(g, p, "list"), (g, p, "watch")}
        elif ast.unparse(func) in ("kopf.on.startup", "kopf.on.cleanup"):
            continue  # process hooks: no API call of their own
        elif ast.unparse(func).startswith("kopf.on."):
            raise AssertionError(f"{ast.unparse(func)}: a kopf handler kind this test does not know; what does it "
                                 "need (kopf may patch objects for state)? Teach tests/unit/test_rbac_calls.py")
    return rights


def _docs(path: Path) -> list[dict[str, Any]]:
    return [d for d in yaml.safe_load_all(path.read_text()) if d]


def _role(docs: list[dict[str, Any]], kind: str, name: str) -> list[dict[str, Any]]:
    return list(next(d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name)["rules"])


def _chart_rules() -> set[Right]:
    """The chart's operator rules (the jobchain.operatorRules helper) and its discovery ClusterRole, read
    from the templates without helm (test_manifests renders them with helm where it is built)."""
    helpers = (ROOT / "charts/jobchain/templates/_helpers.tpl").read_text()
    block = helpers.split('{{- define "jobchain.operatorRules" -}}', 1)[1].split("{{- end -}}", 1)[0]
    block += helpers.split('{{- define "jobchain.secretRules" -}}', 1)[1].split("{{- end -}}", 1)[0]
    rbac = (ROOT / "charts/jobchain/templates/rbac.yaml").read_text()
    discovery = rbac.split("rules:\n", 1)[1].split("---", 1)[0]
    leases = helpers.split('{{- define "jobchain.leaseRules" -}}', 1)[1].split("{{- end -}}", 1)[0]
    leases = re.sub(r"\{\{.*?\}\}", "lease-name", leases)
    return granted(yaml.safe_load(block)) | granted(yaml.safe_load(discovery)) | granted(yaml.safe_load(leases))


def shipped() -> dict[str, set[Right]]:
    base = _docs(ROOT / "manifests/base/rbac.yaml")
    overlay = _docs(ROOT / "manifests/overlays/namespaced/watched-namespace.yaml")
    # Cluster-scoped reads, and the leader election Lease in the operator's own namespace.
    discovery = (granted(_role(base, "ClusterRole", "jobchain-operator-discovery"))
                 | granted(_role(base, "Role", "jobchain-operator-leader-election")))
    return {
        "manifests/base": granted(_role(base, "ClusterRole", "jobchain-operator")) | discovery,
        "manifests/overlays/namespaced": granted(_role(overlay, "Role", "jobchain-operator")) | discovery,
        "charts/jobchain": _chart_rules(),
    }


USED = calls_made(Code(OPERATOR_CODE))


def test_the_calls_found_include_what_the_operator_is_known_to_do() -> None:
    # A floor for the scanner itself: if it stopped seeing calls, the comparison would be empty.
    assert {("batch", "jobs", "create"), ("jobchain.dev", "workflowexecutions/status", "patch"),
            ("jobchain.dev", "workflowexecutions", "delete"), ("", "pods/log", "get"), ("", "pods", "watch"),
            ("jobchain.dev", "workflows", "get")} <= USED


@pytest.mark.parametrize("where", ["manifests/base", "manifests/overlays/namespaced", "charts/jobchain"])
def test_shipped_rbac_is_exactly_what_the_code_calls(where: str) -> None:
    missing, unused = compare(USED, shipped()[where])
    assert not missing, f"{where} lacks rights the operator uses (it would get 403): {sorted(missing)}"
    assert not unused, f"{where} grants rights the operator never uses: {sorted(unused)}"


def test_one_missing_or_one_extra_rule_is_caught() -> None:
    rights = shipped()["manifests/base"]
    dropped = ("jobchain.dev", "workflowexecutions", "delete")
    assert compare(USED, rights - {dropped}) == ({dropped}, set())
    extra = ("", "pods", "delete")
    assert compare(USED, rights | {extra}) == (set(), {extra})


def test_a_new_call_in_the_code_is_seen(tmp_path: Path) -> None:
    module = tmp_path / "extra.py"
    module.write_text("def f(core):\n"
                      "    core.delete_namespaced_pod('p', 'ns')\n"
                      "    core.list_secret_for_all_namespaces()\n")
    assert calls_made(Code([*OPERATOR_CODE, module])) - USED == {("", "pods", "delete"), ("", "secrets", "list")}
