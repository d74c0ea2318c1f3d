"""Jupyter out of the box: `make lab` opens the chapters as notebooks that show the run's numbers in their prose,
as the book does, and that opening, running, saving and closing never change; the explorer works in a real
browser, in JupyterLab and in Voilà (`make explore`), through page reloads and kernel restarts; Voilà frees the
kernel of every closed page.

The browser tests start the servers with the Makefile's own command lines (read with `make -n`) in a fresh
copy of the repository, drive Debian's chromium with Playwright, and save screenshots in test-artifacts/. One
JupyterLab and one Voilà server serve all the tests of this module.
"""
import asyncio
import base64
import importlib.util
import json
import re
import shutil
import subprocess
import sys
import time
from pathlib import Path

import nbformat
import pytest

from test_book_render import chromium

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
CHAPTERS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.py"))
TEXT_NOTEBOOKS = CHAPTERS + [ROOT / "apps" / "explorer.py"]
WINDOW = {"width": 1280, "height": 900}  # the window every busy state must show in
PHONE = {"width": 400, "height": 800}


def header_times(stem: str) -> str:
    """A chapter header's run times as the evaluated prose shows them: `report.run_times` of book/timings.json."""
    from helpers import report

    return f"Rerun it ({report.run_times(stem)}):"


def _load(name: str, path: Path):
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # a dataclass looks its module up there
    spec.loader.exec_module(module)
    return module


def _driver():
    return _load("explore_browser", ROOT / "benchmarks" / "explore_browser.py")


glue_eval = _load("glue_eval", ROOT / "book" / "_ext" / "glue_eval.py")


def _git(tree: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(tree), *args], capture_output=True, text=True, check=True).stdout


def _contents_manager(root: Path):
    """The contents manager `make lab` runs (jupyter/jupyter_server_config.py), serving `root`."""
    from traitlets.config.loader import PyFileConfigLoader

    config = PyFileConfigLoader("jupyter_server_config.py", path=str(ROOT / "jupyter")).load_config()
    return config.ServerApp.contents_manager_class(root_dir=str(root))


# --- no browser ---------------------------------------------------------------------------------------------------

def test_text_notebooks_open_with_their_kernels_language_info_and_survive_a_save(tmp_path):
    """Each chapter and the explorer's source open through the project's contents manager as JupyterLab gets them:
    as notebooks, already with the language_info their kernel reports (so connecting it changes nothing). Saved
    back with what the front end adds (widget state, jupyterlab-myst's evaluated expressions in the markdown
    cells of chapters that use {eval}), each is byte-identical and nothing is written beside it."""
    from ipykernel.ipkernel import IPythonKernel

    for path in TEXT_NOTEBOOKS:
        shutil.copy(path, tmp_path / path.name)
    manager = _contents_manager(tmp_path)

    async def open_and_save(name):
        model = await manager.get(name)
        assert model["type"] == "notebook", f"{name} does not open as a notebook"
        notebook = model["content"]
        assert notebook["metadata"]["language_info"] == IPythonKernel.language_info
        notebook["metadata"]["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}}}
        for cell in notebook["cells"]:
            if cell["cell_type"] == "markdown" and "{eval}" in cell["source"]:
                cell["metadata"]["user_expressions"] = [{"expression": "x", "result": {
                    "status": "ok", "data": {"text/plain": "1"}, "metadata": {}}}]
        await manager.save({"type": "notebook", "format": "json", "content": notebook}, name)

    for path in TEXT_NOTEBOOKS:
        asyncio.run(open_and_save(path.name))
        assert (tmp_path / path.name).read_bytes() == path.read_bytes(), f"saving rewrote {path.name}"
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in TEXT_NOTEBOOKS)  # no paired .ipynb


def test_make_targets_use_the_project_settings():
    dry = subprocess.run(["make", "-n", "-s", "-C", str(ROOT), "lab", "explore"], capture_output=True, text=True,
                         check=True).stdout.replace("\\\n", " ")
    lab = next(line for line in dry.splitlines() if "/bin/jupyter lab" in line)
    voila = next(line for line in dry.splitlines() if "/bin/voila" in line)
    for line in (lab, voila):
        assert f'JUPYTER_CONFIG_PATH="{ROOT}/jupyter' in line and f'JUPYTER_PATH="{ROOT}/jupyter' in line
    assert f'--ServerApp.root_dir="{ROOT}"' in lab
    assert "--output _build/apps/explorer.ipynb apps/explorer.py &&" in voila
    assert "_build/apps/explorer.ipynb --template=offline" in voila
    assert (ROOT / "jupyter" / "voila" / "templates" / "offline" / "index.html.j2").is_file()
    settings = json.loads((ROOT / "jupyter" / "labconfig" / "default_setting_overrides.json").read_text())
    assert settings["@jupyterlab/docmanager-extension:plugin"]["defaultViewers"]["python"] == "Jupytext Notebook"
    voila_config = json.loads((ROOT / "jupyter" / "voila.json").read_text())
    assert voila_config["VoilaConfiguration"]["extension_allowlist"] == [
        "@jupyter-widgets/jupyterlab-manager", "@voila-dashboards/widgets-manager8"]
    kernel = json.loads((ROOT / "jupyter" / "kernels" / "python3" / "kernel.json").read_text())
    native = json.loads((Path(sys.prefix) / "share" / "jupyter" / "kernels" / "python3" / "kernel.json").read_text())
    assert kernel["argv"][:len(native["argv"])] == native["argv"] and kernel["display_name"] == native["display_name"]


def test_the_project_kernel_starts_in_the_repository_root(tmp_path):
    """Where the book runs its notebooks (papermill's cwd): the stores under runs/ and every relative path are
    the same whichever folder a notebook is in."""
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager

    specs = KernelSpecManager(kernel_dirs=[str(ROOT / "jupyter" / "kernels")])
    manager = KernelManager(kernel_name="python3", kernel_spec_manager=specs)
    manager.start_kernel(cwd=str(tmp_path))  # where JupyterLab starts it: the notebook's folder
    client = manager.client()
    lines = []
    try:
        client.start_channels()
        client.wait_for_ready(timeout=60)
        reply = client.execute_interactive("import os; print(os.getcwd())", timeout=60, output_hook=lambda m: (
            lines.append(m["content"]["text"]) if m["msg_type"] == "stream" else None))
        assert reply["content"]["status"] == "ok"
    finally:
        client.stop_channels()
        manager.shutdown_kernel(now=True)
    assert "".join(lines).strip() == str(ROOT)


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_every_chapter_cites_with_the_eval_role_only_values_it_glues_and_binds(path):
    """Every chapter's prose shows alike in the book and in JupyterLab: {eval} roles only (no myst-nb glue role,
    which JupyterLab shows raw), each naming a value the chapter glues and binds to that name."""
    text = path.read_text(encoding="utf-8")
    assert "{eval}" in text and not re.search(r"\{glue(:\w+)?\}`", text), f"{path.name}: not converted"
    assert glue_eval.problems(text) == []


@pytest.mark.parametrize("path", CHAPTERS, ids=lambda p: p.stem)
def test_every_chapter_binds_each_cited_value_above_the_prose_that_cites_it(path):
    """JupyterLab evaluates a markdown cell's {eval} roles when the cell runs, so every name the prose cites is
    bound by a code cell above it: the header's run_times by the first cell (removed from the book's page), the
    closing "What the numbers show" below the cell that glues its values. Run from the top, cell by cell, no
    prose shows a NameError (the book resolves roles from the whole run, in any order)."""
    assert glue_eval.cited_before_bound(path.read_text(encoding="utf-8")) == []


def test_a_value_cited_above_its_binding_is_found():
    converted, _ = glue_eval.convert(CHAPTER)  # its header cites every value before the code that glues it
    found = glue_eval.cited_before_bound(converted)
    assert [re.search(r"cites '(\w+)'", f).group(1) for f in found] == ["run_times", "seed", "ratio", "share",
                                                                         "verdict"]
    header, rest = converted.split("# %% tags=[\"parameters\"]\n")
    body = header.split("# %% [markdown]\n")[0]
    fixed = body + "# %% tags=[\"parameters\"]\n" + rest + "\n# %% [markdown]\n" + header.split(
        "# %% [markdown]\n")[1]  # the prose moved below the code
    assert glue_eval.cited_before_bound(fixed) == [] and glue_eval.problems(fixed) == []
    assert "which no code binds" in glue_eval.cited_before_bound(
        converted.replace('glue("seed", seed)', 'glue("seed", 0)'))[1]


CHAPTER = '''# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     notebook_metadata_filter: -jupytext.text_representation.jupytext_version
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # A chapter
#
# **Rerun it** ({glue:text}`run_times`): seed {glue:text}`seed`, ratio {glue:text}`ratio:.3g`,
# share {glue:text}`share:.1%`, and {glue:md}`verdict:myst`.

# %% tags=["parameters"]
seed = 0

# %%
from helpers.report import glue, run_times

glue("run_times", run_times("99_chapter"))
glue("seed", seed)
x = glue("ratio", 2 / 3)
glue("share", 0.25)
glue("verdict", f"the value is **{x:.2f}**, against the paper's {{paper}}`0.952`"
                f" and more")
'''


def test_convert_rewrites_a_chapter_for_the_eval_role(tmp_path):
    converted, notes = glue_eval.convert(CHAPTER)
    assert notes == []
    assert ('# **Rerun it** ({eval}`run_times`): seed {eval}`seed`, ratio {eval}`f"{ratio:.3g}"`,\n'
            '# share {eval}`f"{share:.1%}"`, and {eval}`verdict`.') in converted
    assert 'run_times = glue("run_times", run_times("99_chapter"))\nglue("seed", seed)\n' in converted
    assert 'ratio = x = glue("ratio", 2 / 3)\nshare = glue("share", 0.25)\n' in converted
    assert ('verdict = glue("verdict", f"the value is **{x:.2f}**, against the paper\'s {{paper}}`0.952`"\n'
            '                          f" and more")') in converted  # continuation kept aligned
    assert "#     cell_metadata_filter: tags,-user_expressions\n" in converted
    assert glue_eval.problems(converted) == [] and glue_eval.convert(converted) == (converted, [])
    assert glue_eval.problems(CHAPTER)  # the glue roles, which JupyterLab cannot show
    (tmp_path / "99_chapter.py").write_text(converted)

    async def save():  # JupyterLab's save, with jupyterlab-myst's results in the markdown cells
        manager = _contents_manager(tmp_path)
        notebook = (await manager.get("99_chapter.py"))["content"]
        notebook["cells"][0]["metadata"]["user_expressions"] = [{"expression": "seed", "result": {}}]
        await manager.save({"type": "notebook", "format": "json", "content": notebook}, "99_chapter.py")

    asyncio.run(save())
    assert (tmp_path / "99_chapter.py").read_text() == converted


def test_convert_leaves_what_needs_a_person_unchanged():
    text = CHAPTER.replace('glue("share", 0.25)', 'print(glue("share", 0.25))')
    converted, notes = glue_eval.convert(text)
    assert converted == text and any("share: no statement" in n for n in notes)
    text = CHAPTER.replace("seed = 0\n", "seed = 0\nratio = 1\n").replace('glue("share", 0.25)',
                                                                          'glue("share", 0.25 * ratio)')
    converted, notes = glue_eval.convert(text)
    assert converted == text and any("ratio: the code also binds" in n for n in notes)


@pytest.mark.parametrize("expression, parsed", [
    ("rho", ("rho", None)), ('f"{rho:.3g}"', ("rho", ".3g")), ("f'{n:,d}'", ("n", ",d")),
    ('f"{share:+.1%}"', ("share", "+.1%")),
])
def test_eval_expressions_the_book_resolves(expression, parsed):
    assert glue_eval.parse(expression) == parsed


@pytest.mark.parametrize("expression", ["rho * 2", 'f"{rho}"', 'f"{rho!r:.3g}"', 'f"x {rho:.3g}"', "rho.item()",
                                        'f"{rho:.3q}"', "", "glue('x', 1)"])
def test_eval_expressions_the_book_refuses(expression):
    with pytest.raises(ValueError, match="the book takes a glued name"):
        glue_eval.parse(expression)


@pytest.mark.slow
def test_the_book_resolves_eval_roles_from_the_glued_values(tmp_path):
    """A notebook run as the book runs it, then built with the book's extensions, strictly: each {eval} shows the
    glued value as JupyterLab shows it (a formatted number, plain text, a sentence with markup as MyST, with its
    {paper} role); an expression that is not a glued name, or a name never glued, fails the build."""
    from helpers import book

    prose = ("Ratio {eval}`ratio`, rounded {eval}`f\"{ratio:.3f}\"`, count {eval}`count`, "
             "plain: {eval}`plain`; marked: {eval}`verdict`.")
    code = ("from helpers.report import glue\nratio = glue('ratio', 2 / 3)\ncount = glue('count', 7)\n"
            "plain = glue('plain', 'the two distances agree')\n"
            "verdict = glue('verdict', \"the eigenbasis **won**, as the paper's {paper}`0.989` says\")")
    nb = nbformat.v4.new_notebook(cells=[nbformat.v4.new_markdown_cell("# Eval"), nbformat.v4.new_code_cell(code),
                                         nbformat.v4.new_markdown_cell(prose)],
                                  metadata={"kernelspec": {"name": "python3", "language": "python",
                                                           "display_name": "Python 3"}})
    site = tmp_path / "site"
    entry = book.execute(nb, {}, "glued", site)
    assert entry["status"] == "ok", entry.get("error")

    def build(index: str):
        (site / "index.md").write_text(index)
        (site / "conf.py").write_text(
            f"import sys\nsys.path[:0] = [{str(ROOT / 'book' / '_ext')!r}, {str(ROOT)!r}]\n"
            "extensions = ['myst_nb', 'paper_values', 'glue_eval']\nnb_execution_mode = 'off'\n"
            "suppress_warnings = ['mystnb.unknown_mime_type']\nexclude_patterns = ['_build']\n")
        return subprocess.run([sys.executable, "-m", "sphinx", "-W", "--keep-going", "-q", "-b", "html", str(site),
                               str(site / "_build")], capture_output=True, text=True)

    run = build("# Book\n\n```{toctree}\nglued\n```\n")
    assert run.returncode == 0, run.stderr[-3000:]
    page = (site / "_build" / "glued.html").read_text()
    text = re.sub(r"\s+", " ", re.sub(r"<[^>]+>", "", page))
    assert ("Ratio 0.6666666666666666, rounded 0.667, count 7, plain: the two distances agree; marked: the "
            "eigenbasis won, as the paper’s 0.989") in text.replace("&#8217;", "’").replace("'", "’")
    assert "<strong>won</strong>" in page and 'class="paper-value"' in page

    nb.cells[2].source = "Bad: {eval}`ratio * 2` and {eval}`missing`."
    nbformat.write(nb, site / "glued.ipynb")
    run = build("# Book\n\n```{toctree}\nglued\n```\n")
    assert run.returncode != 0
    assert "the book takes a glued name" in run.stderr and "No key 'missing'" in run.stderr


# --- in a browser -------------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def driver():
    return _driver()


@pytest.fixture(scope="module")
def tree(tmp_path_factory):
    """A fresh copy of the repository's files (tracked and new, not ignored), committed in a new git repository."""
    copy = tmp_path_factory.mktemp("clone")
    files = subprocess.run(["git", "-C", str(ROOT), "ls-files", "-z", "--cached", "--others", "--exclude-standard"],
                           capture_output=True, check=True).stdout.decode().split("\0")
    for name in filter(None, files):
        source = ROOT / name
        if source.is_file():
            (copy / name).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(source, copy / name)
    _git(copy, "init", "-q")
    _git(copy, "add", "-A")
    _git(copy, "-c", "user.name=test", "-c", "user.email=test@localhost", "commit", "-q", "-m", "copy")
    return copy


@pytest.fixture(scope="module")
def browser(driver):
    from playwright.sync_api import sync_playwright

    path = chromium()
    with sync_playwright() as playwright:
        launched = driver.launch(playwright, path)
        yield launched
        launched.close()


@pytest.fixture(scope="module")
def lab(driver, tree):
    with driver.lab_server(tree) as server:
        yield server


@pytest.fixture
def lab_kernels(lab):
    """Shuts down the test's kernels afterwards (a closed notebook keeps its kernel, about 1 GB)."""
    yield
    lab.shutdown_kernels()


@pytest.fixture(scope="module")
def voila(driver, tree):
    with driver.lab_server(tree, voila=True) as server:
        yield server


def _page(browser, errors, viewport=WINDOW, console=None):
    """A page that records script errors and refuses (and records) any request that leaves 127.0.0.1."""
    page = browser.new_page(viewport=viewport)
    page.on("pageerror", lambda error: errors.append(str(error)))
    if console is not None:
        page.on("console", lambda message: console.append((message.type, message.text)))

    def local_only(route):
        if route.request.url.startswith(("http://127.0.0.1", "data:", "blob:")):
            return route.continue_()
        errors.append(f"external request: {route.request.url}")
        return route.abort()

    page.route("**/*", local_only)
    return page


def _shot(page, name):
    ARTIFACTS.mkdir(exist_ok=True)
    page.screenshot(path=str(ARTIFACTS / f"{name}.png"))


def _open(page, server, path: str):
    """Open `path` in JupyterLab (no tabs from a workspace) and wait for its kernel; returns the notebook panel."""
    page.goto(f"{server.url}/lab/tree/{path}?reset&token={server.token}")
    panel = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden)")
    panel.wait_for(timeout=180_000)
    assert page.locator(".jp-FileEditor").count() == 0, f"{path} opened in the text editor"
    page.wait_for_function("() => document.querySelectorAll("  # cells, not lines of text
                           "'.jp-NotebookPanel:not(.lm-mod-hidden) .jp-Cell').length > 1", timeout=60_000)
    _idle(page)
    page.wait_for_timeout(1000)  # the kernel's info has arrived: JupyterLab has written its language_info
    return panel


def _cell_text(cell) -> str:
    """A cell's text as shown (JupyterLab renders only the cells in view)."""
    cell.scroll_into_view_if_needed()
    cell.page.wait_for_timeout(300)
    return cell.inner_text()


def _idle(page, timeout=300_000):
    page.locator(".jp-StatusBar-TextItem", has_text="| Idle").first.wait_for(timeout=timeout)


def _dirty(page) -> bool:
    tab = page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab.lm-mod-current")
    return "jp-mod-dirty" in tab.get_attribute("class")


def _menu(page, menu: str, item: str):
    page.locator(".lm-MenuBar-itemLabel", has_text=menu).first.click()
    page.locator(".lm-Menu-itemLabel", has_text=item).first.click()


def _save_and_close(page, panel):
    _save(page)
    page.keyboard.press("Alt+w")  # close the tab
    panel.wait_for(state="detached", timeout=30_000)
    assert page.locator(".jp-Dialog").count() == 0, "closing asked something"


@pytest.mark.slow
def test_chapter_in_lab_shows_the_run_in_its_prose_and_leaves_the_tree_clean(browser, lab, tree, lab_kernels):
    """Chapter 00 opens unmodified, runs (Run All: code cells, then jupyterlab-myst evaluates the prose's {eval}
    roles), shows its numbers and sentences where the book does, and saving and closing change no file."""
    assert _git(tree, "status", "--porcelain") == ""
    errors = []
    page = _page(browser, errors)
    panel = _open(page, lab, "notebooks/00_first_look.py")
    tab = page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab.lm-mod-current")
    assert tab.inner_text().strip() == "00_first_look.py"
    assert not _dirty(page), "the chapter opened marked modified"
    prose = panel.locator(".jp-MarkdownCell", has_text="What the numbers show")
    assert prose.locator("code", has_text="rank_verdict").count() == 1  # before the run: the expression
    _menu(page, "Run", "Run All Cells")
    page.wait_for_function("(cell) => cell.innerText.includes('In this run the two distances')",
                           arg=prose.element_handle(), timeout=300_000)
    _idle(page)
    text = " ".join(prose.inner_text().split())
    assert re.search(r"In this run the two distances (agree closely|roughly agree|barely agree|disagree) on which "
                     r"faces are near: the rank correlation is [+-]\d\.\d\d, (above|between|below) [^,]+, and the "
                     r"face closest to the first one in pixels \(face \d+\) is .+ in LPIPS\.", text), text
    assert re.search(r"The largest distance to the first face is \d[\d.e+-]* times the smallest in LPIPS and "
                     r"\d[\d.e+-]* times in MSE\.", text), text
    header = " ".join(_cell_text(panel.locator(".jp-MarkdownCell").first).split())
    assert header_times("00_first_look") in header, header
    seeds = _cell_text(panel.locator(".jp-MarkdownCell", has_text="standard normal draws from seed"))
    assert "from seed 0," in " ".join(seeds.split())
    unevaluated = page.evaluate("() => [...document.querySelectorAll('.jp-MarkdownCell .myst code')]"
                                ".map(c => c.innerText).filter(t => /^(f\"|run_times|seed|eye_class|rank_verdict|"
                                "nearest_in_pixels|spread_)/.test(t))")
    assert not unevaluated, f"prose roles left unevaluated: {unevaluated}"
    assert not page.locator(".jp-MarkdownCell .myst-RenderedExpressionError, .jp-MarkdownCell "
                            "[data-mime-type='application/vnd.jupyter.stderr']").count()
    prose.scroll_into_view_if_needed()
    _shot(page, "lab-chapter-00-prose")
    _save_and_close(page, panel)
    page.close()
    assert _git(tree, "status", "--porcelain") == "", "opening, running and saving a chapter changed the tree"
    assert not list((tree / "notebooks").glob("*.ipynb")), "a paired .ipynb was written beside the sources"
    assert not (tree / "notebooks" / "runs").exists(), "the chapter ran outside the repository root"
    assert not errors, errors


# Records the text of every error that jupyterlab-myst shows in a markdown cell's prose (an {eval} role whose
# expression failed, such as a name bound only further down), as it appears; installed before the cells run.
PROSE_ERRORS = """() => {
  const seen = window.__proseErrors = [];
  const shown = '.jp-MarkdownCell [data-mime-type="application/vnd.jupyter.stderr"]';
  const record = () => document.querySelectorAll(shown)
    .forEach(e => { if (!seen.includes(e.innerText)) seen.push(e.innerText); });
  new MutationObserver(record).observe(document.body, {subtree: true, childList: true, characterData: true});
}"""


@pytest.mark.slow
def test_chapter_run_from_the_top_cell_by_cell_shows_no_error_in_its_prose(browser, lab, tree, lab_kernels):
    """Chapter 00 stepped through from its first cell with Shift+Enter, each cell waited for: jupyterlab-myst
    evaluates each markdown cell's {eval} roles when it is reached, so a role cited above the cell that binds its
    name (the header's run_times, before the first cell bound it) shows a NameError. (Run All sends every code
    cell to the kernel before any prose is evaluated, so it does not show such an error; this order does.)"""
    from helpers import book

    errors = []
    page = _page(browser, errors)
    panel = _open(page, lab, "notebooks/00_first_look.py")
    page.evaluate(PROSE_ERRORS)
    cells = len(book.load_notebook(tree / "notebooks" / "00_first_look.py").cells)
    panel.locator(".jp-Cell").first.locator(".jp-InputPrompt").click()  # select it, in command mode
    started = time.monotonic()
    for key in ["Shift+Enter"] * (cells - 1) + ["Control+Enter"]:  # the last one adds no cell below
        page.keyboard.press(key)
        page.wait_for_timeout(300)  # a markdown cell's expressions go to the kernel after it has parsed them
        _idle(page)
    assert time.monotonic() - started < 600
    header = " ".join(_cell_text(panel.locator(".jp-MarkdownCell").first).split())
    assert header_times("00_first_look") in header, header
    prose = panel.locator(".jp-MarkdownCell", has_text="What the numbers show")
    assert "In this run the two distances" in _cell_text(prose)
    shown = page.evaluate("() => window.__proseErrors")
    assert not shown, f"errors in the prose: {shown}"
    assert not page.locator(".jp-MarkdownCell [data-mime-type='application/vnd.jupyter.stderr']").count()
    _save_and_close(page, panel)
    page.close()
    assert _git(tree, "status", "--porcelain") == ""
    assert not errors, errors


@pytest.mark.slow
def test_explorer_app_in_lab_leaves_the_tree_clean(browser, lab, tree, driver, lab_kernels):
    """apps/explorer.py opens unmodified, runs, answers, saves and closes without changing the tree; opened again
    it holds no stale widget output ("model not found")."""
    errors = []
    page = _page(browser, errors)
    panel = _open(page, lab, "apps/explorer.py")
    assert not _dirty(page), "the explorer opened marked modified"
    _menu(page, "Run", "Run All Cells")
    app = driver.ExplorerPage(page)
    app.wait_rendered(timeout=300)
    app.install_probe()
    before = app.state()
    app.move("rank", 3)
    assert app.state()["points"] != before["points"]
    _save_and_close(page, panel)
    assert _git(tree, "status", "--porcelain") == "", "using the explorer changed the tree"
    lab.shutdown_kernels()
    panel = _open(page, lab, "apps/explorer.py")
    assert not _dirty(page)
    assert panel.locator(".jp-OutputArea-output").count() == 0, "outputs were saved into the explorer's source"
    assert "model not found" not in panel.inner_text()
    page.keyboard.press("Alt+w")
    page.close()
    assert _git(tree, "status", "--porcelain") == ""
    assert not errors, errors


@pytest.mark.slow
def test_explorer_in_lab_survives_a_reload_and_says_when_its_kernel_restarts(browser, lab, tree, driver, lab_kernels):
    errors = []
    page = _page(browser, errors)
    (tree / "test-artifacts").mkdir(exist_ok=True)  # ignored by git
    lab.put_notebook("test-artifacts/explore.ipynb",
                     "from helpers.explore import explore\n\nexplore(['dcgan-faces64'])")
    app = driver.run_explorer_notebook(page, lab, "test-artifacts/explore.ipynb")
    seen = [(app.state(), app.strip_pixels())]
    for control, value in [("rank", 3), ("step", 2.5), ("mode", "spherical")]:
        app.move(control, value)
        state, pixels = app.state(), app.strip_pixels()
        assert state["loaded"] and state["width"] > 7 * 64
        assert state["points"] != seen[-1][0]["points"], f"moving {control} left the curve as it was"
        assert pixels != seen[-1][1], f"moving {control} left the strip as it was"
        assert f"rank {3}" in state["status"]
        seen.append((state, pixels))
    _shot(page, "lab-explorer-before-reload")
    _save(page)  # as autosave does: the reloaded page shows the outputs saved in the notebook
    page.reload()
    app = driver.ExplorerPage(page)
    app.wait_rendered(timeout=180)
    after = app.state()
    assert after["loaded"] and after["points"] == seen[-1][0]["points"], "the curve did not draw again"
    assert _same_image(app.strip_pixels(), seen[-1][1]), "the strip did not draw again"
    _shot(page, "lab-explorer-after-reload")
    app.install_probe()
    app.move("rank", 7)  # still live after the reload
    assert app.state()["points"] != after["points"]

    # A new seed needs a new metric: the app says so, in view, and shows a progress bar until it is done.
    _busy_in_view(page, "5")
    page.locator(".gg-explorer .gg-progress").wait_for(state="hidden", timeout=300_000)
    assert "seed 5" in app.state()["status"]

    # The kernel restarts while the app computes: it says so, instead of "working…" for ever.
    _busy_in_view(page, "6")
    _menu(page, "Kernel", "Restart Kernel")
    page.locator(".jp-Dialog button", has_text="Restart").click()
    page.locator(".gg-explorer .gg-offline").wait_for(state="visible", timeout=60_000)
    assert not page.locator(".gg-explorer .gg-status").is_visible()
    assert not page.locator(".gg-explorer .gg-progress").is_visible()
    assert "kernel stopped or restarted" in page.locator(".gg-explorer .gg-offline").inner_text()
    _shot(page, "lab-explorer-kernel-restarted")
    page.close()
    assert not errors, errors


def _busy_in_view(page, seed: str):
    """Type a new seed; the busy message and the progress bar must show inside the window, controls disabled."""
    field = page.locator(".gg-explorer .gg-seed input")
    field.fill(seed)
    field.press("Enter")
    status = page.locator(".gg-explorer .gg-status", has_text="computing the metric")
    status.wait_for(timeout=60_000)
    bar = page.locator(".gg-explorer .gg-progress")
    assert bar.is_visible() and field.is_disabled()
    for element in (bar, status):
        box = element.bounding_box()
        assert 0 <= box["y"] and box["y"] + box["height"] <= WINDOW["height"], "busy state below the window"


@pytest.mark.slow
def test_explorer_page_in_voila(browser, driver, voila):
    """The page as `make explore` serves it: only the widget managers load (no JupyterLab extension that fails
    under Voilà), no script error, its controls and busy state behave, on a phone too, and every page that goes
    away, reloaded, left or closed without a word, frees its kernel."""
    errors, console = [], []
    url = f"{voila.url}/?token={voila.token}"

    # A page closed without running its unload handlers (a crash, a killed tab): culled once idle for a minute.
    lost = _page(browser, errors)
    lost.goto(url, timeout=300_000)
    driver.ExplorerPage(lost).wait_rendered(timeout=300)
    lost_kernel = driver.ExplorerPage(lost).kernel_id()
    lost.close()
    lost_at = time.monotonic()

    page = _page(browser, errors, console=console)
    page.goto(url, timeout=300_000)
    app = driver.ExplorerPage(page)
    app.wait_rendered(timeout=300)
    assert "from helpers.explore import explore" not in page.inner_text("body")  # the app, not its code
    extensions = page.evaluate("() => JSON.parse(document.getElementById('jupyter-config-data').textContent)"
                               ".federated_extensions.map(e => e.name).sort()")
    assert extensions == ["@jupyter-widgets/jupyterlab-manager", "@voila-dashboards/widgets-manager8"]
    failed = [text for kind, text in console if kind == "error" or "Failed to create module" in text]
    assert not failed, failed
    app.install_probe()
    before = app.state()
    app.move("rank", 4)
    assert app.state()["points"] != before["points"]
    _check_strip_at_its_size(page)

    # The cap, at the step slider.
    app.move("rank", 90)
    assert "capped at step" in page.locator(".gg-explorer .gg-cap").inner_text()
    assert "capped at" in app.state()["status"]
    app.move("rank", 1)
    assert page.locator(".gg-explorer .gg-cap").inner_text().strip() == ""

    # Region mode names the slider for what it walks.
    page.locator(".gg-explorer .gg-region select").select_option("left half")
    _status_shows(page, "region left half: local direction 1,")
    assert page.locator(".gg-explorer .gg-rank label").inner_text().strip() == "local direction"
    page.locator(".gg-explorer .gg-region select").select_option("whole image")
    _status_shows(page, "seed 0: rank 1,")
    assert page.locator(".gg-explorer .gg-rank label").inner_text().strip() == "eigen-rank"

    # A busy state in view; a seed out of range refused by name, the field back to the last seed.
    _busy_in_view(page, "3")
    page.locator(".gg-explorer .gg-progress").wait_for(state="hidden", timeout=300_000)
    field = page.locator(".gg-explorer .gg-seed input")
    field.fill("-1")
    field.press("Enter")
    page.locator(".gg-explorer .gg-status", has_text="seed must be an integer from 0 to").wait_for(timeout=60_000)
    page.wait_for_function("() => document.querySelector('.gg-explorer .gg-seed input').value === '3'",
                           timeout=30_000)
    assert not field.is_disabled()

    # Another model (its metric computed in the background meanwhile, or now with a progress bar).
    page.locator(".gg-explorer .gg-model select").select_option("cdcgan-eyes128")
    _status_shows(page, "cdcgan-eyes128[brown], seed 3: rank 1,")  # the model is named with its class
    assert app.state()["width"] == 7 * 130 + 2  # 128 px images, at their own size
    _shot(page, "voila-explorer")

    kernel = app.kernel_id()
    page.reload(timeout=300_000)  # a new kernel runs the page again (the load event waits for it)
    app = driver.ExplorerPage(page)
    app.wait_rendered(timeout=300)
    assert app.state()["loaded"]
    _wait_until(lambda: not voila.kernel_alive(kernel), LEFT_PAGE_SECONDS, "a reloaded page kept its old kernel",
                page)
    kernel = app.kernel_id()
    page.unroute_all()  # as no real browser has a route (LEFT_PAGE_SECONDS)
    page.goto("about:blank")  # left: Voilà's page asks the server to shut its kernel down
    _wait_until(lambda: not voila.kernel_alive(kernel), LEFT_PAGE_SECONDS, "a page that was left kept its kernel",
                page)

    phone = _page(browser, errors, viewport=PHONE)
    phone.goto(url, timeout=300_000)
    small = driver.ExplorerPage(phone)
    small.wait_rendered(timeout=300)
    seen = phone.evaluate("""() => {
      const svg = document.querySelector('.gg-explorer .gg-curve svg');
      const scale = svg.getScreenCTM().a;
      const mode = document.querySelector('.gg-explorer .gg-mode');
      const rows = [...mode.children].map(c => c.getBoundingClientRect()).map(r => r.top + r.height / 2);
      return {smallest: Math.min(...[...svg.querySelectorAll('text')].map(
                t => parseFloat(getComputedStyle(t).fontSize) * scale)),
              walk: Math.max(...rows) - Math.min(...rows),
              scroll: document.documentElement.scrollWidth};
    }""")
    assert seen["smallest"] >= 10, f"the curve's text is {seen['smallest']:.1f} px on a phone"
    assert seen["walk"] < 10, "the walk control's label and buttons are on different lines"
    assert seen["scroll"] <= PHONE["width"], "the page is wider than the phone"
    _check_strip_at_its_size(phone)
    _shot(phone, "voila-explorer-phone")
    phone_kernel = small.kernel_id()
    phone.unroute_all()
    phone.goto("about:blank")
    _wait_until(lambda: not voila.kernel_alive(phone_kernel), LEFT_PAGE_SECONDS, "a page that was left kept its kernel",
                phone)
    phone.close()
    page.close()

    _wait_until(lambda: not voila.kernel_alive(lost_kernel), max(0, 100 - (time.monotonic() - lost_at)),
                "a page closed without unloading kept its kernel")
    assert voila.kernel_processes() == 0, "Voilà holds kernels with no page open"
    assert not errors, errors



# A page left or reloaded frees its kernel within this: Voilà's page sends its shutdown request on beforeunload,
# and the server's shutdown of the kernel takes a second or two. While the test's route (off-host requests refused)
# is on, chromium runs no beforeunload handler when page.goto leaves the page (pagehide, visibilitychange and unload
# run; a reload runs beforeunload), so the tests lift the route first, as no real browser has one; with it on, only
# the cull (a minute idle, jupyter/voila.json) freed the kernel, up to 70 s later.
LEFT_PAGE_SECONDS = 10

@pytest.mark.slow
def test_explorer_geodesic_view_in_voila(browser, driver, voila):
    """The geodesic view as `make explore` serves it: busy while it computes, then both paths' strips with their
    lengths and one curve of both speeds, for the seeds picked; back to the eigen-axes; nothing from another host."""
    errors = []
    page = _page(browser, errors)
    page.goto(f"{voila.url}/?token={voila.token}", timeout=300_000)
    app = driver.ExplorerPage(page)
    app.wait_rendered(timeout=300)
    explorer = page.locator(".gg-explorer")
    assert not explorer.locator(".gg-seed-b").is_visible() and not explorer.locator(".gg-paths").is_visible()
    explorer.locator(".gg-view button", has_text="geodesic").click()
    explorer.locator(".gg-status", has_text="computing the geodesic").wait_for(timeout=60_000)
    assert explorer.locator(".gg-progress").is_visible() and explorer.locator(".gg-seed-b input").is_disabled()
    _paths_shown(page, "seeds 0 → 1:")
    assert not explorer.locator("img.gg-strip").is_visible() and not explorer.locator(".gg-region").is_visible()
    app.action("path-steps", 3)()  # fewer steps, quicker
    _paths_shown(page, "seeds 0 → 1:", steps=3)
    field = explorer.locator(".gg-seed-b input")
    field.fill("2")
    field.press("Enter")
    shown = _paths_shown(page, "seeds 0 → 2:", steps=3)
    for kind, name in (("geodesic", "geodesic"), ("straight", "straight line")):
        assert shown[kind]["width"] == 4 * 66 + 2, "a strip is not 4 images of 64 px"  # n + 1 images, 2 px apart
        assert shown[kind]["points"] == 3 and re.search(rf"{name}, length \d", shown["legend"]), shown
        assert re.match(rf"{name}, length \d[\d.e+-]*: seed 0 \(left\) to seed 2 \(right\) in 3 steps",
                        shown[kind]["label"]), shown[kind]["label"]
    assert re.search(r"the geodesic is \d[\d.]*× as long as the straight line", shown["status"]), shown["status"]
    _shot(page, "voila-explorer-geodesic")
    explorer.locator(".gg-view button", has_text="eigen-axes").click()
    page.wait_for_function("() => document.querySelector('.gg-explorer .gg-status').innerText.includes('seed 0: "
                           "rank 1,')", timeout=300_000)
    assert explorer.locator("img.gg-strip").is_visible() and not explorer.locator(".gg-paths").is_visible()
    page.goto("about:blank")
    page.close()
    assert not errors, errors


def _paths_shown(page, status: str, steps: int | None = None, timeout: float = 300) -> dict:
    """Wait until the geodesic view shows `status` with both strips loaded (and `steps` points per speed curve);
    returns what it shows: per path its strip's width, label and curve points, and the legend and status."""
    page.wait_for_function("""([status, steps]) => {
      const app = document.querySelector('.gg-explorer');
      const imgs = [...app.querySelectorAll('.gg-paths img')];
      const line = app.querySelector('.gg-curve svg polyline.gg-geodesic');
      return app.querySelector('.gg-status').innerText.includes(status) && imgs.length === 2 &&
             imgs.every(img => img.complete && img.naturalWidth > 0 && img.getBoundingClientRect().width > 0) &&
             line !== null && (steps === null || line.getAttribute('points').trim().split(' ').length === steps) &&
             getComputedStyle(app.querySelector('.gg-progress')).display === 'none';
    }""", arg=[status, steps], timeout=timeout * 1000)
    return page.evaluate("""() => {
      const app = document.querySelector('.gg-explorer');
      const labels = [...app.querySelectorAll('.gg-path-label')].map(l => l.innerText.trim());
      const points = kind => app.querySelector(`.gg-curve svg polyline.gg-${kind}`).getAttribute('points');
      const path = (kind, i) => ({width: app.querySelector(`.gg-${kind}-strip`).naturalWidth, label: labels[i],
                                  points: points(kind).trim().split(' ').length});
      return {geodesic: path('geodesic', 0), straight: path('straight', 1),
              legend: app.querySelector('.gg-curve .gg-legend').innerText,
              status: app.querySelector('.gg-status').innerText};
    }""")


def _status_shows(page, text: str, timeout: float = 300):
    """Wait until the app's status line (a render's summary, not a busy message) contains `text`."""
    page.wait_for_function("(text) => document.querySelector('.gg-explorer .gg-status').innerText.includes(text)",
                           arg=text, timeout=timeout * 1000)
    driver_page = page.locator(".gg-explorer img.gg-strip")
    driver_page.wait_for(state="visible")


def _check_strip_at_its_size(page):
    """The strip is shown at its own size (never scaled up, which blurs it), smaller only to fit the window."""
    natural, shown, room = page.evaluate(
        "() => { const img = document.querySelector('.gg-explorer img.gg-strip');"
        " return [img.naturalWidth, img.getBoundingClientRect().width, img.parentElement.clientWidth]; }")
    assert shown <= natural + 0.5, f"the strip is scaled up from {natural} to {shown:.0f} px"
    assert shown >= min(natural, room) - 1, f"the strip is {shown:.0f} px wide, for {natural} px with {room} px room"


def _wait_until(condition, timeout: float, message: str, page=None):
    """Poll `condition` every half second until true; with a `page`, wait in it, so that Playwright's sync API
    meanwhile serves the page's events (its routes: a request the page sends waits for the route handler)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, message
        page.wait_for_timeout(500) if page else time.sleep(0.5)


def _save(page):
    """Save the current notebook (Ctrl+S) and wait until JupyterLab no longer marks it modified."""
    page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-Cell").first.click()
    page.keyboard.press("Control+s")
    page.wait_for_function("() => !document.querySelector("
                           "'.lm-DockPanel-tabBar .lm-TabBar-tab.lm-mod-current').classList.contains('jp-mod-dirty')",
                           timeout=60_000)


def _same_image(a: str, b: str) -> bool:
    """Two data URLs of the same decoded picture (PNG re-encodings of one canvas are byte-identical)."""
    return base64.b64decode(a.split(",", 1)[1]) == base64.b64decode(b.split(",", 1)[1])
