"""Comparing optimisers on the same starts (chapters 05 and 08): the set-up those chapters share (the distance, each
model with its average metric, a clock per section), paired comparisons of methods, their tables and verdicts.

Runs are compared as `inversion.Inversion`s are kept: `loss_best` (n,) and `history` (n, budget) of the lowest loss
seen so far, lower is better, row i of every method starting from the same code.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch

from . import analysis, stats
from .catalogue import load_models
from .report import CI_MATH, duration, interval, plural


@dataclass
class Model:
    """A generator G and its average metric (`analysis.AverageMetric`: H_mean, eigvals, eigvecs, steepest first)."""

    G: object
    average: analysis.AverageMetric


@dataclass
class Clock:
    """Wall and CPU seconds (all threads) per section of a chapter: `lap(section)` closes the section that ran
    since the last lap (or since the clock started)."""

    started: tuple = field(default_factory=lambda: (time.time(), time.process_time()))
    sections: dict = field(default_factory=dict)

    def __post_init__(self):
        self._mark = self.started

    def lap(self, section: str) -> None:
        now = (time.time(), time.process_time())
        self.sections[section] = (now[0] - self._mark[0], now[1] - self._mark[1])
        self._mark = now

    def sentence(self, *, read: int = 0, units: int = 0, store: str | None = None) -> str:
        """This run's time as a sentence for the end of a chapter, beside its header's times (`report.run_times`,
        runs that computed everything); read of units: stored units this run read back from `store` instead of
        running them, which makes it faster than its header says."""
        wall, cpu = time.time() - self.started[0], time.process_time() - self.started[1]
        text = f"This run took {duration(wall)} of wall time and {duration(cpu)} of CPU time (all threads)"
        if read:
            text += (f"; it read {read} of {plural(units, 'stored unit')} of runs back from `{store}` instead of "
                     f"running them, so it took less than the header's time for its profile, which is that of a run "
                     f"that computed every unit")
        return text + "."

    def table(self) -> dict:
        """{column: values} of the sections' times, for `viz.markdown_table`."""
        return {"section": list(self.sections), "wall s": [w for w, _ in self.sections.values()],
                "CPU s": [c for _, c in self.sections.values()]}


@dataclass
class Bench:
    """What a chapter that compares optimisers works with: the distance, {name: Model}, and its clock."""

    distance: object
    models: dict
    clock: Clock


def setup(names, distance: str, n_points: int, seed: int, *, device="cpu", cpu_threads: int | None = None) -> Bench:
    """The set-up of chapters 05 and 08: torch's CPU threads (None: torch's default, every core), then the analysis
    chapters' set-up (`catalogue.load_models`: the distance by name, each model's metrics at `n_points` codes
    (`seed`) from the store the chapters share), and the average of each model's metrics. The clock starts here."""
    if cpu_threads:
        torch.set_num_threads(cpu_threads)
    clock = Clock()
    run = load_models(names, distance, n_points, seed, device=device)
    models = {name: Model(m.G, analysis.average_metric(m.metric)) for name, m in run.results.items()}
    return Bench(run.distance, models, clock)


def metric_table(models: dict, top_k: int) -> dict:
    """{column: values} per model: its dimension, the share of the average metric's trace in its top_k
    eigenvalues, and its condition number λ1 / λd."""
    averages = [m.average for m in models.values()]
    return {"model": list(models), "d": [m.G.latent_dim for m in models.values()],
            f"trace in the top {top_k}": [float(a.eigvals[:top_k].sum() / a.eigvals.sum()) for a in averages],
            "λ1 / λd": [float(a.eigvals[0] / a.eigvals[-1].clamp_min(1e-30)) for a in averages]}


# --- paired comparisons of runs from the same starts -------------------------------------------------------

@dataclass
class MethodPair:
    """Method a against method b on the same rows: `stats.Paired` of the final losses and of the areas under the
    curves (both log ratios), and how many rows each reached the threshold first (a, b)."""

    final: stats.Paired
    area: stats.Paired
    first: tuple


def compare(runs: dict, pairs, rows, groups, threshold: float) -> dict:
    """{(a, b): MethodPair} for each pair of methods in `pairs` that `runs` {label: run} both holds, over `rows`;
    groups (len(rows),): the independent unit (target) of each row, which the intervals resample."""
    out = {}
    for a, b in pairs:
        if a in runs and b in runs:
            ra, rb = runs[a], runs[b]
            final = stats.paired(ra.loss_best[rows], rb.loss_best[rows], groups=groups, log=True)
            area = stats.paired(10 ** stats.log_auc(ra.history[rows]), 10 ** stats.log_auc(rb.history[rows]),
                                groups=groups, log=True)
            reach_a = stats.evaluations_to_reach(ra.history[rows], threshold)
            reach_b = stats.evaluations_to_reach(rb.history[rows], threshold)
            out[(a, b)] = MethodPair(final, area, (int((reach_a < reach_b).sum()), int((reach_b < reach_a).sum())))
    return out


def summary_table(runs: dict, rows, threshold: float, n_starts: int) -> dict:
    """{column: values} per method over `rows` (whole targets, n_starts rows each): median final loss, median best
    of the starts, how many reached the threshold and the median evaluations to it, and the area under the curve
    as the geometric-mean loss along the run."""
    out = {"method": [], "median LPIPS": [], "median best of starts": [], f"reached {threshold:g}": [],
           "median images to it": [], "area (geometric mean)": []}
    for label, run in runs.items():
        final = run.loss_best[rows].double().cpu()
        reach = stats.evaluations_to_reach(run.history[rows], threshold)
        median = float(np.median(reach))
        out["method"].append(label)
        out["median LPIPS"].append(float(final.median()))
        out["median best of starts"].append(float(final.view(-1, n_starts).min(1).values.median()))
        out[f"reached {threshold:g}"].append(f"{int(np.isfinite(reach).sum())}/{len(reach)}")
        out["median images to it"].append(median if np.isfinite(median) else "not reached")
        out["area (geometric mean)"].append(float(10 ** stats.log_auc(run.history[rows]).mean()))
    return out


def comparison_table(comparisons: dict) -> dict:
    """{column: values} per pair of methods: pairs, wins of the first, the ratios of final loss and of area with
    their intervals, the Wilcoxon p-value and who reached the threshold first."""
    pairs = comparisons.values()
    ratio = lambda r: f"{r.ratio:.3g} {interval(*r.ratio_ci)}"  # noqa: E731
    return {"first vs second": [f"{a} vs {b}" for a, b in comparisons],
            "pairs": [p.final.n for p in pairs], "wins": [p.final.wins for p in pairs],
            "final LPIPS ratio [95 % CI]": [ratio(p.final) for p in pairs],
            "p (Wilcoxon)": [p.final.p_wilcoxon for p in pairs],
            "area ratio [95 % CI]": [ratio(p.area) for p in pairs],
            "reached first": [f"{x} vs {y}" for x, y in (p.first for p in pairs)]}


def verdict(model: str, a: str, b: str, pair: MethodPair, threshold: float) -> str:
    """A sentence (no capital, no full stop) on method a against method b on a model: what the interval of the
    final-loss ratio decides (`stats.direction`), with the ratios, wins and who reached the threshold first."""
    final, area = pair.final, pair.area
    judged = {"lower": f"**{a}** ended lower than **{b}**", "higher": f"**{a}** ended higher than **{b}**",
              "undecided": f"this sample cannot tell **{a}** from **{b}**",
              "too few": f"too few targets to compare **{a}** with **{b}**"}[stats.direction(final)]
    return (f"on `{model}`, {judged}: final LPIPS ratio {final.ratio:.3g} ({interval(*final.ratio_ci, form=CI_MATH)}), "
            f"lower in {final.wins} of {plural(final.n, 'pair')} (Wilcoxon p = {final.p_wilcoxon:.2g}); area ratio "
            f"{area.ratio:.3g} ({interval(*area.ratio_ci, form='{} to {}')}); reached {threshold:g} first in "
            f"{plural(pair.first[0], 'pair')} against {pair.first[1]}")


def bullets(sentences) -> str:
    """Sentences as a markdown list, each capitalised and closed with a full stop."""
    return "\n".join(f"- {s[0].upper() + s[1:]}." for s in sentences)
