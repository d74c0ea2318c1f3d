"""Activation maximisation: the response of one unit of AlexNet (the LPIPS-alex trunk, a channel at the centre of
conv1–conv5) to a generated image, and CMA-ES searches of latent space that maximise it, isotropic or Hessian-aware.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from . import checks, cma, distances

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
