"""Drawings of a workflow's graph as text, Mermaid or Graphviz DOT, optionally with node phases.

Pure functions of a WorkflowSpec (and the phases of an execution's nodes), so that each
format is unit-tested as text. They draw what the spec says even when it is invalid (an
edge to an unknown node is drawn and marked), because `graph` is also a debugging aid.
"""

from __future__ import annotations

from collections.abc import Mapping

from jobchain.api.models import EdgeKind, Node, WorkflowSpec
from jobchain.engine.spec.graph import Graph

FORMATS = ("text", "mermaid", "dot", "svg")

# Colours shared by the Mermaid classes and the DOT fills.
PHASE_COLOURS = {
    "Pending": ("#f5f5f5", "#9e9e9e"),
    "Running": ("#e3f2fd", "#1e88e5"),
    "Succeeded": ("#e8f5e9", "#43a047"),
    "Failed": ("#ffebee", "#e53935"),
    "Skipped": ("#fafafa", "#bdbdbd"),
    "Cancelled": ("#fff8e1", "#fb8c00"),
}
EDGE_COLOURS = {"success": "#43a047", "failure": "#e53935", "always": "#616161", "condition": "#1e88e5"}


def edge_label(kind: str, when: str | None) -> str:
    return f"{kind} {when}" if when else kind


def _edges(node: Node) -> list[tuple[str, str, str | None]]:
    return [(edge.node, str(EdgeKind(edge.type)), edge.when) for edge in node.next]


def render_text(spec: WorkflowSpec, phases: Mapping[str, str] | None = None, title: str = "") -> str:
    """One line per node (declaration order), its out-edges indented below it as `-> target [kind when]`."""
    names = {n.name for n in spec.nodes}
    graph = Graph.of(spec)
    starts = set(graph.starts())
    width = max(len(n.name) for n in spec.nodes)
    lines = [title] if title else []
    for node in spec.nodes:
        marks = []
        if phases is not None:
            marks.append(phases.get(node.name, "Pending"))
        if node.name in starts:
            marks.append("start")
        if len(graph.incoming.get(node.name, [])) > 1:
            marks.append(f"join: {node.join}")
        if node.forEach is not None:
            marks.append(f"forEach: {node.forEach}")
        line = node.name.ljust(width) + (f"  ({', '.join(marks)})" if marks else "")
        lines.append(line.rstrip())
        for target, kind, when in _edges(node):
            unknown = "" if target in names else "  (unknown node)"
            lines.append(f"  -> {target} [{edge_label(kind, when)}]{unknown}")
    return "\n".join(lines) + "\n"


def _mermaid_text(text: str) -> str:
    """Mermaid label text inside double quotes: quotes and pipes as entities."""
    return text.replace('"', "#quot;").replace("|", "#124;").replace("<", "#lt;").replace(">", "#gt;")


def render_mermaid(spec: WorkflowSpec, phases: Mapping[str, str] | None = None, title: str = "") -> str:
    """A Mermaid flowchart. Node ids are n0, n1, ... (node names such as `end` are Mermaid keywords)."""
    ids = {node.name: f"n{i}" for i, node in enumerate(spec.nodes)}
    lines = []
    if title:
        lines += ["---", f"title: {_mermaid_text(title)}", "---"]
    lines.append("flowchart TD")
    for node in spec.nodes:
        label = _mermaid_text(node.name)
        if node.forEach is not None:
            label += "<br/>" + _mermaid_text(f"forEach: {node.forEach}")
        if phases is not None:
            label += "<br/>" + _mermaid_text(phases.get(node.name, "Pending"))
        lines.append(f'  {ids[node.name]}["{label}"]')
    unknown: list[str] = []
    for node in spec.nodes:
        for target, _, _ in _edges(node):
            if target not in ids:
                ids[target] = f"u{len(unknown)}"
                unknown.append(target)
                lines.append(f'  {ids[target]}["{_mermaid_text(target)} (unknown node)"]:::unknown')
    styles = []
    index = 0
    for node in spec.nodes:
        for target, kind, when in _edges(node):
            arrow = {"failure": "-.->", "always": "==>"}.get(kind, "-->")
            lines.append(
                f'  {ids[node.name]} {arrow}|"{_mermaid_text(edge_label(kind, when))}"| {ids[target]}'
            )
            styles.append(f"  linkStyle {index} stroke:{EDGE_COLOURS[kind]}")
            index += 1
    lines += styles
    if unknown:
        lines.append("  classDef unknown stroke-dasharray:4 4,stroke:#e53935")
    if phases is not None:
        used = {phases.get(n.name, "Pending") for n in spec.nodes}
        for phase in PHASE_COLOURS:
            if phase in used:
                fill, stroke = PHASE_COLOURS[phase]
                members = ",".join(ids[n.name] for n in spec.nodes if phases.get(n.name, "Pending") == phase)
                lines.append(f"  classDef {phase.lower()} fill:{fill},stroke:{stroke}")
                lines.append(f"  class {members} {phase.lower()}")
    return "\n".join(lines) + "\n"


def _dot(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


def render_dot(spec: WorkflowSpec, phases: Mapping[str, str] | None = None, title: str = "") -> str:
    """A Graphviz digraph: node names as ids, edges coloured and styled by kind."""
    names = {n.name for n in spec.nodes}
    lines = [
        f"digraph {_dot(title or 'workflow')} {{",
        "  rankdir=TB;",
        '  node [shape=box, style="rounded", fontname="Helvetica"];',
        '  edge [fontname="Helvetica", fontsize=10];',
    ]
    for node in spec.nodes:
        if node.forEach is not None:  # a stack of boxes: one Job per item
            lines.append(f"  {_dot(node.name)} [peripheries=2, xlabel={_dot('forEach: ' + node.forEach)}];")
        if phases is None:
            lines.append(f"  {_dot(node.name)};")
        else:
            phase = phases.get(node.name, "Pending")
            fill, stroke = PHASE_COLOURS.get(phase, PHASE_COLOURS["Pending"])
            label = f"{node.name}\\n{phase}"
            lines.append(
                f'  {_dot(node.name)} [label="{label}", style="rounded,filled", '
                f'fillcolor="{fill}", color="{stroke}"];'
            )
    for target in sorted({t for n in spec.nodes for t, _, _ in _edges(n)} - names):
        lines.append(
            f'  {_dot(target)} [label={_dot(target + " (unknown node)")}, style=dashed, color="#e53935"];'
        )
    for node in spec.nodes:
        for target, kind, when in _edges(node):
            style = {"failure": "dashed", "always": "bold"}.get(kind, "solid")
            lines.append(
                f"  {_dot(node.name)} -> {_dot(target)} [label={_dot(edge_label(kind, when))}, "
                f'style={style}, color="{EDGE_COLOURS[kind]}"];'
            )
    lines.append("}")
    return "\n".join(lines) + "\n"


def render(spec: WorkflowSpec, fmt: str, phases: Mapping[str, str] | None = None, title: str = "") -> str:
    if fmt == "svg":  # laid out by the dashboard's layout; imported here, as graph_svg imports this module
        from jobchain.cli.graph_svg import render_svg

        return render_svg(spec, phases, title)
    renderers = {"text": render_text, "mermaid": render_mermaid, "dot": render_dot}
    return renderers[fmt](spec, phases, title)
