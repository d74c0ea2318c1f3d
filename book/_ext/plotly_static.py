"""Sphinx extension: the book's pages that have figures share one plotly.js, served from `_static/plotly.min.js`.

`python -m helpers.book run` drops the inline plotly.js (~4.6 MB) that the figure renderer prints once per
notebook, so the pages hold only their figures; this extension writes the installed plotly package's own
bundle (the version that made the figures) into the built site and loads it in the head of the pages that
draw a plotly figure, and of no other page.
"""
from __future__ import annotations

import os
from pathlib import Path

FILENAME = "plotly.min.js"
MARKER = "Plotly.newPlot"  # every figure's <script> calls it (helpers/viz.py)


def _add_to_pages_with_figures(app, pagename, templatename, context, doctree) -> None:
    if MARKER in context.get("body", ""):
        app.add_js_file(FILENAME)  # called in html-page-context: for this page only


def _write_bundle(app, exception) -> None:
    if exception is not None or app.builder.format != "html":
        return
    from plotly.offline import get_plotlyjs

    target = Path(app.outdir) / "_static" / FILENAME
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{FILENAME}.{os.getpid()}.tmp")
    partial.write_text(get_plotlyjs(), encoding="utf-8")
    os.replace(partial, target)  # a reader of the site never sees a half-written bundle


def setup(app):
    app.connect("html-page-context", _add_to_pages_with_figures)
    app.connect("build-finished", _write_bundle)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
