"""Runs the book's notebooks: notebooks/NN_*.py (jupytext) -> book/notebooks/NN_*.ipynb via papermill.
Owns run profiles, parameter validation, the kernel check, summary.json and `record` (the notebooks' side).

The executed notebooks are the book's pages: the inline plotly.js that the figure renderer prints once per
notebook is dropped from them, since the book serves one shared copy (book/_ext/plotly_static.py).
"""
from __future__ import annotations

import argparse
import ast
import contextlib
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path

from .assets import atomic_path, temp_beside

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ROOT / "notebooks"
OUTPUT = ROOT / "book" / "notebooks"
SUMMARY_ENV = "GAN_GEOMETRY_SUMMARY"
KERNEL = "python3"
ANSI = re.compile(r"\x1b\[[0-9;]*m")

# Chapter 05 (optimization): its smoke run tries every method on one target; its full run is the paper's scale of
# inversion (50 targets × 5 starts, tuned over 5 learning rates × 3 schedules) and of activation maximisation.
_SMOKE_05 = {"n_targets": 1, "n_starts": 1, "n_tune": 1, "n_photos": 1, "budget": 10, "other_budget": 10,
             "lrs": [0.2], "basin_generations": 1, "basin_popsize": 2, "basin_inner_steps": 2, "am_layers": ["conv1", "conv5"],
             "am_units": 1, "am_repeats": 1, "am_budget": 8, "toy_angles": 3, "toy_steps": 30}
_FULL_05 = {"n_targets": 50, "n_starts": 5, "n_tune": 5, "n_photos": 10, "budget": 300, "other_budget": 300,
            "other_methods": ["z", "eigenbasis", "top-k", "BasinCMA, z", "BasinCMA, eigenbasis"],
            "lrs": [0.05, 0.1, 0.2, 0.4, 0.8], "schedules": ["constant", "cosine", "step"], "basin_generations": 4,
            "basin_popsize": 8, "basin_inner_steps": 5, "threshold": 0.05, "am_units": 3, "am_repeats": 5,
            "am_budget": 500}

# Parameter overrides per profile; a profile's names that a notebook lacks are skipped for that notebook.
PROFILES: dict[str, dict] = {
    # smoke: every chapter in about a minute or less on 2 CPU cores (the rendered-book test uses it)
    "smoke": {"n_images": 4, "eps_grid": [1e-4, 1e-2], "n_points": 3, "n_average": 2, "n_reference": 2,
              "n_pca_samples": 500, "global_ranks": [1, 2], "ranks": [1, 4, 16], "n_steps": 5, "steps": 10,
              **_SMOKE_05},
    "default": {},
    # full: paper-scale settings (30 points, as the paper's DCGAN figures); meant for a GPU
    "full": {"n_images": 16, "n_compare": 10, "n_points": 30, "n_average": 30, "n_reference": 8, **_FULL_05},
}


class UsageError(Exception):
    """A bad command line: reported with exit status 2, before anything runs."""


def record(key: str, value):
    """Store `value` under `key` in this run's summary (book/notebooks/summary.json); returns `value`.

    Outside `python -m helpers.book run` (no $GAN_GEOMETRY_SUMMARY) this does nothing but return `value`.
    Values must be JSON-serialisable; numpy and torch scalars and arrays are converted.
    """
    path = os.environ.get(SUMMARY_ENV)
    if path:
        data = _read_json(Path(path))
        data[key] = value
        _write_json_atomic(Path(path), data)
    return value


def glue(key: str, value):
    """Make `value` citable in this notebook's prose, and `record` it; returns `value`.

    The prose cites it with myst-nb's roles: {glue:text}`key` or, with a format spec, {glue:text}`key:.3g`
    for numbers; {glue:text}`key` for plain text and {glue:md}`key` for markdown (a sentence generated from
    the run's values). Each key is glued once per notebook (a duplicate fails the strict build).
    Numpy and torch scalars are glued as Python numbers, so format specs apply.
    """
    from myst_nb import glue as myst_glue

    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:  # numpy or torch scalar
        value = value.item()
    myst_glue(key, _Prose(value) if isinstance(value, str) else value, display=False)
    record(key, value)
    return value


class _Prose(str):
    """A string glued as text/plain (for {glue:text}) and as text/markdown (for {glue:md})."""

    def _repr_markdown_(self):
        return str(self)


def _jsonable(obj):
    if hasattr(obj, "tolist"):  # numpy arrays and scalars, torch tensors
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def _read_json(path: Path) -> dict:
    return json.loads(path.read_text()) if path.exists() and path.stat().st_size else {}


def _write_json_atomic(path: Path, data) -> None:
    text = json.dumps(data, indent=2, default=_jsonable) + "\n"  # fails before any file is touched
    with atomic_path(path, ".tmp") as partial:
        partial.write_text(text)


def find_notebooks(only: list[str] | None = None) -> list[Path]:
    """Sources notebooks/NN_*.py, sorted; `only` keeps those whose name starts with one of the prefixes."""
    paths = sorted(p for p in SOURCES.glob("[0-9][0-9]_*.py"))
    if only:
        paths = [p for p in paths if any(p.stem.startswith(prefix) for prefix in only)]
        if not paths:
            raise UsageError(f"--only {' '.join(only)} matches no notebook in {SOURCES}")
    return paths


def load_notebook(path: Path):
    """The jupytext (py:percent) source as an in-memory nbformat notebook."""
    import jupytext

    return jupytext.read(path, fmt="py:percent")


def parameter_names(nb) -> list[str]:
    """Names assigned at top level in the cell tagged `parameters` (empty if there is none)."""
    for cell in nb.cells:
        if cell.cell_type == "code" and "parameters" in cell.metadata.get("tags", []):
            names = []
            for node in ast.parse(cell.source).body:
                targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
                names += [t.id for t in targets if isinstance(t, ast.Name)]
            return names
    return []


def parse_value(text: str):
    """A -p value: a Python literal if it is one (1, 0.5, True, [1, 2], 'x'), else the string itself."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError):
        return text


def plan(paths: list[Path], profile: str, overrides: dict) -> list[tuple[Path, object, dict]]:
    """(source, notebook, parameters) per notebook; raises UsageError for a name no notebook accepts."""
    notebooks = [load_notebook(path) for path in paths]
    jobs = [(path, nb, parameter_names(nb)) for path, nb in zip(paths, notebooks)]
    valid = sorted({name for _, _, names in jobs for name in names})
    unknown = [name for name in overrides if name not in valid]
    if unknown:
        raise UsageError(f"unknown parameter(s) {', '.join(unknown)}; the notebooks selected accept: "
                         f"{', '.join(valid) or '(none)'}")
    requested = {**PROFILES[profile], **overrides}
    return [(path, nb, {k: v for k, v in requested.items() if k in names}) for path, nb, names in jobs]


def check_kernel() -> None:
    """Make sure kernel `python3` runs this interpreter (so notebooks see this venv's packages)."""
    from jupyter_client.kernelspec import KernelSpecManager

    argv0 = KernelSpecManager().get_kernel_spec(KERNEL).argv[0]
    ours = {"python", f"python{sys.version_info[0]}", "python%i.%i" % sys.version_info[:2]}
    if argv0 not in ours and os.path.realpath(argv0) != os.path.realpath(sys.executable):
        raise UsageError(f"kernel {KERNEL!r} runs {argv0}, not {sys.executable}; register this one with "
                         f"`{sys.executable} -m ipykernel install --sys-prefix` or remove the other kernelspec")


@contextlib.contextmanager
def summary_channel():
    """A fresh summary file, advertised to the kernel through $GAN_GEOMETRY_SUMMARY; yields its path."""
    fd, path = tempfile.mkstemp(prefix="gan-geometry-summary-", suffix=".json")
    os.close(fd)
    previous = os.environ.get(SUMMARY_ENV)
    os.environ[SUMMARY_ENV] = path
    try:
        yield Path(path)
    finally:
        if previous is None:
            os.environ.pop(SUMMARY_ENV, None)
        else:
            os.environ[SUMMARY_ENV] = previous
        os.unlink(path)


def execute(nb, parameters: dict, name: str, out: Path) -> dict:
    """Run one notebook with papermill; the result appears at out/name.ipynb only if it ran to the end.

    A failed run is kept at out/failed/name.ipynb (outside the book) and the previous result is left alone.
    """
    import nbformat
    import papermill

    out.mkdir(parents=True, exist_ok=True)
    tmp = str(temp_beside(out / name, ".tmp.ipynb"))  # papermill wants the .ipynb suffix
    started = time.perf_counter()
    entry = {"parameters": parameters}
    with summary_channel() as channel:
        try:
            executed = papermill.execute_notebook(nb, tmp, parameters=parameters, kernel_name=KERNEL,
                                                  cwd=str(ROOT), progress_bar=False,
                                                  request_save_on_cell_execute=False)
            drop_plotly_bundle(executed)
            nbformat.write(executed, tmp)
            os.replace(tmp, out / f"{name}.ipynb")
            (out / "failed" / f"{name}.ipynb").unlink(missing_ok=True)  # an earlier failure is now stale
            entry["status"] = "ok"
        except Exception as err:  # papermill raises PapermillExecutionError, the kernel may die, ...
            (out / "failed").mkdir(exist_ok=True)
            if os.path.exists(tmp) and os.path.getsize(tmp):
                os.replace(tmp, out / "failed" / f"{name}.ipynb")
            message = ANSI.sub("", str(err)).strip()[-2000:]
            entry.update(status="failed", error=f"{type(err).__name__}: {message}")
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
        entry["summary"] = _read_json(channel)
    entry["duration_s"] = round(time.perf_counter() - started, 2)
    return entry


def drop_plotly_bundle(nb) -> int:
    """Remove the outputs that carry plotly.js itself (not the figures) from an executed notebook, in place.

    Returns how many were removed. The book loads plotly.js once per page from _static instead.
    """
    from plotly.offline import get_plotlyjs

    bundle = get_plotlyjs()
    removed = 0
    for cell in nb.cells:
        outputs = cell.get("outputs", [])
        kept = [o for o in outputs if bundle not in _joined(o.get("data", {}).get("text/html", ""))]
        removed += len(outputs) - len(kept)
        if len(kept) != len(outputs):
            cell.outputs = kept
    return removed


def _joined(text) -> str:
    return "".join(text) if isinstance(text, list) else text


def run(profile: str = "default", overrides: dict | None = None, only: list[str] | None = None,
        out: Path = OUTPUT) -> int:
    """Execute the selected notebooks; returns the exit status (0 ok, 1 a notebook failed)."""
    from tqdm.auto import tqdm

    jobs = plan(find_notebooks(only), profile, overrides or {})
    check_kernel()
    os.environ.setdefault("MPLBACKEND", "Agg")
    os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    summary = _read_json(out / "summary.json")
    summary.update(profile=profile, overrides=overrides or {}, python=sys.executable)
    notebooks = summary.setdefault("notebooks", {})
    for path, nb, parameters in (bar := tqdm(jobs, desc="notebooks", unit="nb")):
        bar.set_postfix_str(path.stem)
        notebooks[path.stem] = entry = execute(nb, parameters, path.stem, Path(out))
        tqdm.write(f"{path.stem}: {entry['status']} in {entry['duration_s']:.1f}s" + _failure_note(entry, out))
        _write_json_atomic(Path(out) / "summary.json", summary)
    return 0 if all(notebooks[p.stem]["status"] == "ok" for p, _, _ in jobs) else 1


def _failure_note(entry: dict, out: Path) -> str:
    if entry["status"] == "ok":
        return ""
    last = entry["error"].strip().splitlines()[-1]
    return f"\n  {last}\n  full error in {out / 'summary.json'}; failed notebook in {out / 'failed'}"


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m helpers.book", description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="command", required=True)
    go = sub.add_parser("run", help="execute notebooks/NN_*.py into book/notebooks/ with papermill")
    go.add_argument("--profile", choices=sorted(PROFILES), default="default", help="parameter preset")
    go.add_argument("-p", "--parameter", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                    help="override a notebook parameter (VALUE is a Python literal, else a string)")
    go.add_argument("--only", nargs="+", metavar="PREFIX", help="only notebooks whose name starts so, e.g. 00")
    go.add_argument("--out", type=Path, default=OUTPUT, help=f"where executed notebooks go (default {OUTPUT})")
    args = parser.parse_args(argv)
    overrides = {name: parse_value(value) for name, value in args.parameter}
    try:
        return run(args.profile, overrides, args.only, args.out)
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
