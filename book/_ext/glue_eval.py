"""The {eval} role: one prose source that shows the run's numbers both in the book and in JupyterLab.

A chapter's prose cites a value the notebook glued (`helpers.report.glue`) as {eval}`key`, or with a format spec
as {eval}`f"{key:.3g}"`, and the notebook binds the name to the glued value: `key = glue("key", value)`.

- In JupyterLab, jupyterlab-myst evaluates each expression in the kernel when its markdown cell runs (Run All
  runs them in order), and shows the result: a plain string as text, a string that `helpers.report.glue`
  returned as markdown as MyST, a formatted number as text.
- In the book (a Sphinx extension, `sphinx: local_extensions` in _config.yml), this role resolves the same
  expression from the value glued during the run, as myst-nb's {glue:text} and {glue:md} do, and renders it
  the same way. It accepts only those two forms, naming a key glued by the same notebook; anything else is a
  warning, which fails the strict build, so the book never evaluates code and every number in the prose is
  one the run glued and recorded in summary.json.

Run as a script, it converts chapters from myst-nb's glue roles to this role:

    python book/_ext/glue_eval.py notebooks/03_homogeneity.py [...]

`convert` rewrites the prose roles ({glue:text}`k:.3g` -> {eval}`f"{k:.3g}"`, {glue:text}`k` and
{glue:md}`k` -> {eval}`k`), binds each cited key in the code (`glue("k", v)` -> `k = glue("k", v)`), and adds
`-user_expressions` to the jupytext header's cell_metadata_filter, so that saving the chapter in JupyterLab
never writes jupyterlab-myst's evaluated results into the file. What it cannot do safely it reports, and then
changes nothing. `problems` is the static check of a converted chapter (tests/test_lab.py).
"""
from __future__ import annotations

import ast
import re
import sys
from pathlib import Path

ROLE = re.compile(r"\{(eval|glue(?::(?:text|md|any))?)\}`([^`]*)`")
FILTER = "-user_expressions"  # jupyterlab-myst keeps evaluated results in this cell metadata key


def parse(expression: str) -> tuple[str, str | None]:
    """(key, format spec or None) of an {eval} expression: `key` or `f"{key:spec}"`; ValueError for any other."""
    hint = (f"{{eval}}`{expression}`: the book takes a glued name, {{eval}}`key`, or one formatted, "
            f"{{eval}}`f\"{{key:.3g}}\"`")
    try:
        node = ast.parse(expression.strip(), mode="eval").body
    except SyntaxError:
        raise ValueError(hint) from None
    if isinstance(node, ast.Name):
        return node.id, None
    if isinstance(node, ast.JoinedStr) and len(node.values) == 1:
        part = node.values[0]
        if (isinstance(part, ast.FormattedValue) and isinstance(part.value, ast.Name) and part.conversion == -1
                and part.format_spec is not None
                and all(isinstance(p, ast.Constant) for p in part.format_spec.values)):
            spec = "".join(p.value for p in part.format_spec.values)
            try:
                format(1 if spec[-1:] in tuple("bcdoxX") else 0.5, spec)  # a spec Python can apply
            except ValueError:
                raise ValueError(f"{hint} ({spec!r} is not a format spec)") from None
            return part.value.id, spec
    raise ValueError(hint)


# --- the role, in the book --------------------------------------------------------------------------------------

def _eval_role():
    from docutils import nodes
    from myst_nb.core.render import MimeData
    from myst_nb.core.variables import RetrievalError, format_plain_text
    from myst_nb.ext.glue.utils import glue_warning, retrieve_glue_data
    from myst_nb.ext.utils import RoleBase

    from helpers.report import shows_as_markdown

    class EvalGlueRole(RoleBase):
        """{eval}`key` or {eval}`f"{key:spec}"`, resolved from the notebook's glued values."""

        def run(self):
            try:
                key, spec = parse(self.text)
                result = retrieve_glue_data(self.document, key)
            except (ValueError, RetrievalError) as exc:
                return [], [glue_warning(f"{exc} (glue it in this notebook: {{eval}} cites glued values only)",
                                         self.document, self.line)]
            data = result.data
            if "text/plain" not in data:
                return [], [glue_warning(f"no text/plain in the glued value {key!r}", self.document, self.line)]
            try:
                text = format_plain_text(data["text/plain"], spec or "")
            except (TypeError, ValueError) as exc:
                return [], [glue_warning(f"{{eval}}`{self.text}`: {exc}", self.document, self.line)]
            if spec is None and "text/markdown" in data and shows_as_markdown(data["text/markdown"]):
                # As jupyterlab-myst shows a str that glue returned as markdown: rendered as MyST.
                cell_key = result.nb_renderer.renderer.nb_config.cell_metadata_key
                mime = MimeData("text/markdown", data["text/markdown"],
                                cell_metadata={cell_key: {"markdown_format": "myst"}},
                                output_metadata=result.metadata, line=self.line)
                rendered = result.nb_renderer.render_markdown_inline(mime)
                for node in rendered:
                    self.set_source_info(node)
                return rendered, []
            node = nodes.inline(text, text, classes=["pasted-text"])
            self.set_source_info(node)
            return [node], []

    return EvalGlueRole()


def setup(app):
    # After myst-nb's own {eval} (which needs a kernel while the book builds; this book is executed beforehand).
    app.add_role("eval", _eval_role(), override=True)
    return {"parallel_read_safe": True, "parallel_write_safe": True}


# --- converting a chapter, and checking one ---------------------------------------------------------------------

def _cells(text: str) -> list[tuple[str, int, int]]:
    """(kind, first line, end line) of each py:percent cell of `text` (lines 0-based, end exclusive)."""
    lines = text.split("\n")
    starts = [i for i, line in enumerate(lines) if line.startswith("# %%")]
    return [("markdown" if "[markdown]" in lines[s] else "code", s + 1, e)
            for s, e in zip(starts, starts[1:] + [len(lines)])]


def cited(text: str) -> list[tuple[str, str, str]]:
    """(role, content, whole match) of every glue or eval role in the markdown cells of py:percent `text`."""
    lines = text.split("\n")
    found = []
    for kind, start, end in _cells(text):
        if kind == "markdown":
            found += [(m.group(1), m.group(2), m.group(0)) for m in ROLE.finditer("\n".join(lines[start:end]))]
    return found


def _glue_calls(tree: ast.AST) -> list[ast.Call]:
    return [node for node in ast.walk(tree) if isinstance(node, ast.Call)
            and getattr(node.func, "id", getattr(node.func, "attr", None)) == "glue" and node.args
            and isinstance(node.args[0], ast.Constant) and isinstance(node.args[0].value, str)]


def _code(text: str) -> str:
    """The code cells of py:percent `text` as one module (magics blanked), line numbers kept."""
    lines = text.split("\n")
    out = [""] * len(lines)
    for kind, start, end in _cells(text):
        if kind == "code":
            for i in range(start, end):
                out[i] = "" if lines[i].lstrip().startswith(("%", "!")) else lines[i]
    return "\n".join(out)


def _binding(tree: ast.AST, key: str) -> str | None:
    """How the code binds `key` to its glued value: 'assigned' (key = glue("key", ...)), 'argument'
    (glue("key", key)), or None."""
    for statement in _glue_statements(tree, key):
        if isinstance(statement, ast.Assign) and any(isinstance(t, ast.Name) and t.id == key
                                                     for t in statement.targets):
            return "assigned"
    for call in _glue_calls(tree):
        value = call.args[1] if len(call.args) > 1 else None
        if call.args[0].value == key and isinstance(value, ast.Name) and value.id == key:
            return "argument"
    return None


def _glue_statements(tree: ast.AST, key: str) -> list[ast.stmt]:
    """The statements whose value is glue("key", ...) itself (a bare call or an assignment of it)."""
    return [node for node in ast.walk(tree) if isinstance(node, (ast.Expr, ast.Assign))
            and isinstance(node.value, ast.Call) and node.value in _glue_calls(tree)
            and node.value.args[0].value == key]


def _stores(tree: ast.AST, name: str) -> list[ast.AST]:
    """Nodes other than glue's own assignment that bind `name` (assignments, loops, imports, defs)."""
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id == name and isinstance(node.ctx, ast.Store):
            found.append(node)
        elif isinstance(node, (ast.FunctionDef, ast.ClassDef)) and node.name == name:
            found.append(node)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            found += [node for alias in node.names if (alias.asname or alias.name.split(".")[0]) == name]
    return found


def problems(text: str) -> list[str]:
    """What keeps py:percent `text` from showing its {eval} roles alike in the book and in JupyterLab."""
    found = []
    tree = ast.parse(_code(text))
    glued = {call.args[0].value for call in _glue_calls(tree)}
    for role, content, whole in cited(text):
        if role != "eval":
            found.append(f"{whole}: a myst-nb glue role, which JupyterLab cannot show; convert it to {{eval}}")
            continue
        try:
            key, _ = parse(content)
        except ValueError as exc:
            found.append(str(exc))
            continue
        if key not in glued:
            found.append(f"{whole}: the notebook never glues {key!r} (glue(\"{key}\", value), a literal key)")
        elif _binding(tree, key) is None:
            found.append(f"{whole}: bind the name to the glued value, {key} = glue(\"{key}\", ...), so that "
                         "JupyterLab evaluates the same value")
    header = re.search(r"^#\s+cell_metadata_filter: (.*)$", text, re.M)
    if cited(text) and not (header and FILTER in header.group(1).split(",")):
        found.append(f"the jupytext header's cell_metadata_filter lacks {FILTER}: saving in JupyterLab would write "
                     "the evaluated results into the file")
    return found


def cited_before_bound(text: str) -> list[str]:
    """The {eval} roles of py:percent `text` whose name no code cell above their markdown cell binds.

    JupyterLab's Run All evaluates a markdown cell's roles when it reaches the cell (jupyterlab-myst), so a role
    whose name only a later cell binds shows an error there until the cell is rendered again; the book resolves
    roles from the whole run, in any order. The name counts as bound by `key = glue("key", ...)`, or, where the
    code glues it as `glue("key", key)`, by its first binding (a parameter, say). Roles the book cannot resolve
    are left to `problems`."""
    lines, tree = text.split("\n"), ast.parse(_code(text))
    found = []
    for kind, start, end in _cells(text):  # start: the line after the cell's marker, so its marker's 1-based line
        if kind != "markdown":
            continue
        for match in ROLE.finditer("\n".join(lines[start:end])):
            try:
                key = parse(match.group(2))[0] if match.group(1) == "eval" else None
            except ValueError:
                key = None
            bound = _bound_at(tree, key) if key else None
            problem = (f"line {start + 1}: {match.group(0)} cites {key!r}, which "
                       + (f"line {bound} binds" if bound else "no code binds")
                       + ": bind it in a code cell above, or move the prose below that cell")
            if key and (bound is None or bound >= start) and problem not in found:
                found.append(problem)
    return found


def _bound_at(tree: ast.AST, key: str) -> int | None:
    """The first line (1-based) of the code that binds the name `key` to its glued value, or None."""
    lines = [s.lineno for s in _glue_statements(tree, key) if isinstance(s, ast.Assign)
             and any(isinstance(t, ast.Name) and t.id == key for t in s.targets)]
    if any(len(call.args) > 1 and isinstance(call.args[1], ast.Name) and call.args[1].id == key
           for call in _glue_calls(tree) if call.args[0].value == key):  # glue("key", key): its first binding
        lines += [node.lineno for node in _stores(tree, key)]
    return min(lines, default=None)


def convert(text: str) -> tuple[str, list[str]]:
    """(converted text, notes) of py:percent `text`. When something needs a person (a glue call inside an
    expression, a key that is not a Python name, a key whose name the code binds to something else and reads
    afterwards), the text comes back unchanged and the notes say what; otherwise the notes are advice on the
    converted text (a name rebound from something else, lines now longer than 120 characters)."""
    lines = text.split("\n")
    tree = ast.parse(_code(text))
    blocking, advice, keys = [], [], []

    def replace(match):
        role, content = match.group(1), match.group(2)
        if role == "eval":
            return match.group(0)
        key, _, spec = content.partition(":")  # {glue:text}`key:spec`; {glue:md}`key:myst` (a markdown flavour)
        key, spec = key.strip(), spec.strip() if role == "glue:text" else ""
        if not key.isidentifier():
            blocking.append(f"{match.group(0)}: the key is not a Python name; rename it")
            return match.group(0)
        keys.append(key)
        return f'{{eval}}`f"{{{key}:{spec}}}"`' if spec else f"{{eval}}`{key}`"

    for kind, start, end in _cells(text):
        if kind == "markdown":
            for i in range(start, end):
                lines[i] = ROLE.sub(replace, lines[i])
    bindings = []  # statements that become `key = glue("key", ...)`
    for key in dict.fromkeys(keys):
        statements = _glue_statements(tree, key)
        if _binding(tree, key):
            continue
        if not statements:
            blocking.append(f"{key}: no statement glue(\"{key}\", ...) of its own (inside an expression?); bind it "
                            f"by hand: {key} = glue(\"{key}\", ...)")
            continue
        statement = statements[0]
        others = [n for n in _stores(tree, key)
                  if not (isinstance(statement, ast.Assign) and any(n is t for t in statement.targets))]
        read_later = any(isinstance(n, ast.Name) and n.id == key and isinstance(n.ctx, ast.Load)
                         and n.lineno > statement.end_lineno for n in ast.walk(tree))
        if others and read_later:
            blocking.append(f"{key}: the code also binds {key!r} to something else and reads it after the glue; "
                            f"rename one of them, then bind {key} = glue(\"{key}\", ...)")
            continue
        if any(not isinstance(n, (ast.Import, ast.ImportFrom)) for n in others):  # e.g. not run_times's import
            advice.append(f"{key}: now rebound to its glued value (line {statement.lineno}); it was bound to "
                          f"something else before (line {others[0].lineno}): consider renaming that")
        bindings.append((key, statement))
    if blocking:
        return text, blocking
    for key, statement in bindings:
        insertion = f"{key} = "
        first, last = statement.lineno - 1, statement.end_lineno - 1
        lines[first] = lines[first][:statement.col_offset] + insertion + lines[first][statement.col_offset:]
        if not _multiline_string(lines[first:last + 1]):  # continuation lines stay aligned with the call's "("
            for i in range(first + 1, last + 1):
                lines[i] = " " * len(insertion) + lines[i] if lines[i].strip() else lines[i]
        advice += [f"line {i + 1} is now {len(lines[i])} characters long: wrap it" for i in range(first, last + 1)
                   if len(lines[i]) > 120]
    converted = "\n".join(lines)
    return (_with_filter(converted) if cited(converted) else converted), advice


def _multiline_string(lines: list[str]) -> bool:
    """Whether these lines of code may hold a string that spans lines (triple quotes), whose text must not be
    indented."""
    return any('"""' in line or "'''" in line or line.rstrip().endswith("\\") for line in lines)


def _with_filter(text: str) -> str:
    """`text` with -user_expressions in its jupytext header's cell_metadata_filter, written as jupytext writes it
    when JupyterLab saves (reading completes the filter with the cell metadata the file holds), so that a save
    leaves the file as it is."""
    import jupytext

    for _ in range(3):  # to jupytext's fixed point: set the filter, read it back completed, write
        notebook = jupytext.reads(text, fmt="py:percent")
        options = notebook.metadata.setdefault("jupytext", {})
        filters = [f for f in options.get("cell_metadata_filter", "").split(",") if f]
        options["cell_metadata_filter"] = ",".join(filters + [FILTER] * (FILTER not in filters))
        written = jupytext.writes(notebook, fmt="py:percent")
        if written == text:
            return text
        text = written
    raise RuntimeError("jupytext does not write the header twice alike")


def main(argv=None) -> int:
    paths = [Path(p) for p in (sys.argv[1:] if argv is None else argv)]
    if not paths:
        print("usage: python book/_ext/glue_eval.py NOTEBOOK.py [...]  (converts glue roles to {eval} in place)")
        return 2
    failed = 0
    for path in paths:
        text = path.read_text(encoding="utf-8")
        converted, notes = convert(text)
        if converted == text and notes:
            failed += 1
            print(f"{path}: not converted:\n  " + "\n  ".join(notes))
            continue
        left = problems(converted)
        if converted != text:
            path.write_text(converted, encoding="utf-8")
        print(f"{path}: " + ("converted" if converted != text else "nothing to convert")
              + "".join(f"\n  {note}" for note in notes + left))
        failed += bool(left)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
