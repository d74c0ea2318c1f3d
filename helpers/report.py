"""What a chapter calls while it runs: `record` and `glue` a number, `result_table`, `run_times` for its header,
and the phrasing of generated sentences (`format_number`, `phrase_list`, `plural`); see book/CONVENTIONS.md.
"""
from __future__ import annotations

import json
import math
import os
from pathlib import Path

from .assets import atomic_path
from .profiles import PROFILES

BOOK = Path(__file__).resolve().parent.parent / "book"
TIMINGS = BOOK / "timings.json"  # measured time per chapter and profile (`python -m helpers.book timings`)
PAPER = BOOK / "paper.yml"  # the paper's numbers that the book quotes, with their sources
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


def result_table(key: str, title: str, rows: list[str], columns: dict[str, list], *,
                 paper: dict[str, list] | None = None, row_header: str = "", note: str = "", digits: int = 3):
    """A table of this run's results beside the paper's: shown in the chapter, recorded for the results page.

    rows: the row labels (quantities); columns: {our column label, e.g. the model: one value per row};
    paper: {paper column label, e.g. "paper: DCGAN-fashion (120-d)": one id of book/paper.yml or None per
    row}; note: what the numbers are over (sample sizes), generated from the parameters. Recorded in the
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
        cells += ["–" if ids[r] is None else str(entries[ids[r]]["value"]) for ids in paper.values()]
        lines.append("| " + " | ".join([label] + cells) + " |")
    return Markdown("\n".join(lines))


def run_times(stem: str, path: Path | None = None) -> str:
    """How long chapter `stem` takes per profile, from book/timings.json, as prose for the chapter's header.

    A chapter cannot time itself: the times are written by `python -m helpers.book timings` from the
    summary of a run on an idle machine. Profiles not measured yet are said to be so.
    """
    timings = read_json(path or TIMINGS)
    parts, cores = [], set()
    for profile in PROFILES:
        entry = timings.get(profile, {}).get(stem)
        if entry:
            parts.append(f"{profile} {duration(entry['seconds'])}"
                         + (f" (at most: other jobs ran, load {entry['load']:.3g})" if busy(entry) else ""))
            cores.add(entry.get("cpus"))
        else:
            parts.append(f"{profile} not measured yet")
    if not cores:
        return "its running time is not measured yet"
    where = " and ".join(f"{n} CPU cores" for n in sorted(c for c in cores if c))
    return ", ".join(parts) + f" (measured on {where})"


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
