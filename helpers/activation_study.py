"""Chapter 08's comparison of activation maximisation: the isotropic and the Hessian-aware CMA-ES search for AlexNet
units from the same starts, compared pair by pair and layer by layer, with its tables, verdicts and scope, and the
referee's control: a Hessian-free search in a random subspace of the same size (`control_search`).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from . import stats
from .activation import Maximisation, Units, maximize
from .profiles import PROFILES
from .report import (CI_MATH, estimate_parts, interval, phrase_list, plural, recorded_table,
                     sample_sizes)


def both_searches(G, average, units: Units, repeats: int, *, seed: int, top_k: int, budget: int, sigma0: float,
                  progress: bool = False) -> tuple[Maximisation, Maximisation]:
    """(isotropic, Hessian-aware) searches for every unit of `units` from `repeats` starts each (seeds seed + 3000 on),
    the Hessian-aware one in the top_k eigenvectors of the average metric `average` (`analysis.AverageMetric`)."""
    unit_of = torch.arange(len(units.units)).repeat_interleave(repeats)
    seeds = [seed + 3000 + i for i in range(len(unit_of))]
    isotropic = maximize(G, units, unit_of, seeds, budget=budget, sigma0=sigma0, progress=progress)
    hessian = maximize(G, units, unit_of, seeds, basis=average.eigvecs[:, :top_k], eigvals=average.eigvals[:top_k],
                       budget=budget, sigma0=sigma0, progress=progress)
    return isotropic, hessian


def random_basis(d: int, k: int, seed: int) -> torch.Tensor:
    """(d, k) orthonormal float64: a random k-dimensional subspace of the d-dimensional code space (seeded)."""
    gen = torch.Generator().manual_seed(int(seed))
    return torch.linalg.qr(torch.randn(d, k, generator=gen, dtype=torch.float64))[0]


def control_search(G, units: Units, repeats: int, control_repeats: int, *, seed: int, top_k: int, budget: int,
                   sigma0: float, progress: bool = False) -> Maximisation:
    """The Hessian-free control of `both_searches`: CMA-ES in a random top_k-dimensional subspace through the
    start, isotropic in it with the same expected step length, for every unit from the first `control_repeats`
    of its `repeats` starts (the same seeds); start r of every unit searches its own random subspace (seed
    seed + 4000 + r), so that the control does not rest on one draw."""
    if not 1 <= control_repeats <= repeats:
        raise ValueError(f"control_repeats must be between 1 and repeats ({repeats}), got {control_repeats}")
    parts = []
    for r in range(control_repeats):
        seeds = [seed + 3000 + u * repeats + r for u in range(len(units.units))]
        parts.append(maximize(G, units, range(len(units.units)), seeds,
                              basis=random_basis(G.latent_dim, top_k, seed + 4000 + r), budget=budget,
                              sigma0=sigma0, progress=progress, name=f"random subspace, {top_k} dimensions"))
    return Maximisation(*(torch.cat([getattr(m, f) for m in parts]) for f in ("best", "history", "z_best", "images")),
                        sum((m.unit for m in parts), ()), sum((m.seeds for m in parts), ()), parts[0].name)


def _scales(isotropic: Maximisation, hessian: Maximisation) -> torch.Tensor:
    """(R, 1): per search, the mean size of its unit's final activations (all runs of both searches)."""
    unit_of = torch.tensor(isotropic.unit)
    finals = torch.cat([isotropic.best, hessian.best]).abs()
    owners = torch.cat([unit_of, unit_of])
    return torch.stack([finals[owners == u].mean() for u in unit_of]).clamp_min(1e-6)[:, None]


def normalised(isotropic: Maximisation, hessian: Maximisation) -> tuple[torch.Tensor, torch.Tensor]:
    """Both searches' histories (R, budget), divided per unit by the mean size of its final activations (all runs
    of both searches), so that units of different scales pool within a layer."""
    scale = _scales(isotropic, hessian)
    return isotropic.history / scale, hessian.history / scale


@dataclass
class LayerComparison:
    """The Hessian-aware search against the isotropic one, per layer and over all layers ("all layers").

    table : {column: values}, a row per layer: pairs, how often the Hessian-aware search ended higher, the mean gain
    (Hessian-aware minus isotropic normalised activation) with its interval, at the end and after a quarter of the
    budget. paired : {layer: `stats.Paired` of the final activations, isotropic against Hessian-aware}.
    curves : {layer: (x, {search: median normalised activation so far})} for the first and the last layer.
    """

    table: dict
    paired: dict
    curves: dict


def _gain(result) -> str:
    """The mean gain of the second search over the first, with its interval, from their Paired (first − second)."""
    return f"{-result.mean:+.3g} {interval(-result.ci[1], -result.ci[0], '+.3g', alone='one unit')}"


def compare_layers(isotropic: Maximisation, hessian: Maximisation, units: Units, layers) -> LayerComparison:
    """`LayerComparison` of the two searches (same units and starts), activations normalised per unit. Within a
    layer the pairs (unit × start) are taken as independent, as the paper's per-unit tests did; pooled over layers,
    the interval resamples whole units."""
    h_iso, h_hess = normalised(isotropic, hessian)
    unit_of = torch.tensor(isotropic.unit)
    budget = h_iso.shape[1]
    quarter = max(1, budget // 4) - 1
    table = {"layer": [], "pairs": [], "Hessian-aware higher": [], "mean gain [95 % CI]": [], "p (Wilcoxon)": [],
             f"mean gain after {quarter + 1} images": []}
    paired, curves = {}, {}
    for layer in list(layers) + ["all layers"]:
        mask = torch.tensor([layer in (units.units[u][0], "all layers") for u in unit_of.tolist()])
        groups = unit_of[mask].numpy() if layer == "all layers" else None
        final = paired[layer] = stats.paired(h_iso[mask, -1], h_hess[mask, -1], groups=groups)
        early = stats.paired(h_iso[mask, quarter], h_hess[mask, quarter], groups=groups)
        table["layer"].append(layer)
        table["pairs"].append(final.n)
        table["Hessian-aware higher"].append(final.wins)
        table["mean gain [95 % CI]"].append(_gain(final))
        table["p (Wilcoxon)"].append(final.p_wilcoxon)
        table[f"mean gain after {quarter + 1} images"].append(_gain(early))
        if layer in (layers[0], layers[-1]):
            curves[layer] = (np.arange(1, budget + 1), {isotropic.name: h_iso[mask].median(0).values,
                                                        hessian.name: h_hess[mask].median(0).values})
    return LayerComparison(table, paired, curves)


@dataclass
class ControlComparison:
    """The random-subspace control against both searches on the pairs it ran (unit × start), pooled over layers,
    activations normalised per unit as in `compare_layers`. table : {column: values}, a row per comparison.
    paired : {row: `stats.Paired` of the second search named against the first, so that `_gain` is the first
    minus the second}; n_units : the units the intervals resample."""

    table: dict
    paired: dict
    n_units: int


CONTROL_ROWS = ("Hessian-aware − random subspace", "random subspace − isotropic",
                "Hessian-aware − isotropic, the same pairs")


def compare_control(isotropic: Maximisation, hessian: Maximisation, control: Maximisation) -> ControlComparison:
    """`ControlComparison` of the control search (`control_search`) with the two searches of `both_searches` from
    the same starts; the intervals resample whole units."""
    rows = torch.tensor([isotropic.seeds.index(s) for s in control.seeds])
    scale = _scales(isotropic, hessian)[rows]
    final = {"isotropic": isotropic.best[rows, None] / scale, "Hessian-aware": hessian.best[rows, None] / scale,
             "random subspace": control.best[:, None] / scale}
    groups = np.asarray(control.unit)
    table = {"comparison": [], "pairs": [], "first higher": [], "mean gain [95 % CI]": [], "p (Wilcoxon)": []}
    paired = {}
    for row in CONTROL_ROWS:
        first, second = row.split(",")[0].split(" − ")
        result = paired[row] = stats.paired(final[second][:, 0], final[first][:, 0], groups=groups)
        table["comparison"].append(row)
        table["pairs"].append(result.n)
        table["first higher"].append(result.wins)
        table["mean gain [95 % CI]"].append(_gain(result))
        table["p (Wilcoxon)"].append(result.p_wilcoxon)
    return ControlComparison(table, paired, len(set(control.unit)))


def control_verdict(control: ControlComparison, name: str) -> str:
    """What the control decides about where the Hessian-aware search's gain comes from, from the intervals of the
    mean gain (a gain when the whole 95 % interval lies above zero, a loss when below)."""
    by_h, by_space = (stats.direction(control.paired[row]) for row in CONTROL_ROWS[:2])
    if "too few" in (by_h, by_space):
        return (f"With `{name}` as the prior the control ran on {plural(control.n_units, 'unit')}, too few to "
                f"resample: it cannot say where the gain comes from.")
    subspace = {"lower": "a random subspace of the same size already climbs higher than the isotropic search",
                "higher": "a random subspace of the same size climbs less high than the isotropic search",
                "undecided": "a random subspace of the same size cannot be told from the isotropic search"}[by_space]
    metric = {"lower": "the Hessian-aware search climbs higher than the random subspace, so the metric's "
                       "directions add to what a smaller search space gives",
              "higher": "the random subspace climbs higher than the Hessian-aware search, so the metric's "
                        "directions do not help here",
              "undecided": "the Hessian-aware search cannot be told from the random subspace, so this run cannot "
                           "credit the metric's directions over a smaller search space"}[by_h]
    return f"With `{name}` as the prior, {subspace}, and {metric}."


def best_images(isotropic: Maximisation, hessian: Maximisation, n_units: int) -> torch.Tensor:
    """(n_units, 2, 3, H, W): per unit, the image of the search (over its starts) that drove it highest, for each
    kind of search."""
    unit_of = torch.tensor(isotropic.unit)
    best = [[run.images[(unit_of == u).nonzero().flatten()[run.best[unit_of == u].argmax()]].cpu()
             for run in (isotropic, hessian)] for u in range(n_units)]
    return torch.stack([torch.stack(row) for row in best])


def result_columns(comparisons: dict, higher: str = "Hessian-aware higher") -> dict:
    """The results page's columns per prior {name: LayerComparison or ControlComparison}: the mean gain with its
    interval, and how often the first search ended higher (the table's column `higher`), a row per table row."""
    gains = {f"ours, {name}: mean gain [95 % CI]": c.table["mean gain [95 % CI]"] for name, c in comparisons.items()}
    return gains | {f"ours, {name}: higher / pairs": [f"{w}/{n}" for w, n in zip(c.table[higher], c.table["pairs"])]
                    for name, c in comparisons.items()}


def where(selected, layers) -> str:
    """The layers `selected` out of `layers`, for generated sentences: "in every layer", "in conv1 and conv3",
    "in no layer"."""
    if not selected:
        return "in no layer"
    return "in every layer" if len(selected) == len(layers) > 1 else f"in {phrase_list(selected)}"


def verdict(comparisons: dict) -> str:
    """Sentences per prior {name: LayerComparison}: how often and by how much the Hessian-aware search ended higher
    over all layers, and the layers where the interval of its gain lies above (or below) zero."""
    lines = []
    for name, comparison in comparisons.items():
        layers = {layer: p for layer, p in comparison.paired.items() if layer != "all layers"}
        pooled = comparison.paired["all layers"]
        higher = [layer for layer, f in layers.items() if -f.ci[1] > 0]  # the gain's interval is -ci, reversed
        lower = [layer for layer, f in layers.items() if -f.ci[0] < 0]
        lines.append(f"with `{name}` as the prior, the Hessian-aware search ended higher in {pooled.wins} of "
                     f"{plural(pooled.n, 'pair')}, by a mean normalised gain of {-pooled.mean:+.3g} ("
                     f"{interval(-pooled.ci[1], -pooled.ci[0], '+.3g', CI_MATH + ', units resampled', alone='one unit')}"
                     f"); per layer, the interval of the gain lies above zero {where(higher, layers)}"
                     + (f" and below zero {where(lower, layers)}" if lower else ""))
    text = "; ".join(lines)
    return ("A layer counts as a gain when the whole $95\\%$ interval of its mean gain lies above zero. "
            + text[0].upper() + text[1:] + ".")


TABLE = "optimization_activation"  # the key of the chapter's result table


def _above(low: float) -> bool:
    return low > 0  # the threshold of `verdict`: the interval of the gain lies above zero


def full_run_check(comparisons: dict, layers, *, profile: str = "full", path=None) -> str:
    """Sentences on what the recorded `profile` run (book/recorded.json) finds per prior and layer, against the
    threshold of `verdict` (the gain's interval above zero): where it agrees with this run {name:
    LayerComparison}, where not, and the priors this run did not search with. "" when nothing is recorded."""
    table = recorded_table(TABLE, profile, path)
    if table is None:
        return ""
    column = "ours, {}: mean gain [95 % CI]"
    priors = [label.removeprefix("ours, ").removesuffix(": mean gain [95 % CI]") for label in table["columns"]
              if label.endswith(": mean gain [95 % CI]")]
    note = sample_sizes(table.get("note") or "")
    lines = []
    for name in priors:
        cells = zip(table["rows"], table["columns"][column.format(name)])
        recorded = {row: estimate_parts(value) for row, value in cells if row in layers and estimate_parts(value)}
        if not recorded:
            continue
        held = [layer for layer, (_, low, _) in recorded.items() if _above(low)]
        missed = [layer for layer in recorded if layer not in held]
        found = f"the interval of the gain lies above zero {where(held, recorded)}" \
            + (f" and includes zero or lies below it {where(missed, recorded)}" if held and missed else "")
        if name not in comparisons:
            lines.append(f"with `{name}` as the prior, which this run does not search with, {found}")
            continue
        paired = comparisons[name].paired
        ours = {layer: -paired[layer].ci[1] for layer in recorded if layer in paired}
        differ = [layer for layer, low in ours.items() if _above(low) != (layer in held)]
        lines.append(f"with `{name}` as the prior, {found}, "
                     + ("as in this run" if not differ else f"unlike this run in {phrase_list(differ)}"))
    if not lines:
        return ""
    run = f"The recorded {profile}-profile run" + (f" ({note})" if note else "")
    return f"{run}, judged by the same threshold: " + "; ".join(lines) + "."


def agreement(comparisons: dict) -> str:
    """Sentences on where the comparison agrees with the paper, per prior {name: LayerComparison}."""
    parts = []
    for name, comparison in comparisons.items():
        pooled = comparison.paired["all layers"]  # isotropic minus Hessian-aware: "lower": the Hessian-aware is higher
        parts.append(f"With `{name}` as the prior, the Hessian-aware search " + {
            "lower": "ends higher than the isotropic one, as the paper found",
            "higher": "ends lower than the isotropic one, against the paper",
            "undecided": "cannot be told from the isotropic one",
            "too few": "is compared with the isotropic one on too few units to judge"}[stats.direction(pooled)]
            + f" (mean normalised gain {comparison.table['mean gain [95 % CI]'][-1]}).")
    parts.append("The paper searched with BigGAN as the prior, a much larger generator, and units up to fc8.")
    return " ".join(parts)


def scope(models, n_units: int, units_per_layer: int, repeats: int, budget: int, latent_dim: int) -> str:
    """Sentences on what a run with these priors and sample sizes can decide, and what the full profile runs;
    latent_dim: the first prior's, for CMA-ES's default population."""
    popsize = 4 + int(3 * math.log(latent_dim))  # cma's default population in z
    full = PROFILES["full"]
    missing = [f"`{m}`" for m in full["am_models"] if m not in models]
    return (f"This run searches {plural(n_units * repeats, 'unit-start')} per prior ({plural(units_per_layer, 'unit')} "
            f"per layer × {plural(repeats, 'start')}) with {budget} images each, about "
            f"{plural(max(1, round(budget / popsize)), 'CMA-ES generation')} where the paper ran a hundred: it shows "
            f"the early race, not the end. "
            + (f"Pooled over layers its interval resamples {plural(n_units, 'unit')}, enough to decide a clear "
               f"difference; " if n_units >= 5 else f"Pooled over layers there are only {plural(n_units, 'unit')} to "
                                                     f"resample: too few to decide anything, so this run only shows "
                                                     f"that every step works; ")
            + f"per layer, {plural(units_per_layer * repeats, 'pair')} from {plural(units_per_layer, 'unit')}: a "
            f"layer's interval speaks for these units, not for every channel of the layer. "
            + (f"It does not test {phrase_list(missing)} as a prior, whose images cost more; the" if missing else "The")
            + f" full profile (`--profile full`) searches with {phrase_list(f'`{m}`' for m in full['am_models'])} as "
            f"priors, {full['am_units']} units per layer × {full['am_repeats']} starts and {full['am_budget']} images "
            f"a search.")
