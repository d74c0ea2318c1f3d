"""The notebook runner (`python -m helpers.book`): parameters, failures, the summary, the plotly.js bundle."""
import json
import re
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook, new_output
from plotly.offline import get_plotlyjs

from helpers import book, report
from helpers.profiles import PROFILES


def notebook(*sources, parameters="x = 1"):
    cells = [new_markdown_cell("# tiny")]
    if parameters is not None:
        cells.append(new_code_cell(parameters, metadata={"tags": ["parameters"]}))
    kernel = {"kernelspec": {"name": "python3", "language": "python", "display_name": "Python 3"}}
    return new_notebook(cells=cells + [new_code_cell(s) for s in sources], metadata=kernel)


def test_parse_value_reads_literals_and_keeps_other_text():
    assert book.parse_value("3") == 3 and book.parse_value("0.5") == 0.5 and book.parse_value("True") is True
    assert book.parse_value("[1, 2]") == [1, 2] and book.parse_value("'x'") == "x"
    assert book.parse_value("dcgan-faces64") == "dcgan-faces64"  # not a literal: the string itself


def test_parameter_names_come_from_the_tagged_cell_only():
    nb = notebook("y = 2", parameters="x = 1\nmodel: str = 'a'\nseed, other = 0, 1")
    assert book.parameter_names(nb) == ["x", "model"]  # tuple targets are not parameters
    assert book.parameter_names(notebook("x = 1", parameters=None)) == []


def test_every_chapter_has_a_parameters_cell_and_the_profiles_name_real_parameters():
    names = {p.stem: book.parameter_names(book.load_notebook(p)) for p in book.find_notebooks()}
    assert all(names.values()), f"chapters without a parameters cell: {[k for k, v in names.items() if not v]}"
    known = set().union(*names.values())
    for profile, overrides in PROFILES.items():
        assert set(overrides) <= known, f"profile {profile!r} sets unknown {set(overrides) - known}"


def test_unknown_parameter_is_a_clear_usage_error(capsys):
    paths = book.find_notebooks(["01"])
    with pytest.raises(book.UsageError, match=r"unknown parameter\(s\) bogus; the notebooks selected accept: .*seed"):
        book.plan(paths, "default", {"bogus": 1})
    assert book.main(["run", "--only", "01", "-p", "bogus", "1"]) == 2
    assert "error: unknown parameter(s) bogus" in capsys.readouterr().err


def test_only_must_match_a_notebook():
    with pytest.raises(book.UsageError, match="--only 99 matches no notebook"):
        book.find_notebooks(["99"])


def test_plan_applies_profile_and_overrides_per_notebook():
    (_, _, smoke), = book.plan(book.find_notebooks(["01"]), "smoke", {"seed": 7})
    assert smoke == {"eps_grid": PROFILES["smoke"]["eps_grid"], "seed": 7}
    assert "cma_budget" not in smoke  # a profile value the chapter does not take is left out


def test_execute_runs_with_parameters_and_collects_the_summary(tmp_path):
    nb = notebook("from helpers.report import record\nrecord('twice', x * 2)")
    entry = book.execute(nb, {"x": 21}, "tiny", tmp_path)
    assert entry["status"] == "ok" and entry["summary"] == {"twice": 42} and entry["parameters"] == {"x": 21}
    executed = nbformat.read(tmp_path / "tiny.ipynb", as_version=4)
    assert any("x = 21" in c.source for c in executed.cells if "injected-parameters" in c.metadata.get("tags", []))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.ipynb"]  # no temporary file left behind


def test_a_failed_run_is_kept_aside_and_the_last_good_result_stays(tmp_path):
    good = book.execute(notebook("y = x"), {}, "tiny", tmp_path)
    assert good["status"] == "ok"
    before = (tmp_path / "tiny.ipynb").read_bytes()
    bad = book.execute(notebook("raise ValueError('boom at ' + str(x))"), {"x": 3}, "tiny", tmp_path)
    assert bad["status"] == "failed" and "ValueError" in bad["error"] and "boom at 3" in bad["error"]
    assert (tmp_path / "tiny.ipynb").read_bytes() == before
    assert (tmp_path / "failed" / "tiny.ipynb").exists()
    assert book.execute(notebook("y = x"), {}, "tiny", tmp_path)["status"] == "ok"
    assert not (tmp_path / "failed" / "tiny.ipynb").exists()  # a success clears the stale failure


def test_executed_notebooks_keep_figures_but_not_plotly_js(tmp_path):
    nb = notebook("from helpers import viz\nviz.line_chart([1, 2, 3], {'y': [1, 4, 9]})")
    assert book.execute(nb, {}, "figure", tmp_path)["status"] == "ok"
    html = [book._joined(o.get("data", {}).get("text/html", ""))
            for c in nbformat.read(tmp_path / "figure.ipynb", as_version=4).cells for o in c.get("outputs", [])]
    assert sum("Plotly.newPlot" in h for h in html) == 1
    assert not any(get_plotlyjs()[:2000] in h for h in html)


def test_drop_plotly_bundle_removes_only_the_bundle_outputs():
    bundle = f"<script>window.PlotlyConfig = {{}};</script><script>{get_plotlyjs()}</script>"
    cell = new_code_cell("fig", outputs=[
        new_output("display_data", data={"text/html": bundle}),
        new_output("display_data", data={"text/html": "<div>Plotly.newPlot(...)</div>"}),
        new_output("stream", name="stdout", text="hello\n")])
    nb = new_notebook(cells=[new_markdown_cell("x"), cell])
    assert book.drop_plotly_bundle(nb) == 1
    assert [o.get("data", {}).get("text/html", o.get("text")) for o in nb.cells[1].outputs] == [
        "<div>Plotly.newPlot(...)</div>", "hello\n"]
    assert book.drop_plotly_bundle(nb) == 0


def test_glue_stores_what_myst_nb_cites_and_records_it(tmp_path):
    from myst_nb.core.variables import format_plain_text
    from myst_nb.ext.glue import extract_glue_data

    nb = notebook("import numpy as np, torch\nfrom helpers.report import glue\n"
                  "glue('ratio', np.float64(x) / 3)\nglue('count', torch.tensor(7))\n"
                  "glue('verdict', 'the eigenbasis **won**')")
    entry = book.execute(nb, {"x": 2}, "glued", tmp_path)
    assert entry["status"] == "ok", entry.get("error")
    assert entry["summary"] == {"ratio": 2 / 3, "count": 7, "verdict": "the eigenbasis **won**"}
    executed = nbformat.read(tmp_path / "glued.ipynb", as_version=4)
    visible = [o for c in executed.cells for o in c.get("outputs", []) if o.get("output_type") == "display_data"
               and not any(k.startswith("application/papermill.record/") for k in o.get("data", {}))]
    assert not visible, "glued values must not show as cell outputs"
    data = {key: output["data"] for key, output in
            extract_glue_data(executed, list(range(len(executed.cells))), logger=None).items()}
    assert format_plain_text(data["ratio"]["text/plain"], ".3f") == "0.667"
    assert format_plain_text(data["count"]["text/plain"], "d") == "7"
    assert format_plain_text(data["verdict"]["text/plain"], "") == "the eigenbasis **won**"
    assert data["verdict"]["text/markdown"] == "the eigenbasis **won**"


def test_timings_come_from_a_plain_profile_run_and_feed_run_times(tmp_path):
    summary = tmp_path / "summary.json"
    timings = tmp_path / "timings.json"
    assert report.run_times("01_metric", timings) == "its running time is not measured yet"
    summary.write_text(json.dumps({"profile": "smoke", "overrides": {}, "notebooks": {
        "01_metric": {"status": "ok", "duration_s": 41.2, "profile": "smoke", "overrides": {}, "cpus": 2,
                      "finished": "2026-01-02T03:04:05Z"},
        "02_spectrum": {"status": "ok", "duration_s": 9.0, "profile": "smoke", "overrides": {"seed": 3}},
        "03_homogeneity": {"status": "failed", "duration_s": 1.0, "profile": "smoke", "overrides": {}}}}))
    assert list(book.write_timings(summary, timings)) == ["01_metric"]  # overridden and failed runs are left out
    summary.write_text(json.dumps({"profile": "default", "overrides": {}, "notebooks": {
        "01_metric": {"status": "ok", "duration_s": 130.0, "profile": "default", "overrides": {}, "cpus": 2}}}))
    book.write_timings(summary, timings)
    assert report.run_times("01_metric", timings) == ("smoke about 41 s; default about 2.2 min; "
                                                    "measured on 2 CPU cores")  # full not timed: not named
    assert json.loads(timings.read_text())["smoke"]["01_metric"] == {"seconds": 41.2, "cpus": 2, "load": None,
                                                                     "date": "2026-01-02T03:04:05Z"}
    summary.write_text(json.dumps({"profile": "full", "overrides": {}, "notebooks": {
        "01_metric": {"status": "ok", "duration_s": 900.0, "profile": "full", "overrides": {}, "cpus": 2}}}))
    book.write_timings(summary, timings, load=6.2)  # a busy machine: the time is an upper bound, and says so
    assert report.run_times("01_metric", timings) == (
        "smoke about 41 s; default about 2.2 min; full about 15.0 min or less; measured on 2 CPU cores, full "
        "while other jobs ran (load 6.2)")
    summary.write_text(json.dumps({"profile": "smoke", "overrides": {"seed": 1}, "notebooks": {
        "01_metric": {"status": "ok", "duration_s": 1.0, "profile": "smoke", "overrides": {"seed": 1}}}}))
    with pytest.raises(book.UsageError, match="no notebook ran to the end without -p overrides"):
        book.write_timings(summary, timings)
    assert book.main(["timings", "--summary", str(tmp_path / "missing.json")]) == 2


def test_run_records_profile_overrides_cpus_and_date_per_notebook(tmp_path, monkeypatch):
    monkeypatch.setattr(book, "SOURCES", tmp_path / "src")
    (tmp_path / "src").mkdir()
    header = "# ---\n# jupyter:\n#   kernelspec:\n#     display_name: Python 3\n#     language: python\n#     name: python3\n# ---\n"
    (tmp_path / "src" / "00_tiny.py").write_text(header + "\n# %% tags=['parameters']\nx = 1\n\n# %%\ny = x\n")
    assert book.run("smoke", {"x": 2}, out=tmp_path / "out") == 0
    entry = json.loads((tmp_path / "out" / "summary.json").read_text())["notebooks"]["00_tiny"]
    assert entry["profile"] == "smoke" and entry["overrides"] == {"x": 2} and entry["cpus"] >= 1
    assert entry["load"] is None or entry["load"] >= 0
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", entry["finished"])


def test_markdown_tables_print_small_numbers_in_scientific_notation():
    from helpers import viz

    table = viz.markdown_table({"method": ["a", "b", "c"], "error": [2.2e-6, 0.25, 0.0]}, precision=3).data
    assert table.splitlines()[2:] == ["| a | 2.20e-06 |", "| b | 0.250 |", "| c | 0.000 |"]


def test_results_page_shows_the_run_its_sample_sizes_and_the_paper(tmp_path):
    table = {"title": "Homogeneity", "row_header": "measure", "rows": ["log, mean", "linear, mean"],
             "columns": {"ours: faces": [0.93212, 6.2e-7]}, "note": "10 codes", "digits": 3,
             "paper": {"paper: DCGAN-fashion": [{"id": "homogeneity_log_mean", "value": "0.952"}, None]}}
    summary = {"profile": "default", "notebooks": {
        "03_homogeneity": {"status": "ok", "profile": "default", "parameters": {"n_points": 12},
                           "finished": "2026-12-01T10:00:00Z", "summary": {"results/homogeneity": table, "x": 1}}}}
    page = book.results_page(summary)
    assert "profile `default`, notebooks finished on 2026-12-01 (UTC)" in page
    assert "`make book PROFILE=full` regenerates this page" in page
    assert "`n_points=12`" in page and "`seed=0`" in page  # the override, and a default from the parameters cell
    assert "| log, mean | 0.932 | {authors}`0.952` |" in page and "| linear, mean | 6.20e-07 | – |" in page
    assert "Over 10 codes." in page and "## 03. Homogeneity: is the metric the same everywhere?" in page
    assert page.index("## 03. Homogeneity") < page.index("## Parameters of this run") < page.index(":::{dropdown}")
    summary["notebooks"]["03_homogeneity"]["profile"] = "full"
    assert "regenerates" not in book.results_page(summary) and "profile `full`" in book.results_page(summary)
    with pytest.raises(book.UsageError, match="no notebooks"):
        book.results_page({"profile": "default", "notebooks": {}})


def test_recorded_full_run_tables_join_the_results_page_of_another_profile(tmp_path):
    table = {"title": "Homogeneity", "row_header": "measure", "rows": ["log, mean"],
             "columns": {"ours: faces": [0.95]}, "note": "30 codes", "digits": 3, "paper": {}}
    entry = {"status": "ok", "profile": "full", "overrides": {}, "cpus": 2, "duration_s": 300.0,
             "finished": "2026-12-01T22:30:00Z", "commit": "abc1234", "parameters": {"n_points": 30},
             "summary": {"results/homogeneity": table, "other_key": 1}}
    summary = tmp_path / "summary.json"
    summary.write_text(json.dumps({"profile": "full", "notebooks": {
        "03_homogeneity": entry,
        "02_spectrum": {**entry, "overrides": {"n_points": 3}},  # overridden: not the profile's result
        "04_interpretability": {**entry, "status": "failed"}}}))
    recorded = tmp_path / "recorded.json"
    taken = book.write_record(summary, recorded, load=5.0)
    assert list(taken) == ["03_homogeneity"]
    kept = json.loads(recorded.read_text())["full"]["03_homogeneity"]
    assert kept["tables"] == {"results/homogeneity": table} and kept["commit"] == "abc1234"
    assert kept["parameters"] == {"n_points": 30} and kept["cpus"] == 2 and kept["duration_s"] == 300.0

    default_run = {"profile": "default", "notebooks": {"03_homogeneity": {
        "status": "ok", "profile": "default", "finished": "2026-12-02T10:00:00Z",
        "summary": {"results/homogeneity": {**table, "columns": {"ours: faces": [0.93]}, "note": "8 codes"}}}}}
    page = book.results_page(default_run, json.loads(recorded.read_text()))
    ours, kept_part = page.split("## Recorded `full`-profile run")
    assert "| log, mean | 0.93 |" in ours and "Over 8 codes." in ours
    assert "| log, mean | 0.95 |" in kept_part and "Over 30 codes." in kept_part
    assert ("Finished 2026-12-01 on 2 CPU cores (took 5.0 min while other jobs ran, load 5), commit `abc1234`; "
            "parameters: `n_points=30`.") in kept_part
    full_run = {**default_run, "notebooks": {"03_homogeneity": {**default_run["notebooks"]["03_homogeneity"],
                                                                 "profile": "full"}}}
    assert "Recorded" not in book.results_page(full_run, json.loads(recorded.read_text()))  # its own tables win

    summary.write_text(json.dumps({"profile": "default", "notebooks": {"03_homogeneity": {**entry, "profile": "default"}}}))
    with pytest.raises(book.UsageError, match="nothing to record"):
        book.write_record(summary, recorded)
    assert book.main(["record", "--summary", str(tmp_path / "missing.json")]) == 2


def test_run_entries_name_the_source_commit():
    commit = book.source_commit()
    assert commit is None or re.fullmatch(r"[0-9a-f]{7,40}\+?", commit)
    assert book.source_commit(Path("/")) is None  # not a git repository


def test_results_command_writes_the_generated_pages(tmp_path, capsys):
    (tmp_path / "summary.json").write_text(json.dumps({"notebooks": {"00_first_look": {"status": "ok", "summary": {}}}}))
    assert book.main(["results", "--summary", str(tmp_path / "summary.json")]) == 0
    assert sorted(p.name for p in tmp_path.glob("*.md")) == ["models.md", "profiles.md", "results.md"]
    assert "No chapter recorded a results table" in (tmp_path / "results.md").read_text()
    profiles = (tmp_path / "profiles.md").read_text()
    for name, value in PROFILES["smoke"].items():
        assert f"| `{name}` |" in profiles and repr(value) in profiles
    from helpers import generators

    models = (tmp_path / "models.md").read_text()
    assert all(f"`{name}`" in models for name in generators.EMBEDDED)
    assert book.main(["results", "--summary", str(tmp_path / "missing.json")]) == 2
    assert "does not exist" in capsys.readouterr().err


def test_executed_notebooks_carry_no_widget_state(tmp_path):
    nb = notebook("x = 1")
    nb.metadata["widgets"] = {"application/vnd.jupyter.widget-state+json": {"state": {"a": {}}}}
    assert book.execute(nb, {}, "w", tmp_path)["status"] == "ok"
    assert "widgets" not in nbformat.read(tmp_path / "w.ipynb", as_version=4).metadata


# --- bad input and concurrent runs ---------------------------------------------------------------------------

def test_parameter_values_are_checked_against_the_defaults_type_before_anything_runs(monkeypatch, capsys):
    """A bad value is refused by the command, before a kernel starts, rather than failing inside the notebook."""
    monkeypatch.setattr(book, "execute", lambda *a, **k: pytest.fail("a notebook ran despite a bad parameter"))
    paths = book.find_notebooks(["01"])
    with pytest.raises(book.UsageError, match=r"-p n_compare = 'abc' \(str\), but 01_metric expects an int "
                                              r"\(default 1\)"):
        book.plan(paths, "default", {"n_compare": "abc"})
    assert book.main(["run", "--only", "01", "-p", "n_compare", "abc"]) == 2
    assert "error: -p n_compare = 'abc'" in capsys.readouterr().err
    for name, value, expected in [("n_compare", True, "an int"), ("n_compare", 2.5, "an int"),
                                  ("eps_grid", ["a"], "a list of float"), ("eps_grid", 0.1, "a list"),
                                  ("model", 3, "text")]:
        with pytest.raises(book.UsageError, match=f"expects {expected}"):
            book.plan(paths, "default", {name: value})
    # accepted: an int where a float is expected, ints in a list of floats, anything for a None default, None
    (_, _, parameters), = book.plan(paths, "default", {"eps_grid": [1, 1e-3], "resolution": 64, "top_k": None})
    assert parameters == {"eps_grid": [1, 1e-3], "resolution": 64, "top_k": None}


def test_parameter_defaults_and_type_rules():
    nb = notebook(parameters="a = 1\nb = 0.5\nc = 'x'\nd = [1, 2]\ne = None\nf = 1 / 3\ng = len('abc')\n"
                             "h: bool = False\ni = {'k': 1}\nj = -2")
    defaults = book.parameter_defaults(nb)
    assert defaults == {"a": 1, "b": 0.5, "c": "x", "d": [1, 2], "e": None, "f": 1 / 3, "g": book.UNKNOWN,
                        "h": False, "i": {"k": 1}, "j": -2}
    ok = [("a", 3), ("b", 3), ("b", 0.1), ("c", "y"), ("d", (3,)), ("d", []), ("e", "anything"), ("f", 2),
          ("g", "anything"), ("h", True), ("i", {}), ("a", None)]
    bad = [("a", "3"), ("a", 1.0), ("a", False), ("b", "x"), ("b", True), ("c", 1), ("d", [1.5]), ("d", 1),
           ("f", "x"), ("h", 0), ("i", [1])]
    assert [book.type_problem(v, defaults[k]) for k, v in ok] == [""] * len(ok)
    assert all(book.type_problem(v, defaults[k]) for k, v in bad)


def test_profiles_suit_the_parameters_they_set():
    paths = book.find_notebooks()
    for profile, overrides in PROFILES.items():
        jobs = book.plan(paths, profile, {})  # raises UsageError on a value of the wrong type
        given = {}
        for path, nb, parameters in jobs:
            assert parameters == {k: v for k, v in overrides.items() if k in book.parameter_defaults(nb)}, path.stem
            given.update(parameters)
        assert given == overrides, f"profile {profile!r}: values that reach no chapter"


def _fake_entry(stem):
    return {"parameters": {}, "status": "ok", "summary": {"who": stem}, "duration_s": 0.0}


def test_concurrent_runs_into_one_directory_keep_both_entries(tmp_path, monkeypatch):
    """Each run merges its entries under a lock: a run that read summary.json once at its start and wrote its
    own copy back would drop the notebooks of a run that finished in between."""
    import threading

    first_started, second_done = threading.Event(), threading.Event()

    def execute(nb, parameters, name, out):
        if name.startswith("00"):  # the first run: still executing while the second one finishes
            first_started.set()
            assert second_done.wait(timeout=120)
        return _fake_entry(name)

    monkeypatch.setattr(book, "execute", execute)
    first = threading.Thread(target=book.run, kwargs={"only": ["00"], "out": tmp_path})
    first.start()
    assert first_started.wait(timeout=120)
    assert book.run(only=["06"], out=tmp_path) == 0
    second_done.set()
    first.join(timeout=120)
    notebooks = json.loads((tmp_path / "summary.json").read_text())["notebooks"]
    assert sorted(notebooks) == sorted(p.stem for p in book.find_notebooks(["00", "06"]))
    assert {stem: entry["summary"]["who"] for stem, entry in notebooks.items()} == {s: s for s in notebooks}


def _merge_many(path, prefix, count):
    for i in range(count):
        book.merge_summary(path, {"profile": prefix}, {f"{prefix}{i:02d}": _fake_entry(prefix)})


def test_merge_summary_from_two_processes_loses_nothing(tmp_path):
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    path = tmp_path / "summary.json"
    workers = [context.Process(target=_merge_many, args=(path, prefix, 25)) for prefix in "ab"]
    for w in workers:
        w.start()
    for w in workers:
        w.join(timeout=300)
        assert w.exitcode == 0
    summary = json.loads(path.read_text())
    assert sorted(summary["notebooks"]) == [f"{p}{i:02d}" for p in "ab" for i in range(25)]
    assert summary["profile"] in ("a", "b")


