"""One vocabulary: the names jobchain writes into the cluster are spelled only in api/vocabulary.py;
every other module imports them (a second spelling is how two of them drifted apart)."""

from __future__ import annotations

import ast
from pathlib import Path

from jobchain.api import vocabulary
from jobchain.cli import cluster as cli_cluster
from jobchain.k8s import api

PACKAGE = Path(vocabulary.__file__).parent.parent
# Plain words that are also the names of other things ("jobchain" the program, "main" a module).
WORDS = {vocabulary.MANAGED_BY, vocabulary.CONTAINER, vocabulary.KIND_WORKFLOW}


def spelled_names() -> dict[str, str]:
    return {value: name for name, value in vars(vocabulary).items()
            if name.isupper() and isinstance(value, str) and value not in WORDS}


def test_no_module_spells_a_name_of_the_vocabulary_again() -> None:
    names = spelled_names()
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if path.name == "vocabulary.py":
            continue
        for item in ast.walk(ast.parse(path.read_text())):
            if isinstance(item, ast.Constant) and isinstance(item.value, str) and item.value in names:
                where = f"{path.relative_to(PACKAGE)}:{item.lineno}"
                found.append(f"{where}: {item.value!r} (vocabulary.{names[item.value]})")
    assert found == []


def test_the_cli_and_the_operator_use_the_same_names() -> None:
    assert cli_cluster.EXECUTIONS is vocabulary.EXECUTIONS
    assert api.node_selector("etl-x", "load").endswith(f",{vocabulary.LABEL_NODE}=load")
