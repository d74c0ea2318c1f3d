"""The chapters' prose cites the run (book/CONVENTIONS.md): no typed run numbers, every cited key glued.

A numeral in a chapter's markdown is allowed only by the grammar of CONVENTIONS.md section 2 (code, math
integers, {paper} and {authors} values, names, references, model facts, years and versions); anything else is
a number typed by hand. Every {glue:...} key the prose cites must be glued, by a literal key, in the same
notebook. The pages show no raw Python output, and the code a reader sees fits the column (section 6).
"""
from __future__ import annotations

import ast
import importlib.util
import re
from pathlib import Path

import nbformat
import pytest

from helpers import book, report

ROOT = Path(__file__).resolve().parent.parent
_spec = importlib.util.spec_from_file_location("glue_eval", ROOT / "book" / "_ext" / "glue_eval.py")
glue_eval = importlib.util.module_from_spec(_spec)  # the {eval} role's parser (a Sphinx extension's module)
_spec.loader.exec_module(glue_eval)
# Chapters being converted by their owners; remove a chapter from here when its prose follows the grammar.
PENDING: set[str] = set()
# Hand-written pages of the book (generated pages, such as the results page, live in book/notebooks/).
PAGES = sorted(p for p in (ROOT / "book").glob("*.md") if p.name != "CONVENTIONS.md")

ROLE = re.compile(r"\{([\w:-]+)\}`([^`]*)`")
FORMAT = re.compile(r"^(?:\+?,?(?:\.\d)?[gef%]|,?d|s)?$")
FENCE = re.compile(r"^(```+|~~~+).*?^\1\s*$", re.S | re.M)
DISPLAY_MATH = re.compile(r"\$\$(.+?)\$\$|\\begin\{(\w+\*?)\}(.+?)\\end\{\2\}", re.S)
INLINE_MATH = re.compile(r"(?<![\\$])\$(?!\$)(.+?)(?<![\\$])\$")
CODE = re.compile(r"(`+)(.+?)\1", re.S)
REFERENCE = re.compile(r"\b(?:chapters?|sections?|notebooks?|figures?|tables?|step|ranks?|eigenvectors?|layers?|"
                       r"axis|rows?|columns?)\s+\d+(?:\s*(?:,|–|-|and|to|or)\s*\d+)*", re.I)
MODEL_FACT = re.compile(r"\b\d+\s*×\s*\d+\b|\b\d+-(?:d|dimensional)\b")
VERSION = re.compile(r"\b(?:Python|PyTorch|Jupyter Book|Sphinx|MathJax|plotly\.js)\s+\d+(?:\.\d+)*(?:\.x)?(?:\s+to\s+"
                     r"\d+(?:\.\d+)*)?|\b\d+\.\d+\.\d+\b")
YEAR = re.compile(r"(?:19|20)\d\d")
CITED_BY = re.compile(r"(?:\b[A-Z][\w&.-]*|\bet al\.)\s$|\($")  # what may stand before a year
NUMERAL = re.compile(r"\d+(?:[.,]\d+)*")
SYMBOL = re.compile(r"(?<![\w\\])[A-Za-zα-ωΑ-Ω]\d+\b|\b[A-Za-zα-ωΑ-Ω]_[{\w]|[α-ωΑ-Ωᵀ‖]")


def _blank(match: re.Match) -> str:
    return re.sub(r"[^\n]", " ", match.group(0))  # keeps line numbers


def prose_problems(text: str) -> list[str]:
    """Numerals and symbols in markdown `text` that the grammar does not allow, as readable messages."""
    problems = []

    def role(match):
        name, content = match.groups()
        if name in ("paper", "authors") and not re.search(r"\d", content):
            problems.append(f"{{{name}}}`{content}` holds no number")
        return " " * len(match.group(0))

    text = FENCE.sub(_blank, text)
    text = re.sub(r"<!--.*?-->", _blank, text, flags=re.S)
    text = ROLE.sub(role, text)
    text = CODE.sub(_blank, text)

    def math(match):
        body = match.group(0)
        for decimal in re.findall(r"\d+\.\d+", body):
            problems.append(f"decimal {decimal} in math {body.strip()[:60]!r}: glue it and cite it outside the math")
        return _blank(match)

    text = DISPLAY_MATH.sub(math, text)
    text = INLINE_MATH.sub(math, text)
    text = re.sub(r"\]\([^)]*\)", "]", text)  # link targets
    text = re.sub(r"<https?://[^>]*>|https?://\S+", " ", text)
    text = re.sub(r"^\s*\d+[.)]\s", " ", text, flags=re.M)  # ordered-list markers
    text = re.sub(r"^\s*(?::::.*|:\w[\w-]*:.*)$", " ", text, flags=re.M)  # colon fences and directive options
    for lineno, line in enumerate(text.splitlines(), 1):
        for symbol in SYMBOL.finditer(line):
            problems.append(f"line {lineno}: symbol {symbol.group(0)!r} outside math in {line.strip()[:80]!r}: "
                            "write symbols as math ($z_0$, $\\lambda_k$), names as `code`")
        line = REFERENCE.sub(_blank, line)
        line = MODEL_FACT.sub(_blank, line)
        line = VERSION.sub(_blank, line)
        for numeral in NUMERAL.finditer(line):
            start, end = numeral.span()
            before, after = line[:start], line[end:]
            if re.search(r"[A-Za-z]$", before):
                continue  # a name: float32, conv1, dcgan-faces64 (a lone letter with digits is a symbol, above)
            if YEAR.fullmatch(numeral.group(0)) and CITED_BY.search(before):
                continue  # a year: ICLR 2021, Wang & Ponce (2021)
            if re.match(r"(?:st|nd|rd|th|D)\b", after):
                continue  # an ordinal (95th) or 2D/3D
            problems.append(f"line {lineno}: typed number {numeral.group(0)!r} in {line.strip()[:80]!r}: glue it "
                            "({glue:text}`key:.3g`), mark it as the paper's ({paper}`…`), or write it in words")
    return problems


def markdown_cells(path: Path) -> list[str]:
    return [cell.source for cell in book.load_notebook(path).cells if cell.cell_type == "markdown"]


def cited_keys(text: str) -> list[tuple[str, str, str]]:
    """(role, key, format) for every glue or {eval} role in markdown `text`: {eval}`f"{key:.3g}"` gives
    ("eval", "key", ".3g"); an {eval} expression the book cannot resolve is kept whole as its key (never glued)."""
    found = []
    for name, content in ROLE.findall(text):
        if name == "glue" or name.startswith("glue:"):
            key, _, fmt = content.partition(":")
            found.append((name, key.strip(), fmt.strip()))
        elif name == "eval":
            try:
                key, fmt = glue_eval.parse(content)
            except ValueError:
                key, fmt = content, None
            found.append((name, key, fmt or ""))
    return found


def glued_keys(path: Path) -> list[str]:
    """Keys glued by the notebook's code cells: calls glue("key", ...) or report.glue("key", ...)."""
    keys = []
    for cell in book.load_notebook(path).cells:
        if cell.cell_type != "code":
            continue
        source = "\n".join(line for line in cell.source.splitlines() if not line.lstrip().startswith(("%", "!")))
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, ast.Call) and getattr(node.func, "id", getattr(node.func, "attr", None)) == "glue":
                first = node.args[0] if node.args else None
                assert isinstance(first, ast.Constant) and isinstance(first.value, str), (
                    f"{path.name}: glue key must be a string literal: {ast.unparse(node)[:80]}")
                keys.append(first.value)
    return keys


CHAPTERS = book.find_notebooks()
CONVERTED = [p for p in CHAPTERS if p.name[:2] not in PENDING]


def test_pending_names_real_chapters():
    assert PENDING <= {p.name[:2] for p in CHAPTERS}, "remove a chapter from PENDING once it no longer exists"


@pytest.mark.parametrize("path", CONVERTED, ids=lambda p: p.stem)
def test_chapter_prose_types_no_run_numbers(path):
    problems = [f"cell {i}: {problem}" for i, text in enumerate(markdown_cells(path)) for problem in prose_problems(text)]
    assert not problems, f"{path.name}:\n" + "\n".join(problems)


@pytest.mark.parametrize("page", PAGES, ids=lambda p: p.name)
def test_hand_written_pages_type_no_run_numbers(page):
    problems = prose_problems(page.read_text(encoding="utf-8"))
    assert not problems, f"{page.name}:\n" + "\n".join(problems)


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_every_cited_key_is_glued_once_by_the_notebook(path):
    glued = glued_keys(path)
    duplicates = sorted({k for k in glued if glued.count(k) > 1})
    assert not duplicates, f"{path.name} glues {duplicates} more than once"
    cited = [c for text in markdown_cells(path) for c in cited_keys(text)]
    missing = sorted({key for _, key, _ in cited} - set(glued))
    assert not missing, f"{path.name} cites keys it never glues: {missing}"
    bad = [f"{key}:{fmt}" for name, key, fmt in cited if name in ("glue:text", "eval") and not FORMAT.match(fmt)]
    assert not bad, f"{path.name}: format specs outside the conventions (.3g, .1e, .1%, d, ...): {bad}"


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_chapter_opens_with_what_it_tests_and_ends_with_try_it(path):
    cells, names = markdown_cells(path), book.parameter_names(book.load_notebook(path))
    header = cells[0]
    assert header.startswith("# "), f"{path.name}: the first cell is the title"
    assert "**What this chapter tests.**" in header, f"{path.name}: no 'What this chapter tests' after the title"
    commands = re.findall(r"python -m helpers\.book run --only (\S+)((?: -p \S+ \S+)*)", header)
    assert commands and all(only == path.name[:2] for only, _ in commands), f"{path.name}: no rerun command for it"
    for _, options in commands:
        unknown = set(re.findall(r"-p (\S+)", options)) - set(names)
        assert not unknown, f"{path.name}: the rerun command sets {unknown}, not parameters of the chapter"
    assert ("{glue:text}`run_times`" in header or "{eval}`run_times`" in header) and (
        f'run_times("{path.stem}")' in path.read_text()), (
        f"{path.name}: the header cites run_times, glued from run_times({path.stem!r})")
    assert cells[-1].startswith("## Try it"), f"{path.name}: the last markdown cell is '## Try it'"
    assert len(re.findall(r"^- ", cells[-1], re.M)) >= 2, f"{path.name}: 'Try it' lists at least two things"


# Chapters whose code is still more than CODE_PER_PROSE times their prose; remove one when it is slimmed (the
# xfail is strict, so a chapter that meets the ratio fails here until it is taken off this list).
WORDY: set[str] = set()


@pytest.mark.parametrize("path", [pytest.param(p, marks=pytest.mark.xfail(strict=True, reason="not slimmed yet"))
                                  if p.name[:2] in WORDY else p for p in CHAPTERS], ids=lambda p: p.stem)
def test_chapter_code_is_at_most_one_and_a_half_times_its_prose(path):
    code, prose = book.code_prose_lines(path)
    assert code <= book.CODE_PER_PROSE * prose, (
        f"{path.name}: {code} code lines for {prose} prose lines ({code / prose:.2f}); move plumbing into helpers")


def test_code_prose_lines_counts_the_cells_as_written(tmp_path):
    source = tmp_path / "99_x.py"
    source.write_text("# ---\n# jupyter:\n#   kernelspec:\n#     name: python3\n# ---\n\n"
                      "# %% [markdown]\n# # Title\n#\n# Prose.\n\n# %% tags=['parameters']\nx = 1\n\n"
                      "# %%\n# a comment\ny = x\n\n\nz = y\n")
    assert book.code_prose_lines(source) == (4, 3)


def executed_problems(source: Path, executed: Path) -> list[str] | None:
    """Cited glue keys checked against an executed notebook: present, and formatted to a non-zero numeral.

    None if the notebook was executed from another version of the source's prose (nothing to compare).
    """
    from myst_nb.core.variables import format_plain_text
    from myst_nb.ext.glue import extract_glue_data

    nb = nbformat.read(executed, as_version=4)
    if [c.source for c in nb.cells if c.cell_type == "markdown"] != markdown_cells(source):
        return None
    data = {k: v["data"] for k, v in extract_glue_data(nb, list(range(len(nb.cells))), logger=None).items()}
    problems = []
    for text in markdown_cells(source):
        for name, key, fmt in cited_keys(text):
            if key not in data:
                problems.append(f"{key}: not glued in the executed notebook")
            elif name == "glue:md" and "text/markdown" not in data[key]:
                problems.append(f"{key}: cited with glue:md but glued without markdown")
            elif name in ("glue:text", "eval"):
                try:
                    shown = format_plain_text(data[key]["text/plain"], fmt)
                except (ValueError, TypeError) as err:
                    problems.append(f"{key}:{fmt}: {err}")
                    continue
                value = data[key]["text/plain"]
                if fmt and re.fullmatch(r"[-+]?[0.,%]+", shown) and re.search(r"[1-9]", value.split("e")[0]):
                    problems.append(f"{key}:{fmt} shows {value} as {shown}: use .1e or .3g")
    return problems


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_cited_keys_render_in_the_executed_notebook(path):
    executed = book.OUTPUT / f"{path.stem}.ipynb"
    if not executed.exists():
        pytest.skip(f"{executed} not executed yet (python -m helpers.book run --only {path.name[:2]})")
    problems = executed_problems(path, executed)
    if problems is None:
        pytest.skip(f"{executed} was executed from another version of {path.name}")
    assert not problems, f"{executed.name}:\n" + "\n".join(problems)


# --- the grammar itself, on examples


@pytest.mark.parametrize("text", [
    "In {glue:text}`n:d` of {glue:text}`m:d` pairs the ratio was {glue:text}`r:.3g`.",
    "The paper reports {paper}`0.952` for `dcgan-faces64` with `gan-face-generate==1.1.1`.",
    "See chapter 2 and chapters 02–05, eigenvector 50 and rank 20; 64×64 images, a 100-d code.",
    "Wang & Ponce (2021) at ICLR 2021; Python 3.10 to 3.12, Jupyter Book 1.x, version 1.1.1.",
    "$$ H(z_0) = 2\\, J^\\top J, \\quad t = 10^{-5} $$ and $\\lambda_{50}$ and the 95th percentile.",
    "1. float32 and conv1\n2. a [link](02_spectrum.ipynb) and <https://x.org/2101.06006>",
    "```bash\npython -m helpers.book run --only 01 -p seed 3\n```",
])
def test_grammar_allows(text):
    assert prose_problems(text) == []


@pytest.mark.parametrize("text, typed", [
    ("the mean final LPIPS was 0.075", "0.075"),
    ("every ratio within about 3% of 1", "3"),
    ("Lanczos is accurate to about 1e-7", "1"),
    ("on 30 codes", "30"),
    ("the value $\\lambda_1 = 0.31$ in math", "0.31"),
    ("the top 20 eigenvalues", "20"),
    ("ratio 0.18 (paper value typed without the role)", "0.18"),
])
def test_grammar_rejects_typed_numbers(text, typed):
    problems = prose_problems(text)
    assert problems and typed in problems[0], problems


@pytest.mark.parametrize("text", ["near z0 the metric", "the weights α_{l,k}", "eigenvalues λ_k", "step ε",
                                  "H = 2JᵀJ", "‖z‖"])
def test_grammar_rejects_symbols_outside_math(text):
    assert any("symbol" in p for p in prose_problems(text)), prose_problems(text)


def test_glued_keys_are_read_from_code_and_must_be_literal(tmp_path):
    source = tmp_path / "99_x.py"
    source.write_text('# %% [markdown]\n# {glue:text}`a:.3g` and {glue:md}`b`\n\n# %%\nfrom helpers.report import glue\n'
                      'glue("a", 1.0)\nreport.glue("b", "text")\n%matplotlib inline\n')
    assert glued_keys(source) == ["a", "b"]
    assert cited_keys(markdown_cells(source)[0]) == [("glue:text", "a", ".3g"), ("glue:md", "b", "")]
    source.write_text('# %%\nfrom helpers.report import glue\nfor k in "ab":\n    glue(f"x_{k}", 1)\n')
    with pytest.raises(AssertionError, match="string literal"):
        glued_keys(source)


def test_executed_check_catches_a_format_that_hides_the_value(tmp_path):
    from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

    source = tmp_path / "99_x.py"
    source.write_text("# %% [markdown]\n# gap {glue:text}`gap:.3f`, ok {glue:text}`ok:.1e`, missing {glue:text}`gone`\n")
    nb = new_notebook(cells=[new_markdown_cell(markdown_cells(source)[0]), new_code_cell(
        "from helpers.report import glue\nglue('gap', 6.2e-7)\nglue('ok', 6.2e-7)")],
        metadata={"kernelspec": {"name": "python3", "language": "python", "display_name": "Python 3"}})
    assert book.execute(nb, {}, "99_x", tmp_path)["status"] == "ok"
    problems = executed_problems(source, tmp_path / "99_x.ipynb")
    assert len(problems) == 2 and "gap:.3f shows 6.2e-07 as 0.000" in problems[0] and "gone" in problems[1]


@pytest.mark.parametrize("path", CHAPTERS + PAGES, ids=lambda p: p.name)
def test_paper_numbers_are_listed_with_their_sources(path):
    """Every {paper}`value` is a value of book/paper.yml printed in the paper, every {authors}`value` one
    printed by the authors' code (`origin`); the strict build checks it too."""
    texts = markdown_cells(path) if path.suffix == ".py" else [path.read_text(encoding="utf-8")]
    known = {(report.paper_role(entry), str(entry["value"])) for entry in report.paper_entries().values()}
    cited = {(name, content.strip()) for text in texts for name, content in ROLE.findall(text)
             if name in ("paper", "authors")}
    unknown = sorted(cited - known)
    assert not unknown, f"{path.name}: (role, value) not in book/paper.yml with that origin: {unknown}"


# --- what the pages show: no raw Python output, code that fits the column

# A cell tagged so shows its plain-text output on purpose (book/CONVENTIONS.md section 6).
RAW_OUTPUT_TAG = "raw-output"
HIDDEN_OUTPUT = {"remove-output", "remove-cell", RAW_OUTPUT_TAG}
# Chapters whose owners are removing their raw output; remove one when it shows none (the xfail is strict).
RAW_OUTPUT_PENDING: set[str] = set()
CODE_WIDTH = 88  # columns of code a page shows without scrolling sideways
# Chapters whose code is still wider than CODE_WIDTH (not owned by this change); strict, as WORDY.
# 00 and 06: lines the {eval} conversion (`key = glue("key", ...)`) made longer, in integ before issue 24's round two.
WIDE: set[str] = set()


WIDGET = "application/vnd.jupyter.widget-view+json"


def raw_outputs(nb) -> list[str]:
    """The outputs of an executed notebook that a reader would see as raw Python output: printed text (stdout,
    stderr) and results that are only text/plain (a repr: a stray number, a quoted string, a dict), outside
    cells whose output is removed or tagged `raw-output`."""
    found = []
    for i, cell in enumerate(nb.cells):
        if cell.cell_type != "code" or HIDDEN_OUTPUT & set(cell.metadata.get("tags", [])):
            continue
        for out in cell.get("outputs", []):
            if out.output_type == "stream":
                text = out.text
            elif out.output_type in ("execute_result", "display_data") and set(out.data) <= {"text/plain"}:
                text = out.data.get("text/plain", "")
            elif WIDGET in out.get("data", {}) and "widgets" not in nb.metadata:
                # a widget with no saved state (a leftover progress bar): nothing to see in the book, an
                # error in JupyterLab ("model not found")
                text = out.data.get("text/plain", "")
            else:
                continue
            found.append(f"cell {i} ({out.output_type}): {text.strip()[:120]!r}")
    return found


def test_raw_outputs_are_found_and_tagged_cells_are_left_alone():
    from nbformat.v4 import new_code_cell, new_notebook, new_output

    cells = [new_code_cell("x", outputs=[new_output("execute_result", {"text/plain": "5.39"}, execution_count=1)]),
             new_code_cell("print", outputs=[new_output("stream", name="stdout", text="hello\n")]),
             new_code_cell("md", outputs=[new_output("display_data", {"text/plain": "<M>", "text/markdown": "*a*"})]),
             new_code_cell("x", metadata={"tags": [RAW_OUTPUT_TAG]},
                           outputs=[new_output("stream", name="stdout", text="meant\n")]),
             new_code_cell("w", metadata={"tags": ["remove-output"]},
                           outputs=[new_output("display_data", {"text/plain": "Widget"})])]
    found = raw_outputs(new_notebook(cells=cells))
    assert len(found) == 2 and "'5.39'" in found[0] and "'hello'" in found[1]
    bar = new_code_cell("m", outputs=[new_output("display_data", {WIDGET: {"model_id": "x"},
                                                                  "text/plain": "metric (jacobian):   0%|"})])
    assert len(raw_outputs(new_notebook(cells=[bar]))) == 1, "a widget without saved state is stray output"
    assert not raw_outputs(new_notebook(cells=[bar], metadata={"widgets": {}}))


def executed(path: Path):
    """The executed notebook of a chapter source, or a skip when it is missing or from other sources."""
    target = book.OUTPUT / f"{path.stem}.ipynb"
    if not target.exists():
        pytest.skip(f"{target} not executed yet (python -m helpers.book run --only {path.name[:2]})")
    nb = nbformat.read(target, as_version=4)
    if [c.source for c in nb.cells if c.cell_type == "markdown"] != markdown_cells(path):
        pytest.skip(f"{target} was executed from another version of {path.name}")
    return nb


def _pending(names: set[str], reason: str):
    return [pytest.param(p, marks=pytest.mark.xfail(strict=True, reason=reason)) if p.name[:2] in names else p
            for p in CHAPTERS]


@pytest.mark.parametrize("path", _pending(RAW_OUTPUT_PENDING, "raw output not removed yet"), ids=lambda p: p.stem)
def test_executed_chapters_show_no_raw_python_output(path):
    """What `make book` executed (book/notebooks/); test_book_render checks every chapter of a fresh smoke run."""
    found = raw_outputs(executed(path))
    assert not found, f"{path.name}: raw output (display it as a table, a figure or prose, or tag the cell " \
                      f"{RAW_OUTPUT_TAG!r} if it is meant):\n" + "\n".join(found)


def wide_code(path: Path) -> list[str]:
    """Lines wider than CODE_WIDTH in the code cells a reader sees (cells whose input is removed are left out)."""
    hidden = {"remove-input", "remove-cell"}
    return [f"cell {i}: {len(line)} columns: {line.strip()[:70]}"
            for i, cell in enumerate(book.load_notebook(path).cells)
            if cell.cell_type == "code" and not hidden & set(cell.metadata.get("tags", []))
            for line in cell.source.splitlines() if len(line) > CODE_WIDTH]


@pytest.mark.parametrize("path", _pending(WIDE, "code not wrapped yet"), ids=lambda p: p.stem)
def test_chapter_code_fits_the_column(path):
    wide = wide_code(path)
    assert not wide, f"{path.name}: code wider than {CODE_WIDTH} columns scrolls sideways:\n" + "\n".join(wide)


# A word of a "Try it" bullet on `--profile full` and the parameters that word promises the profile raises.
FULL_PROMISES = {"more units": ("am_units", "n_units"), "more starts": ("am_repeats", "n_starts"),
                 "more codes": ("n_codes", "n_points"), "more targets": ("n_targets",)}


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_try_it_promises_only_what_the_full_profile_changes(path):
    """A "Try it" bullet that starts from `--profile full` promises more units, starts, codes or targets only
    when the full profile raises them above the chapter's defaults (chapter 08 once promised more units and
    starts from a profile that uses the same)."""
    from helpers.profiles import PROFILES

    nb = book.load_notebook(path)
    defaults = book.parameter_defaults(nb)
    for bullet in re.split(r"^- ", markdown_cells(path)[-1], flags=re.M)[1:]:
        if "--profile full" not in bullet:
            continue
        said = bullet.split("`-p", 1)[0].lower()  # what it says of the profile, before any other command
        for words, names in FULL_PROMISES.items():
            raised = [n for n in names if n in defaults and isinstance(PROFILES["full"].get(n), (int, float))
                      and PROFILES["full"][n] > defaults[n]]
            if words in said:
                assert raised, f"{path.name}: 'Try it' promises {words} from --profile full, which does not raise " \
                               f"{' or '.join(n for n in names if n in defaults)}: {bullet.strip()[:120]}"
