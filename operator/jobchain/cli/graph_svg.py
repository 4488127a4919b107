"""`jobchain graph --format svg`: a standalone picture of a workflow, laid out as the dashboard does.

Why here: the layered layout (`layout.py`) is the dashboard's and this drawing's alike, so
a graph pasted into a document looks like the one on the page, with no Graphviz or Mermaid
needed to render it. Pure function of the spec and the phases; styles are inline so the
file stands alone.
"""

from __future__ import annotations

from collections.abc import Mapping
from itertools import pairwise
from xml.sax.saxutils import escape

from jobchain.api.models import EdgeKind, WorkflowSpec
from jobchain.cli.graphs import EDGE_COLOURS, PHASE_COLOURS, edge_label
from jobchain.cli.layout import layered_layout

ICONS = {"Pending": "○", "Running": "↻", "Succeeded": "✓", "Failed": "✕", "Skipped": "↷", "Cancelled": "■"}
FONT = "font-family=\"Helvetica, Arial, sans-serif\""


def _path(points: tuple[tuple[float, float], ...]) -> str:
    """Horizontal-tangent curves between the route's points, as the page draws them."""
    d = f"M{points[0][0]:.1f},{points[0][1]:.1f}"
    for (x0, y0), (x1, y1) in pairwise(points):
        if y0 == y1:
            d += f" L{x1:.1f},{y1:.1f}"
            continue
        dx = max(20.0, (x1 - x0) / 2)
        d += f" C{x0 + dx:.1f},{y0:.1f} {x1 - dx:.1f},{y1:.1f} {x1:.1f},{y1:.1f}"
    return d


def render_svg(spec: WorkflowSpec, phases: Mapping[str, str] | None = None, title: str = "") -> str:
    names = [n.name for n in spec.nodes]
    known = set(names)
    unknown = list(dict.fromkeys(e.node for n in spec.nodes for e in n.next if e.node not in known))
    edges = [(n.name, e.node, str(EdgeKind(e.type)), e.when) for n in spec.nodes for e in n.next]
    layout = layered_layout(names + unknown, [(s, t) for s, t, _, _ in edges])
    top = 28.0 if title else 0.0
    width, height = layout.width, layout.height + top
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width:.0f}" height="{height:.0f}" '
        f'viewBox="0 0 {width:.0f} {height:.0f}">',
        "<defs>",
    ]
    for kind, colour in EDGE_COLOURS.items():
        out.append(
            f'<marker id="arrow-{kind}" viewBox="0 0 10 10" refX="9" refY="5" markerUnits="userSpaceOnUse" '
            f'markerWidth="11" markerHeight="11" orient="auto"><path d="M0,0 L10,5 L0,10 z" fill="{colour}"/></marker>'
        )
    out.append("</defs>")
    out.append('<rect width="100%" height="100%" fill="#ffffff"/>')
    if title:
        out.append(f'<text x="24" y="20" {FONT} font-size="15" font-weight="bold">{escape(title)}</text>')
    out.append(f'<g transform="translate(0,{top:.0f})">')
    routes = {(r.source, r.target): r for r in layout.routes}
    for source, target, kind, when in edges:
        route = routes.get((source, target))
        if route is None:
            continue
        dash = ' stroke-dasharray="6 4"' if kind == EdgeKind.FAILURE else ""
        out.append(
            f'<path d="{_path(route.points)}" fill="none" stroke="{EDGE_COLOURS[kind]}" stroke-width="1.8"{dash} '
            f'marker-end="url(#arrow-{kind})"/>'
        )
        label = when if kind == EdgeKind.CONDITION else ("" if kind == EdgeKind.SUCCESS else kind)
        if label:
            (ax, ay), (ex, ey) = route.points[-2], route.points[-1]
            short = label if len(label) <= 26 else label[:25] + "…"
            out.append(
                f'<text x="{(ax + ex) / 2:.1f}" y="{(ay + ey) / 2 - 8:.1f}" text-anchor="middle" {FONT} '
                f'font-size="11" fill="#424a53" stroke="#ffffff" stroke-width="3" paint-order="stroke">'
                f'<title>{escape(edge_label(kind, when))}</title>{escape(short)}</text>'
            )
    for name in names + unknown:
        box = layout.boxes[name]
        phase = (phases or {}).get(name, "Pending") if phases is not None else ""
        fill, stroke = PHASE_COLOURS.get(phase, ("#f5f5f5", "#9e9e9e"))
        dash = ' stroke-dasharray="4 4"' if name not in known or phase == "Skipped" else ""
        if name not in known:
            fill, stroke = "#ffffff", "#e53935"
        sub = "(unknown node)" if name not in known else phase
        icon = ICONS.get(phase, "")
        out.append(
            f'<g transform="translate({box.x:.1f},{box.y:.1f})"><title>{escape(name)}</title>'
            f'<rect width="{box.width:.0f}" height="{box.height:.0f}" rx="8" fill="{fill}" stroke="{stroke}" '
            f'stroke-width="2"{dash}/>'
            + (f'<text x="12" y="23" {FONT} font-size="15" fill="{stroke}">{icon}</text>' if icon else "")
            + f'<text x="32" y="23" {FONT} font-size="13" font-weight="bold" fill="#1f2328">'
            f'{escape(name if len(name) <= 20 else name[:19] + "…")}</text>'
            + (f'<text x="32" y="42" {FONT} font-size="11.5" fill="#424a53">{escape(sub)}</text>' if sub else "")
            + "</g>"
        )
    out.append("</g></svg>")
    return "\n".join(out) + "\n"
