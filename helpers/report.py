"""What a chapter calls while it runs: `record` and `glue` a number, `result_table`, `run_times` for its header,
and the phrasing of generated sentences (`format_number`, `phrase_list`, `plural`); see book/CONVENTIONS.md.
"""
from __future__ import annotations

import json
import math
import os
import re
from pathlib import Path

from .assets import atomic_path
from .profiles import PROFILES

BOOK = Path(__file__).resolve().parent.parent / "book"
TIMINGS = BOOK / "timings.json"  # measured time per chapter and profile (`python -m helpers.book timings`)
PAPER = BOOK / "paper.yml"  # the paper's numbers that the book quotes, with their sources
RECORDED = BOOK / "recorded.json"  # result tables of a run of another profile, kept (`python -m helpers.book record`)
SUMMARY_ENV = "GAN_GEOMETRY_SUMMARY"  # set by `python -m helpers.book run`: where this notebook's numbers go


def record(key: str, value):
    """Store `value` under `key` in this run's summary (book/notebooks/summary.json); returns `value`.

    Outside `python -m helpers.book run` (no $GAN_GEOMETRY_SUMMARY) this does nothing but return `value`.
    Values must be JSON-serialisable; numpy and torch scalars and arrays are converted.
    """
    path = os.environ.get(SUMMARY_ENV)
    if path:
        data = read_json(Path(path))
        data[key] = value
        write_json(Path(path), data)
    return value


def glue(key: str, value):
    """Make `value` citable in this notebook's prose, and `record` it; returns `value`.

    The prose cites it as {eval}`key`, or with a format spec as {eval}`f"{key:.3g}"`, and the notebook binds the
    name to the value, `key = glue("key", value)`: JupyterLab (jupyterlab-myst) evaluates the expression in the
    kernel, the book resolves it from the glued value (book/_ext/glue_eval.py), so both show the same text. The
    older myst-nb roles ({glue:text}`key:.3g`, {glue:md}`key`) still work in the book. Each key is glued once
    per notebook (a duplicate fails the strict build). Numpy and torch scalars are glued, and returned, as Python
    numbers, so format specs apply. A string that needs markdown to show as written (`shows_as_markdown`: a
    sentence with emphasis, math or a role) is returned as a str that displays as markdown, as it is rendered in
    the book; other strings are returned as they are, and show as plain text.
    """
    from myst_nb import glue as myst_glue

    if hasattr(value, "item") and getattr(value, "ndim", 1) == 0:  # numpy or torch scalar
        value = value.item()
    myst_glue(key, _Prose(value) if isinstance(value, str) else value, display=False)
    record(key, value)
    return _Prose(value) if isinstance(value, str) and shows_as_markdown(value) else value


# Characters with a meaning in MyST markdown: emphasis, code, math, links, roles, HTML, escapes, headings.
_MARKUP = re.compile(r"[*_`$\[\]{}<>\\#|~]")


def shows_as_markdown(text: str) -> bool:
    """Whether a glued string is shown as markdown, in the book's {eval} roles and in JupyterLab: when it holds
    markup, or characters that Python's repr (JupyterLab's plain text) would escape; else as plain text."""
    return bool(_MARKUP.search(text)) or repr(text)[1:-1] != text


class _Prose(str):
    """A string glued as text/plain (for {glue:text}) and as text/markdown (for {glue:md} and {eval})."""

    def _repr_markdown_(self):
        return str(self)


def phrase_list(items) -> str:
    """Items as an English list: "a", "a and b", "a, b and c"; "none" when empty (for generated sentences)."""
    items = [str(item) for item in items]
    if not items:
        return "none"
    return items[0] if len(items) == 1 else ", ".join(items[:-1]) + " and " + items[-1]


def plural(n, word: str, words: str | None = None) -> str:
    """A count with its noun, for generated sentences: "1 target", "3 targets", "0 targets"; words: an irregular
    plural ("1 unit-start", plural(2, "analysis", "analyses") -> "2 analyses"). Counts print as `format_number`."""
    if hasattr(n, "item"):
        n = n.item()
    return f"{format_number(n)} {word if n == 1 else words or word + 's'}"


def on_each(values: dict, spec: str = "", unit: str = "") -> str:
    """One value per model as an English list, for generated sentences: on_each({"a": 0.931, "b": 0.94}, ".2f")
    -> "0.93 on `a` and 0.94 on `b`"; `unit` follows each value (" decades"); a string is written as it is."""
    return phrase_list(f"{format(value, spec)}{unit} on `{name}`" for name, value in values.items())


def which(holds: dict) -> str:
    """The models {name: whether a claim holds there} for which it holds, for generated sentences: "every model
    of this run", "`a` and `b`", or "no model of this run"."""
    selected = [name for name, ok in holds.items() if ok]
    if selected and len(selected) == len(holds):
        return "every model of this run"
    return phrase_list(f"`{name}`" for name in selected) if selected else "no model of this run"



def correlation_verdicts(r: dict, intervals: dict, shown: dict, samples: str) -> tuple[str, str]:
    """Per-model correlations with their intervals, for generated sentences: (values, verdicts).

    r : {model: r}; intervals : {model: (low, high)} (nan: too few samples to resample); shown : {model: the
    interval as the page prints it}; samples : what was resampled ("8 codes"). values: "0.12 [-0.1, 0.3] on `a`"
    with a note on the brackets; verdicts: a sentence per outcome (interval includes zero, excludes it, none)."""
    found = {n: "too few" if math.isnan(low) else "no" if low <= 0 <= high else "yes"
             for n, (low, high) in intervals.items()}
    values = on_each({n: f"{v:.2f}" + ("" if found[n] == "too few" else f" {shown[n]}") for n, v in r.items()})
    if set(found.values()) != {"too few"}:
        values += " (in brackets, the 95% bootstrap interval over codes)"
    texts = {"no": " No dependence on the distance is detected (the interval includes zero) on {}.",
             "yes": " A dependence is detected (the interval excludes zero) on {}.",
             "too few": f" With {samples} there are too few to resample for an interval on {{}}, so nothing is "
                        f"concluded there."}
    verdicts = "".join(text.format(which({n: f == kind for n, f in found.items()}))
                       for kind, text in texts.items() if kind in found.values())
    return values, verdicts

CI_MATH = "$95\\%$ CI {} to {}"  # an interval in a glued sentence (math mode keeps the percent sign)


def interval(low, high, spec: str = ".3g", form: str = "[{}, {}]", *, alone: str = "one target") -> str:
    """An interval as text ("[0.61, 0.82]", or in `form`, e.g. CI_MATH), or "no interval: {alone}" when it is not
    finite (one group only: nothing to resample)."""
    if not (math.isfinite(low) and math.isfinite(high)):
        return f"no interval: {alone}"
    return form.format(format(low, spec), format(high, spec))


def format_number(value, digits: int = 3) -> str:
    """A number as the book prints it: integers whole, |x| < 1e-3 in scientific notation ("6.2e-07"),
    |x| >= 1000 whole with thousands separators, else `digits` significant digits ("0.952", "17.3")."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) and not hasattr(value, "item"):
        return str(value)
    value = value.item() if hasattr(value, "item") else value
    if isinstance(value, int):
        return f"{value:,}" if abs(value) >= 10_000 else str(value)
    if value != value or value in (float("inf"), float("-inf")):
        return str(value)
    if value != 0 and abs(value) < 1e-3:
        return f"{value:.{max(digits - 1, 1)}e}"
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.{digits}g}"


def paper_entries() -> dict[str, dict]:
    """The paper's numbers from book/paper.yml: {id: {"value", "what", "model", "source"}}."""
    import yaml

    return yaml.safe_load(PAPER.read_text(encoding="utf-8")) or {}


AUTHORS_CODE = "authors' code"  # the `origin` of a book/paper.yml entry printed by the authors' code, not the paper


def paper_role(entry: dict) -> str:
    """The role that marks an entry of book/paper.yml, in prose and on the results page: "paper" for a number
    printed in the paper, "authors" for one printed by the authors' code (their tutorial notebooks; `origin:
    authors' code`), so that a reader can tell the two apart."""
    return "authors" if entry.get("origin") == AUTHORS_CODE else "paper"


def result_table(key: str, title: str, rows: list[str], columns: dict[str, list], *,
                 paper: dict[str, list] | None = None, row_header: str = "", note: str = "", digits: int = 3):
    """A table of this run's results beside the paper's: shown in the chapter, recorded for the results page.

    rows: the row labels (quantities); columns: {our column label, e.g. the model: one value per row};
    paper: {paper column label, e.g. "paper: DCGAN-fashion (120-d)": one id of book/paper.yml or None per
    row; a value printed by the authors' code rather than the paper is marked "(authors' code)"}; note: what the numbers are over (sample sizes), generated from the parameters. Recorded in the
    summary as "results/<key>"; returns the Markdown table for the cell to display.
    """
    from IPython.display import Markdown

    entries = paper_entries()
    paper = paper or {}
    for label, values in {**columns, **paper}.items():
        if len(values) != len(rows):
            raise ValueError(f"result_table {key!r}: column {label!r} has {len(values)} values for {len(rows)} rows")
    unknown = sorted({i for ids in paper.values() for i in ids if i is not None and i not in entries})
    if unknown:
        raise ValueError(f"result_table {key!r}: {', '.join(unknown)} not in {PAPER.name}; add them with a source")
    values = {label: [v.item() if hasattr(v, "item") else v for v in column] for label, column in columns.items()}
    record(f"results/{key}", {
        "title": title, "row_header": row_header, "rows": list(rows), "columns": values, "note": note,
        "digits": digits, "paper": {label: [None if i is None else {"id": i, "value": entries[i]["value"]}
                                            for i in ids] for label, ids in paper.items()}})
    headers = [row_header or " "] + list(values) + list(paper)
    lines = [f"**{title}**" + (f" ({note})" if note else ""), "",
             "| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    for r, label in enumerate(rows):
        cells = [format_number(values[c][r], digits) for c in values]
        cells += ["–" if ids[r] is None else str(entries[ids[r]]["value"])
                  + (" (authors' code)" if paper_role(entries[ids[r]]) == "authors" else "") for ids in paper.values()]
        lines.append("| " + " | ".join([label] + cells) + " |")
    return Markdown("\n".join(lines))


def run_times(stem: str, path: Path | None = None) -> str:
    """How long chapter `stem` takes per profile, from book/timings.json, as prose for the chapter's header.

    A chapter cannot time itself: the times are written by `python -m helpers.book timings` from the
    summary of a run on an idle machine. Only the profiles that were timed are named (the book's page on
    running says once that a profile without a time has not been timed).
    """
    timings = read_json(path or TIMINGS)
    parts, cores, loads = [], set(), {}
    for profile in PROFILES:
        entry = timings.get(profile, {}).get(stem)
        if entry:
            parts.append(f"{profile} {duration(entry['seconds'])}" + (" or less" if busy(entry) else ""))
            cores.add(entry.get("cpus"))
            if busy(entry):
                loads[profile] = f"{entry['load']:.3g}"
    if not parts:
        return "its running time is not measured yet"
    where = " and ".join(f"{n} CPU cores" for n in sorted(c for c in cores if c))
    # Each busy machine's load once, at the end, rather than after every time (the header stays short).
    shared = "" if not loads else (" while other jobs ran" if len(loads) == len(parts) else
                                   f", {phrase_list(loads)} while other jobs ran") \
        + f" (load {phrase_list(loads.values())})"
    return "; ".join(parts) + (f"; measured on {where}{shared}" if where else shared.replace(", ", "; ", 1))


def busy(entry: dict) -> bool:
    """Whether a timing was taken while other jobs ran: the run's own threads add up to one per core to the
    load average, so a load above the core count plus a half means other work shared the machine."""
    return entry.get("load") is not None and entry["load"] >= (entry.get("cpus") or 2) + 0.5


def duration(seconds: float) -> str:
    """A run time as the book's pages say it: "about 41 s", or "about 2.2 min" from 90 s on."""
    return f"about {max(round(seconds), 1)} s" if seconds < 90 else f"about {seconds / 60:.1f} min"


def read_json(path: Path) -> dict:
    """The JSON object in `path`; {} for a missing or empty file (a run that has recorded nothing yet)."""
    return json.loads(path.read_text()) if path.exists() and path.stat().st_size else {}


def write_json(path: Path, data) -> None:
    """Write `data` to `path` atomically (readers never see half a file); numpy and torch values become lists."""
    text = json.dumps(data, indent=2, default=_jsonable) + "\n"  # fails before any file is touched
    with atomic_path(path, ".tmp") as partial:
        partial.write_text(text)


def _jsonable(obj):
    if hasattr(obj, "tolist"):  # numpy arrays and scalars, torch tensors
        return obj.tolist()
    if isinstance(obj, Path):
        return str(obj)
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


# --- the recorded run of another profile, and verdicts against a threshold


def recorded_table(key: str, profile: str = "full", path: Path | None = None) -> dict | None:
    """The result table `key` (as given to `result_table`) of the `profile` run kept in book/recorded.json, with
    the chapter run's date added as "finished"; None if that run did not record it."""
    for entry in read_json(path or RECORDED).get(profile, {}).values():
        table = entry.get("tables", {}).get(f"results/{key}")
        if table is not None:
            return {**table, "finished": entry.get("finished")}
    return None


_NUMBER = r"([-+]?(?:\d+\.?\d*|\.\d+)(?:e[-+]?\d+)?)"
_ESTIMATE = re.compile(rf"^\s*{_NUMBER}\s*\[{_NUMBER},\s*{_NUMBER}\]\s*$")
_INTERVAL = re.compile(rf"^\s*\[{_NUMBER},\s*{_NUMBER}\]\s*$")


def estimate_parts(text) -> tuple[float, float, float] | None:
    """(estimate, low, high) of an estimate written with its interval, "+0.322 [+0.176, +0.491]" (as `interval`
    writes it in the result tables); None for anything else ("no interval: one code", "–", a number)."""
    match = _ESTIMATE.match(text) if isinstance(text, str) else None
    return tuple(float(x) for x in match.groups()) if match else None


def interval_parts(text) -> tuple[float, float] | None:
    """(low, high) of an interval written alone, "[0.739, 0.819]" (as `interval` writes it); None for anything else
    ("no interval: one pair", "–", a number)."""
    match = _INTERVAL.match(text) if isinstance(text, str) else None
    return tuple(float(x) for x in match.groups()) if match else None


def recorded_row(key: str, row: str, profile: str = "full", path: Path | None = None, *,
                 part: str | None = None) -> dict:
    """{model: value} of row `row` of the recorded table `key` (columns "ours: <model>"), numbers only; {} when the
    table or the row was not recorded. part "estimate", "low" or "high": that part of cells written as an
    estimate with its interval ("8.78 [7.72, 9.91]", `estimate_parts`) instead."""
    table = recorded_table(key, profile, path)
    if table is None or row not in table["rows"]:
        return {}
    i = table["rows"].index(row)
    if part is not None:
        index = ("estimate", "low", "high").index(part)
        cells = {label.removeprefix("ours: "): estimate_parts(column[i]) for label, column in table["columns"].items()}
        return {name: parts[index] for name, parts in cells.items() if parts is not None}
    return {label.removeprefix("ours: "): column[i] for label, column in table["columns"].items()
            if isinstance(column[i], (int, float)) and not isinstance(column[i], bool)}



def recorded_above(key: str, rows: list[str], baseline: str, profile: str = "full", path: Path | None = None) -> dict:
    """{model: whether every row of `rows` is above row `baseline`} in the recorded table `key`, for the models
    the baseline row was recorded for (a row not recorded for a model counts as not above); {} when the table or
    the baseline row was not recorded."""
    values = [recorded_row(key, row, profile, path) for row in rows]
    return {name: all(v.get(name, 0) > line for v in values)
            for name, line in recorded_row(key, baseline, profile, path).items()}

def sample_sizes(note: str, most: int = 2) -> str:
    """The first `most` clauses of a table's note that give a count ("30 codes per model, 870 ordered pairs"
    from "30 codes per model (870 ordered pairs), seed 0"), for a short parenthesis in a sentence: no
    parentheses inside it, nothing after the note's first ";" (regions, methods, how intervals are made)."""
    note = re.sub(r"\s*\(([^()]*)\)", r", \1", note.replace("(s)", "s").split(";")[0])
    counts = [clause.strip() for clause in note.split(",") if clause.strip()[:1].isdigit()]
    return ", ".join(counts[:most])


class Threshold:
    """The line a verdict draws: a value holds when it is at least `value` (above=True) or at most `value`."""

    def __init__(self, value: float, *, above: bool = True, spec: str = ".3g"):
        self.value, self.above, self.spec = value, above, spec

    def holds(self, x) -> bool:
        return x >= self.value if self.above else x <= self.value

    def __str__(self) -> str:
        return f"{'at least' if self.above else 'at most'} {format(self.value, self.spec)}"


def full_run_check(key: str, row: str, threshold: Threshold, current: dict, *, spec: str = ".3g", unit: str = "",
                   profile: str = "full", path: Path | None = None, part: str | None = None,
                   what: str = "") -> str:
    """A sentence on what the recorded `profile` run (book/recorded.json) gives in row `row` of table `key`,
    against `threshold`, for the models of `current` {model: this run's value}: whether it agrees, and where it
    falls on the other side of the threshold (and, there, whether this run did too). "" when nothing is recorded.
    part : judge a part of cells written with their interval (`recorded_row`), e.g. "low", the interval's lower
    end; what : what the value is, in the sentence ("the lower end of the interval").
    """
    recorded = {name: value for name, value in recorded_row(key, row, profile, path, part=part).items()
                if name in current}
    if not recorded:
        return ""
    over = sample_sizes(recorded_table(key, profile, path).get("note") or "")
    run = f"The recorded {profile}-profile run" + (f" ({over})" if over else "")
    gives = f"gives {what} " if what else "gives "
    failed = {name: value for name, value in recorded.items() if not threshold.holds(value)}
    if not failed:
        each = "every one " if len(recorded) > 1 else ""
        unlike = [f"`{name}`" for name in recorded if not threshold.holds(current[name])]
        if unlike:  # the full run holds where this one does not
            return f"{run} {gives}{on_each(recorded, spec, unit)}, {each}{threshold}, unlike this run on " \
                   f"{phrase_list(unlike)}."
        return f"{run} agrees: it {gives}{on_each(recorded, spec, unit)}, {each}{threshold}."
    side = "below" if threshold.above else "above"
    also = {name: threshold.holds(current[name]) for name in failed}
    text = f"{run} {gives}{on_each(failed, spec, unit)}, {side} the threshold"
    if any(also.values()):
        text += f", unlike this run on {phrase_list(f'`{n}`' for n, ok in also.items() if ok)}"
    held = [f"`{name}`" for name in recorded if name not in failed]
    return text + (f"; on {phrase_list(held)} it is {threshold}." if held else ".")
