"""Interpretable axes: walks along metric eigenvectors (linear or on the sphere), the codes, images and distance
curves of those walks, and the axes of GANSpace (PCA) and SeFa (closed form) with their alignment to the metric.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Sequence

import torch
from torch import nn

from . import generators
from .solvers import fix_signs, top_eigenpairs

MODES = ("linear", "spherical")
PAPER_RANKS = (1, 2, 4, 8, 16, 32)  # the rows of the paper's montages (1-based ranks)


# --- walks -----------------------------------------------------------------------------------------------------

def walk(z0: torch.Tensor, direction: torch.Tensor, steps, mode: str = "linear") -> torch.Tensor:
    """Codes (n_steps, d) at distances `steps` (n_steps,) from z0 (d,) along `direction` (d,).

    linear: z0 + t·v̂. spherical: the great circle of the sphere of radius r = ‖z0‖ through z0, heading along
    u⊥, the part of v orthogonal to z0: z(t) = r (cos(t/r) ẑ0 + sin(t/r) û⊥). In both modes t is arc
    length, so the same steps move the code equally far. Computed in float64, returned in z0's dtype.
    """
    if mode not in MODES:
        raise ValueError(f"mode must be 'linear' or 'spherical', got {mode!r}")
    if z0.dim() != 1 or direction.shape != z0.shape:
        raise ValueError(f"z0 and direction must both have shape (d,), got {tuple(z0.shape)} and "
                         f"{tuple(direction.shape)}")
    z = z0.detach().double()
    v = direction.detach().to(z)
    t = torch.as_tensor(steps, dtype=torch.float64, device=z.device).reshape(-1, 1)
    if v.norm() == 0:
        raise ValueError("direction is the zero vector")
    if mode == "linear":
        return (z + t * (v / v.norm())).to(z0.dtype)
    radius = z.norm()
    if radius == 0:
        raise ValueError("a spherical walk needs z0 ≠ 0 (the sphere of radius ‖z0‖ is a point)")
    z_hat = z / radius
    u = v - (v @ z_hat) * z_hat
    if u.norm() <= 1e-6 * v.norm():
        raise ValueError("direction is parallel to z0: a spherical walk has no tangent direction to follow")
    theta = t / radius
    return (radius * (torch.cos(theta) * z_hat + torch.sin(theta) * (u / u.norm()))).to(z0.dtype)


def step_scales(eigvals: torch.Tensor, power: float = 1 / 3, *, floor: float = 1e-12) -> torch.Tensor:
    """Step multipliers (λ_k / λ_1)^(−power) per rank, (k,) from eigvals (k,) descending.

    A step of t·scale along eigenvector k changes the image about as much for every k (the paper uses
    power 1/3). Ratios are clipped at `floor` so zero or negative eigenvalues give large, finite steps.
    """
    eigvals = torch.as_tensor(eigvals, dtype=torch.float64)
    if eigvals.dim() != 1 or len(eigvals) == 0 or not eigvals[0] > 0:
        raise ValueError(f"eigvals must be (k,), descending, with λ_1 > 0; got shape {tuple(eigvals.shape)}")
    return (eigvals / eigvals[0]).clamp_min(floor) ** (-power)


def eigen_walks(z0: torch.Tensor, eigvecs: torch.Tensor, eigvals: torch.Tensor, ranks: Sequence[int], steps, *,
                mode: str = "linear", power: float = 1 / 3) -> torch.Tensor:
    """Codes (len(ranks), n_steps, d): one walk from z0 (d,) per rank along the metric's eigenvectors.

    eigvecs (d, k) columns and eigvals (k,) descending, of one metric (e.g. `m.eigvecs[0]`, `m.eigvals[0]`,
    or an average metric). Ranks are 1-based as in the paper: rank 1 is the top eigenvector, column 0.
    Row r walks along column ranks[r] − 1 with steps (n_steps,) times `step_scales(eigvals, power)`
    (power=0: the same steps on every row).
    """
    if eigvecs.dim() != 2 or eigvals.shape != eigvecs.shape[1:]:
        raise ValueError(f"eigvecs must be (d, k) and eigvals (k,) of one metric (e.g. m.eigvecs[0], "
                         f"m.eigvals[0]); got {tuple(eigvecs.shape)} and {tuple(eigvals.shape)}")
    k = eigvecs.shape[1]
    bad = [r for r in ranks if not 1 <= int(r) <= k]
    if bad:
        raise ValueError(f"ranks are 1-based and at most k = {k} (the eigenpairs given); got {bad}")
    scales = step_scales(eigvals, power).to(eigvecs.device)
    steps = torch.as_tensor(steps, dtype=torch.float64, device=eigvecs.device)
    return torch.stack([walk(z0, eigvecs[:, r - 1], steps * scales[r - 1], mode) for r in map(int, ranks)])


def walks_at(m, ranks: Sequence[int], steps, *, code: int = 0, mode: str = "linear",
             power: float = 1 / 3) -> torch.Tensor:
    """`eigen_walks` from code `code` of a `Metric` m along its own eigenvectors: (len(ranks), n_steps, d)."""
    return eigen_walks(m.z[code], m.eigvecs[code], m.eigvals[code], ranks, steps, mode=mode, power=power)


def global_walks(average, codes: torch.Tensor, rank: int, steps, *, mode: str = "linear",
                 power: float = 1 / 3) -> torch.Tensor:
    """Walks from each of codes (n, d) along one eigenvector of an average metric (`analysis.average_metric`),
    rank 1-based, steps scaled by its eigenvalues: (n, n_steps, d)."""
    return torch.cat([eigen_walks(z, average.eigvecs, average.eigvals, [rank], steps, mode=mode, power=power)
                      for z in codes])


def walk_labels(eigvals: torch.Tensor, ranks: Sequence[int], steps, power: float = 1 / 3) -> tuple[list, list]:
    """Row and column labels of a montage of `eigen_walks`: "rank 4 (×1.6)" (the rank's step multiplier) and the
    steps along rank 1 ("+0.75")."""
    scales = step_scales(eigvals, power)
    return [f"rank {r} (×{scales[r - 1]:.1f})" for r in ranks], [f"{t:+.2f}" for t in steps]


# --- images and distances along walks ---------------------------------------------------------------------------

def render(G: Callable, codes: torch.Tensor, *, batch: int = 64) -> torch.Tensor:
    """Images (..., 3, H, W) of codes (..., d), e.g. (rows, n_steps, d) from `eigen_walks`, in batches, no grad."""
    flat = _as_input(G, codes).reshape(-1, codes.shape[-1])
    with torch.no_grad():
        images = torch.cat([G(flat[s:s + batch]) for s in range(0, len(flat), batch)])
    return images.reshape(*codes.shape[:-1], *images.shape[1:])


def distance_curves(G: Callable, distance: Callable, z0: torch.Tensor, codes: torch.Tensor, *,
                    batch: int = 64) -> torch.Tensor:
    """Distances d(G(z0), G(code)) (...,) for z0 (d,) and codes (..., d), e.g. (rows, n_steps), no grad."""
    flat = _as_input(G, codes).reshape(-1, codes.shape[-1])
    with torch.no_grad():
        x0 = G(_as_input(G, z0).reshape(1, -1))
        values = []
        for s in range(0, len(flat), batch):
            images = G(flat[s:s + batch])
            values.append(distance(x0.expand_as(images), images))
    return torch.cat(values).reshape(codes.shape[:-1])


def image_distances(G: Callable, distance: Callable, codes_a: torch.Tensor, codes_b: torch.Tensor) -> torch.Tensor:
    """Distances d(G(a), G(b)) (...,) between the images of paired codes (..., d), in one call, no grad."""
    a, b = render(G, codes_a), render(G, codes_b)
    with torch.no_grad():
        return distance(a.flatten(0, -4), b.flatten(0, -4)).reshape(codes_a.shape[:-1])


def step_panels(G: Callable, distance: Callable, m, ranks: Sequence[int], steps, *, mode: str = "linear",
                power: float = 1 / 3) -> dict:
    """Distance from the image of code 0 of a `Metric` m along walks on its eigenvectors, in two panels for
    `viz.line_panels`: {"same step": (steps, {"rank r": (n_steps,)}) for `ranks` and the bottom rank, unscaled;
    "step × (λ_k/λ_1)^(−power)": the same for `ranks` with the scaled steps of the montages}."""
    bottom = sorted(set(ranks) | {m.eigvecs.shape[-1]})
    same = distance_curves(G, distance, m.z[0], walks_at(m, bottom, steps, mode=mode, power=0))
    scaled = distance_curves(G, distance, m.z[0], walks_at(m, ranks, steps, mode=mode, power=power))
    return {"same step": (steps, {f"rank {r}": c for r, c in zip(bottom, same)}),
            f"step × (λ_k/λ_1)^(−{power:.2g})": (steps, {f"rank {r}": c for r, c in zip(ranks, scaled)})}


def global_axis_change(G: Callable, distance: Callable, average, codes: torch.Tensor, ranks: Sequence[int], steps, *,
                       mode: str = "linear", power: float = 1 / 3) -> torch.Tensor:
    """(len(ranks), n): for each global axis (`global_walks`) and each of codes (n, d), the mean distance from the
    code's image to the images at the two ends of its walk: how evenly one axis changes different images."""
    def change(rank):
        ends = global_walks(average, codes, rank, steps, mode=mode, power=power)[:, [0, -1]]
        return torch.stack([distance_curves(G, distance, z, w).mean() for z, w in zip(codes, ends)])

    return torch.stack([change(rank) for rank in ranks])


# --- earlier methods: GANSpace and SeFa ------------------------------------------------------------------------

def pca_directions(G: Callable, module: nn.Module | str, n_samples: int = 2000, k: int = 10, seed: int = 0, *,
                   batch: int = 256) -> torch.Tensor:
    """GANSpace latent directions (d, k), unit columns, sorted by the variance they explain in `module`'s output.

    Samples n_samples codes Z with `G.sample(n, seed)`, records the output Y (N, m) of `module` (a submodule of
    G or its name, e.g. "net.main.0"; layers after it are not run), takes the top-k principal components of
    Y and their coordinates C (N, k), and regresses the centered codes on them, Z ≈ C Bᵀ (Härkönen et al.
    2020): column i of B is the latent direction that moves Y along principal component i.
    """
    if isinstance(module, str):
        module = G.get_submodule(module)
    Z = G.sample(n_samples, seed=seed)
    with torch.no_grad():
        Y = torch.cat([_capture(G, module, Z[s:s + batch]).flatten(1).float() for s in range(0, len(Z), batch)])
    if not 0 < k <= min(Y.shape) - 1:
        raise ValueError(f"k must be between 1 and min(n_samples, activations) - 1 = {min(Y.shape) - 1}, got {k}")
    Y = Y - Y.mean(0)
    # Top-k PCA coordinates C = U_k S_k from the smaller Gram matrix (exact, like an SVD of Y, but cheaper).
    if Y.shape[0] <= Y.shape[1]:
        values, vectors = _top_eigenpairs(Y @ Y.T, k)
        C = vectors * values.clamp_min(0).sqrt()
    else:
        _, vectors = _top_eigenpairs(Y.T @ Y, k)
        C = Y.double() @ vectors
    Z = Z.double().to(C.device)
    B = torch.linalg.lstsq(C, Z - Z.mean(0)).solution.T
    return fix_signs(B / B.norm(dim=0))


def sefa_directions(weight: torch.Tensor, k: int = 10) -> torch.Tensor:
    """SeFa directions (d, k): top-k eigenvectors of AᵀA for the first layer y = A z, A (outputs, d).

    Closed-form factorization (Shen & Zhou 2021): the unit codes that the first layer stretches most.
    Get A with `first_layer_weight(G)`. Columns are sorted by eigenvalue, float64.
    """
    if weight.dim() != 2:
        raise ValueError(f"weight must be the (outputs, d) matrix A of y = A z, got shape {tuple(weight.shape)}; "
                         f"use first_layer_weight(G) to orient a layer's weight")
    if not 0 < k <= weight.shape[1]:
        raise ValueError(f"k must be between 1 and d = {weight.shape[1]}, got {k}")
    A = weight.detach().double()
    _, vectors = torch.linalg.eigh(A.T @ A)
    return fix_signs(vectors[:, -k:].flip(1))


LAYER_TYPES = (nn.Linear, nn.Conv2d, nn.ConvTranspose2d)


def first_layer(G: Callable) -> nn.Module:
    """The first Linear, Conv2d or ConvTranspose2d module to run in G's forward pass (not the first registered)."""
    candidates = [m for m in G.modules() if isinstance(m, LAYER_TYPES)]
    ran = []
    handles = [m.register_forward_pre_hook(_stop_hook(ran, m)) for m in candidates]
    try:
        _run_until_stop(G, _probe(G))
    finally:
        for handle in handles:
            handle.remove()
    if not ran:
        raise ValueError(f"no Linear, Conv2d or ConvTranspose2d layer runs in {type(G).__name__}'s forward pass")
    return ran[0]


def first_layer_weight(G: Callable) -> torch.Tensor:
    """A (outputs, d): the first layer's output (bias aside) is A z, flattened, for codes z (d,).

    Linear weight W (out, in): A = W. ConvTranspose2d weight (in, C, kh, kw) on a 1×1 input: A =
    W.reshape(in, −1)ᵀ (outputs ordered channel, row, column). Conv2d: 1×1 kernels only. What runs before the
    layer (reshaping to (n, d, 1, 1), appending a fixed one-hot class) must be linear in z; it is composed in.
    """
    layer = first_layer(G)
    z = _probe(G)
    layer_input = _capture(G, layer, z, output=False)
    W = layer.weight.detach()
    if isinstance(layer, nn.Linear):
        if layer_input.dim() != 2:
            raise ValueError(f"the first layer {layer} gets input of shape {tuple(layer_input.shape)}, not (n, in)")
        A = W
    else:
        if layer_input.dim() != 4 or layer_input.shape[2:] != (1, 1) or layer.groups != 1:
            raise ValueError(f"the first layer {layer} is a convolution of a {tuple(layer_input.shape[2:])} "
                             f"input; only 1×1 inputs without groups reduce to one matrix")
        if isinstance(layer, nn.ConvTranspose2d):
            if any(p != 0 for p in layer.padding):
                raise ValueError(f"the first layer {layer} crops its output (padding ≠ 0); not supported")
            A = W.reshape(W.shape[0], -1).T
        elif W.shape[2:] == (1, 1):
            A = W[:, :, 0, 0]
        else:
            raise ValueError(f"the first layer {layer} is a Conv2d with a {tuple(W.shape[2:])} kernel; only "
                             f"1×1 kernels reduce to one matrix")
    # How the code reaches the layer: ∂(layer input)/∂z, the same at two points if that map is linear.
    def to_input(code):
        return _capture(G, layer, code[None], output=False).flatten()

    J = torch.autograd.functional.jacobian(to_input, z[0])
    J_other = torch.autograd.functional.jacobian(to_input, G.sample(1, seed=1)[0].to(z))
    if J.shape[0] != A.shape[1] or not torch.allclose(J, J_other):
        raise ValueError(f"the code does not reach {layer} through a fixed linear map; SeFa needs y = A z")
    return A @ J.to(A)


def earlier_axes(G, n_samples: int = 2000, k: int = 10, seed: int = 0) -> dict[str, torch.Tensor]:
    """The top-k directions (d, k) of the earlier methods: GANSpace on the first layer's output and on the first
    block's (after its nonlinearity, `generators.layers`), and SeFa on the first layer's weight."""
    first_block = next(iter(generators.layers(G).values()))
    return {"GANSpace, first layer": pca_directions(G, first_layer(G), n_samples, k, seed),
            "GANSpace, first block": pca_directions(G, first_block, n_samples, k, seed),
            "SeFa": sefa_directions(first_layer_weight(G), k)}


# --- alignment -------------------------------------------------------------------------------------------------

@dataclass
class Alignment:
    """How directions B (d, n) sit relative to metric eigenvectors V (d, m).

    cosine (n, m): |Bᵀ V|, unit columns. energy (n,): ‖V_kᵀ b‖², the fraction of each direction inside the
    top-k eigen-subspace. random_baseline: k/d, its expectation for a random direction. random_energy
    (n_random,): the same energy for seeded random unit directions.
    """

    cosine: torch.Tensor
    energy: torch.Tensor
    random_baseline: float
    random_energy: torch.Tensor
    k: int

    def random_summary(self) -> dict[str, float]:
        """The random directions' energy in the top k: its expectation k/d, its mean and its 95th percentile."""
        return {"k/d": self.random_baseline, "mean": float(self.random_energy.mean()),
                "p95": float(self.random_energy.quantile(0.95))}


def alignment(directions: torch.Tensor, eigvecs: torch.Tensor, k: int = 10, *, n_random: int = 1000,
              seed: int = 0) -> Alignment:
    """Alignment of directions (d, n) with eigvecs (d, m) (orthonormal columns, descending) and their top k."""
    if directions.dim() != 2 or eigvecs.dim() != 2 or directions.shape[0] != eigvecs.shape[0]:
        raise ValueError(f"directions (d, n) and eigvecs (d, m) must share d; got {tuple(directions.shape)} "
                         f"and {tuple(eigvecs.shape)}")
    d, m = eigvecs.shape
    if not 0 < k <= m:
        raise ValueError(f"k must be between 1 and the number of eigenvectors m = {m}, got {k}")
    V = eigvecs.detach().double()
    B = directions.detach().to(V)
    B = B / B.norm(dim=0)
    gen = torch.Generator().manual_seed(int(seed))
    R = torch.randn(d, n_random, generator=gen, dtype=torch.float64).to(V.device)
    R = R / R.norm(dim=0)
    return Alignment(cosine=(B.T @ V).abs(), energy=(V[:, :k].T @ B).pow(2).sum(0), random_baseline=k / d,
                     random_energy=(V[:, :k].T @ R).pow(2).sum(0), k=k)


# --- helpers ---------------------------------------------------------------------------------------------------

class _Stop(Exception):
    """Raised by a hook to end a forward pass once it has what it needs."""


def _stop_hook(store: list, value=None):
    def hook(module, args, *output):
        store.append(value if value is not None else (output[0] if output else args[0]))
        raise _Stop

    return hook


def _run_until_stop(G, z) -> bool:
    try:
        G(z)
    except _Stop:
        return True
    return False


def _capture(G, module: nn.Module, z: torch.Tensor, *, output: bool = True) -> torch.Tensor:
    """The output (or input) of `module` when G runs on z; G stops there."""
    store: list = []
    hook = _stop_hook(store)
    handle = module.register_forward_hook(hook) if output else module.register_forward_pre_hook(hook)
    try:
        stopped = _run_until_stop(G, z)
    finally:
        handle.remove()
    if not stopped:
        raise ValueError(f"{type(module).__name__} does not run in {type(G).__name__}'s forward pass")
    if not isinstance(store[0], torch.Tensor):
        raise ValueError(f"{type(module).__name__} returns {type(store[0]).__name__}, not one tensor")
    return store[0]


def _top_eigenpairs(M: torch.Tensor, k: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The k largest eigenpairs of a symmetric M (n, n), float64 on M's device.

    Lanczos (ARPACK) instead of a full eigh: for k much smaller than n it is several times faster, even on a flat
    spectrum (benchmarks/README.md).
    """
    values, vectors = top_eigenpairs(M.double().cpu().numpy(), k)
    return values.to(M.device), vectors.to(M.device)


def _probe(G) -> torch.Tensor:
    return _as_input(G, G.sample(1, seed=0))


def _as_input(G, z: torch.Tensor) -> torch.Tensor:
    """z on G's device, in its parameters' dtype (float64 eigenvector walks into a float32 model)."""
    params = list(G.parameters()) if isinstance(G, nn.Module) else []
    if not params:
        return z
    return z.to(device=params[0].device, dtype=params[0].dtype)

