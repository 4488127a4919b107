"""A small type checker for `when` and `forEach`, run when a Workflow is validated.

Why our own: cel-python (see `cel`) parses and evaluates but has no type checker, so a `when`
that gives a number, a `forEach` over an integer param, or `params.rows > 10` with a string
param all passed lint and failed the execution at run time as ConditionError. The variables'
types are known before anything runs: params have their declared type, `nodes` and `node` are
records of known fields, and `output`/`input`/`nodes.X.output` are dynamic (anything). Over
cel-python's parse tree this infers a type for each subexpression where it can and reports
only what must fail: a known type where another is needed. A dynamic operand never is an error.

Why the text is looked at first: `nodes.list-tenants.output` parses as a subtraction, so a
node name with a hyphen gets its own message with the spelling that works.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import lark

from jobchain.api.models import Node, Param
from jobchain.engine.spec import cel, output_schema
from jobchain.engine.spec.suggest import did_you_mean

DYN, NUM = "dyn", "number"  # NUM: a number of unknown kind (int or double)
_NUMERIC = {"int", "uint", "double", NUM}
_PARAM_TYPES = {"string": "string", "integer": "int", "number": NUM, "boolean": "bool",
                "array": "list", "object": "map"}
_LITERALS = {"INT_LIT": "int", "UINT_LIT": "uint", "FLOAT_LIT": "double", "STRING_LIT": "string",
             "MLSTRING_LIT": "string", "BYTES_LIT": "bytes", "BOOL_LIT": "bool", "NULL_LIT": "null"}
_FUNCTIONS = {"size": "int", "int": "int", "uint": "uint", "double": "double", "string": "string",
              "bool": "bool", "has": "bool", "matches": "bool", "bytes": "bytes"}
_METHODS = {"size": "int", "all": "bool", "exists": "bool", "exists_one": "bool", "map": "list",
            "filter": "list", "contains": "bool", "startsWith": "bool", "endsWith": "bool", "matches": "bool"}
_OPERATORS = {"relation_lt": "<", "relation_le": "<=", "relation_gt": ">", "relation_ge": ">=",
              "relation_eq": "==", "relation_ne": "!=", "relation_in": "in", "addition_add": "+",
              "addition_sub": "-", "multiplication_mul": "*", "multiplication_div": "/",
              "multiplication_mod": "%"}


@dataclass(frozen=True)
class Record:
    """A variable whose keys are known (params, nodes, a node's entry): an unknown key is a mistake."""

    what: str  # how the user writes it: params, nodes, nodes['load']
    fields: Mapping[str, Type]
    kind: str = "key"  # what a key is, for the message: param, node, key
    open: bool = False  # other keys may be there too (dynamic): an output schema without additionalProperties: false


Type = str | Record


class _Mistake(Exception):
    def __init__(self, at: Any, message: str, fix: str) -> None:
        super().__init__(message)
        self.at, self.message, self.fix = at, message, fix


def _name(t: Type) -> str:
    if isinstance(t, Record):
        return "a map"
    if t == NUM:
        return "a number"
    return f"an {t}" if t[0] in "aeiou" else f"a {t}"


def variables_of(params: Iterable[Param], nodes: Iterable[Node], for_each: bool = False) -> dict[str, Type]:
    """The types of the variables a `when` (or with `for_each`, a forEach) sees in this workflow.
    `output` is dynamic here: `with_output` gives it the type of the edge's source node."""
    typed: dict[str, Type] = {
        "params": Record("params", {p.name: DYN if p.secret else _PARAM_TYPES.get(str(p.type), DYN)
                                    for p in params}, "param"),
        "nodes": Record("nodes", {n.name: Record(f"nodes[{n.name!r}]", {
            "phase": "string", "output": schema_type(n.outputSchema, f"nodes[{n.name!r}].output")}) for n in nodes},
            "node"),
        "input": DYN,
    }
    if not for_each:
        typed["output"] = DYN
        typed["node"] = Record("node", {"name": "string", "phase": "string", "exitCode": "int"})
    return typed


_HYPHENATED = re.compile(r"\bnodes\s*\.\s*([a-z0-9]+(?:-[a-z0-9]+)+)")


def check(expression: str, variables: Mapping[str, Type], want: str, what: str) -> str | None:
    """Why `expression` must fail at run time, with a caret under the cause and the fix; None when it
    may work. `want` is the type its result must have (bool for `when`, list for forEach)."""
    nodes = variables.get("nodes")
    hyphen = _HYPHENATED.search(expression)
    if hyphen and isinstance(nodes, Record) and _reads_node(expression, hyphen.group(1).split("-")[0]):
        name = hyphen.group(1)
        known = name in nodes.fields
        return _format(expression, hyphen.start(), hyphen.end(),
                       f"`{hyphen.group(0)}` reads as a subtraction (nodes.{name.split('-')[0]} minus ...)",
                       f"write a node name with a hyphen as nodes['{name}']"
                       + ("" if known else f"; no node is named {name!r}{did_you_mean(name, nodes.fields)}"))
    try:
        tree = cel._program(expression).ast
    except cel.CelError:
        return None  # cel.check says why it does not compile
    try:
        result = _Checker(variables).infer(tree)
        if result not in (want, DYN) and not (want == "list" and result == "null"):
            fix = ("compare it (e.g. `... > 0`, `... == 'yes'`) or test a key with has(...)" if want == "bool"
                   else "give a list: an array param (type: array), a list in an upstream node's output, "
                   "or a literal such as [1, 2, 3]")
            raise _Mistake(tree, f"{what} gives {_name(result)}, not {_name(want)}", fix)
    except _Mistake as mistake:
        start, end = _span(mistake.at)
        return _format(expression, start, end, mistake.message, mistake.fix)
    return None


_SCHEMA_TYPES: dict[str, Type] = {"string": "string", "integer": "int", "number": NUM, "boolean": "bool",
                                  "array": "list", "object": "map", "null": "null"}


def schema_type(schema: Any, what: str) -> Type:
    """The CEL type of a value of an `outputSchema` (dynamic where it says nothing, or is not valid:
    validation reports that). An object with properties is a record: its declared keys have their
    types; an undeclared key is a mistake only with additionalProperties: false."""
    if not isinstance(schema, Mapping) or not output_schema.valid(schema):
        return DYN
    kind = schema.get("type")
    properties = schema.get("properties")
    if isinstance(properties, Mapping) and kind in (None, "object"):
        fields = {str(k): schema_type(v, f"{what}.{k}") for k, v in properties.items()}
        return Record(what, fields, "key", open=schema.get("additionalProperties") is not False)
    return _SCHEMA_TYPES.get(str(kind), DYN) if kind is not None else DYN


def with_output(variables: Mapping[str, Type], node: Node) -> Mapping[str, Type]:
    """The variables of a `when` on an edge out of `node`: `output` is that node's (its outputSchema)."""
    if node.outputSchema is None or "output" not in variables:
        return variables
    return {**variables, "output": schema_type(node.outputSchema, "output")}


def _reads_node(expression: str, name: str) -> bool:
    """Whether `nodes.NAME` is read as a name in the expression (not text in a string literal)."""
    try:
        tree = cel._program(expression).ast
    except cel.CelError:
        return True  # no tree to ask: the text says enough
    return any(sub.data == "member_dot" and str(sub.children[1]) == name and _ident_of(sub.children[0]) == "nodes"
               for sub in tree.iter_subtrees())


def _span(at: Any) -> tuple[int, int]:
    if isinstance(at, lark.Token):
        return at.start_pos or 0, at.end_pos or 0
    meta = at.meta
    return (meta.start_pos, meta.end_pos) if not meta.empty else (0, 0)


def _format(expression: str, start: int, end: int, headline: str, fix: str) -> str:
    line_start = expression.rfind("\n", 0, start) + 1
    line_end = expression.find("\n", start)
    line = expression[line_start: line_end if line_end >= 0 else len(expression)]
    width = max(1, min(end, line_start + len(line)) - start)
    return f"{headline}; {fix}\n    {line}\n    {' ' * (start - line_start)}{'^' * width}"


@dataclass
class _Checker:
    variables: Mapping[str, Type]
    locals_: set[str] = field(default_factory=set)  # macro variables (x in list.all(x, ...))

    def infer(self, tree: Any) -> Type:
        if isinstance(tree, lark.Token):
            return DYN
        handler = getattr(self, f"_{tree.data}", None)
        if handler is not None:
            return handler(tree)  # type: ignore[no-any-return]
        children = [c for c in tree.children if c is not None]
        if len(children) == 1:
            return self.infer(children[0])
        for child in children:
            self.infer(child)
        return DYN

    # ---- operators
    def _expr(self, tree: Any) -> Type:
        children = [c for c in tree.children if c is not None]
        if len(children) == 1:
            return self.infer(children[0])
        cond, yes, no = children
        self._need_bool(cond, "the condition of `? :`")
        a, b = self.infer(yes), self.infer(no)
        return a if a == b else DYN

    def _logic(self, tree: Any, op: str) -> Type:
        children = [c for c in tree.children if c is not None]
        if len(children) == 1:
            return self.infer(children[0])
        for child in children:
            self._need_bool(child, f"`{op}`")
        return "bool"

    def _conditionalor(self, tree: Any) -> Type:
        return self._logic(tree, "||")

    def _conditionaland(self, tree: Any) -> Type:
        return self._logic(tree, "&&")

    def _need_bool(self, tree: Any, what: str) -> None:
        t = self.infer(tree)
        if t not in ("bool", DYN):
            raise _Mistake(tree, f"{what} needs a bool, and this is {_name(t)}",
                           "compare it (e.g. `... > 0`) to get a bool")

    def _binary(self, tree: Any) -> tuple[str, Any, Any, Type, Type] | None:
        children = [c for c in tree.children if c is not None]
        if len(children) == 1:
            return None
        op_tree, right = children
        left = op_tree.children[0]
        return op_tree.data, left, right, self.infer(left), self.infer(right)

    def _relation(self, tree: Any) -> Type:
        binary = self._binary(tree)
        if binary is None:
            return self.infer(tree.children[-1])
        op, left, right, a, b = binary
        if op == "relation_in":
            if b not in ("list", "map", DYN) and not isinstance(b, Record):
                raise _Mistake(right, f"`in` needs a list or a map on its right, and this is {_name(b)}",
                               "write `x in [a, b]` or `'key' in some_map`")
            return "bool"
        if DYN in (a, b) or "null" in (a, b) or _kind(a) == _kind(b):
            return "bool"
        symbol = _OPERATORS[op]
        text_param = _param_name(left if _kind(a) == "string" else right)
        number_param = _param_name(left if _kind(a) == "number" else right)
        if {_kind(a), _kind(b)} == {"string", "number"} and text_param is not None:
            fix = (f"declare param {text_param} with `type: integer` (or number) in spec.params, or compare "
                   f"with a string, or convert: int(params.{text_param})")
        elif {_kind(a), _kind(b)} == {"string", "number"} and number_param is not None:
            fix = f"param {number_param} is a number: compare it with a number (10, not '10')"
        else:
            fix = "make both sides the same type: convert one with int(...), double(...) or string(...)"
        raise _Mistake(tree, f"`{symbol}` compares {_name(a)} with {_name(b)}, which CEL refuses at run time", fix)

    def _addition(self, tree: Any) -> Type:
        return self._arithmetic(tree)

    def _multiplication(self, tree: Any) -> Type:
        return self._arithmetic(tree)

    def _arithmetic(self, tree: Any) -> Type:
        binary = self._binary(tree)
        if binary is None:
            return self.infer(tree.children[-1])
        op, _, _, a, b = binary
        symbol = _OPERATORS[op]
        allowed = {"+": {"number", "string", "list", "bytes"}}.get(symbol, {"number"})
        for t in (a, b):
            if t != DYN and _kind(t) not in allowed:
                raise _Mistake(tree, f"`{symbol}` cannot take {_name(t)}",
                               "use numbers (convert text with int(...) or double(...))")
        if DYN not in (a, b) and _kind(a) != _kind(b):
            raise _Mistake(tree, f"`{symbol}` of {_name(a)} and {_name(b)}, which CEL refuses at run time",
                           "convert one side: int(...), double(...) or string(...)")
        if a == DYN and b == DYN:
            return NUM if symbol != "+" else DYN  # only + also joins strings and lists
        known = b if a == DYN else a  # the other side, dynamic or not, must be of its kind
        if _kind(known) == "number":
            return known if a == b else NUM
        return known

    def _unary(self, tree: Any) -> Type:
        children = [c for c in tree.children if c is not None]
        if len(children) == 1:
            return self.infer(children[0])
        op, operand = children
        t = self.infer(operand)
        if op.data == "unary_not":
            if t not in ("bool", DYN):
                raise _Mistake(tree, f"`!` needs a bool, and this is {_name(t)}", "compare it first")
            return "bool"
        if t != DYN and _kind(t) != "number":
            raise _Mistake(tree, f"`-` needs a number, and this is {_name(t)}", "convert it with int(...)")
        return t

    # ---- members, names, calls
    def _member_dot(self, tree: Any) -> Type:
        operand, key = tree.children
        t = self.infer(operand)
        return self._field(t, str(key), key)

    def _field(self, t: Type, key: str, at: Any) -> Type:
        if isinstance(t, Record):
            if key in t.fields:
                return t.fields[key]
            if t.open:
                return DYN
            known = ", ".join(sorted(t.fields)[:20]) or "none"
            raise _Mistake(at, f"{t.what} has no {t.kind} {key!r}{did_you_mean(key, t.fields)}",
                           f"use one of: {known}")
        if t not in (DYN, "map", "null"):
            raise _Mistake(at, f"{_name(t)} has no field {key!r}", "read fields of a map or an output")
        return DYN

    def _member_index(self, tree: Any) -> Type:
        operand, index = tree.children
        t = self.infer(operand)
        self.infer(index)
        literal = _string_literal(index)
        if isinstance(t, Record) and literal is not None:
            return self._field(t, literal, index)
        return DYN

    def _member_dot_arg(self, tree: Any) -> Type:
        operand, method, *rest = tree.children
        self.infer(operand)
        args = [c for c in (rest[0].children if rest and rest[0] is not None else [])]
        name = str(method)
        if name in ("all", "exists", "exists_one", "map", "filter") and args:
            bound = _ident_of(args[0])
            saved = set(self.locals_)
            if bound:
                self.locals_.add(bound)
            for arg in args[1:]:
                self.infer(arg)
            self.locals_ = saved
        else:
            for arg in args:
                self.infer(arg)
        return _METHODS.get(name, DYN)

    def _ident_arg(self, tree: Any) -> Type:
        name, *rest = tree.children
        if str(name) == "has":
            return "bool"  # has(x.y) tests for a key: its argument is not read
        for arg in (rest[0].children if rest and rest[0] is not None else []):
            self.infer(arg)
        return _FUNCTIONS.get(str(name), DYN)

    def _ident(self, tree: Any) -> Type:
        name = str(tree.children[0])
        if name in self.locals_:
            return DYN
        return self.variables.get(name, DYN)

    def _literal(self, tree: Any) -> Type:
        token = tree.children[0]
        return _LITERALS.get(token.type, DYN)

    def _list_lit(self, tree: Any) -> Type:
        for child in tree.children:
            if child is not None:
                self.infer(child)
        return "list"

    def _map_lit(self, tree: Any) -> Type:
        for child in tree.children:
            if child is not None:
                self.infer(child)
        return "map"


def _kind(t: Type) -> str:
    if isinstance(t, Record):
        return "map"
    return "number" if t in _NUMERIC else t


def _unwrap(tree: Any) -> Any:
    """The one meaningful node under the wrappers of a plain operand (expr > ... > member)."""
    while isinstance(tree, lark.Tree) and len([c for c in tree.children if c is not None]) == 1 \
            and tree.data in ("expr", "conditionalor", "conditionaland", "relation", "addition",
                              "multiplication", "unary", "member", "primary"):
        tree = next(c for c in tree.children if c is not None)
    return tree


def _ident_of(tree: Any) -> str | None:
    inner = _unwrap(tree)
    if isinstance(inner, lark.Tree) and inner.data == "ident":
        return str(inner.children[0])
    return None


def _string_literal(tree: Any) -> str | None:
    inner = _unwrap(tree)
    token = inner.children[0] if isinstance(inner, lark.Tree) and inner.data == "literal" else None
    if isinstance(token, lark.Token) and token.type == "STRING_LIT":
        text = str(token)
        if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"" and "\\" not in text:
            return text[1:-1]
    return None


def _param_name(tree: Any) -> str | None:
    """X when the operand is exactly params.X (or params['X'])."""
    inner = _unwrap(tree)
    if not isinstance(inner, lark.Tree) or inner.data not in ("member_dot", "member_index"):
        return None
    if _ident_of(inner.children[0]) != "params":
        return None
    if inner.data == "member_dot":
        return str(inner.children[1])
    return _string_literal(inner.children[1])
