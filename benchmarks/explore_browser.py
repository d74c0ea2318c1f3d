"""Browser round trip of the explorer app: JupyterLab on 127.0.0.1, Debian's chromium driven by Playwright.

    python benchmarks/explore_browser.py                          # every embedded model, 10 moves per control
    python benchmarks/explore_browser.py --models dcgan-faces64 --moves 3 --threads 2
    python benchmarks/explore_browser.py --switches-only --moves 5                # model switches alone

Per model it starts from a notebook whose one cell is `explore([model])`, runs it in JupyterLab, and then
moves each control as a user does: types a value into the rank or step slider's readout and presses Enter, or
clicks the other walk button. Each move is timed in the page, from the key press or click to the moment the
new strip image has loaded and the new curve is in the page: the kernel's update and both directions of the
widget messages included. One untimed move per control comes first. Then, in one app of every model
(`explore()`, as `make explore` serves it), it switches models with the menu as a user does: first to each model
once, straight after the app opened (the metric of a model not computed yet is computed then, with a progress
bar, or awaited from the background), then `--moves` more switches per model, in turn, timed the same way.
Prints the median, 90th percentile and maximum per control and model; the target (issues 11 and 25) is p90 ≤ 1 s
on 2 CPU cores, for the first switches too where the background had time to compute the metric.

The module is also the tests' driver (tests/test_lab.py): `lab_server` starts JupyterLab with an isolated
Jupyter home, `launch` opens chromium, `ExplorerPage` finds and moves the app's controls.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = "/usr/bin/chromium"
# A sandboxed, offline machine: no background connections, no GPU (as tests/test_book_render.py).
CHROMIUM_FLAGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
                  "--disable-background-networking", "--disable-component-update", "--disable-sync",
                  "--disable-dev-shm-usage"]
TARGET_SECONDS = 1.0

# Records, in page time, the last Enter key press, walk-button click or model choice (t0), every new strip image (its src
# set, then loaded) and every new curve (its data-render counter). A move is done once the curve of its render
# is in the page and, if the strip changed (a step past the cap can leave it as it was), the new image has
# loaded: the kernel sends the strip before the curve, so the page has the new src by then. Installed again
# after each page load.
PROBE = """() => {
  const g = window.__gg = {t0: null, src: [], load: [], curve: []};
  document.addEventListener('keydown', e => { if (e.key === 'Enter') g.t0 = performance.now(); }, true);
  document.addEventListener('click', e => { if (e.target.closest('.gg-mode')) g.t0 = performance.now(); }, true);
  document.addEventListener('change', e => { if (e.target.closest('.gg-model')) g.t0 = performance.now(); }, true);
  document.addEventListener('load', e => {
    if (e.target.classList && e.target.classList.contains('gg-strip')) g.load.push(performance.now());
  }, true);
  let last = null;
  new MutationObserver(records => {
    for (const r of records) {
      if (r.type === 'attributes' && r.target.classList.contains('gg-strip')) g.src.push(performance.now());
    }
    const svg = document.querySelector('.gg-explorer .gg-curve svg');
    const render = svg ? Number(svg.dataset.render) : null;
    if (render !== last) { last = render; g.curve.push({render, time: performance.now()}); }
  }).observe(document.body, {subtree: true, childList: true, attributes: true, attributeFilter: ['src']});
}"""

DONE = """([render]) => {
  const g = window.__gg;
  if (g.t0 === null) return null;
  const curve = g.curve.find(c => c.render >= render && c.time >= g.t0);
  if (curve === undefined) return null;
  const changed = g.src.find(t => t >= g.t0);
  if (changed === undefined) return curve.time - g.t0;
  const loaded = g.load.find(t => t >= changed);
  return loaded === undefined ? null : Math.max(loaded, curve.time) - g.t0;
}"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    url: str  # http://127.0.0.1:PORT
    token: str
    root: Path
    log: Path
    pid: int = 0  # the server command's process (its kernels are among its descendants)

    def kernel_alive(self, kernel_id: str) -> bool:
        """Whether the server still holds kernel `kernel_id` (JupyterLab's and Voilà's /api/kernels/<id>)."""
        try:
            self.api(f"api/kernels/{kernel_id}")
            return True
        except urllib.error.HTTPError as error:
            if error.code == 404:
                return False
            raise

    def kernel_processes(self) -> int:
        """How many kernel processes the server runs now."""
        import psutil

        try:
            children = psutil.Process(self.pid).children(recursive=True)
        except psutil.NoSuchProcess:
            return 0
        return sum(1 for p in children if _is_kernel(p))

    def api(self, path: str, method: str = "GET", body: dict | None = None):
        request = urllib.request.Request(f"{self.url}/{path.lstrip('/')}", method=method,
                                         data=None if body is None else json.dumps(body).encode(),
                                         headers={"Authorization": f"token {self.token}"})
        with urllib.request.urlopen(request, timeout=30) as response:
            data = response.read()
        return json.loads(data) if data else None

    def shutdown_kernels(self) -> None:
        """Shut down every kernel of this JupyterLab server (a closed notebook keeps its kernel running)."""
        for kernel in self.api("api/kernels"):
            with contextlib.suppress(urllib.error.HTTPError):  # gone meanwhile, or dying (restarted, say)
                self.api(f"api/kernels/{kernel['id']}", "DELETE")

    def put_notebook(self, path: str, source: str) -> None:
        """A notebook with one code cell `source`, written through the server's contents API."""
        import nbformat

        notebook = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(source)])
        notebook.metadata["kernelspec"] = {"display_name": "Python 3 (ipykernel)", "language": "python",
                                           "name": "python3"}
        self.api(f"api/contents/{path}", "PUT", {"type": "notebook", "format": "json", "content": notebook})


def _is_kernel(process) -> bool:
    try:
        return "ipykernel_launcher" in " ".join(process.cmdline())
    except Exception:  # noqa: BLE001 (psutil: gone, or not ours to read)
        return False


def make_command(target: str, make_dir: Path, **variables) -> list[str]:
    """`make TARGET`'s own server command line, read with `make -n` in `make_dir` (with this venv)."""
    venv = Path(sys.executable).parent.parent
    dry = subprocess.run(["make", "-n", "-s", "-C", str(make_dir), target, f"VENV={venv}",
                          *(f"{k}={v}" for k, v in variables.items())], capture_output=True, text=True, check=True)
    program = {"lab": "jupyter lab", "explore": "voila"}[target]
    lines = dry.stdout.replace("\\\n", " ").splitlines()  # recipe lines continued with a backslash
    return ["bash", "-c", next(line for line in lines if f"/bin/{program}" in line)]


@contextlib.contextmanager
def lab_server(root: Path, *, make_dir: Path | None = None, voila: bool = False, timeout: float = 180):
    """JupyterLab (or Voilà) as `make lab` (`make explore`) in `make_dir` starts it, on 127.0.0.1 with a token,
    serving `root` (default: make_dir).

    The Jupyter home (config, data, runtime, settings, workspaces, IPython) is a scratch directory, so neither
    the user's settings change the test nor the test the user's; kernels import `helpers` from this checkout.
    """
    make_dir = make_dir or root
    port, token = free_port(), os.urandom(12).hex()
    home = Path(tempfile.mkdtemp(prefix="gg-jupyter-"))
    if voila:
        command = make_command("explore", make_dir, VOILA_ARGS=f"--no-browser --port={port} --token={token} "
                                                               "--Voila.port_retries=0")
    else:
        command = make_command("lab", make_dir, LAB_ROOT=root, LAB_ARGS=" ".join(
            ["--no-browser", f"--port={port}", "--ServerApp.ip=127.0.0.1", f"--IdentityProvider.token={token}",
             "--ServerApp.port_retries=0"]))
    env = {**os.environ, "JUPYTER_CONFIG_DIR": str(home / "config"), "JUPYTER_DATA_DIR": str(home / "data"),
           "JUPYTER_RUNTIME_DIR": str(home / "runtime"), "JUPYTERLAB_SETTINGS_DIR": str(home / "settings"),
           "JUPYTERLAB_WORKSPACES_DIR": str(home / "workspaces"), "IPYTHONDIR": str(home / "ipython"),
           "PYTHONPATH": os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]),
           "MPLBACKEND": "Agg", "PYDEVD_DISABLE_FILE_VALIDATION": "1"}
    for name in ("JUPYTER_CONFIG_PATH", "JUPYTER_PATH"):  # only the project's own, from the make command
        env.pop(name, None)
    log = home / "server.log"
    with open(log, "w") as out:
        process = subprocess.Popen(command, cwd=root, env=env, stdout=out, stderr=subprocess.STDOUT,
                                   start_new_session=True)
    server = Server(f"http://127.0.0.1:{port}", token, root, log, process.pid)
    try:
        deadline = time.monotonic() + timeout
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"the server exited ({process.returncode}):\n{log.read_text()[-3000:]}")
            try:  # Voilà's pages run the notebook: only check that it listens
                if voila:
                    socket.create_connection(("127.0.0.1", port), timeout=5).close()
                else:
                    urllib.request.urlopen(f"{server.url}/api/status?token={token}", timeout=5)
                break
            except OSError:
                if time.monotonic() > deadline:
                    raise RuntimeError(f"the server did not answer in {timeout:.0f} s:\n{log.read_text()[-3000:]}")
                time.sleep(0.5)
        yield server
    finally:
        if not voila and process.poll() is None:
            with contextlib.suppress(OSError):
                server.api("api/shutdown", "POST")  # shuts its kernels down too
        with contextlib.suppress(subprocess.TimeoutExpired):
            process.wait(timeout=20)
        if process.poll() is None:
            os.killpg(process.pid, 15)  # the server's own session: it and its kernels, nothing else
            process.wait(timeout=20)
        shutil.rmtree(home, ignore_errors=True)


def launch(playwright, executable: str = CHROMIUM):
    return playwright.chromium.launch(executable_path=executable, args=CHROMIUM_FLAGS, headless=True)


class ExplorerPage:
    """The explorer app in a page (JupyterLab or Voilà): its outputs, and its controls moved as a user would."""

    def __init__(self, page):
        self.page = page
        self.app = page.locator(".gg-explorer").last

    def install_probe(self) -> None:
        self.page.evaluate(PROBE)

    def wait_rendered(self, timeout: float = 300) -> None:
        """Until the strip image has loaded and the curve is drawn."""
        self.page.wait_for_function(
            "() => { const img = document.querySelector('.gg-explorer img.gg-strip');"
            " return img && img.complete && img.naturalWidth > 0 &&"
            " document.querySelector('.gg-explorer .gg-curve svg polyline.gg-measured') !== null; }",
            timeout=timeout * 1000)

    def render_count(self) -> int:
        return int(self.app.locator(".gg-curve svg").get_attribute("data-render"))

    def state(self) -> dict:
        """What a reader sees: the strip's image size, whether it loaded, and the curve's points."""
        return self.page.evaluate(
            "() => { const img = document.querySelector('.gg-explorer img.gg-strip');"
            " const line = document.querySelector('.gg-explorer .gg-curve svg polyline.gg-measured');"
            " return {loaded: img.complete && img.naturalWidth > 0, width: img.naturalWidth,"
            " height: img.naturalHeight, points: line ? line.getAttribute('points') : null,"
            " status: document.querySelector('.gg-explorer .gg-status').innerText}; }")

    def strip_pixels(self) -> str:
        """The strip as a data URL, drawn from the loaded image (what is on screen, not the widget's state)."""
        return self.page.evaluate(
            "() => { const img = document.querySelector('.gg-explorer img.gg-strip');"
            " const c = document.createElement('canvas'); c.width = img.naturalWidth; c.height = img.naturalHeight;"
            " c.getContext('2d').drawImage(img, 0, 0); return c.toDataURL(); }")

    def value(self, control: str):
        """A control's value as the page shows it: the slider's readout, the walk button pressed, the model."""
        if control == "mode":
            return self.app.locator(".gg-mode button.mod-active").inner_text().strip()
        if control == "model":
            return self.app.locator(".gg-model select").input_value()
        text = self._readout(control).inner_text().strip()
        return int(text) if control == "rank" else float(text)

    def _readout(self, control: str):
        return self.app.locator(f".gg-{control} .widget-readout")

    def action(self, control: str, value):
        """A function that makes the move: type into a slider's readout + Enter, or click a walk button."""
        if control == "mode":
            button = self.app.locator(".gg-mode button", has_text=str(value))
            return lambda: button.click()
        if control == "model":
            menu = self.app.locator(".gg-model select")
            return lambda: menu.select_option(str(value))
        readout = self._readout(control)

        def type_and_enter():
            readout.click()
            self.page.keyboard.press("Control+a")
            self.page.keyboard.type(str(value))
            self.page.keyboard.press("Enter")
        return type_and_enter

    def kernel_id(self) -> str:
        """The page's kernel (Voilà puts it in the page's config)."""
        return self.page.evaluate("() => JSON.parse(document.getElementById('jupyter-config-data').textContent)"
                                  ".kernelId")

    def move(self, control: str, value, timeout: float = 120) -> float:
        """Seconds from the key press, click or choice to the new strip loaded and the new curve in the page."""
        if self.value(control) == value:
            raise ValueError(f"{control} is {value!r} already: setting it again sends nothing to the kernel")
        expected = self.render_count() + 1
        self.page.evaluate("() => { window.__gg.t0 = null; }")
        self.action(control, value)()
        handle = self.page.wait_for_function(DONE, arg=[expected], timeout=timeout * 1000)
        return handle.json_value() / 1000


def run_explorer_notebook(page, server: Server, path: str, timeout: float = 300) -> ExplorerPage:
    """Open notebook `path` in JupyterLab, run its first cell, and wait for the app to render."""
    page.goto(f"{server.url}/lab/tree/{path}?reset&token={server.token}")  # reset: no tabs from a workspace
    cell = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell .jp-InputArea-editor").first
    cell.wait_for(timeout=timeout * 1000)
    # The kernel is connected once the status bar says so; a cell run before that is silently dropped.
    page.locator(".jp-StatusBar-TextItem", has_text="| Idle").first.wait_for(timeout=timeout * 1000)
    prompt = page.locator(".jp-NotebookPanel:not(.lm-mod-hidden) .jp-CodeCell .jp-InputPrompt").first
    for _ in range(3):
        cell.click()
        page.keyboard.press("Shift+Enter")
        try:  # "[*]:" while it runs, "[1]:" once done
            page.wait_for_function("(el) => /\\[[*0-9]+\\]/.test(el.textContent)", arg=prompt.element_handle(),
                                   timeout=10_000)
            break
        except Exception:  # noqa: BLE001 (playwright's TimeoutError): press again
            continue
    explorer = ExplorerPage(page)
    explorer.wait_rendered(timeout)
    explorer.install_probe()
    return explorer


def moves(control: str, n: int) -> list:
    """n + 1 values for a control, each different from the one before (the first is the untimed warm-up)."""
    if control == "rank":
        return [2 + (3 * i) % 40 for i in range(n + 1)]
    if control == "step":
        return [round(0.5 + 0.4 * (i % 8), 1) for i in range(n + 1)]
    return [("spherical", "linear")[i % 2] for i in range(n + 1)]


def bench_switches(page, server: Server, models: list[str], n: int) -> dict:
    """Model switches in one app of all `models`: to each once straight after it opened (first), then n more
    per model in turn (later); {model: {"first": seconds, "times": [...], ...}}."""
    name = "bench-switch.ipynb"
    server.put_notebook(name, f"from helpers.explore import explore\n\nexplore({models!r})")
    explorer = run_explorer_notebook(page, server, name)
    order = models[1:] + models[:1]  # the app opens on the first
    result = {model: {"first": explorer.move("model", model, timeout=300), "times": []} for model in order}
    for i in range(n * len(models)):
        model = order[i % len(order)]
        result[model]["times"].append(explorer.move("model", model))
    for r in result.values():
        r.update(median_seconds=float(np.median(r["times"])), p90_seconds=float(np.percentile(r["times"], 90)),
                 max_seconds=max(r["times"]))
    page.screenshot(path=str(server.root / "bench-switch.png"))
    return result


def bench_model(page, server: Server, model: str, n: int) -> dict:
    name = f"bench-{model}.ipynb"
    server.put_notebook(name, f"from helpers.explore import explore\n\nexplore([{model!r}])")
    start = time.perf_counter()
    explorer = run_explorer_notebook(page, server, name)
    opened = time.perf_counter() - start
    result = {"model": model, "open_seconds": opened, "controls": {}}
    for control in ("rank", "step", "mode"):
        if control == "step":
            explorer.move("rank", 2)  # untimed: steps along rank 2 stay below the cap, so each one is new
        values = moves(control, n)
        explorer.move(control, values[0])  # warm-up
        times = [explorer.move(control, value) for value in values[1:]]
        result["controls"][control] = {"times": times, "median_seconds": float(np.median(times)),
                                       "p90_seconds": float(np.percentile(times, 90)), "max_seconds": max(times)}
    everything = [t for c in result["controls"].values() for t in c["times"]]
    result["p90_seconds"] = float(np.percentile(everything, 90))
    result["meets_target"] = result["p90_seconds"] <= TARGET_SECONDS
    page.screenshot(path=str(server.root / f"{Path(name).stem}.png"))
    return result


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default=None, help="comma-separated model names (default: the embedded ones)")
    parser.add_argument("--moves", type=int, default=10, help="timed moves per control and model")
    parser.add_argument("--threads", type=int, default=None, help="torch threads in the kernel (OMP_NUM_THREADS)")
    parser.add_argument("--json", default=None, help="also write the results to this JSON file")
    parser.add_argument("--screenshots", default=None, help="save a screenshot per model in this folder")
    parser.add_argument("--chromium", default=CHROMIUM, help=f"the chromium to drive (default {CHROMIUM})")
    parser.add_argument("--switches-only", action="store_true", help="time only the model switches")
    args = parser.parse_args(argv)
    from playwright.sync_api import sync_playwright

    from helpers import generators

    models = args.models.split(",") if args.models else list(generators.EMBEDDED)
    if args.threads:
        os.environ["OMP_NUM_THREADS"] = str(args.threads)  # inherited by the kernels
    print(f"JupyterLab + chromium ({args.chromium}) | kernel threads: {args.threads or 'torch default'} | "
          f"{os.cpu_count()} CPUs | load average {os.getloadavg()[0]:.2f} | "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print(f"{'model':<16} {'control':<8} {'median':>8} {'p90':>8} {'max':>8}  target (p90 ≤ {TARGET_SECONDS:g} s)")
    results = []
    with tempfile.TemporaryDirectory(prefix="gg-bench-") as root, lab_server(Path(root), make_dir=ROOT) as server, \
            sync_playwright() as playwright:
        browser = launch(playwright, args.chromium)
        page = browser.new_page(viewport={"width": 1280, "height": 900})
        for model in [] if args.switches_only else models:
            r = bench_model(page, server, model, args.moves)
            results.append(r)
            server.shutdown_kernels()  # one app at a time: nothing else computes while the next is timed
            for control, c in r["controls"].items():
                print(f"{model:<16} {control:<8} {c['median_seconds']:>7.3f}s {c['p90_seconds']:>7.3f}s "
                      f"{c['max_seconds']:>7.3f}s", flush=True)
            print(f"{model:<16} {'all':<8} {'':>8} {r['p90_seconds']:>7.3f}s {'':>8}  "
                  f"{'met' if r['meets_target'] else 'MISSED'} (app opened in {r['open_seconds']:.1f} s)", flush=True)
            if args.screenshots:
                Path(args.screenshots).mkdir(parents=True, exist_ok=True)
                shutil.copy(server.root / f"bench-{model}.png", Path(args.screenshots) / f"bench-{model}.png")
        switches = bench_switches(page, server, models, args.moves) if len(models) > 1 else {}
        server.shutdown_kernels()
        if switches:
            print(f"model switches in one app of all {len(models)} models: the first to each straight after it "
                  f"opened, then {args.moves} more each")
            print(f"{'to model':<16} {'first':>8} {'median':>8} {'p90':>8} {'max':>8}")
        for model, r in switches.items():
            print(f"{model:<16} {r['first']:>7.3f}s {r['median_seconds']:>7.3f}s {r['p90_seconds']:>7.3f}s "
                  f"{r['max_seconds']:>7.3f}s  {'met' if r['p90_seconds'] <= TARGET_SECONDS else 'MISSED'}", flush=True)
        browser.close()
    report = {"load_average": os.getloadavg()[0], "models": results, "switches": switches}
    if args.json:
        Path(args.json).write_text(json.dumps(report, indent=2))
    return report


if __name__ == "__main__":
    main()
