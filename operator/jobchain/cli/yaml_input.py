"""YAML from users' files, loaded as kubectl loads it, and refused in one line when it is hostile.

Why not plain `yaml.safe_load_all`: three inputs broke the CLI. Nesting a few thousand levels
deep overflowed PyYAML's recursive composer (a RecursionError reported as "a bug in
jobchain"); an integer of 5,000 digits hit Python's int-conversion limit (a ValueError, the
same); and a "billion laughs" of nested aliases loaded in a blink as shared references, so
lint passed it, but expanded to gigabytes when `run FILE` sent it. kubectl refuses the alias
bomb ("excessive aliasing") and turns an integer beyond 64 bits into a number (or, beyond a
float's range, a string) before the API server sees it; this loader does the same, and caps
depth and the values after alias expansion (see `api.limits`), so lint says what kubectl
and the API server will say.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterator
from typing import Any

import yaml
from yaml.composer import ComposerError
from yaml.nodes import MappingNode, Node, ScalarNode, SequenceNode

from jobchain.api import limits

INT64 = 2**63


class RefusedYaml(yaml.MarkedYAMLError):
    """Input PyYAML could read but jobchain will not: too deep, too many values."""


_DECIMAL = re.compile(r"[-+]?[0-9][0-9_]*")


class _Loader(yaml.SafeLoader):
    """SafeLoader with a depth limit, an expanded-size limit, and kubectl's handling of huge integers."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self._depth = 0

    def compose_node(self, parent: Node | None, index: Any) -> Node | None:
        self._depth += 1
        try:
            if self._depth > limits.MAX_YAML_DEPTH:
                event = self.peek_event()  # type: ignore[no-untyped-call]
                raise RefusedYaml(None, None, f"nested more than {limits.MAX_YAML_DEPTH} levels deep; "
                                  "flatten it", event.start_mark)
            return super().compose_node(parent, index)
        finally:
            self._depth -= 1

    def compose_document(self) -> Node | None:
        node: Node | None = super().compose_document()
        if node is not None:
            size = _expanded_size(node)
            if size > limits.MAX_YAML_VALUES:
                raise RefusedYaml(None, None, f"its aliases (*name) expand to more than {limits.MAX_YAML_VALUES} "
                                  "values, as in a 'billion laughs' attack; write the values out or use fewer "
                                  "aliases", node.start_mark)
        return node

    def construct_yaml_int(self, node: ScalarNode) -> Any:
        text = str(node.value)
        if _DECIMAL.fullmatch(text) and len(text.replace("_", "").lstrip("+-")) > 18:
            # Beyond int64, as kubectl's YAML-to-JSON conversion does: a number, or the text if
            # it is beyond a float's range too. (And never int() of thousands of digits.)
            digits = text.replace("_", "")
            if len(digits.lstrip("+-")) <= 19 and -INT64 <= int(digits) < INT64:
                return int(digits)
            number = float(digits)
            return number if math.isfinite(number) else text
        return super().construct_yaml_int(node)


_Loader.add_constructor("tag:yaml.org,2002:int", _Loader.construct_yaml_int)


def _expanded_size(root: Node) -> int:
    """How many values the document has once every alias is expanded; stops counting past the limit.

    Why iterative and memoized: an alias is the same node object reached again, so a node's
    size is computed once (a DAG of 10 levels of 9 aliases is 9^10 values but 90 nodes), and
    depth never meets Python's recursion limit. An alias inside its own anchor (a cycle)
    counts as past the limit.
    """
    cap = limits.MAX_YAML_VALUES + 1
    sizes: dict[int, int] = {}
    open_nodes: set[int] = set()
    stack: list[tuple[Node, bool]] = [(root, False)]
    while stack:
        node, children_done = stack.pop()
        if id(node) in sizes:
            continue
        children: list[Node] = []
        if isinstance(node, SequenceNode):
            children = list(node.value)
        elif isinstance(node, MappingNode):
            children = [part for pair in node.value for part in pair]
        if not children_done:
            if id(node) in open_nodes:
                return cap  # a cycle: it would expand forever
            open_nodes.add(id(node))
            stack.append((node, True))
            stack.extend((child, False) for child in children if id(child) not in sizes)
            continue
        open_nodes.discard(id(node))
        sizes[id(node)] = min(cap, 1 + sum(sizes.get(id(child), cap) for child in children))
    return sizes[id(root)]


def load_all(text: str) -> Iterator[Any]:
    """The documents of a YAML stream, as `yaml.safe_load_all` would give them, within the limits.

    Raises yaml.YAMLError (RefusedYaml for the limits) with a mark where it could place one.
    """
    loader = _Loader(text)
    try:
        while loader.check_data():  # type: ignore[no-untyped-call]
            yield loader.get_data()
    except RecursionError:  # cannot happen within MAX_YAML_DEPTH; a last guard against a crash
        raise ComposerError(None, None, "nested too deeply to read", None) from None
    except ValueError as exc:  # a scalar Python cannot convert; never a crash
        raise ComposerError(None, None, f"a value cannot be read: {exc}", None) from None
    finally:
        loader.dispose()
