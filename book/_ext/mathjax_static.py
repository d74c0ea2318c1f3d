"""Sphinx extension: equations typeset offline by MathJax served from `_static/mathjax/tex-svg-full.js`.

The file is the official MathJax 3 build from the npm package `mathjax`, pinned and verified by sha256
like the weights (`helpers.assets`, asset "mathjax"; `make book` fetches it with the weights). It renders
TeX as SVG in one self-contained file, so no page asks any other host for fonts or scripts.
"""
from __future__ import annotations

import os
import shutil
from pathlib import Path

TARGET = "mathjax/tex-svg-full.js"  # under _static


def _use_local_mathjax(app, config) -> None:
    config.mathjax_path = TARGET  # a relative mathjax_path is served from the site's _static


def _copy_mathjax(app, exception) -> None:
    if exception is not None or app.builder.format != "html":
        return
    from helpers import assets

    source = assets.fetch("mathjax")  # the verified cached copy (downloaded and checked if missing)
    target = Path(app.outdir) / "_static" / TARGET
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{os.getpid()}.tmp")
    shutil.copyfile(source, partial)
    os.replace(partial, target)


def setup(app):
    app.connect("config-inited", _use_local_mathjax, priority=900)
    app.connect("build-finished", _copy_mathjax)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
