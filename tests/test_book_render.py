"""The rendered book as a reader sees it: built at the smoke profile, opened in headless Chromium.

Every plotly figure must draw (no blank figure), every page must be free of error outputs, and a
screenshot of each page is saved under test-artifacts/ for a person to look at.
"""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from bs4 import BeautifulSoup

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
# Flags for a sandboxed, offline machine: no background connections, no GPU, fresh profile.
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--hide-scrollbars", "--virtual-time-budget=20000"]


def chromium() -> str:
    """Path of Debian's chromium, installing it with apt-get when missing and running as root."""
    found = shutil.which("chromium")
    if found:
        return found
    if os.geteuid() != 0:
        pytest.skip("Debian's chromium is not installed and installing it needs root: apt-get install chromium")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env, capture_output=True)
    subprocess.run(["apt-get", "install", "-y", "-qq", "chromium"], check=True, env=env, capture_output=True)
    return shutil.which("chromium")


@pytest.fixture(scope="module")
def built_book(tmp_path_factory):
    """The whole book, executed at the smoke profile and built strictly, in a scratch copy of the sources."""
    site = tmp_path_factory.mktemp("book")
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy(ROOT / name, site / name)
    shutil.copytree(ROOT / "book", site / "book", ignore=shutil.ignore_patterns("notebooks"))
    run = subprocess.run([sys.executable, "-m", "helpers.book", "run", "--profile", "smoke",
                          "--out", str(site / "book" / "notebooks")], cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0, f"notebooks failed at the smoke profile:\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
    build = subprocess.run([str(Path(sys.executable).parent / "jupyter-book"), "build", str(site), "--all",
                            "--warningiserror", "--keep-going"], capture_output=True, text=True)
    assert build.returncode == 0, f"strict book build failed:\n{build.stdout[-3000:]}\n{build.stderr[-3000:]}"
    return site / "_build" / "html"


def rendered_dom(browser: str, page: Path, profile: Path) -> BeautifulSoup:
    dom = subprocess.run([browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--dump-dom", page.as_uri()],
                         capture_output=True, text=True, timeout=180)
    assert dom.returncode == 0, dom.stderr[-2000:]
    return BeautifulSoup(dom.stdout, "html.parser")


def screenshot(browser: str, page: Path, profile: Path) -> Path:
    ARTIFACTS.mkdir(exist_ok=True)
    target = ARTIFACTS / f"{page.stem}.png"
    subprocess.run([browser, *CHROMIUM_FLAGS, f"--user-data-dir={profile}", "--window-size=1280,3000",
                    f"--screenshot={target}", page.as_uri()], capture_output=True, timeout=180, check=True)
    return target


def test_every_figure_renders_and_no_cell_failed(built_book, tmp_path):
    browser = chromium()
    pages = sorted((built_book / "book" / "notebooks").glob("[0-9][0-9]_*.html"))
    notebooks = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.py"))
    assert [p.stem for p in pages] == [n.stem for n in notebooks], "every notebook must become a page"
    figures_seen = 0
    for page in pages:
        dom = rendered_dom(browser, page, tmp_path / "profile")
        figures = dom.select("div.plotly-graph-div")
        blank = [f.get("id") for f in figures if not f.select("svg.main-svg")]
        assert not blank, f"{page.name}: {len(blank)} of {len(figures)} plotly figures did not draw"
        errors = dom.select(".output.error, .output.traceback, .cell_output .traceback")
        assert not errors, f"{page.name}: error output: {errors[0].get_text()[:500]}"
        assert "Traceback (most recent call last)" not in dom.get_text(), f"{page.name} shows a traceback"
        for image in dom.select("svg.main-svg image"):  # image grids: plotly <image> with a PNG data URI
            assert image.get("href", image.get("xlink:href", "")).startswith("data:image/png;base64,")
        figures_seen += len(figures)
        assert screenshot(browser, page, tmp_path / "profile").stat().st_size > 10_000
    assert figures_seen >= 2 * len(pages)


def test_front_matter_pages_render(built_book, tmp_path):
    browser = chromium()
    for name in ("intro", "running", "references"):
        page = built_book / "book" / f"{name}.html"
        dom = rendered_dom(browser, page, tmp_path / "profile")
        assert dom.select_one("main h1"), f"{name}: no title"
    references = rendered_dom(browser, built_book / "book" / "references.html", tmp_path / "profile")
    assert "The Geometry of Deep Generative Image Models and its Applications" in references.get_text()


def test_pages_share_one_plotly_js(built_book):
    """plotly.js is served once from _static (book/_ext/plotly_static.py), not inlined in every page."""
    from plotly.offline import get_plotlyjs

    bundle = get_plotlyjs()
    assert (built_book / "_static" / "plotly.min.js").read_text(encoding="utf-8") == bundle
    for page in sorted((built_book / "book" / "notebooks").glob("[0-9][0-9]_*.html")):
        html = page.read_text(encoding="utf-8")
        assert '<script src="../../_static/plotly.min.js"></script>' in html, page.name
        assert bundle[:2000] not in html, f"{page.name} still embeds plotly.js"
