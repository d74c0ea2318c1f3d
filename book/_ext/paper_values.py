"""Sphinx extension: the {paper} role marks a number quoted from the paper, e.g. {paper}`0.989`, and the
{authors} role one quoted from the printed output of the authors' code, e.g. {authors}`0.952`.

The typed value must be one of the `value`s in book/paper.yml, of an entry whose `origin` matches the role
(`origin: "authors' code"` for {authors}, none for {paper}); else a warning, which fails the strict build.
It renders as <abbr class="paper-value" title="the paper's value: ..."> with a visible "paper" mark, or as
<abbr class="authors-value" title="from the authors' code: ..."> with a visible "authors' code" mark
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


AUTHORS_CODE = "authors' code"  # the `origin` of an entry from the authors' code (helpers.report.AUTHORS_CODE)
ROLES = {"paper": ("the paper's value: ", "paper-value"), "authors": ("from the authors' code: ", "authors-value")}


def role_of(entry: dict) -> str:
    return "authors" if entry.get("origin") == AUTHORS_CODE else "paper"


def tooltip(entries: list[dict], role: str = "paper") -> str:
    return ROLES[role][0] + "; or ".join(f"{e['what']} ({e['model']}; {e['source']})" for e in entries)


def paper_role(name, rawtext, text, lineno, inliner, options=None, content=None):
    value = text.strip()
    entries = [e for e in load_paper_values().get(value, []) if role_of(e) == name]
    if not entries:
        other = "authors" if name == "paper" else "paper"
        hint = (f"it is listed with origin {'none' if other == 'paper' else repr(AUTHORS_CODE)}: cite it as "
                f"{{{other}}}`{value}`" if any(role_of(e) == other for e in load_paper_values().get(value, []))
                else "add it there with its source, or cite a number from the run with {glue:text}")
        msg = inliner.reporter.warning(f"{{{name}}}`{value}` is not a {name} value in {PAPER_FILE.name}: {hint}",
                                       line=lineno)
        return [inliner.problematic(rawtext, rawtext, msg)], [msg]
    return [nodes.abbreviation(rawtext, value, explanation=tooltip(entries, name), classes=[ROLES[name][1]])], []


def _static_path(app, config) -> None:
    config.html_static_path.append(str(STATIC))


def setup(app):
    app.add_role("paper", paper_role)
    app.add_role("authors", paper_role)
    app.connect("config-inited", _static_path)
    app.add_css_file("numbers.css", priority=900)  # after myst-nb's own css
    return {"parallel_read_safe": True, "parallel_write_safe": True}
