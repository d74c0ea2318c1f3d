"""Chapter 08's comparison of activation maximisation: the isotropic and the Hessian-aware CMA-ES search for AlexNet
units from the same starts, compared pair by pair and layer by layer, with its tables, verdicts and scope.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from . import stats
from .activation import Maximisation, Units, maximize
from .profiles import PROFILES
from .report import CI_MATH, interval, phrase_list, plural


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


def normalised(isotropic: Maximisation, hessian: Maximisation) -> tuple[torch.Tensor, torch.Tensor]:
    """Both searches' histories (R, budget), divided per unit by the mean size of its final activations (all runs
    of both searches), so that units of different scales pool within a layer."""
    unit_of = torch.tensor(isotropic.unit)
    finals = torch.cat([isotropic.best, hessian.best]).abs()
    owners = torch.cat([unit_of, unit_of])
    scale = torch.stack([finals[owners == u].mean() for u in unit_of]).clamp_min(1e-6)[:, None]
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


def best_images(isotropic: Maximisation, hessian: Maximisation, n_units: int) -> torch.Tensor:
    """(n_units, 2, 3, H, W): per unit, the image of the search (over its starts) that drove it highest, for each
    kind of search."""
    unit_of = torch.tensor(isotropic.unit)
    best = [[run.images[(unit_of == u).nonzero().flatten()[run.best[unit_of == u].argmax()]].cpu()
             for run in (isotropic, hessian)] for u in range(n_units)]
    return torch.stack([torch.stack(row) for row in best])


def result_columns(comparisons: dict) -> dict:
    """The results page's columns per prior {name: LayerComparison}: the mean gain with its interval, and how often
    the Hessian-aware search ended higher, per layer and over all layers."""
    gains = {f"ours, {name}: mean gain [95 % CI]": c.table["mean gain [95 % CI]"] for name, c in comparisons.items()}
    return gains | {f"ours, {name}: higher / pairs": [f"{w}/{n}" for w, n in zip(c.table["Hessian-aware higher"],
                                                                                    c.table["pairs"])]
                    for name, c in comparisons.items()}


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
                     f"); per layer, the interval of the gain lies above zero in " + phrase_list(higher)
                     + (f" and below zero in {phrase_list(lower)}" if lower else ""))
    text = "; ".join(lines)
    return text[0].upper() + text[1:] + "."


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
