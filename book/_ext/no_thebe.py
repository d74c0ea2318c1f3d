"""Sphinx extension: no thebe scripts in the book's pages.

Live code through Binder (thebe) is off in this book (`launch_buttons: thebe: false`), but Jupyter Book
loads sphinx-thebe regardless, which puts its configuration script, naming a CDN copy of thebe, twice in
every page: the second copy is a JavaScript error ("THEBE_JS_URL has already been declared"). This drops
those scripts from every page.
"""
from __future__ import annotations


def _is_thebe(script) -> bool:
    name = str(getattr(script, "filename", "") or "")
    body = str(getattr(script, "attributes", {}).get("body", ""))
    return "thebe" in name or "THEBE_JS_URL" in body


def _drop_thebe(app, pagename, templatename, context, doctree) -> None:
    scripts = context.get("script_files")
    if isinstance(scripts, list):
        scripts[:] = [s for s in scripts if not _is_thebe(s)]  # in place: Sphinx restores the list per page


def setup(app):
    app.connect("html-page-context", _drop_thebe, priority=900)
    return {"parallel_read_safe": True, "parallel_write_safe": True}
