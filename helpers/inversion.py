"""Inversion: find the latent code whose image matches a target, by Adam in z or in an eigenbasis of the metric.

Also the paper's toy quadratic, black-box inversion by CMA-ES (the `cma` package) with Hessian-aware step sizes,
and real target photographs from scikit-image's bundled sample data.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch
import torch.nn.functional as F
from tqdm.auto import tqdm

from . import distances
from .analysis import average_metric
from .distances import check_generated
from .metric import check_distance_values, metric


@dataclass
class Inversion:
    """Result of inverting one target from n_seeds starting codes.

    z_best : (n_seeds, d) best code per seed. loss_best : (n_seeds,) its loss.
    history : (n_seeds, steps) loss at each Adam step (`invert`) or best-so-far per evaluation (`invert_cma`).
    images : (n_seeds, 3, H, W) G(z_best). basis_name : 'z', or the basis label. seeds : the starting seeds.
    """

    z_best: torch.Tensor
    loss_best: torch.Tensor
    history: torch.Tensor
    images: torch.Tensor
    basis_name: str
    seeds: tuple = ()


def eigen_basis(G, distance: Callable, *, n_points: int = 8, seed: int = 0, k: int | None = None) -> torch.Tensor:
    """Eigenvectors (d, k) of the metric averaged over `n_points` sampled codes, top first (the paper's frame)."""
    frame = average_metric(metric(G, G.sample(n_points, seed=seed), distance, progress=False)).eigvecs
    return frame[:, :k] if k else frame


def invert(G, target: torch.Tensor, distance: Callable, *, basis: torch.Tensor | str | None = None, steps: int = 200,
           lr: float = 0.05, seeds: Sequence[int] = (0,), pixel_weight: float = 0.0, name: str | None = None,
           progress: bool = True) -> Inversion:
    """Adam on the code z (basis None) or on coordinates c in an orthonormal basis V (d, k): z = z0 + V (c − c0).

    Parameters
    ----------
    G : generator with `latent_dim`, `sample(n, seed)` and codes (n, d) -> images (n, 3, H, W) in [-1, 1].
    target : (3, H, W) or (1, 3, H, W) image in [-1, 1].
    distance : d(x0, x) -> (n,), e.g. `distances.lpips('alex')`.
    basis : None, 'eigen' (the eigenbasis of the average metric, from `eigen_basis` with its defaults), or a
        (d, k) matrix with orthonormal columns (e.g. `eigen_basis(..., k=20)`, the top 20).
        c starts at c0 = Vᵀ z0, so a full basis starts at the same z0 as z-space (and z = V c exactly
        spans z); a top-k basis searches the k-dimensional affine subspace through z0.
    steps, lr : Adam steps and learning rate (the same for every basis).
    seeds : one run per seed, all in one batch; seed s starts at `G.sample(1, seed=s)` whatever the others.
    pixel_weight : loss = distance + pixel_weight · mean squared pixel difference.
    name : label stored as `basis_name` (default 'z', or 'basis-k{k}').
    """
    target = _check_target(target, distance)
    if len(seeds) == 0 or steps < 1:
        raise ValueError(f"need at least one seed and one step, got seeds={tuple(seeds)}, steps={steps}")
    z0 = torch.cat([G.sample(1, seed=int(s)) for s in seeds]).detach()
    if isinstance(basis, str):
        if basis != "eigen":
            raise ValueError(f"basis must be None, 'eigen' or a (d, k) matrix, got {basis!r}")
        basis, name = eigen_basis(G, distance), name or "eigen"
    if basis is None:
        params = z0.clone().requires_grad_(True)
        code = lambda: params  # noqa: E731
        basis_name = name or "z"
    else:
        V = _check_basis(basis, G.latent_dim).to(z0)
        c0 = z0 @ V
        params = c0.clone().requires_grad_(True)
        code = lambda: z0 + (params - c0) @ V.T  # noqa: E731  exactly z0 at the start
        basis_name = name or f"basis-k{V.shape[1]}"
    target = target.to(z0)
    pixels = distances.mse()
    optimizer = torch.optim.Adam([params], lr=lr)
    history = torch.empty(len(seeds), steps, device=z0.device)
    loss_best = torch.full((len(seeds),), math.inf, device=z0.device)
    z_best, images = z0.clone(), None
    for step in tqdm(range(steps), desc=f"invert ({basis_name})", disable=not progress, leave=False):
        z = code()
        x = G(z)
        if step == 0:
            check_generated(x, len(seeds), distance)
            _check_same_size(target, x)
            images = x.detach().clone()
        loss = distance(target, x)
        if step == 0:
            check_distance_values(loss, len(seeds))
        if pixel_weight:
            loss = loss + pixel_weight * pixels(target, x)
        with torch.no_grad():
            history[:, step] = loss
            better = loss < loss_best
            loss_best = torch.where(better, loss, loss_best)
            z_best[better] = z[better]
            images[better] = x[better]
        optimizer.zero_grad(set_to_none=True)
        loss.sum().backward()  # seeds are independent: the sum gives each its own gradient
        optimizer.step()
    return Inversion(z_best.detach(), loss_best, history, images, basis_name, tuple(int(s) for s in seeds))


@dataclass
class ToyQuadratic:
    """Adam on f(x) = ½ xᵀ H x, H = R Λ Rᵀ, in the original coordinates and in the eigenbasis (x = R c).

    f_original, f_eigenbasis : final f. history_original, history_eigenbasis : (steps + 1,) f from the start.
    x_original, x_eigenbasis : (2,) final points. H : (2, 2).
    """

    f_original: float
    f_eigenbasis: float
    history_original: torch.Tensor
    history_eigenbasis: torch.Tensor
    x_original: torch.Tensor
    x_eigenbasis: torch.Tensor
    H: torch.Tensor


def toy_quadratic(*, rotate: bool = True, steps: int = 100, lr: float = 0.1, eigenvalues=(1.0, 10.0),
                  angle: float = math.pi / 4, start=(0.0, 5.0)) -> ToyQuadratic:
    """The paper's toy: Adam (same lr and steps) on a rotated quadratic, in the original basis vs the eigenbasis.

    Defaults: eigenvalues 1 and 10 rotated by 45°, start (0, 5) (f = 68.75, 45° from both eigenvectors), lr 0.1,
    100 steps: f = 1.15 in the original basis, 4.0e-4 in the eigenbasis. The paper does
    not give its start, lr or steps. rotate=False sets R = I, where both runs coincide.
    """
    angle = angle if rotate else 0.0
    cos, sin = math.cos(angle), math.sin(angle)
    R = torch.tensor([[cos, -sin], [sin, cos]], dtype=torch.float64)
    H = R @ torch.diag(torch.tensor(eigenvalues, dtype=torch.float64)) @ R.T
    x0 = torch.tensor(start, dtype=torch.float64)
    f = lambda x: 0.5 * x @ H @ x  # noqa: E731

    def run(to_x, p0):
        p = p0.clone().requires_grad_(True)
        optimizer = torch.optim.Adam([p], lr=lr)
        values = []
        for _ in range(steps):
            value = f(to_x(p))
            values.append(value.detach())
            optimizer.zero_grad()
            value.backward()
            optimizer.step()
        x = to_x(p).detach()
        values.append(f(x))
        return torch.stack(values), x

    history_original, x_original = run(lambda x: x, x0)
    history_eigen, x_eigen = run(lambda c: R @ c, R.T @ x0)
    return ToyQuadratic(history_original[-1].item(), history_eigen[-1].item(), history_original, history_eigen,
                        x_original, x_eigen, H)


@dataclass
class CMAResult:
    """best_x : (k,) float64. best_f : its value. history : (evaluations,) best-so-far after each evaluation."""

    best_x: torch.Tensor
    best_f: float
    history: torch.Tensor
    evaluations: int


def cma_search(objective: Callable, x0, *, sigma0: float = 0.5, stds=None, budget: int = 1000, seed: int = 0,
               popsize: int | None = None) -> CMAResult:
    """Minimise a batched objective X (n, k) float64 -> (n,) with CMA-ES (`cma.CMAEvolutionStrategy`, ask/tell).

    Parameters
    ----------
    objective : evaluates a whole population in one call.
    x0 : (k,) start. sigma0 : initial step size. stds : (k,) per-coordinate multipliers of sigma0 (`CMA_stds`).
    budget : exact number of objective evaluations; the last population is cut to fit (and not told to CMA).
    seed : seeds CMA's sampling (cma takes 0 as "seed from the clock", so seed s is passed as s + 1);
        numpy's global random state, which cma draws from, is restored afterwards.
    popsize : CMA population size (default cma's 4 + 3 ln k).
    """
    with warnings.catch_warnings():  # cma warns at import when matplotlib is missing; we never plot
        warnings.simplefilter("ignore")
        import cma

    x0 = np.asarray(torch.as_tensor(x0, dtype=torch.float64).cpu(), dtype=np.float64).ravel()
    if budget < 1:
        raise ValueError(f"budget must be at least 1 evaluation, got {budget}")
    options = {"seed": int(seed) + 1, "maxfevals": budget, "verbose": -9}
    if stds is not None:
        stds = np.asarray(torch.as_tensor(stds, dtype=torch.float64).cpu()).ravel()
        if stds.shape != x0.shape or not (stds > 0).all():
            raise ValueError(f"stds must be {x0.shape[0]} positive values, got shape {stds.shape}")
        options["CMA_stds"] = stds
    if popsize is not None:
        options["popsize"] = int(popsize)
    state = np.random.get_state()
    try:
        es = cma.CMAEvolutionStrategy(x0, sigma0, options)
        values, best_x, best_f = [], x0.copy(), math.inf
        while len(values) < budget and not es.stop():
            population = es.ask()
            take = min(len(population), budget - len(values))
            f = _as_values(objective(torch.from_numpy(np.stack(population[:take]))), take)
            values.extend(f.tolist())
            if f.min() < best_f:
                best_f, best_x = float(f.min()), population[int(f.argmin())].copy()
            if take < len(population):
                break
            es.tell(population, f.tolist())
    finally:
        np.random.set_state(state)
    history = torch.cummin(torch.tensor(values, dtype=torch.float64), dim=0).values
    return CMAResult(torch.from_numpy(best_x), best_f, history, len(values))


def hessian_cma_stds(eigvals, power: float = 1 / 2.5, *, floor: float = 1e-6) -> torch.Tensor:
    """CMA step sizes (k,) ∝ λ^(−power) per eigen-direction, normalised to mean 1 (the paper: power 1/2.5).

    eigvals (k,) are clamped below at floor · max(eigvals), so near-zero or slightly negative ones stay finite.
    """
    eigvals = torch.as_tensor(eigvals, dtype=torch.float64).flatten()
    if eigvals.numel() == 0 or not torch.isfinite(eigvals).all() or eigvals.max() <= 0:
        raise ValueError("eigvals must be finite with a positive maximum")
    stds = eigvals.clamp_min(floor * eigvals.max()).pow(-power)
    return stds / stds.mean()


def invert_cma(G, target: torch.Tensor, distance: Callable, *, basis: torch.Tensor | None = None, eigvals=None,
               budget: int = 1000, seed: int = 0, sigma0: float = 0.5, power: float = 1 / 2.5,
               popsize: int | None = None, name: str | None = None, progress: bool = True) -> Inversion:
    """Black-box inversion by CMA-ES from z0 = G.sample(1, seed): on z (basis None) or on c, z = z0 + V c.

    Parameters
    ----------
    basis : (d, k) orthonormal columns, e.g. the top-k eigenvectors of the average metric.
    eigvals : (k,) their eigenvalues: CMA's initial stds ∝ λ^(−power) (`hessian_cma_stds`); None: isotropic.
    budget : number of images evaluated (the same for every variant); populations go through G in one batch.
    sigma0 : CMA's initial step size in z units (per-coordinate stds have mean 1).
    Returns an `Inversion` for one seed whose history is the best-so-far loss per evaluation (1, budget).
    """
    target = _check_target(target, distance)
    z0 = G.sample(1, seed=int(seed)).detach()
    target = target.to(z0)
    if basis is None:
        if eigvals is not None:
            raise ValueError("eigvals need a basis: pass the eigenvectors as `basis`")
        to_z = lambda c: c  # noqa: E731
        x0, stds, basis_name = z0[0], None, name or "z"
    else:
        V = _check_basis(basis, G.latent_dim).to(z0)
        to_z = lambda c: z0 + c @ V.T  # noqa: E731
        x0 = torch.zeros(V.shape[1], dtype=torch.float64)
        stds = None if eigvals is None else hessian_cma_stds(eigvals, power=power)
        if stds is not None and stds.numel() != V.shape[1]:
            raise ValueError(f"eigvals must have one value per basis vector ({V.shape[1]}), got {stds.numel()}")
        basis_name = name or f"basis-k{V.shape[1]}" + ("-hessian" if stds is not None else "")
    with torch.no_grad():
        start_image = G(z0)
        check_generated(start_image, 1, distance)
        _check_same_size(target, start_image)
    bar = tqdm(total=budget, desc=f"CMA ({basis_name})", disable=not progress, leave=False)

    @torch.no_grad()
    def objective(c):
        bar.update(len(c))
        return distance(target, G(to_z(c.to(z0))))

    try:
        result = cma_search(objective, x0, sigma0=sigma0, stds=stds, budget=budget, seed=seed, popsize=popsize)
    finally:
        bar.close()
    with torch.no_grad():
        z_best = to_z(result.best_x.to(z0)[None])
        images = G(z_best)
    history = result.history.to(z0)[None]
    return Inversion(z_best, history[:, -1], history, images, basis_name, (int(seed),))


# Crops of skimage.data.astronaut() (512x512, Eileen Collins): (rows, cols). Located from the luminance map:
# eyes at rows ~96-104 (left eye cols ~190-210, right ~236-256), mouth row ~170, chin row ~185.
_CROPS = {"face": (slice(40, 200), slice(140, 300)), "eye": (slice(70, 134), slice(168, 232))}


def sample_target_images(kind: str = "face", size: int = 64) -> torch.Tensor:
    """A real photograph as a target: (1, 3, size, size) in [-1, 1], from scikit-image's bundled astronaut.

    kind : 'face' (160x160 crop of the face) or 'eye' (64x64 crop of the left eye with its brow).
    Resized with bilinear, antialiased interpolation. No download: the image ships in the wheel.
    """
    if kind not in _CROPS:
        raise ValueError(f"kind must be one of {', '.join(_CROPS)}, got {kind!r}")
    from skimage import data

    rows, cols = _CROPS[kind]
    crop = torch.from_numpy(np.ascontiguousarray(data.astronaut()[rows, cols]))
    x = crop.permute(2, 0, 1)[None].float() / 127.5 - 1
    x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return x.clamp(-1, 1)


# --- checks ------------------------------------------------------------------------------------------------

def _check_target(target, distance=None):
    if not isinstance(target, torch.Tensor):
        raise TypeError(f"target must be a torch.Tensor, got {type(target).__name__}")
    if target.dim() == 3:
        target = target[None]
    if target.dim() != 4 or target.shape[:2] != (1, 3):
        raise ValueError(f"target must be one image of shape (3, H, W) or (1, 3, H, W), got {tuple(target.shape)}")
    check_generated(target, 1, distance, "target")  # finite, floating, in the distance's range
    return target.detach()


def _check_same_size(target, x):
    if target.shape[1:] != x.shape[1:]:
        raise ValueError(f"target is {tuple(target.shape[1:])} but the generator makes {tuple(x.shape[1:])} "
                         f"images; resize the target (e.g. sample_target_images(size={x.shape[-1]}))")


def _check_basis(basis, d):
    basis = torch.as_tensor(basis)
    if basis.dim() != 2 or basis.shape[0] != d or not 0 < basis.shape[1] <= d:
        raise ValueError(f"basis must be a (d, k) matrix with d = {d} and 1 <= k <= d, got {tuple(basis.shape)}")
    gram = basis.double().T @ basis.double()
    error = (gram - torch.eye(basis.shape[1], dtype=torch.float64, device=basis.device)).abs().max().item()
    if error > 1e-4:
        raise ValueError(f"basis columns must be orthonormal (max |VᵀV − I| = {error:.2g}); orthonormalise with "
                         f"torch.linalg.qr or use eigenvectors of a symmetric matrix")
    return basis


def _as_values(f, n):
    f = torch.as_tensor(f).detach().double().cpu().numpy().ravel()
    if f.shape != (n,):
        raise ValueError(f"the objective must return one value per row, shape ({n},); got {f.shape}")
    if not np.isfinite(f).all():
        raise ValueError(f"the objective returned nan or inf for {int((~np.isfinite(f)).sum())} of {n} candidates "
                         f"(the generator output or the distance is not finite there)")
    return f
