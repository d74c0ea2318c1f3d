"""Jupyter out of the box: `make lab` opens the chapters as notebooks and saving one changes no tracked file;
the explorer works in a real browser, in JupyterLab and in Voilà (`make explore`), through page reloads.

The browser tests start the servers with the Makefile's own command lines (read with `make -n`) in a fresh
copy of the repository, drive Debian's chromium with Playwright, and save screenshots in test-artifacts/.
"""
import asyncio
import base64
import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from test_book_render import chromium

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
CHAPTERS = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.py"))


def _driver():
    spec = importlib.util.spec_from_file_location("explore_browser", ROOT / "benchmarks" / "explore_browser.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclass looks its module up there
    spec.loader.exec_module(module)
    return module


def _git(tree: Path, *args: str) -> str:
    return subprocess.run(["git", "-C", str(tree), *args], capture_output=True, text=True, check=True).stdout


# --- no browser ---------------------------------------------------------------------------------------------------

def test_chapters_survive_a_jupyter_save(tmp_path):
    """Open and save each chapter through jupytext's contents manager, as JupyterLab does, with the metadata the
    front end adds (language_info, widget state): the file is byte-identical and nothing is written beside it."""
    from jupyter_server.services.contents.largefilemanager import AsyncLargeFileManager
    from jupytext.async_contentsmanager import build_async_jupytext_contents_manager_class

    for chapter in CHAPTERS:
        shutil.copy(chapter, tmp_path / chapter.name)
    manager = build_async_jupytext_contents_manager_class(AsyncLargeFileManager)(root_dir=str(tmp_path))

    async def open_and_save(name):
        model = await manager.get(name)
        assert model["type"] == "notebook", f"{name} does not open as a notebook"
        notebook = model["content"]
        notebook["metadata"]["language_info"] = {"name": "python", "version": "3.11.7"}
        notebook["metadata"]["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {}}}
        await manager.save({"type": "notebook", "format": "json", "content": notebook}, name)

    assert CHAPTERS
    for chapter in CHAPTERS:
        asyncio.run(open_and_save(chapter.name))
        assert (tmp_path / chapter.name).read_bytes() == chapter.read_bytes(), f"saving rewrote {chapter.name}"
    assert sorted(p.name for p in tmp_path.iterdir()) == [c.name for c in CHAPTERS]  # no paired .ipynb


def test_make_targets_use_the_project_settings():
    dry = subprocess.run(["make", "-n", "-s", "-C", str(ROOT), "lab", "explore"], capture_output=True, text=True,
                         check=True).stdout.replace("\\\n", " ")
    lab = next(line for line in dry.splitlines() if "/bin/jupyter lab" in line)
    voila = next(line for line in dry.splitlines() if "/bin/voila" in line)
    assert f'JUPYTER_CONFIG_PATH="{ROOT}/jupyter' in lab and f'--ServerApp.root_dir="{ROOT}"' in lab
    assert f'JUPYTER_PATH="{ROOT}/jupyter' in voila and "apps/explorer.ipynb --template=offline" in voila
    assert (ROOT / "jupyter" / "voila" / "templates" / "offline" / "index.html.j2").is_file()
    import json

    settings = json.loads((ROOT / "jupyter" / "labconfig" / "default_setting_overrides.json").read_text())
    assert settings["@jupyterlab/docmanager-extension:plugin"]["defaultViewers"]["python"] == "Jupytext Notebook"


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


def _page(browser, errors):
    """A page that records script errors and refuses (and records) any request that leaves 127.0.0.1."""
    page = browser.new_page(viewport={"width": 1280, "height": 1000})
    page.on("pageerror", lambda error: errors.append(str(error)))

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


@pytest.mark.slow
def test_chapter_opens_as_a_notebook_and_saving_changes_nothing(browser, lab, tree):
    assert _git(tree, "status", "--porcelain") == ""
    errors = []
    page = _page(browser, errors)
    page.goto(f"{lab.url}/?token={lab.token}")  # `make lab` opens the file browser in notebooks/
    item = page.locator(".jp-DirListing-item", has_text="04_interpretability.py")
    item.dblclick(timeout=180_000)
    panel = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden)")
    panel.wait_for(timeout=120_000)
    assert page.locator(".jp-FileEditor").count() == 0, "the chapter opened in the text editor"
    tab = page.locator(".lm-DockPanel-tabBar .lm-TabBar-tab.lm-mod-current")
    assert tab.inner_text().strip() == "04_interpretability.py"
    page.wait_for_function("() => document.querySelectorAll("  # cells, not lines of text
                           "'.jp-NotebookPanel:not(.lm-mod-hidden) .jp-MarkdownCell').length > 3", timeout=60_000)
    page.locator(".jp-StatusBar-TextItem", has_text="| Idle").first.wait_for(timeout=180_000)
    _shot(page, "lab-chapter-04")
    _save(page)  # what autosave does
    page.keyboard.press("Alt+w")  # close the tab
    panel.wait_for(state="detached", timeout=30_000)
    assert page.locator(".jp-Dialog").count() == 0
    page.close()
    assert _git(tree, "status", "--porcelain") == "", "opening and saving a chapter changed the tree"
    assert not list((tree / "notebooks").glob("*.ipynb")), "a paired .ipynb was written beside the sources"
    assert not errors, errors


@pytest.mark.slow
def test_explorer_in_lab_survives_a_reload(browser, lab, tree, driver):
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

    # A new seed needs a new metric: the app says so and shows a progress bar until it is done.
    busy = page.locator(".gg-explorer .gg-progress")
    seed = page.locator(".gg-explorer .gg-seed input")
    seed.fill("5")
    seed.press("Enter")
    # The kernel shows the bar first, then the message; the message stays while the metric is computed.
    page.locator(".gg-explorer .gg-status", has_text="computing the metric").wait_for(timeout=60_000)
    assert busy.is_visible() and seed.is_disabled()
    busy.wait_for(state="hidden", timeout=300_000)
    assert "seed 5" in app.state()["status"]
    page.close()
    assert not errors, errors


@pytest.mark.slow
def test_explorer_page_in_voila(browser, driver, tree):
    errors = []
    with driver.lab_server(tree, voila=True) as server:
        page = _page(browser, errors)
        page.goto(f"{server.url}/?token={server.token}", timeout=300_000)
        app = driver.ExplorerPage(page)
        app.wait_rendered(timeout=300)
        assert "from helpers.explore import explore" not in page.inner_text("body")  # the app, not its code
        app.install_probe()
        before = app.state()
        app.move("rank", 4)
        assert app.state()["points"] != before["points"]
        _shot(page, "voila-explorer")
        page.reload(timeout=300_000)  # a new kernel runs the page again (the load event waits for it)
        app = driver.ExplorerPage(page)
        app.wait_rendered(timeout=300)
        assert app.state()["loaded"]
        page.close()
    assert not errors, errors


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
