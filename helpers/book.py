"""The book's build tool: runs the chapters (notebooks/NN_*.py, jupytext) into book/notebooks/ with papermill.
`python -m helpers.book run|results|timings|record`; also generates the results, models and profiles pages.

Owns parameter validation, the kernel check and summary.json; what a chapter calls while it runs (`glue`,
`record`, `result_table`, ...) is `helpers.report`, and the run profiles are `helpers.profiles`.

summary.json is merged, not overwritten: each finished notebook's entry is written under a file lock
(read, merge, atomic write), so runs that share an output directory, even at the same time, keep each
other's entries.

The executed notebooks are the book's pages: the inline plotly.js that the figure renderer prints once per
notebook is dropped from them, since the book serves one shared copy (book/_ext/plotly_static.py), and so
is widget state (no widget manager from a CDN).
"""
from __future__ import annotations

import argparse
import ast
import contextlib
import math
import os
import re
import sys
import tempfile
import time
from pathlib import Path

from .assets import atomic_path, file_lock, temp_beside
from .profiles import PROFILES
from .report import (SUMMARY_ENV, TIMINGS, busy, duration, format_number, paper_entries, paper_role, phrase_list,
                     read_json, write_json)

ROOT = Path(__file__).resolve().parent.parent
SOURCES = ROOT / "notebooks"
OUTPUT = ROOT / "book" / "notebooks"
RECORDED = ROOT / "book" / "recorded.json"  # result tables of recorded runs of other profiles (`record` command)
KERNEL = "python3"
ANSI = re.compile(r"\x1b\[[0-9;]*m")


class UsageError(Exception):
    """A bad command line: reported with exit status 2, before anything runs."""


# --- the book's JSON files, read with checks: each problem is one line that names the file and what to do ---------

def read_book_json(path: Path, kind: str, fix: str) -> dict:
    """The JSON object in `path` ({} if missing or empty), checked to be a `kind` ('summary', 'timings' or
    'recorded'; see `json_problem`); otherwise UsageError naming the file, what is wrong and `fix`."""
    try:
        data = read_json(Path(path))
    except (OSError, UnicodeDecodeError) as err:
        raise UsageError(f"cannot read {path} ({getattr(err, 'strerror', None) or err}); {fix}") from None
    except ValueError as err:  # json.JSONDecodeError
        raise UsageError(f"{path} is not valid JSON ({err}); {fix}") from None
    problem = json_problem(data, kind)
    if problem:
        raise UsageError(f"{path} is not a {kind} file: {problem}; {fix}")
    return data


def json_problem(data, kind: str) -> str:
    """What makes `data` not a book file of this kind, or '': 'summary' (summary.json: {"notebooks": {stem: entry}}
    and header fields), 'timings' (book/timings.json: {profile: {stem: {"seconds": ...}}}) or 'recorded'
    (book/recorded.json: {profile: {stem: {"tables": {key: table}, ...}}})."""
    if not isinstance(data, dict):
        return f"expected a JSON object, found {type(data).__name__}"
    if kind == "summary":
        notebooks = data.get("notebooks", {})
        if not isinstance(notebooks, dict):
            return '"notebooks" is not an object'
        for stem, entry in notebooks.items():
            problem = _entry_problem(entry, {"status": str, "duration_s": (int, float), "parameters": dict,
                                             "summary": dict, "profile": str, "overrides": dict, "finished": str,
                                             "cpus": int, "load": (int, float)})
            problem = problem or _tables_problem({k: v for k, v in entry.get("summary", {}).items()
                                                  if k.startswith("results/")})
            if problem:
                return f"notebooks/{stem}: {problem}"
        for key, kinds in (("profile", str), ("overrides", dict)):
            if data.get(key) is not None and not isinstance(data[key], kinds):
                return f'"{key}" is not a {kinds.__name__}'
        return ""
    for profile, chapters in data.items():
        if not isinstance(chapters, dict):
            return f"{profile} is not an object of chapters"
        for stem, entry in chapters.items():
            if kind == "timings":
                problem = _entry_problem(entry, {"seconds": (int, float), "cpus": int, "date": str,
                                                 "load": (int, float)}, required=("seconds",))
            else:
                problem = _entry_problem(entry, {"finished": str, "cpus": int, "duration_s": (int, float),
                                                 "load": (int, float), "commit": str, "parameters": dict,
                                                 "tables": dict})
                problem = problem or _tables_problem(entry.get("tables", {}))
            if problem:
                return f"{profile}/{stem}: {problem}"
    return ""


def _entry_problem(entry, fields: dict, required=()) -> str:
    if not isinstance(entry, dict):
        return f"expected an object, found {type(entry).__name__}"
    for key in required:
        if key not in entry:
            return f'"{key}" is missing'
    for key, kinds in fields.items():
        value = entry.get(key)
        if value is not None and (not isinstance(value, kinds) or isinstance(value, bool) and bool not in
                                  (kinds if isinstance(kinds, tuple) else (kinds,))):
            return f'"{key}" is {value!r}'
    return ""


def _tables_problem(tables: dict) -> str:
    """What is wrong with result tables {key: table} as `report.result_table` writes them, or ''."""
    if not isinstance(tables, dict):
        return "result tables are not an object"
    for key, table in tables.items():
        if not isinstance(table, dict) or not isinstance(table.get("title"), str) or \
                not isinstance(table.get("rows"), list) or not isinstance(table.get("columns"), dict):
            return f"{key} is not a result table (title, rows, columns)"
        if not all(isinstance(row, str) for row in table["rows"]):
            return f"{key} has row labels that are not text"
        if any(table.get(field) is not None and not isinstance(table[field], kinds) or isinstance(table.get(field), bool)
               for field, kinds in (("digits", int), ("note", str), ("row_header", str))):
            return f"{key} has a digits, note or row_header of the wrong type"
        n = len(table["rows"])
        columns = {**table["columns"], **table.get("paper", {})} if isinstance(table.get("paper", {}), dict) else None
        if columns is None or any(not isinstance(c, list) or len(c) != n for c in columns.values()):
            return f"{key} has columns of another length than its {n} rows"
        if any(not (cell is None or isinstance(cell, dict) and "value" in cell) for cell in
               (c for column in table.get("paper", {}).values() for c in column)):
            return f"{key} has paper cells without a value"
    return ""


def read_run_summary(path: Path) -> dict:
    """A run's summary.json with at least one notebook (`read_book_json`); UsageError otherwise."""
    if not Path(path).exists():
        raise UsageError(f"{path} does not exist; run `python -m helpers.book run` first (or pass --summary)")
    summary = read_book_json(path, "summary", SUMMARY_FIX)
    if not summary.get("notebooks"):
        raise UsageError(f"{path} has no notebooks; run `python -m helpers.book run` first")
    return summary


SUMMARY_FIX = "run the chapters again (`python -m helpers.book run`) or delete the file"
TIMINGS_FIX = "restore it (`git checkout book/timings.json`) or delete it"
RECORDED_FIX = "restore it (`git checkout book/recorded.json`) or delete it"


def write_timings(summary_path: Path, path: Path | None = None, load: float | None = None) -> dict:
    """Merge the durations of a run's summary.json into book/timings.json; returns what was written.

    Only notebooks that ran to the end with a profile's own settings (no -p overrides) are taken, with the
    load average of the machine (the entry's, else `load`, as observed with `uptime` during the run).
    """
    path = path or TIMINGS
    summary = read_run_summary(summary_path)
    timings = read_book_json(path, "timings", TIMINGS_FIX)
    taken = {}
    for stem, entry, profile in _plain_runs(summary):
        timings.setdefault(profile, {})[stem] = taken[stem] = {
            "seconds": entry["duration_s"], "cpus": entry.get("cpus"), "date": entry.get("finished"),
            "load": entry.get("load", load)}
    if not taken:
        raise UsageError(f"{summary_path}: no notebook ran to the end without -p overrides; nothing to time")
    write_json(path, timings)
    return taken


def _plain_runs(summary: dict):
    """(stem, entry, profile) of the notebooks that ran to the end with a profile's own settings (no -p overrides)."""
    for stem, entry in summary["notebooks"].items():
        profile = entry.get("profile", summary.get("profile"))
        if entry.get("status") == "ok" and not entry.get("overrides", summary.get("overrides")) and profile in PROFILES \
                and entry.get("duration_s") is not None:
            yield stem, entry, profile


def write_record(summary_path: Path, path: Path | None = None, load: float | None = None) -> dict:
    """Keep the result tables of a run's plain-profile notebooks in book/recorded.json; returns what was taken.

    Only notebooks that ran to the end with a non-default profile's own settings (no -p overrides) are
    taken, with their date, CPU count, duration, parameters and source commit, so that the default book's
    results page can show, e.g., a full-profile run made once on a big machine, labelled as such.
    """
    path = path or RECORDED
    summary = read_run_summary(summary_path)
    recorded, taken = read_book_json(path, "recorded", RECORDED_FIX), {}
    for stem, entry, profile in _plain_runs(summary):
        if profile == "default":
            continue
        tables = {key: value for key, value in entry.get("summary", {}).items() if key.startswith("results/")}
        recorded.setdefault(profile, {})[stem] = taken[stem] = {
            "finished": entry.get("finished"), "cpus": entry.get("cpus"), "duration_s": entry.get("duration_s"),
            "load": entry.get("load", load),
            "commit": entry.get("commit") or source_commit(summary_path.resolve().parent),
            "parameters": entry.get("parameters", {}), "tables": tables}
    if not taken:
        raise UsageError(f"{summary_path}: no notebook ran to the end with the smoke or full profile's own "
                         "settings (no -p overrides); nothing to record")
    write_json(path, recorded)
    return taken


RESULTS_INTRO = """\
# Results beside the paper

This page is generated by `python -m helpers.book results` from the run's `summary.json`: every table
that a chapter recorded with `helpers.report.result_table`, our numbers beside the paper's, chapter by
chapter. Numbers marked *paper* are Wang & Ponce's, printed in the paper; numbers marked *authors' code*
come from the printed output of the authors' own code (their tutorial notebooks), not from the paper. Both
are listed with their sources in `book/paper.yml` (hover over one for its source); a dash means neither
gives a number for that row. Our models and sample sizes differ from the paper's: see
[Differences from the paper](../differences.md). The parameters each chapter ran with are at the end of
the page.
"""


def results_page(summary: dict, recorded: dict | None = None) -> str:
    """The results page (MyST markdown) of a run's summary: profile and date, the result tables chapter by
    chapter; then the tables of `recorded` runs (book/recorded.json) of the profiles this run did not use; last,
    folded, the parameters of every chapter of this run."""
    notebooks = dict(sorted(summary.get("notebooks", {}).items()))
    if not notebooks:
        raise UsageError("the summary has no notebooks; run `python -m helpers.book run` first")
    profiles = sorted({entry.get("profile", summary.get("profile", "default")) for entry in notebooks.values()})
    dates = sorted(entry["finished"] for entry in notebooks.values() if entry.get("finished"))
    lines = [RESULTS_INTRO]
    when = "at an unrecorded date"
    if dates:
        when = f"on {dates[0][:10]}" + (f" to {dates[-1][:10]}" if dates[-1][:10] != dates[0][:10] else "") + " (UTC)"
    run = f"**This run:** profile {', '.join(f'`{p}`' for p in profiles)}, notebooks finished {when}."
    if profiles == ["default"]:
        run += (" It is the default profile's run, with the few codes per chapter that let the book build in "
                "minutes on a laptop; `make book PROFILE=full` regenerates this page at the paper's sample sizes.")
    elif "full" in profiles:
        run += " The `full` profile uses the paper's sample sizes where the chapters allow."
    lines.append(run)
    parameters = {stem: {**_defaults(stem), **entry.get("parameters", {})} for stem, entry in notebooks.items()}
    chapters = {stem: [value for key, value in entry.get("summary", {}).items() if key.startswith("results/")]
                for stem, entry in notebooks.items()}
    if not any(chapters.values()):
        lines += ["", "No chapter recorded a results table in this run."]
    for stem, tables in chapters.items():
        if tables:
            lines += ["", f"## {stem[:2]}. {_title(SOURCES / f'{stem}.py', stem)}", "",
                      f"From chapter [{stem}]({stem}.ipynb)." + _left_out(parameters[stem], tables)]
            for table in tables:
                lines += _table_lines(table, "###")
    for profile, kept in (recorded or {}).items():
        if profile in profiles or not kept:
            continue
        lines += ["", f"## Recorded `{profile}`-profile run", "",
                  f"These tables were not computed by this build: they come from a run of the `{profile}` profile "
                  f"made once and kept in `book/recorded.json` (by `python -m helpers.book record`), with the "
                  f"date, machine and source commit of each chapter's run. `make book PROFILE={profile}` "
                  "recomputes them."]
        for stem, entry in sorted(kept.items()):
            tables = list(entry.get("tables", {}).values())
            if not tables:
                continue
            took = f"took {duration(entry['duration_s'])[6:]}" if entry.get("duration_s") else "duration unrecorded"
            if busy(entry):
                took += f" while other jobs ran, load {entry['load']:.3g}"
            lines += ["", f"### {stem[:2]}. {_title(SOURCES / f'{stem}.py', stem)}", "",
                      f"Finished {(entry.get('finished') or 'at an unrecorded date')[:10]} on "
                      f"{entry.get('cpus') or '?'} CPU cores ({took}), commit `{entry.get('commit') or '?'}`; "
                      "parameters: " + (", ".join(f"`{k}={_shown(v)}`" for k, v in entry.get("parameters", {}).items()
                                                  if k != "device") or "the chapter's defaults") + "."
                      + _left_out(entry.get("parameters", {}), tables)]
            for table in tables:
                lines += _table_lines(table, "####")
    lines += ["", "## Parameters of this run", "",
              ":::{dropdown} The parameters each chapter ran with: its defaults, then the profile's and the command "
              "line's overrides", "", "| chapter | status | profile | parameters |", "|---|---|---|---|"]
    for stem, entry in notebooks.items():
        shown = ", ".join(f"`{k}={_shown(v)}`" for k, v in parameters[stem].items() if k != "device")
        lines.append(f"| {stem} | {entry.get('status', '?')} | {entry.get('profile', summary.get('profile', '?'))} "
                     f"| {shown} |")
    lines += [":::"]
    return "\n".join(lines) + "\n"


def _left_out(parameters: dict, tables: list[dict]) -> str:
    """A sentence naming the online models a chapter was asked for (`online_models`) that are in none of its tables
    (the chapters leave out an online model whose published weights did not download); "" if there is none."""
    shown = {label.removeprefix("ours: ") for table in tables for label in table["columns"]}
    missing = [f"`{name}`" for name in parameters.get("online_models") or [] if name not in shown]
    if not missing:
        return ""
    return (f" The run asked for {phrase_list(missing)} (`online_models`), which is in none of these tables: an "
            "online model runs only with its published weights, which could not be downloaded on that machine, and "
            "the chapters leave it out rather than run it with random weights.")


def _table_lines(table: dict, heading: str) -> list[str]:
    lines = ["", f"{heading} {table['title']}", ""]
    if table.get("note"):
        lines += [f"Over {table['note']}.", ""]
    entries = paper_entries()
    headers = [table.get("row_header") or " "] + list(table["columns"]) + list(table.get("paper", {}))
    lines += ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for r, label in enumerate(table["rows"]):
        cells = [format_number(column[r], table.get("digits", 3)) for column in table["columns"].values()]
        cells += ["–" if ids[r] is None else f"{{{paper_role(entries.get(ids[r]['id'], {}))}}}`{ids[r]['value']}`"
                  for ids in table.get("paper", {}).values()]
        lines.append("| " + " | ".join([label] + cells) + " |")
    return lines


def _shown(value) -> str:
    return format_number(value, 4) if isinstance(value, float) else repr(value)


def _defaults(stem: str) -> dict:
    source = SOURCES / f"{stem}.py"
    return resolved_defaults(load_notebook(source)) if source.exists() else {}


def resolved_defaults(nb) -> dict:
    """`parameter_defaults`, with the defaults that are not literals (such as `list(EMBEDDED)`) evaluated by running
    the parameters cell on its own; if that cell fails to run they stay `UNKNOWN`."""
    defaults = parameter_defaults(nb)
    if any(value is UNKNOWN for value in defaults.values()):
        cell = next(c for c in nb.cells if c.cell_type == "code" and "parameters" in c.metadata.get("tags", []))
        namespace: dict = {}
        try:
            exec(compile(cell.source, "<parameters>", "exec"), namespace)  # the chapter's own source
        except Exception:
            return defaults
        defaults = {name: namespace.get(name, value) if value is UNKNOWN else value for name, value in defaults.items()}
    return defaults


def _title(source: Path, fallback: str) -> str:
    if source.exists():
        for cell in load_notebook(source).cells:
            if cell.cell_type == "markdown" and cell.source.startswith("# "):
                return cell.source.splitlines()[0][2:].strip()
    return fallback


def profiles_page() -> str:
    """A markdown table of every parameter a profile sets: the chapters' defaults and each profile's value."""
    defaults = {path.stem: resolved_defaults(load_notebook(path)) for path in find_notebooks()}
    names = sorted({name for overrides in PROFILES.values() for name in overrides})
    shown = [p for p in PROFILES if PROFILES[p]]
    lines = ["| parameter | chapters | default | " + " | ".join(shown) + " |", "|---|---|---|" + "---|" * len(shown)]
    for name in names:
        takes = {stem[:2]: d[name] for stem, d in defaults.items() if name in d}
        values = sorted({repr(v) for v in takes.values()})
        default = values[0] if len(values) == 1 else "; ".join(f"{c}: {v!r}" for c, v in takes.items())
        lines.append(f"| `{name}` | {', '.join(takes) or '–'} | {default} | "
                     + " | ".join(repr(PROFILES[p][name]) if name in PROFILES[p] else "default" for p in shown) + " |")
    return "\n".join(lines) + "\n"


def models_page() -> str:
    """A markdown table of the embedded generators (generators.EMBEDDED): what each is, and its package."""
    from . import assets, generators

    lines = ["| model | what | weights from |", "|---|---|---|"]
    for name in generators.EMBEDDED:
        what = (generators.MODELS[name].__doc__ or "").strip().splitlines()[0].rstrip(".")
        asset = assets.ASSETS.get(name)
        lines.append(f"| `{name}` | {what} | " + (f"`{asset.package}=={asset.version}`" if asset else "–") + " |")
    return "\n".join(lines) + "\n"


def write_results(summary_path: Path, out: Path, recorded: Path | None = None) -> list[Path]:
    """Write out/results.md (from the run's summary and the recorded runs), and out/profiles.md and out/models.md (from the code,
    for the differences page); returns their paths."""
    summary = read_run_summary(summary_path)
    pages = {out / "results.md": results_page(summary, read_book_json(recorded or RECORDED, "recorded", RECORDED_FIX)),
             out / "profiles.md": profiles_page(),
             out / "models.md": models_page()}
    for path, text in pages.items():
        out.mkdir(parents=True, exist_ok=True)
        with atomic_path(path, ".tmp") as partial:
            partial.write_text(text, encoding="utf-8")
    return list(pages)


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


CODE_PER_PROSE = 1.5  # a chapter reads as prose with figures: at most this many code lines per line of prose


def code_prose_lines(path: Path) -> tuple[int, int]:
    """(code, prose): the non-blank lines of a chapter source's code cells and of its markdown cells.

    Lines are counted as they stand in the py:percent file, so a markdown cell's `#` paragraph breaks count
    as prose; cell markers (`# %%`) and the jupytext header are left out. Compare code / prose with
    `CODE_PER_PROSE`.
    """
    lines = path.read_text(encoding="utf-8").splitlines()
    if lines and lines[0].startswith("# ---"):
        lines = lines[lines.index("# ---", 1) + 1:]
    counts, kind = {"code": 0, "markdown": 0}, None
    for line in lines:
        if line.startswith("# %%"):
            kind = "markdown" if "[markdown]" in line else "code"
        elif kind and line.strip():
            counts[kind] += 1
    return counts["code"], counts["markdown"]


def parameter_names(nb) -> list[str]:
    """Names assigned at top level in the cell tagged `parameters` (empty if there is none)."""
    return list(parameter_defaults(nb))


class _Unknown:
    """A default that is not a literal (e.g. computed): any value is accepted for it."""

    def __repr__(self):
        return "(not a literal)"


UNKNOWN = _Unknown()


def parameter_defaults(nb) -> dict:
    """{name: default} of the cell tagged `parameters`, in order; `UNKNOWN` where the default is not a literal
    (arithmetic on numbers, such as 1 / 3, is evaluated)."""
    for cell in nb.cells:
        if cell.cell_type == "code" and "parameters" in cell.metadata.get("tags", []):
            defaults = {}
            for node in ast.parse(cell.source).body:
                targets = node.targets if isinstance(node, ast.Assign) else [getattr(node, "target", None)]
                for target in targets:
                    if isinstance(target, ast.Name):
                        defaults[target.id] = _literal(getattr(node, "value", None))
            return defaults
    return {}


def _literal(node):
    if node is None:
        return UNKNOWN
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        pass
    if isinstance(node, ast.BinOp) and isinstance(node.op, (ast.Add, ast.Sub, ast.Mult, ast.Div, ast.Pow)):
        left, right = _literal(node.left), _literal(node.right)
        if all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in (left, right)):
            try:
                return {ast.Add: lambda a, b: a + b, ast.Sub: lambda a, b: a - b, ast.Mult: lambda a, b: a * b,
                        ast.Div: lambda a, b: a / b, ast.Pow: lambda a, b: float(a) ** b}[type(node.op)](left, right)
            except (ArithmeticError, ValueError):
                return UNKNOWN
    return UNKNOWN


def type_problem(value, default) -> str:
    """'' if `value` suits a parameter whose default is `default`, else what was expected.

    The default's type decides: bool, int (not bool), float (int accepted), str, list or tuple (either one;
    elements checked against a default whose elements share one of these types), dict. A default of None or
    one that is not a literal accepts anything, and None is accepted for any parameter.
    """
    if value is None or default is None or default is UNKNOWN:
        return ""
    if isinstance(default, (list, tuple)):
        if not isinstance(value, (list, tuple)):
            return f"a list (default {default!r})"
        kinds = {_kind(item) for item in default}
        if len(kinds) == 1 and None not in kinds:
            for item in value:
                if _scalar_problem(item, default[0]):
                    return f"a list of {_kind(default[0])} (default {default!r})"
        return ""
    if isinstance(default, dict):
        return "" if isinstance(value, dict) else f"a dict (default {default!r})"
    problem = _scalar_problem(value, default)
    return f"{problem} (default {default!r})" if problem else ""


def _kind(value):
    return {bool: "bool", int: "int", float: "float", str: "str"}.get(type(value))


def _scalar_problem(value, default) -> str:
    if isinstance(default, bool):
        return "" if isinstance(value, bool) else "True or False"
    if isinstance(default, int):
        return "" if isinstance(value, int) and not isinstance(value, bool) else "an int"
    if isinstance(default, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool) and (isinstance(value, int) or
                                                                                   math.isfinite(value))
        return "" if ok else "a finite number"
    if isinstance(default, str):
        return "" if isinstance(value, str) else "text (a str)"
    return "" if isinstance(value, type(default)) else f"a {type(default).__name__}"


def parse_value(text: str):
    """A -p value: a Python literal if it is one (1, 0.5, True, [1, 2], 'x'), else the string itself; UsageError for
    a literal too deeply nested or too large to read."""
    try:
        return ast.literal_eval(text)
    except (ValueError, SyntaxError, TypeError):
        return text
    except (RecursionError, MemoryError):
        raise UsageError(f"-p value {text[:40]!r}{'...' if len(text) > 40 else ''} ({len(text)} characters) is nested "
                         f"too deeply or too large to read as a Python literal") from None


def plan(paths: list[Path], profile: str, overrides: dict) -> list[tuple[Path, object, dict]]:
    """(source, notebook, parameters) per notebook; raises UsageError for a name no notebook accepts, or a value
    whose type does not suit the parameter's default (see `type_problem`), before anything runs."""
    notebooks = [load_notebook(path) for path in paths]
    jobs = [(path, nb, parameter_defaults(nb)) for path, nb in zip(paths, notebooks)]
    valid = sorted({name for _, _, names in jobs for name in names})
    unknown = [name for name in overrides if name not in valid]
    if unknown:
        raise UsageError(f"unknown parameter(s) {', '.join(unknown)}; the notebooks selected accept: "
                         f"{', '.join(valid) or '(none)'}")
    requested = {**PROFILES[profile], **overrides}
    for path, _, defaults in jobs:
        for name, value in requested.items():
            problem = type_problem(value, defaults[name]) if name in defaults else ""
            if problem:
                source = f"-p {name}" if name in overrides else f"profile {profile!r} sets {name}"
                shown = repr(value) if len(repr(value)) <= 60 else repr(value)[:57] + "..."
                raise UsageError(f"{source} = {shown} ({type(value).__name__}), but {path.stem} expects {problem}. "
                                 f"VALUE is read as a Python literal, else as text: e.g. 3, 0.5, True, "
                                 f"\"[1, 2]\", \"['a', 'b']\"")
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
            executed.metadata.pop("widgets", None)  # no live widgets in the book: no widget manager from a CDN
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
        try:
            entry["summary"] = read_json(channel)
        except (OSError, ValueError) as err:  # the numbers the notebook recorded are lost; its run is not
            entry["summary"] = {}
            entry["summary_error"] = f"the numbers it recorded could not be read back ({err})"
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
    writable_folder(Path(out), "--out")
    summary_file = Path(out) / "summary.json"
    if summary_file.is_dir():
        raise UsageError(f"{summary_file} is a directory; remove it or choose another --out")
    check_kernel()
    os.environ.setdefault("MPLBACKEND", "Agg")
    os.environ.setdefault("PYDEVD_DISABLE_FILE_VALIDATION", "1")
    header = {"profile": profile, "overrides": overrides or {}, "python": sys.executable}
    statuses = []
    commit = source_commit()  # the sources the run starts from (a commit made while it runs is not what it ran)
    for path, nb, parameters in (bar := tqdm(jobs, desc="notebooks", unit="nb")):
        bar.set_postfix_str(path.stem)
        entry = execute(nb, parameters, path.stem, Path(out))
        entry.update(profile=profile, overrides=overrides or {}, cpus=_cpus(), commit=commit,
                     load=_load(), finished=time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()))
        statuses.append(entry["status"])
        tqdm.write(f"{path.stem}: {entry['status']} in {entry['duration_s']:.1f}s" + _failure_note(entry, out))
        merge_summary(Path(out) / "summary.json", header, {path.stem: entry})
    return 0 if all(status == "ok" for status in statuses) else 1


def writable_folder(folder: Path, what: str) -> None:
    """Create `folder` if missing; UsageError naming `what` unless it is a directory this process can write in."""
    try:
        if folder.exists() and not folder.is_dir():
            raise UsageError(f"{what} {folder} is a file, not a directory; pass a directory (it is created if missing)")
        folder.mkdir(parents=True, exist_ok=True)
        temp_beside(folder / "probe").unlink()
    except OSError as err:
        raise UsageError(f"{what} {folder} cannot be written ({err.strerror or err}); pass a writable directory") from None


def merge_summary(path: Path, header: dict, notebooks: dict) -> dict:
    """Merge top-level `header` fields and notebook entries {stem: entry} into summary.json; returns the result.

    Read, merge and write happen under an exclusive lock on a sibling lock file, and the write is atomic, so
    concurrent runs into one directory keep every notebook's entry (the last writer's header wins). A summary
    that cannot be read or is not a summary is moved aside (`set_aside`), with a message, and a new one is
    started: what a run computed is never lost to a damaged file.
    """
    with file_lock(path.with_name(f".{path.name}.lock")):
        try:
            summary = read_book_json(path, "summary", "")
        except UsageError as err:
            aside = set_aside(path)
            print(f"warning: {str(err).rstrip('; ')}; moved it to {aside} and started a new one", file=sys.stderr)
            summary = {}
        summary.update(header)
        summary.setdefault("notebooks", {}).update(notebooks)
        write_json(path, summary)
    return summary


def set_aside(path: Path) -> Path:
    """Rename a damaged file to path.damaged-<UTC time> (with -2, -3, ... if taken) and return the new path."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    aside = next(p for p in (path.with_name(f"{path.name}.damaged-{stamp}{f'-{i}' if i else ''}") for i in range(1000))
                 if not p.exists())
    os.replace(path, aside)
    return aside


def source_commit(where: Path = ROOT) -> str | None:
    """The git commit of the sources at `where` ("abc1234", "+" when files differ from it); None without git."""
    import subprocess

    try:
        commit = subprocess.run(["git", "-C", str(where), "rev-parse", "--short", "HEAD"], capture_output=True,
                                text=True, check=True, timeout=30).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(where), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, check=True, timeout=30).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return None
    return commit + ("+" if dirty else "")


def _load() -> float | None:
    """The machine's 15-minute load average (runnable processes), to tell an idle machine's timing from a busy one's."""
    return round(os.getloadavg()[2], 2) if hasattr(os, "getloadavg") else None


def _cpus() -> int:
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()


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
    times = sub.add_parser("timings", help="record a run's durations in book/timings.json (the chapters' headers)")
    times.add_argument("--summary", type=Path, default=OUTPUT / "summary.json", help="the run's summary.json")
    times.add_argument("--load", type=float, default=None,
                       help="the load average seen during the run (`uptime`), for entries that did not record it")
    keep = sub.add_parser("record", help="keep a smoke/full run's result tables in book/recorded.json")
    keep.add_argument("--summary", type=Path, default=OUTPUT / "summary.json", help="the run's summary.json")
    keep.add_argument("--load", type=float, default=None,
                      help="the load average seen during the run (`uptime`), for entries that did not record it")
    pages = sub.add_parser("results", help="generate the results page (and the profiles table) from a run")
    pages.add_argument("--summary", type=Path, default=OUTPUT / "summary.json", help="the run's summary.json")
    pages.add_argument("--out", type=Path, default=None, help="where the pages go (default: the summary's folder)")
    args = parser.parse_args(argv)
    try:
        if args.command == "results":
            if not args.summary.exists():
                raise UsageError(f"{args.summary} does not exist; run `python -m helpers.book run` first")
            writable_folder(args.out or args.summary.parent, "--out")
            for path in write_results(args.summary, args.out or args.summary.parent):
                print(f"wrote {path}")
            return 0
        if args.command == "record":
            for stem, entry in write_record(args.summary, load=args.load).items():
                print(f"{stem}: {len(entry['tables'])} result tables of {entry['finished']} kept in {RECORDED}")
            return 0
        if args.command == "timings":
            for stem, entry in write_timings(args.summary, load=args.load).items():
                print(f"{stem}: {entry['seconds']:.1f} s on {entry['cpus']} CPU cores")
            return 0
        overrides = {name: parse_value(value) for name, value in args.parameter}
        return run(args.profile, overrides, args.only, args.out)
    except UsageError as err:
        print(f"error: {err}", file=sys.stderr)
        return 2
    except OSError as err:  # a file that cannot be written (full disk, a file where a folder should be, ...)
        print(f"error: {err}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    raise SystemExit(main())
