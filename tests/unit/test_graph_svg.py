"""`jobchain graph --format svg`: a standalone picture laid out as the dashboard lays it out."""

from __future__ import annotations

import io
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from jobchain.api.models import WorkflowSpec
from jobchain.cli.graph_svg import render_svg
from jobchain.cli.layout import layered_layout
from jobchain.cli.main import main

ROOT = Path(__file__).resolve().parents[2]
SVG = "{http://www.w3.org/2000/svg}"
SPEC = WorkflowSpec.model_validate({
    "defaults": {"image": "busybox"},
    "nodes": [
        {"name": "a", "script": "x", "next": [{"node": "b", "type": "condition", "when": "output.n > 1"},
                                               {"node": "c", "type": "failure"}, {"node": "ghost"}]},
        {"name": "b", "script": "x"},
        {"name": "c", "script": "x"},
    ],
})


def test_every_node_is_drawn_where_the_shared_layout_puts_it() -> None:
    root = ET.fromstring(render_svg(SPEC, title="Workflow/w"))
    groups = {g.find(f"{SVG}title").text: g for g in root.iter(f"{SVG}g") if g.find(f"{SVG}title") is not None}
    assert set(groups) == {"a", "b", "c", "ghost"}
    layout = layered_layout(["a", "b", "c", "ghost"], [("a", "b"), ("a", "c"), ("a", "ghost")])
    assert groups["b"].get("transform") == f"translate({layout.boxes['b'].x:.1f},{layout.boxes['b'].y:.1f})"
    paths = [p for p in root.iter(f"{SVG}path") if p.get("marker-end")]
    assert len(paths) == 3
    failure = next(p for p in paths if p.get("marker-end") == "url(#arrow-failure)")
    assert failure.get("stroke-dasharray") == "6 4"
    texts = "".join(root.itertext())
    assert "output.n > 1" in texts and "unknown node" in texts


def test_phases_colour_the_nodes_and_are_written_out() -> None:
    root = ET.fromstring(render_svg(SPEC, {"a": "Failed", "b": "Skipped"}))
    rects = {g.find(f"{SVG}title").text: g.find(f"{SVG}rect") for g in root.iter(f"{SVG}g")
             if g.find(f"{SVG}title") is not None}
    assert rects["a"].get("stroke") == "#e53935" and rects["b"].get("stroke-dasharray") == "4 4"
    assert "Failed" in "".join(root.itertext()) and "Pending" in "".join(root.itertext())


def test_the_command_writes_svg(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["graph", str(ROOT / "examples" / "routing.yaml"), "--format", "svg"]) == 0
    out = capsys.readouterr().out
    assert ET.fromstring(out).tag == f"{SVG}svg"
    assert "small-load" in out and isinstance(io.StringIO(out).read(), str)
