"""The in-cluster dashboard's ClusterRole is exactly what its code calls: no missing right, no unused one.

As tests/unit/test_rbac_calls.py does for the operator, the calls are read from the code's syntax
tree: the client methods the dashboard's modules call (`list_namespaced_pod`, `create_token_review`,
...), and for the jobchain kinds, which of the read-only client's wrappers (`list_objects`, `get`,
`watch`) each plural is passed to, and what each wrapper asks of the API server. The chart's rules
are compared with them both ways: a right it lacks is a 403 in a viewer's page, one it has and
never uses is a door left open (it once granted Jobs, never read, and lacked `list namespaces`).
"""

from __future__ import annotations

import ast
import re
from pathlib import Path
from typing import Any

import yaml

from jobchain.api import vocabulary
from tests.unit.rbac_support import CLIENT_METHOD, CUSTOM_METHOD, KINDS, VERBS, Right, compare, granted

ROOT = Path(__file__).resolve().parents[2]
DASHBOARD = ROOT / "operator" / "jobchain" / "cli" / "dashboard"
CHART = ROOT / "charts" / "jobchain" / "templates" / "dashboard.yaml"
GROUP = "jobchain.dev"
OTHER_CALLS: dict[str, Right] = {
    "list_namespace": ("", "namespaces", "list"),
    "create_token_review": ("authentication.k8s.io", "tokenreviews", "create"),
    "create_subject_access_review": ("authorization.k8s.io", "subjectaccessreviews", "create"),
}


def _wrappers(tree: ast.Module) -> dict[str, set[str]]:
    """The read-only client's methods -> the verbs their custom-object calls ask for."""
    verbs: dict[str, set[str]] = {}
    for cls in (n for n in tree.body if isinstance(n, ast.ClassDef) and n.name == "ReadOnlyClient"):
        for method in (n for n in cls.body if isinstance(n, ast.FunctionDef)):
            found: set[str] = set()
            for node in ast.walk(method):
                if isinstance(node, ast.Attribute) and (m := CUSTOM_METHOD.match(node.attr)):
                    found.add(VERBS[m.group(1)])
                if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.func.attr == "stream":
                    found.add("watch")  # watch.Watch().stream(list_...): a list with watch=true
            if found:
                verbs[method.name] = found
    return verbs


def calls_made(paths: list[Path]) -> set[Right]:
    trees = {p.name: ast.parse(p.read_text(), str(p)) for p in paths}
    kube = trees["kube.py"]
    # the plurals' names, as the dashboard imports them from the one vocabulary module
    plurals = {name: value for name, value in vars(vocabulary).items()
               if isinstance(value, str) and value in ("workflows", "workflowexecutions")}
    wrappers = _wrappers(kube)
    rights: set[Right] = set()
    for tree in trees.values():
        for node in ast.walk(tree):
            if not isinstance(node, ast.Attribute):
                continue
            if node.attr in OTHER_CALLS:
                rights.add(OTHER_CALLS[node.attr])
            elif CUSTOM_METHOD.match(node.attr) or node.attr == "list_cluster_custom_object":
                continue  # inside the wrappers: counted where a plural is passed to them, below
            elif (m := CLIENT_METHOD.match(node.attr)) is not None:
                verb, kind, status = (m.group(1), m.group(2), m.group(3)) if m.group(1) else m.group(4, 5, 6)
                assert kind in KINDS, f"{node.attr}: add the kind {kind!r} to KINDS in tests/unit/rbac_support.py"
                group, resource = KINDS[kind]
                rights.add((group, resource + ("/status" if status else ""), VERBS[verb]))
        for call in (n for n in ast.walk(tree) if isinstance(n, ast.Call)):
            # client.get(WORKFLOWS, ...), or handed to a thread: asyncio.to_thread(client.get, WORKFLOWS, ...)
            for func, args in [(call.func, call.args)] + [(a, call.args[i + 1:]) for i, a in enumerate(call.args)]:
                if isinstance(func, ast.Attribute) and func.attr in wrappers and args:
                    first = args[0]
                    if isinstance(first, ast.Name) and first.id in plurals:
                        rights |= {(GROUP, plurals[first.id], v) for v in wrappers[func.attr]}
    return rights


# Calls the dashboard makes but the in-cluster role deliberately does not grant: the code falls back
# when the API server says 403 (kube.output_value: edges decided on the previews status holds). Reading
# ConfigMaps could only be granted in every namespace, far more than whole outputs need.
DENIED_ON_PURPOSE: set[Right] = {("", "configmaps", "get")}


def chart_rules() -> set[Right]:
    """The dashboard's ClusterRole, read from its template without helm."""
    text = CHART.read_text()
    block = text.split("kind: ClusterRole\n", 1)[1].split("rules:\n", 1)[1].split("---", 1)[0]
    rules: list[dict[str, Any]] = yaml.safe_load(re.sub(r"\{\{.*?\}\}", "", block))
    return granted(rules)


CALLED = calls_made(sorted(DASHBOARD.glob("*.py")))
USED = CALLED - DENIED_ON_PURPOSE


def test_the_calls_found_include_what_the_dashboard_is_known_to_do() -> None:
    assert {(GROUP, "workflowexecutions", "watch"), (GROUP, "workflows", "get"), ("", "pods/log", "get"),
            ("", "pods", "list"), ("", "namespaces", "list"),
            ("authorization.k8s.io", "subjectaccessreviews", "create")} <= USED


def test_the_dashboard_role_is_exactly_what_the_code_calls() -> None:
    missing, unused = compare(USED, chart_rules())
    assert not missing, f"the dashboard's ClusterRole lacks rights it uses (a viewer gets 403): {sorted(missing)}"
    assert not unused, f"the dashboard's ClusterRole grants rights it never uses: {sorted(unused)}"


def test_rights_denied_on_purpose_are_called_and_never_granted() -> None:
    """The fallback is real code (the call is there) and the role never grants the right."""
    assert DENIED_ON_PURPOSE <= CALLED
    assert not DENIED_ON_PURPOSE & chart_rules()


def test_one_missing_or_one_extra_rule_is_caught() -> None:
    rights = chart_rules()
    dropped = ("", "namespaces", "list")
    assert compare(USED, rights - {dropped}) == ({dropped}, set())
    extra = ("batch", "jobs", "list")
    assert compare(USED, rights | {extra}) == (set(), {extra})
