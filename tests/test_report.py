"""What chapters call while they run (`helpers.report`): the summary, glue's neighbours, result tables, phrasing."""
import json
import re
from pathlib import Path

import numpy as np
import pytest
import torch

from helpers import report

ROOT = Path(__file__).resolve().parent.parent


def test_record_outside_a_run_only_returns_the_value(monkeypatch, tmp_path):
    monkeypatch.delenv(report.SUMMARY_ENV, raising=False)
    assert report.record("k", [1, 2]) == [1, 2]
    monkeypatch.setenv(report.SUMMARY_ENV, str(tmp_path / "summary.json"))
    report.record("k", 3)
    report.record("j", {"a": 1})
    assert json.loads((tmp_path / "summary.json").read_text()) == {"k": 3, "j": {"a": 1}}


def test_format_number_uses_scientific_notation_below_1e_3():
    assert report.format_number(0.95213) == "0.952" and report.format_number(17.26) == "17.3"
    assert report.format_number(6.2e-7) == "6.20e-07" and report.format_number(-0.00042) == "-4.20e-04"
    assert report.format_number(12345.6) == "12,346" and report.format_number(30) == "30"
    assert report.format_number(0.0) == "0" and report.format_number("5 to 6") == "5 to 6"
    assert report.format_number(np.float32(0.5)) == "0.5" and report.format_number(torch.tensor(3)) == "3"


def test_result_table_records_our_values_beside_the_papers(monkeypatch, tmp_path):
    monkeypatch.setenv(report.SUMMARY_ENV, str(tmp_path / "summary.json"))
    shown = report.result_table("homogeneity", "Homogeneity", ["log, mean", "linear, mean"],
                              {"ours: faces": [np.float64(0.93212), 0.794]},
                              paper={"paper: DCGAN-fashion": ["homogeneity_log_mean", None]},
                              row_header="measure", note="30 codes")
    recorded = json.loads((tmp_path / "summary.json").read_text())["results/homogeneity"]
    assert recorded["columns"] == {"ours: faces": [0.93212, 0.794]} and recorded["note"] == "30 codes"
    assert recorded["paper"] == {"paper: DCGAN-fashion": [{"id": "homogeneity_log_mean", "value": "0.952"}, None]}
    assert shown.data.splitlines()[2:] == ["| measure | ours: faces | paper: DCGAN-fashion |", "|---|---|---|",
                                           "| log, mean | 0.932 | 0.952 (authors' code) |",
                                           "| linear, mean | 0.794 | – |"]
    with pytest.raises(ValueError, match="not_an_entry not in paper.yml"):
        report.result_table("x", "X", ["a"], {"ours": [1.0]}, paper={"paper": ["not_an_entry"]})
    with pytest.raises(ValueError, match="column 'ours' has 2 values for 1 rows"):
        report.result_table("x", "X", ["a"], {"ours": [1.0, 2.0]})


def test_every_paper_entry_has_a_value_and_a_source():
    entries = report.paper_entries()
    assert entries["homogeneity_log_mean"]["value"] == "0.952"
    incomplete = [k for k, e in entries.items() if not all(str(e.get(f, "")).strip()
                                                           for f in ("value", "what", "model", "source"))]
    assert not incomplete, f"paper.yml entries without value, what, model or source: {incomplete}"


def test_phrase_list():
    assert report.phrase_list([]) == "none"
    assert report.phrase_list(["a"]) == "a"
    assert report.phrase_list(("a", "b")) == "a and b"
    assert report.phrase_list(["a", "b", 3]) == "a, b and 3"


def test_plural():
    plural = report.plural
    assert plural(1, "target") == "1 target" and plural(3, "target") == "3 targets" and plural(0, "pair") == "0 pairs"
    assert plural(2, "analysis", "analyses") == "2 analyses" and plural(1, "analysis", "analyses") == "1 analysis"
    assert plural(torch.tensor(1), "unit") == "1 unit" and plural(np.int64(12_000), "image") == "12,000 images"


def test_no_chapter_imports_the_build_tool():
    """Chapters use the run-time vocabulary (`helpers.report`, `helpers.profiles`), never the papermill CLI."""
    importers = [p.name for p in sorted((ROOT / "notebooks").glob("[0-9][0-9]_*.py"))
                 if re.search(r"^\s*(?:from helpers\.book\b|from helpers import .*\bbook\b|import helpers\.book\b)",
                              p.read_text(encoding="utf-8"), re.M)]
    assert not importers, f"chapters importing helpers.book: {importers}"


def test_report_does_not_load_the_build_tool():
    import subprocess
    import sys

    code = "import sys, helpers.report; print('helpers.book' in sys.modules, 'papermill' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=ROOT)
    assert out.stdout.split() == ["False", "False"]


def test_interval_text_and_its_absence():
    from helpers import report

    assert report.interval(0.61234, 0.8) == "[0.612, 0.8]"
    assert report.interval(-0.5, 0.25, "+.2f", report.CI_MATH) == "$95\\%$ CI -0.50 to +0.25"
    assert report.interval(float("nan"), 1.0, alone="one unit") == "no interval: one unit"


def test_on_each_and_which_name_the_models():
    assert report.on_each({"a": 0.9312, "b": 0.94}, ".3f") == "0.931 on `a` and 0.940 on `b`"
    assert report.on_each({"a": 4.21}, ".1f", " decades") == "4.2 decades on `a`"
    assert report.on_each({"a": 1490.2, "b": 362.0}, ",.0f") == "1,490 on `a` and 362 on `b`"
    assert report.on_each({"a": "0.73 to 0.85"}) == "0.73 to 0.85 on `a`"  # a string as it is
    assert report.on_each({}) == "none"
    assert report.which({"a": True, "b": True}) == "every model of this run"
    assert report.which({"a": True, "b": False, "c": 1}) == "`a` and `c`"
    assert report.which({"a": False}) == report.which({}) == "no model of this run"


def test_paper_entries_say_whether_the_paper_or_the_authors_code_printed_them():
    entries = report.paper_entries()
    assert report.paper_role(entries["homogeneity_log_mean"]) == "authors"  # Tutorial_GAN_Geometry.ipynb
    assert report.paper_role(entries["forward_iter_corr_pggan_1e-3"]) == "paper"
    tutorial = {k for k, e in entries.items() if "Tutorial_" in e["source"]}
    assert tutorial == {k for k, e in entries.items() if report.paper_role(e) == "authors"}, (
        "an entry whose source is the authors' tutorial notebook has origin: authors' code, and only those")


RECORDED = {"full": {"03_homogeneity": {"finished": "2026-12-01T22:35:09Z", "tables": {"results/homogeneity": {
    "title": "H", "rows": ["log scale, mean", "note"], "note": "30 codes per model (870 ordered pairs)",
    "columns": {"ours: a": [0.93, "x"], "ours: b": [0.888, "y"], "ours: c": ["–", "z"]}}}}}}


def test_recorded_rows_give_the_numbers_of_the_kept_full_run(tmp_path):
    path = tmp_path / "recorded.json"
    path.write_text(json.dumps(RECORDED))
    assert report.recorded_row("homogeneity", "log scale, mean", path=path) == {"a": 0.93, "b": 0.888}
    assert report.recorded_row("homogeneity", "missing", path=path) == {}
    assert report.recorded_row("other", "log scale, mean", path=path) == {}
    assert report.recorded_table("homogeneity", path=path)["finished"] == "2026-12-01T22:35:09Z"
    assert report.recorded_row("homogeneity", "log scale, mean", "smoke", path=path) == {}


def test_a_verdict_against_a_threshold_says_where_the_full_run_agrees_and_where_not(tmp_path):
    path = tmp_path / "recorded.json"
    path.write_text(json.dumps(RECORDED))
    at_least = report.Threshold(0.9, spec=".1f")
    assert str(at_least) == "at least 0.9" and str(report.Threshold(2, above=False)) == "at most 2"
    assert at_least.holds(0.9) and not at_least.holds(0.89) and report.Threshold(2, above=False).holds(1.5)
    text = report.full_run_check("homogeneity", "log scale, mean", at_least, {"a": 0.93, "b": 0.907}, spec=".3f",
                                 path=path)
    assert text == ("The recorded full-profile run (30 codes per model, 870 ordered pairs) gives 0.888 on `b`, below "
                    "the threshold, unlike this run on `b`; on `a` it is at least 0.9.")
    agree = report.full_run_check("homogeneity", "log scale, mean", report.Threshold(0.8), {"a": 0.9, "b": 0.9},
                                  spec=".2f", path=path)
    assert agree.endswith("agrees: it gives 0.93 on `a` and 0.89 on `b`, every one at least 0.8.")
    fewer = report.full_run_check("homogeneity", "log scale, mean", report.Threshold(1, above=False), {"a": 0.9},
                                  spec=".2f", path=path)
    assert fewer.endswith("agrees: it gives 0.93 on `a`, at most 1.")  # only the models of this run
    assert report.full_run_check("other", "log scale, mean", at_least, {"a": 1.0}, path=path) == ""
    below = report.full_run_check("homogeneity", "log scale, mean", report.Threshold(0.8), {"a": 0.9, "b": 0.7},
                                  spec=".2f", path=path)
    assert below.endswith("gives 0.93 on `a` and 0.89 on `b`, every one at least 0.8, unlike this run on `b`.")


def test_the_full_run_sentence_names_only_the_sample_sizes_of_a_note():
    """A table's note goes into a parenthesis of full_run_check's sentence: counts only, none of the regions,
    methods or interval details of a long note (chapter 07's), and no parentheses inside it."""
    assert report.sample_sizes("30 codes per model (870 ordered pairs), seed 0, lpips-alex") == (
        "30 codes per model, 870 ordered pairs")
    assert report.sample_sizes(
        "4 codes per model, 3 directions per method, regions a: eyes, mouth; b: iris; walks matched to an "
        "in-region LPIPS of 0.02; 95% bootstrap intervals over codes") == "4 codes per model, 3 directions per method"
    assert report.sample_sizes("10 code(s) from seed 0; top 20 eigenpairs") == "10 codes from seed 0"
    assert report.sample_sizes("30 codes per model") == "30 codes per model"
    assert report.sample_sizes("seed 0, lpips-alex") == "" and report.sample_sizes("") == ""


def test_estimates_with_intervals_are_read_back_from_the_recorded_run(tmp_path):
    assert report.estimate_parts("+0.322 [+0.176, +0.491]") == (0.322, 0.176, 0.491)
    assert report.estimate_parts("8.78 [7.72, 9.91]") == (8.78, 7.72, 9.91)
    assert report.estimate_parts("1.2e-05 [-3e-06, 4]") == (1.2e-05, -3e-06, 4.0)
    for text in ("8.78 (one code: no interval)", "–", 0.93, "not run", "[1, 2]"):
        assert report.estimate_parts(text) is None
    path = tmp_path / "recorded.json"
    path.write_text(json.dumps({"full": {"07_local_edits": {"tables": {"results/fold": {
        "rows": ["LPIPS in/out, fold"], "note": "4 codes per model",
        "columns": {"ours: a": ["8.78 [7.72, 9.91]"], "ours: b": ["4.69 [2.5, 6.02]"], "ours: c": ["–"]}}}}}}))
    assert report.recorded_row("fold", "LPIPS in/out, fold", path=path) == {}  # strings, not numbers
    assert report.recorded_row("fold", "LPIPS in/out, fold", path=path, part="low") == {"a": 7.72, "b": 2.5}
    assert report.recorded_row("fold", "LPIPS in/out, fold", path=path, part="estimate")["a"] == 8.78
    text = report.full_run_check("fold", "LPIPS in/out, fold", report.Threshold(3), {"a": 5.0, "b": 3.5},
                                 path=path, part="low", what="a lower interval end of")
    assert text == ("The recorded full-profile run (4 codes per model) gives a lower interval end of 2.5 on `b`, "
                    "below the threshold, unlike this run on `b`; on `a` it is at least 3.")


def test_correlation_verdicts_per_outcome():
    from helpers import report
    values, verdicts = report.correlation_verdicts(
        {"a": 0.1, "b": 0.5, "c": 0.2}, {"a": (-0.2, 0.3), "b": (0.1, 0.8), "c": (float("nan"),) * 2},
        {"a": "[-0.20, 0.30]", "b": "[0.10, 0.80]", "c": "–"}, "3 codes")
    assert values == ("0.10 [-0.20, 0.30] on `a`, 0.50 [0.10, 0.80] on `b` and 0.20 on `c` (in brackets, the 95% "
                      "bootstrap interval over codes)")
    assert verdicts == (" No dependence on the distance is detected (the interval includes zero) on `a`. A dependence "
                        "is detected (the interval excludes zero) on `b`. With 3 codes there are too few to resample "
                        "for an interval on `c`, so nothing is concluded there.")
    values, _ = report.correlation_verdicts({"a": 0.1}, {"a": (float("nan"),) * 2}, {"a": "–"}, "1 code")
    assert values == "0.10 on `a`"


def test_recorded_above_compares_rows_with_a_baseline_row(tmp_path):
    recorded = {"full": {"04_interpretability": {"finished": "2026-12-01T22:35:09Z", "tables": {"results/axes": {
        "title": "A", "rows": ["x", "y", "base"], "note": "",
        "columns": {"ours: a": [0.5, 0.6, 0.4], "ours: b": [0.5, 0.3, 0.4], "ours: c": [0.9, "–", 0.1]}}}}}}
    path = tmp_path / "recorded.json"
    path.write_text(json.dumps(recorded))
    assert report.recorded_above("axes", ["x", "y"], "base", path=path) == {"a": True, "b": False, "c": False}
    assert report.recorded_above("axes", ["x"], "missing", path=path) == {}
