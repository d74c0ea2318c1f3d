"""Activation maximisation: the response of one unit of AlexNet (the LPIPS-alex trunk, a channel at the centre of
conv1–conv5) to a generated image, CMA-ES searches of latent space that maximise it, isotropic or Hessian-aware, and
chapter 08's comparison of the two searches from the same starts, layer by layer, with its tables and verdicts.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Sequence

import numpy as np

import torch
import torch.nn.functional as F
from torch import nn

from . import checks, cma, distances, stats
from .profiles import PROFILES
from .report import CI_MATH, interval, phrase_list, plural

LAYERS = {"conv1": 0, "conv2": 3, "conv3": 6, "conv4": 8, "conv5": 10}  # index in torchvision's AlexNet.features
CHANNELS = {"conv1": 64, "conv2": 192, "conv3": 384, "conv4": 256, "conv5": 256}
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def alexnet_features(lpips_alex: distances.LPIPS | None = None) -> nn.Sequential:
    """torchvision's AlexNet `features[:12]` (conv1 to relu5) with the LPIPS-alex trunk's verified ImageNet weights.

    The modules are those of `lpips_alex` (default: a new `distances.lpips('alex')`), shared, not copied: nothing is
    downloaded. It has no fc layers, so the paper's fc6–fc8 units are out of reach.
    """
    lpips_alex = lpips_alex if lpips_alex is not None else distances.lpips("alex")
    if getattr(lpips_alex, "net", None) != "alex":
        raise ValueError(f"need the LPIPS distance with net='alex', got {lpips_alex!r}")
    trunk = lpips_alex.model.net
    return nn.Sequential(*[m for s in (trunk.slice1, trunk.slice2, trunk.slice3, trunk.slice4, trunk.slice5)
                           for m in s]).eval()


class Units(nn.Module):
    """Activations of AlexNet units: unit (layer, channel) is the pre-ReLU output of that conv layer's channel at
    the centre of its map (row and column H_l // 2), for images (n, 3, H, W) in [-1, 1].

    Images are mapped to [0, 1], resized to size × size (bilinear; AlexNet's 224), and normalised with the
    ImageNet mean and standard deviation, as AlexNet expects. `forward(images)` gives (n, units); with
    `which` (n,), row i gives only unit which[i]. Each unit is computed on the crop of the input that holds
    its receptive field, aligned to the layer's stride, through the layers up to its own: the same numbers as
    the whole network on the whole image (crop=False computes it that way), at a fraction of the cost.
    """

    def __init__(self, units: Sequence[tuple[str, int]], features: nn.Sequential | None = None, *, size: int = 224,
                 crop: bool = True):
        super().__init__()
        units = [(str(layer), int(channel)) for layer, channel in units]
        if not units:
            raise ValueError("need at least one unit (layer, channel)")
        for layer, channel in units:
            if layer not in LAYERS:
                raise ValueError(f"unknown layer {layer!r}; choose one of {', '.join(LAYERS)}")
            if not 0 <= channel < CHANNELS[layer]:
                raise ValueError(f"{layer} has channels 0-{CHANNELS[layer] - 1}, got {channel}")
        self.units = units
        self.features = features if features is not None else alexnet_features()
        self.features.requires_grad_(False)
        self.size = int(size)
        self.crop = bool(crop)
        self.register_buffer("mean", torch.tensor(IMAGENET_MEAN)[None, :, None, None])
        self.register_buffer("std", torch.tensor(IMAGENET_STD)[None, :, None, None])
        self.windows = {layer: _centre_window(self.features[:LAYERS[layer] + 1], self.size) for layer in LAYERS}

    def prepare(self, images: torch.Tensor) -> torch.Tensor:
        """(n, 3, H, W) in [-1, 1] -> (n, 3, size, size), ImageNet-normalised."""
        checks.images(images)
        x = (images + 1) / 2
        if x.shape[-2:] != (self.size, self.size):
            down = x.shape[-1] > self.size or x.shape[-2] > self.size
            x = F.interpolate(x, size=(self.size, self.size), mode="bilinear", align_corners=False, antialias=down)
        return (x - self.mean) / self.std

    def forward(self, images: torch.Tensor, which: torch.Tensor | None = None) -> torch.Tensor:
        n = len(images)
        if which is None:
            return torch.stack([self.forward(images, torch.full((n,), u, device=images.device))
                                for u in range(len(self.units))], dim=1)
        which = torch.as_tensor(which, device=images.device).long().flatten()
        if which.shape != (n,) or (which < 0).any() or (which >= len(self.units)).any():
            raise ValueError(f"which must be {n} unit indices in [0, {len(self.units)})")
        x = self.prepare(images)
        out = torch.empty(n, dtype=x.dtype, device=x.device)
        layer_of = [self.units[u][0] for u in which.tolist()]
        channel = torch.tensor([self.units[u][1] for u in which.tolist()], device=x.device)
        for layer in LAYERS:
            rows = torch.tensor([i for i, name in enumerate(layer_of) if name == layer], device=x.device).long()
            if not len(rows):
                continue
            (start, stop, position) = self.windows[layer] if self.crop else (0, self.size, None)
            h = self.features[:LAYERS[layer] + 1](x[rows][:, :, start:stop, start:stop])
            if position is None:
                position = h.shape[-1] // 2
            out[rows] = h[torch.arange(len(rows), device=x.device), channel[rows], position, position]
        return out

    def extra_repr(self) -> str:
        return f"{len(self.units)} units, size={self.size}, crop={self.crop}"


def _centre_window(layers: nn.Sequential, size: int) -> tuple[int, int, int]:
    """(start, stop, position): the input rows [start, stop) (the same for columns) that hold the receptive field
    of the centre unit of `layers`' output for a size × size input, with start a multiple of the total stride
    (so the crop's grid lines up with the full one), and the unit's position in the output of the crop."""
    maps, strides = [size], [1]
    for m in layers:
        if isinstance(m, (nn.Conv2d, nn.MaxPool2d)):
            k, s, p = (_pair(m.kernel_size), _pair(m.stride), _pair(m.padding))
            maps.append((maps[-1] + 2 * p - k) // s + 1)
            strides.append(strides[-1] * s)
    centre = maps[-1] // 2
    lo = hi = centre
    for m in reversed([m for m in layers if isinstance(m, (nn.Conv2d, nn.MaxPool2d))]):
        k, s, p = (_pair(m.kernel_size), _pair(m.stride), _pair(m.padding))
        lo, hi = lo * s - p, hi * s - p + k - 1
    stride = strides[-1]
    start = max(0, (lo // stride) * stride)
    stop = min(size, hi + 1)
    return start, stop, centre - start // stride


def _pair(value) -> int:
    value = value if isinstance(value, int) else value[0]
    return int(value)


def pick_units(layers: Sequence[str], per_layer: int, *, seed: int = 0, exclude=()) -> list[tuple[str, int]]:
    """`per_layer` channels of each layer, drawn without replacement (seeded), leaving out `exclude` units."""
    gen = torch.Generator().manual_seed(int(seed))
    exclude = {(str(layer), int(c)) for layer, c in exclude}
    units = []
    for layer in layers:
        if layer not in LAYERS:
            raise ValueError(f"unknown layer {layer!r}; choose one of {', '.join(LAYERS)}")
        free = [c for c in torch.randperm(CHANNELS[layer], generator=gen).tolist() if (layer, c) not in exclude]
        if len(free) < per_layer:
            raise ValueError(f"{layer} has only {len(free)} channels left, asked for {per_layer}")
        units += [(layer, c) for c in free[:per_layer]]
    return units


@dataclass
class Maximisation:
    """R searches for the codes that maximise units.

    best : (R,) highest activation found. history : (R, budget) highest activation after each evaluation.
    z_best : (R, d) its code. images : (R, 3, H, W) G(z_best). unit : (R,) unit index of each search (into
    `Units.units`). seeds : (R,) start and sampling seed of each search. name : the method's label.
    """

    best: torch.Tensor
    history: torch.Tensor
    z_best: torch.Tensor
    images: torch.Tensor
    unit: tuple
    seeds: tuple
    name: str


def maximize(G, units: Units, unit: Sequence[int], seeds: Sequence[int], *, basis: torch.Tensor | None = None,
             eigvals=None, budget: int = 300, sigma0: float = 0.5, power: float = 1 / 2.5, popsize: int | None = None,
             chunk_size: int = 128, name: str | None = None, progress: bool = True) -> Maximisation:
    """CMA-ES searches, one per (unit[r], seeds[r]), for codes that maximise the unit: all populations of a
    generation go through G and AlexNet in one batch.

    Search r starts at z0 = G.sample(1, seed=seeds[r]) and samples with seeds[r]. basis None: isotropic CMA-ES
    on z itself, step size sigma0. basis (d, k) orthonormal (the top-k eigenvectors of the average metric) with
    eigvals (k,): the Hessian-aware search of the paper, on c with z = z0 + V c and initial steps
    ∝ λ^(−power), scaled so that a step has the same expected length as an isotropic one in z
    (Σ stds² = d); without eigvals, isotropic in the subspace with the same expected step length.
    budget : evaluations (images) per search.
    """
    unit = torch.as_tensor(list(unit)).long()
    seeds = [int(s) for s in seeds]
    if len(unit) != len(seeds) or not len(seeds):
        raise ValueError(f"need one seed per search: {len(unit)} units, {len(seeds)} seeds")
    if (unit < 0).any() or (unit >= len(units.units)).any():
        raise ValueError(f"unit indices must be in [0, {len(units.units)})")
    d = G.latent_dim
    z0 = torch.cat([G.sample(1, seed=s) for s in seeds]).detach()
    if basis is None:
        if eigvals is not None:
            raise ValueError("eigvals need a basis: pass the eigenvectors as `basis`")
        V, x0, stds, label = None, z0.double().cpu(), None, "isotropic, z"
    else:
        V = checks.orthonormal_basis(basis, d).to(z0)
        k = V.shape[1]
        x0 = torch.zeros(len(seeds), k, dtype=torch.float64)
        if eigvals is None:
            stds, label = torch.full((k,), (d / k) ** 0.5, dtype=torch.float64), f"isotropic, top {k}"
        else:
            stds = cma.hessian_cma_stds(eigvals, power=power)
            if stds.numel() != k:
                raise ValueError(f"eigvals must have one value per basis vector ({k}), got {stds.numel()}")
            stds, label = stds * (d / stds.pow(2).sum()) ** 0.5, f"Hessian-aware, top {k}"
    label = name or label

    @torch.no_grad()
    def objective(X, owner):
        X, owner = X.to(z0), owner.to(z0.device)
        z = X if V is None else z0[owner] + X @ V.T
        values = []
        for start in range(0, len(z), chunk_size):
            rows = slice(start, start + chunk_size)
            values.append(units(G(z[rows]), unit.to(z0.device)[owner[rows]]))
        return -torch.cat(values)  # CMA-ES minimises

    results = cma.cma_many(objective, x0, sigma0=sigma0, stds=stds, budget=budget, seeds=seeds, popsize=popsize,
                           progress=progress, desc=f"CMA-ES ({label})")
    with torch.no_grad():
        best_x = torch.stack([r.best_x for r in results]).to(z0)
        z_best = best_x if V is None else z0 + best_x @ V.T
        images = torch.cat([G(z_best[s:s + chunk_size]) for s in range(0, len(z_best), chunk_size)])
    history = -torch.stack([r.history for r in results])
    return Maximisation(history[:, -1].clone(), history, z_best, images, tuple(unit.tolist()), tuple(seeds), label)


# --- chapter 08: the isotropic and the Hessian-aware search from the same starts ----------------------------

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
