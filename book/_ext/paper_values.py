"""Sphinx extension: the {paper} role marks a number quoted from the paper, e.g. {paper}`0.952`.

The typed value must be one of the `value`s in book/paper.yml (else a warning, which fails the strict
build); it renders as <abbr class="paper-value" title="the paper's value: ..."> with a visible "paper" mark
(static/numbers.css, which also shows run values as plain text rather than bold).
"""
from __future__ import annotations

from pathlib import Path

from docutils import nodes

PAPER_FILE = Path(__file__).resolve().parent.parent / "paper.yml"
STATIC = Path(__file__).resolve().parent / "static"


def load_paper_values(path: Path = PAPER_FILE) -> dict[str, list[dict]]:
    """{typed value: [entries]} from book/paper.yml (several entries may share a value)."""
    import yaml

    by_value: dict[str, list[dict]] = {}
    for key, entry in (yaml.safe_load(path.read_text(encoding="utf-8")) or {}).items():
        by_value.setdefault(str(entry["value"]), []).append({"id": key, **entry})
    return by_value


def tooltip(entries: list[dict]) -> str:
    return "the paper's value: " + "; or ".join(
        f"{e['what']} ({e['model']}; {e['source']})" for e in entries)


def paper_role(name, rawtext, text, lineno, inliner, options=None, content=None):
    value = text.strip()
    entries = load_paper_values().get(value)
    if not entries:
        msg = inliner.reporter.warning(
            f"{{paper}}`{value}` is not a value in {PAPER_FILE.name}: add it there with its source, "
            "or cite a number from the run with {glue:text}", line=lineno)
        return [inliner.problematic(rawtext, rawtext, msg)], [msg]
    return [nodes.abbreviation(rawtext, value, explanation=tooltip(entries), classes=["paper-value"])], []


def _static_path(app, config) -> None:
    config.html_static_path.append(str(STATIC))


def setup(app):
    app.add_role("paper", paper_role)
    app.connect("config-inited", _static_path)
    app.add_css_file("numbers.css", priority=900)  # after myst-nb's own css
    return {"parallel_read_safe": True, "parallel_write_safe": True}
