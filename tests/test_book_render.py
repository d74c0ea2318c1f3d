"""The rendered book as a reader sees it: built at the smoke profile, every page opened in headless Chromium
with the network blocked (Playwright for Python driving Debian's chromium).

Every page must make no request to another host, show no error output, typeset its equations (MathJax
served from _static), draw every plotly figure, number its figures in order ("Figure 1.", ...) with captions
below them, keep axis titles, panel titles and legends from overlapping each other and the tick labels, and fit a 390 px wide phone screen with images
no smaller than thumbnails of MIN_TILE px; the frames slider starts at step 0, does not play by itself and
labels its rows. No executed chapter shows raw Python output. Screenshots of each page (1280 px and 390 px
wide) are saved under test-artifacts/ for a person to look at.

Set GAN_GEOMETRY_BUILT_BOOK to the _build/html folder of a book built already (e.g. by `make book` or
`make book PROFILE=full`) to check that build instead of building one at the smoke profile.
"""
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts"
CHROMIUM = "/usr/bin/chromium"
# Flags for a sandboxed, offline machine: no background connections, no GPU.
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-sync",
                  "--disable-background-networking", "--disable-component-update", "--hide-scrollbars"]
PHONE = 390  # px: the narrowest viewport every page must fit (a common phone)
GUTTER = 6  # px: the least space between the texts of two montage column labels
MIN_TILE = 40  # px: the smallest an image of a grid or montage may be drawn at that width

pytestmark = pytest.mark.slow


def chromium() -> str:
    """Debian's chromium, installing it with apt-get when missing and running as root (never `playwright install`)."""
    if Path(CHROMIUM).exists():
        return CHROMIUM
    if os.geteuid() != 0:
        pytest.skip("Debian's chromium is not installed and installing it needs root: apt-get install chromium")
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env, capture_output=True)
    subprocess.run(["apt-get", "install", "-y", "-qq", "chromium"], check=True, env=env, capture_output=True)
    return CHROMIUM


@pytest.fixture(scope="module")
def built_book(tmp_path_factory):
    """The whole book, executed at the smoke profile and built strictly, in a scratch copy of the sources."""
    if os.environ.get("GAN_GEOMETRY_BUILT_BOOK"):
        return Path(os.environ["GAN_GEOMETRY_BUILT_BOOK"])
    site = tmp_path_factory.mktemp("book")
    for name in ("_config.yml", "_toc.yml"):
        shutil.copy(ROOT / name, site / name)
    shutil.copytree(ROOT / "book", site / "book", ignore=shutil.ignore_patterns("notebooks"))
    out = site / "book" / "notebooks"
    run = subprocess.run([sys.executable, "-m", "helpers.book", "run", "--profile", "smoke", "--out", str(out)],
                         cwd=ROOT, capture_output=True, text=True)
    assert run.returncode == 0, f"notebooks failed at the smoke profile:\n{run.stdout[-3000:]}\n{run.stderr[-3000:]}"
    results = subprocess.run([sys.executable, "-m", "helpers.book", "results", "--summary", str(out / "summary.json")],
                             cwd=ROOT, capture_output=True, text=True)
    assert results.returncode == 0, results.stderr[-3000:]
    # The book's extensions import this checkout's helpers (the MathJax asset), as `make book` does from here.
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    build = subprocess.run([str(Path(sys.executable).parent / "jupyter-book"), "build", str(site), "--all",
                            "--warningiserror", "--keep-going"], capture_output=True, text=True, env=env)
    assert build.returncode == 0, f"strict book build failed:\n{build.stdout[-3000:]}\n{build.stderr[-3000:]}"
    return site / "_build" / "html"


@pytest.fixture(scope="module")
def browser():
    playwright_api = pytest.importorskip("playwright.sync_api")
    path = chromium()
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=path, args=CHROMIUM_FLAGS)
        yield browser
        browser.close()


def pages_of(site: Path) -> list[Path]:
    return sorted((site / "book").rglob("*.html"))


def open_offline(browser, page_path: Path, width: int):
    """The page loaded with every non-file request blocked; returns (page, outside requests, script errors)."""
    context = browser.new_context(viewport={"width": width, "height": 900})
    outside, errors = [], []

    def route(request_route):
        url = request_route.request.url
        if url.startswith(("file://", "data:", "blob:", "about:")):
            request_route.continue_()
        else:
            outside.append(url)
            request_route.abort()

    context.route("**/*", route)
    page = context.new_page()
    page.on("pageerror", lambda err: errors.append(str(err)))
    page.goto(page_path.as_uri(), wait_until="load")
    # MathJax typesets after load; wait for it where the page has math (its startup promise resolves).
    page.wait_for_function("() => !window.MathJax || (window.MathJax.startup && window.MathJax.startup.promise)",
                           timeout=30_000)
    page.evaluate("() => window.MathJax && window.MathJax.startup.promise")
    page.wait_for_timeout(500)
    return page, outside, errors


def check_page(page, name: str) -> dict:
    """Everything a reader would notice on one loaded page; returns what it saw (for the summary asserts)."""
    seen = page.evaluate("""() => {
        const text = document.querySelector('main') ? document.querySelector('main').innerText : document.body.innerText;
        const figures = [...document.querySelectorAll('div.plotly-graph-div')];
        return {
            math: document.querySelectorAll('.math').length,
            typeset: document.querySelectorAll('mjx-container').length,
            rawDisplay: /\\\\\\[|\\\\\\]/.test(text), rawInline: /\\\\\\(|\\\\\\)/.test(text),
            figures: figures.length,
            blank: figures.filter(f => !f.querySelector('svg.main-svg')).map(f => f.id),
            errors: [...document.querySelectorAll('.output.error, .output.traceback, .cell_output .traceback')]
                .map(e => e.innerText.slice(0, 300)),
            traceback: text.includes('Traceback (most recent call last)'),
            plotlyScript: [...document.scripts].some(s => (s.src || '').split('?')[0].endsWith('plotly.min.js')),
            scrollWidth: document.documentElement.scrollWidth,
            widest: Math.max(0, ...figures.map(f => f.getBoundingClientRect().right)),
            sliders: figures.filter(f => f.layout && f.layout.sliders && f.layout.sliders.length).map(f => {
                const slider = f.layout.sliders[0], frames = f._transitionData._frames;
                return {active: slider.active, label: slider.steps[slider.active].label, n: slider.steps.length,
                        shown: f.data[0].source === frames[slider.active].data[0].source,
                        rows: (f.layout.annotations || []).length,
                        width: f.getBoundingClientRect().width,
                        page: (f.closest('section') || document.body).getBoundingClientRect().width};  // the text column
            }),
            captions: [...document.querySelectorAll('figure.gg-figure > figcaption')].map(c => c.innerText),
            unnumbered: figures.filter(f => !f.closest('figure.gg-figure')).length,
            tiles: [...document.querySelectorAll('figure.gg-figure img')].map(
                i => [i.getBoundingClientRect().width, i.naturalWidth]),
            overlaps: figures.map(f => {
                const box = selector => [...f.querySelectorAll(selector)].map(t => t.getBoundingClientRect())
                    .filter(b => b.width > 0);
                const boxes = box('.g-xtitle text, .g-ytitle text, .annotation-text, .legendtext');
                const ticks = box('.xtick text, .ytick text');  // tick labels, upright on a phone
                const hit = (a, b) => a.left < b.right - 1 && b.left < a.right - 1 && a.top < b.bottom - 1
                    && b.top < a.bottom - 1;
                return boxes.some((a, i) => boxes.some((b, j) => j > i && hit(a, b)) || ticks.some(t => hit(a, t)));
            }).filter(Boolean).length,
        };
    }""")
    assert not seen["errors"] and not seen["traceback"], f"{name}: error output {seen['errors'][:1]}"
    assert not seen["blank"], f"{name}: {len(seen['blank'])} of {seen['figures']} plotly figures did not draw"
    if seen["math"]:
        assert seen["typeset"] >= seen["math"], f"{name}: {seen['math']} equations, {seen['typeset']} typeset"
    assert not seen["rawDisplay"] and not seen["rawInline"], f"{name}: raw TeX delimiters in the text"
    assert seen["plotlyScript"] == bool(seen["figures"]), f"{name}: plotly.js loaded {'without' if seen['plotlyScript'] else 'but'} figures"
    numbers = [int(c.split(".")[0].removeprefix("Figure ")) for c in seen["captions"]]
    assert numbers == list(range(1, len(numbers) + 1)), f"{name}: figures numbered {numbers}"
    assert not seen["unnumbered"], f"{name}: {seen['unnumbered']} plotly figures without a numbered caption"
    assert not seen["overlaps"], f"{name}: {seen['overlaps']} figures with overlapping axis or panel titles"
    return seen


def test_every_page_works_offline_typesets_math_and_draws_figures(built_book, browser):
    pages = pages_of(built_book)
    chapters = [p for p in pages if p.parent.name == "notebooks" and p.stem[:2].isdigit()]
    sources = sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.py"))
    assert [p.stem for p in chapters] == [s.stem for s in sources], "every notebook must become a page"
    ARTIFACTS.mkdir(exist_ok=True)
    totals = {"math": 0, "figures": 0, "sliders": []}
    for path in pages:
        name = str(path.relative_to(built_book))
        page, outside, errors = open_offline(browser, path, 1280)
        assert not outside, f"{name} requested outside URLs: {outside[:5]}"
        assert not errors, f"{name}: script errors {errors[:3]}"
        seen = check_page(page, name)
        page.screenshot(path=str(ARTIFACTS / f"{path.stem}.png"), full_page=True)
        totals["math"] += seen["typeset"]
        totals["figures"] += len(seen["captions"])  # plotly figures and image grids
        for slider in seen["sliders"]:
            assert slider["shown"], f"{name}: the slider shows another frame than its active step (auto-play?)"
            assert slider["width"] >= 0.9 * slider["page"], f"{name}: the slider figure does not span the page"
            assert slider["rows"], f"{name}: the slider's rows are not labelled"
            totals["sliders"].append(slider)
        page.context.close()
    assert totals["math"] > 10 and totals["figures"] >= 2 * len(chapters)
    assert totals["sliders"], "the book has a frames slider (chapter 04)"
    for slider in totals["sliders"]:  # symmetric walks: step 0 is the frame shown first
        assert float(slider["label"]) == 0, f"the slider starts at step {slider['label']}, not 0"


def test_every_page_fits_a_phone_screen(built_book, browser):
    for path in pages_of(built_book):
        name = str(path.relative_to(built_book))
        page, outside, _ = open_offline(browser, path, PHONE)
        seen = check_page(page, name)
        page.screenshot(path=str(ARTIFACTS / f"{path.stem}-{PHONE}px.png"), full_page=True)
        assert seen["scrollWidth"] <= PHONE + 1, f"{name}: {seen['scrollWidth']} px wide at a {PHONE} px viewport"
        assert seen["widest"] <= PHONE + 1, f"{name}: a figure reaches {seen['widest']:.0f} px at {PHONE} px"
        small = [w for w, natural in seen["tiles"] if w < min(MIN_TILE, natural) - 0.5]
        assert not small, f"{name}: {len(small)} images drawn narrower than {MIN_TILE} px at {PHONE} px"
        page.context.close()


def test_executed_chapters_show_no_raw_python_output(built_book):
    """Every chapter of the build, executed: no printed text and no text/plain-only result (test_prose.raw_outputs)
    outside cells tagged to show it; the chapters whose owners are still removing theirs are listed there."""
    import nbformat
    from test_prose import RAW_OUTPUT_PENDING, raw_outputs

    executed = sorted((built_book.parent.parent / "book" / "notebooks").glob("[0-9][0-9]_*.ipynb"))
    assert executed, "no executed chapters beside the build"
    found = {path.stem: raw_outputs(nbformat.read(path, as_version=4)) for path in executed
             if path.stem[:2] not in RAW_OUTPUT_PENDING}
    assert not any(found.values()), "raw output:\n" + "\n".join(
        f"{stem}: {line}" for stem, lines in found.items() for line in lines)


def test_results_and_differences_pages_come_from_the_run(built_book):
    results = (built_book / "book" / "notebooks" / "results.html").read_text(encoding="utf-8")
    assert "This run:" in results and "profile <code" in results, "the results page states the run's profile"
    differences = (built_book / "book" / "differences.html").read_text(encoding="utf-8")
    assert "FashionGen" in differences and "n_points" in differences, "differences list data and sample sizes"


def test_pages_share_one_plotly_js_and_mathjax_from_static(built_book):
    """plotly.js and MathJax are served once from _static (book/_ext), not inlined, not from a CDN."""
    from plotly.offline import get_plotlyjs

    from helpers import assets

    bundle = get_plotlyjs()
    assert (built_book / "_static" / "plotly.min.js").read_text(encoding="utf-8") == bundle
    mathjax = built_book / "_static" / "mathjax" / "tex-svg-full.js"
    assert assets.sha256_of(mathjax) == assets.ASSETS["mathjax"].sha256
    for page in pages_of(built_book):
        html = page.read_text(encoding="utf-8")
        assert bundle[:2000] not in html, f"{page.name} still embeds plotly.js"
        assert "cdn.jsdelivr.net" not in html and "cdnjs.cloudflare.com" not in html, f"{page.name} names a CDN"


def column_label_problems(page) -> tuple[int, list[str]]:
    """(labels seen, problems) of the column labels of every montage on the page. Each label's text (the boxes
    of its lines, which show text that spills out of its cell) must stay inside its own cell and the page, keep
    whole words (no word broken over two lines), and keep a gutter of GUTTER px from the text of every other
    label, so that neighbouring labels never read as one."""
    return page.evaluate("""(gutter) => {
        const problems = [];
        let seen = 0;
        const near = (a, b) => a.left < b.right + gutter && b.left < a.right + gutter
            && a.top < b.bottom - 0.5 && b.top < a.bottom - 0.5;
        const boxes = node => {
            const range = document.createRange();
            range.selectNodeContents(node);
            return [...range.getClientRects()].filter(r => r.width > 0);
        };
        for (const grid of document.querySelectorAll('figure.gg-figure .gg-grid')) {
            const labels = [...grid.querySelectorAll(':scope > .gg-col')];
            const lines = labels.map(boxes);
            labels.forEach((label, i) => {
                seen += 1;
                const cell = label.getBoundingClientRect(), name = JSON.stringify(label.textContent);
                if (!lines[i].length) problems.push(`${name} draws no text`);
                if (label.scrollWidth > label.clientWidth + 1 || label.scrollHeight > label.clientHeight + 1)
                    problems.push(`${name} overflows its cell`);
                for (const line of lines[i]) {
                    if (line.left < cell.left - 0.5 || line.right > cell.right + 0.5)
                        problems.push(`${name} spills out of its column`);
                    if (line.left < 0 || line.right > document.documentElement.clientWidth + 0.5)
                        problems.push(`${name} is cut off by the page edge`);
                }
                const text = label.firstChild;
                for (const word of text && text.nodeType === 3 ? text.data.matchAll(/\\S+/g) : []) {
                    const range = document.createRange();
                    range.setStart(text, word.index);
                    range.setEnd(text, word.index + word[0].length);
                    const tops = new Set([...range.getClientRects()].filter(r => r.width > 0)
                        .map(r => Math.round(r.top)));
                    if (tops.size > 1) problems.push(`${name} breaks the word ${JSON.stringify(word[0])}`);
                }
                lines.slice(i + 1).forEach((other, j) => {
                    if (lines[i].some(a => other.some(b => near(a, b))))
                        problems.push(`${name} runs into ${JSON.stringify(labels[i + 1 + j].textContent)}`);
                });
            });
        }
        return [seen, problems];
    }""", GUTTER)


@pytest.mark.parametrize("width", [1280, PHONE])
def test_chapter_05_montage_column_labels_neither_overlap_nor_clip(built_book, browser, width):
    """The montages of chapter 05 (targets and the best image of each inversion method) name their columns with
    labels that used to run together and clip: at desktop and phone width each must be whole and apart."""
    [path] = (built_book / "book" / "notebooks").glob("05_*.html")
    page, _, _ = open_offline(browser, path, width)
    try:
        seen, problems = column_label_problems(page)
    finally:
        page.context.close()
    assert seen >= 2, f"chapter 05 at {width} px: {seen} montage column labels, expected its montages"
    assert not problems, f"chapter 05 at {width} px:\n" + "\n".join(sorted(set(problems)))
