"""Local edits: latent directions that change one image region and leave the rest alone, from the metrics of a
region and of the rest (`metric.region_metric`), LowRankGAN's pixel-Jacobian recipe, and how local a walk is.

Two ways to turn the pair (H_region, H_rest) into directions: the generalised eigenproblem
H_region v = λ (H_rest + δI) v (`generalized_directions`: most change inside per unit change outside, the
closed form ReSeFa uses on pixel Jacobians) and LowRankGAN's recipe (`lowrank_directions`: the principal
subspace of H_region projected onto the null space of H_rest). `lowrankgan_directions` is LowRankGAN's whole
method on the pixel Jacobian, reimplemented from its code; `locality` measures any direction. The methods
compared at a set of codes, as chapter 07 does: `directions_by_method`, `walk_ratios` and their summaries.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch.func import vjp, vmap
from tqdm.auto import tqdm

from .distances import Region, resize_mask
from . import checks
from .metric import Metric
from .solvers import fix_signs
from .report import interval, phrase_list
from .stats import pearson, percentile_bootstrap
from .threads import one_thread

TAU = 1e-3  # δ = TAU · tr(H_rest): ReSeFa's default regulariser (`--tao 1e-3`, "coefficient to the identity")
LAMB = 1 / 60  # LowRankGAN's Robust PCA sparsity weight (`--lamb 60`, used as 1/lamb)


@dataclass
class Directions:
    """Latent directions (d, k), unit columns, in the method's order, with a score (k,) per direction.

    generalized: scores are the generalised eigenvalues λ = vᵀH_region v / vᵀ(H_rest + δI)v, descending.
    lowrank: scores are the singular values of the region's low-rank part; info has the ranks found.
    """

    vectors: torch.Tensor
    scores: torch.Tensor
    method: str
    info: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return self.vectors.shape[1]


# --- directions from a pair of metrics ---------------------------------------------------------------------------

def generalized_directions(H_region, H_rest, k: int | None = None, *, tau: float = TAU) -> Directions:
    """Top-k solutions of H_region v = λ (H_rest + δI) v, δ = tau · tr(H_rest), for one pair of (d, d) metrics.

    v maximises the generalised Rayleigh quotient vᵀH_region v / vᵀ(H_rest + δI) v: the most change inside the
    region per unit change outside, to second order. δ keeps the right side positive definite where H_rest is
    singular (its null space would otherwise give λ = ∞); tau is relative to the trace, as in ReSeFa
    (δ = tau·d times the mean eigenvalue of H_rest). For global local axes pass the average metrics
    (`H.mean(0)` of each). Returns unit columns (d, k), λ descending; k defaults to d.
    """
    A, B = _pair(H_region, H_rest)
    d = A.shape[0]
    k = d if k is None else checks.positive_int(k, "k")
    if not 0 < k <= d:
        raise ValueError(f"k must be between 1 and d = {d}, got {k}")
    tau = checks.number(tau, "tau", low=0)
    delta = tau * torch.trace(B).item()
    B = B + delta * torch.eye(d, dtype=B.dtype)
    # B = C Cᵀ: the pencil is the symmetric problem C⁻¹ A C⁻ᵀ w = λ w, with v = C⁻ᵀ w (as LAPACK's sygv)
    with one_thread():
        C, info = torch.linalg.cholesky_ex(B)
        if info.item() != 0:
            raise ValueError(f"H_rest + δI is not positive definite (δ = {delta:.3g}); use tau > 0")
        A_ = torch.linalg.solve_triangular(C, torch.linalg.solve_triangular(C, A, upper=False).T, upper=False)
        values, W = torch.linalg.eigh((A_ + A_.T) / 2)
        vectors = torch.linalg.solve_triangular(C.T, W[:, d - k:], upper=True)
    values, vectors = values[d - k:].flip(0), vectors.flip(1)
    return Directions(fix_signs(vectors / vectors.norm(dim=0)), values, "generalized", {"delta": delta, "tau": tau})


def robust_pca(M, lamb: float = LAMB, max_iter: int = 10000) -> tuple[torch.Tensor, torch.Tensor, int]:
    """M = L + S with L low-rank and S sparse: Principal Component Pursuit by ADMM, as LowRankGAN's RobustPCA.py.

    min ‖L‖_* + lamb ‖S‖_1 subject to L + S = M, with their constants: μ = mn / (4 ‖M‖_1) (‖·‖_1 the largest
    column sum), stopping when ‖L + S − M‖_F ≤ 1e-7 ‖M‖_F or after max_iter iterations.
    Returns L, S (float64) and the number of iterations.
    """
    M = checks.square_matrix(M)
    symmetric = torch.equal(M, M.T)  # then every iterate is symmetric and an eigh replaces the SVD
    mu = M.numel() / (4 * torch.linalg.matrix_norm(M, ord=1).item())
    mu_inv = 1 / mu
    tolerance = 1e-7 * torch.linalg.matrix_norm(M).item()
    S = torch.zeros_like(M)
    L = torch.zeros_like(M)
    Y = torch.zeros_like(M)
    error, iterations = float("inf"), 0
    with one_thread():
        while error > tolerance and iterations < max_iter:
            L = _singular_value_threshold(M - S - mu_inv * Y, mu_inv, symmetric)
            S = _shrink(M - L - mu_inv * Y, mu_inv * lamb)
            Y = Y + mu * (L + S - M)
            error = torch.linalg.matrix_norm(L + S - M).item()
            iterations += 1
    return L, S, iterations


def lowrank_directions(H_region, H_rest, *, lamb: float = LAMB, max_iter: int = 10000,
                       num_relax: int = 0) -> Directions:
    """LowRankGAN's recipe (Zhu et al. 2021, compute_directions.py) on one pair of (d, d) matrices.

    Robust PCA splits each matrix into low-rank and sparse parts; the rank of a low-rank part L is its
    numerical rank (numpy's matrix_rank tolerance, as in their code). The region's principal subspace is the
    top rank_f right singular vectors of L_region; the rest's null space is spanned by its right singular
    vectors after the first r = min(max(1, rank_b − num_relax), d − 1). Each principal direction is projected
    onto that null space and normalised. Returns rank_f directions (d, rank_f) in principal order (projections
    that vanish are dropped, and counted in info["dropped"]); scores are L_region's singular values.
    """
    A, B = _pair(H_region, H_rest)
    d = A.shape[0]
    L_f, _, iter_f = robust_pca(A, lamb, max_iter)
    L_b, _, iter_b = robust_pca(B, lamb, max_iter)
    with one_thread():
        rank_f, rank_b = (int(torch.linalg.matrix_rank(L)) for L in (L_f, L_b))  # numpy's default tolerance
        _, sigma_f, VH_f = torch.linalg.svd(L_f)
        _, _, VH_b = torch.linalg.svd(L_b)
    principal = VH_f[:rank_f]
    relax = min(max(1, rank_b - num_relax), d - 1)
    null = VH_b[relax:].T
    projected = null @ (null.T @ principal.T)  # (d, rank_f)
    norms = projected.norm(dim=0)
    keep = norms > 1e-12 * max([1.0] + norms.tolist())
    info = {"rank_region": rank_f, "rank_rest": rank_b, "null_dim": d - relax, "dropped": int((~keep).sum()),
            "iterations": (iter_f, iter_b), "lamb": lamb}
    return Directions(fix_signs(projected[:, keep] / norms[keep]), sigma_f[:rank_f].clone()[keep],
                      "lowrank", info)


def quotients(H_region, H_rest, vectors: torch.Tensor, *, tau: float = TAU) -> torch.Tensor:
    """Generalised Rayleigh quotients vᵀH_region v / vᵀ(H_rest + δI)v, δ = tau·tr(H_rest), of vectors (d, k).

    H_region, H_rest : (d, d) or (b, d, d) (or `Metric`s). Returns (k,) or (b, k): each pencil's quotients.
    """
    A, B = (_metrics(H) for H in (H_region, H_rest))
    tau = checks.number(tau, "tau", low=0)
    V = checks.directions(vectors, A.shape[-1]).to(A)
    delta = tau * torch.diagonal(B, dim1=-2, dim2=-1).sum(-1)  # (b,)
    num = torch.einsum("dk,bde,ek->bk", V, A, V)
    den = torch.einsum("dk,bde,ek->bk", V, B, V) + delta[:, None] * (V * V).sum(0)
    out = num / den
    return out[0] if _metrics_single(H_region) else out


def region_homogeneity(H_region, H_rest, k: int = 20, *, tau: float = TAU) -> torch.Tensor:
    """The paper's homogeneity asked of a region: (b, b) correlations, across ranks 1..k, of
    log10 q_k^{ij} (code i's k-th generalised eigenvector, scored by the pencil of code j) with log10 λ_k(j)
    (code j's own generalised eigenvalues). 1 when every code's local directions order as code j's own.

    H_region, H_rest : (b, d, d) or `Metric`s. The diagonal is 1 exactly.
    """
    A, B = _metrics(H_region), _metrics(H_rest)
    b = A.shape[0]
    own = [generalized_directions(A[j], B[j], k, tau=tau) for j in range(b)]
    lam = torch.stack([o.scores for o in own]).clamp_min(1e-300).log10()  # (b, k)
    out = torch.empty(b, b, dtype=torch.float64)
    for i in range(b):
        q = quotients(A, B, own[i].vectors, tau=tau).clamp_min(1e-300).log10()  # (b, k): code i's vectors at j
        out[i] = pearson(q, lam)
    out.fill_diagonal_(1.0)
    return out


# --- LowRankGAN's method on the pixel Jacobian -------------------------------------------------------------------

def pixel_jacobian(G: Callable, z: torch.Tensor, *, size: int | None = None, fuse_channels: bool = True,
                   vectorize: bool = True, chunk_size: int = 256, progress: bool = False) -> torch.Tensor:
    """Reverse-mode Jacobian (P, d) of G's pixels at one code z (d,), as LowRankGAN's compute_jacobian.py.

    The image is resized to size × size by nearest neighbour first if size differs from its own (their
    tf.image.resize_images method 1) and, if fuse_channels, averaged over RGB (their default), so
    P = size² (or 3·size²), rows in (channel,) row, column order. One backward pass per pixel: vectorize=True
    batches `chunk_size` of them per vmapped call; vectorize=False runs them one at a time, as their code does
    (TensorFlow's jacobian with use_pfor=False; ReSeFa's torch.autograd.functional.jacobian).
    """
    z, _ = checks.latents(G, z)
    if len(z) != 1:
        raise ValueError(f"pixel_jacobian works at one code; got {len(z)}")
    checks.model(G, z)
    image = pixel_map(G, size, fuse_channels)
    with torch.no_grad():
        n_rows = image(z[0]).numel()
    return pixel_rows(image, z[0], range(n_rows), vectorize=vectorize, chunk_size=chunk_size, progress=progress)


def pixel_map(G: Callable, size: int | None = None, fuse_channels: bool = True) -> Callable:
    """The function code (d,) -> pixels (P,) whose Jacobian `pixel_jacobian` takes: G's image at one code, resized
    to size × size by nearest neighbour (if it differs) and averaged over RGB if fuse_channels, flattened."""
    def image(code):  # (d,) -> (P,)
        x = G(code[None])
        if size is not None and x.shape[-1] != size:
            x = F.interpolate(x, size=(size, size), mode="nearest")
        return (x.mean(1) if fuse_channels else x).flatten()

    return image


def pixel_rows(image: Callable, z: torch.Tensor, rows, *, vectorize: bool = True, chunk_size: int = 256,
               progress: bool = False) -> torch.Tensor:
    """Rows `rows` (pixel indices) of the Jacobian of `image` (a `pixel_map`) at z (d,), (len(rows), d), one
    reverse pass each: vmapped `chunk_size` at a time if vectorize, else one at a time (see `pixel_jacobian`)."""
    rows = list(rows)
    out = torch.empty(len(rows), z.shape[0], dtype=z.dtype, device=z.device)
    if vectorize:
        y, pull = vjp(image, z)
        for s in tqdm(range(0, len(rows), chunk_size), desc="pixel Jacobian", disable=not progress, leave=False):
            block = torch.tensor(rows[s:s + chunk_size], device=z.device)
            out[s:s + len(block)] = vmap(pull)(F.one_hot(block, y.numel()).to(y.dtype))[0].detach()
        return out
    z_var = z.detach().clone().requires_grad_(True)
    y = image(z_var)
    for n, r in enumerate(tqdm(rows, desc="pixel Jacobian", disable=not progress, leave=False)):
        (out[n],) = torch.autograd.grad(y[r], z_var, retain_graph=n < len(rows) - 1)
    return out


def pixel_region_metrics(J: torch.Tensor, mask, shape) -> tuple[torch.Tensor, torch.Tensor]:
    """LowRankGAN's masked JᵀJ: (J_fᵀJ_f / n_f, J_bᵀJ_b / n_b), each (d, d) float64, from a pixel Jacobian J (P, d).

    shape : the (h, w) grid of J's rows (P = h·w, or 3·h·w for unfused channels). Their masks are binary
    boxes; `mask` (any resolution, values in [0, 1]) is resized to (h, w) by area and pixels at least half
    inside are the foreground f, the others the background b (a partition of the image, as theirs).
    """
    h, w = shape
    fore = (resize_mask(mask, (h, w)) >= 0.5).flatten().to(J.device)
    if J.shape[0] % (h * w):
        raise ValueError(f"J has {J.shape[0]} rows, not a multiple of the {h}×{w} grid")
    fore = fore.repeat(J.shape[0] // (h * w))
    if fore.all() or not fore.any():
        raise ValueError("the binarised mask is all foreground or all background at this resolution")
    J = J.double()
    J_f, J_b = J[fore], J[~fore]
    return J_f.T @ J_f / len(J_f), J_b.T @ J_b / len(J_b)


def lowrankgan_directions(G: Callable, z: torch.Tensor, mask, *, size: int | None = None, fuse_channels: bool = True,
                          lamb: float = LAMB, max_iter: int = 10000, num_relax: int = 0, vectorize: bool = True,
                          chunk_size: int = 256, jacobian: torch.Tensor | None = None) -> Directions:
    """LowRankGAN's whole method at one code z (d,): the pixel Jacobian (`pixel_jacobian`), masked JᵀJ of the
    region and of the rest (`pixel_region_metrics`), then `lowrank_directions` on the two.

    jacobian : the pixel Jacobian of G at z with the same size and fuse_channels, to reuse it across masks
    (it does not depend on the mask); computed here if None.
    """
    J = jacobian if jacobian is not None else pixel_jacobian(G, z, size=size, fuse_channels=fuse_channels,
                                                             vectorize=vectorize, chunk_size=chunk_size)
    with torch.no_grad():
        shape = G(checks.latents(G, z)[0]).shape[-2:]
    h, w = (size, size) if size is not None and shape[-1] != size else shape
    M_fore, M_back = pixel_region_metrics(J, mask, (h, w))
    out = lowrank_directions(M_fore, M_back, lamb=lamb, max_iter=max_iter, num_relax=num_relax)
    out.method = "lowrankgan"
    return out


# --- how local a walk is ------------------------------------------------------------------------------------------

@dataclass
class Locality:
    """Walks from z0 along k directions, each way, to the step where the in-region change reaches `target`.

    steps (2, k): signed step lengths (row 0 towards −v, row 1 towards +v). inside, outside (2, k): the
    region's and the rest's changes there (`Region` distances, normalised as the region given). reached
    (2, k): False where the in-region change stayed below target up to max_step (the step is then max_step).
    ratio (k,): inside.sum(0) / outside.sum(0), the in/out ratio of the direction at matched in-region change.
    """

    steps: torch.Tensor
    inside: torch.Tensor
    outside: torch.Tensor
    reached: torch.Tensor
    target: float

    @property
    def ratio(self) -> torch.Tensor:
        return self.inside.sum(0) / self.outside.sum(0)


def changes(G: Callable, z0: torch.Tensor, directions: torch.Tensor, steps: torch.Tensor,
            region: Region, *, reference: tuple[torch.Tensor, torch.Tensor] | None = None
            ) -> tuple[torch.Tensor, torch.Tensor]:
    """The changes (inside, outside), each shaped like steps (..., k), of the walks z0 + s·v̂_k.

    z0 (d,), directions (d, k), steps (..., k); inside and outside are `region` and its complement, from one
    pass of the distance's feature maps. reference: `region.split_features(G(z0))`, if already computed.
    No grad.
    """
    V = directions.detach().double()
    V = V / V.norm(dim=0)
    codes = z0.detach().double() + steps.detach().double()[..., None] * V.T  # (..., k, d)
    flat = codes.reshape(-1, codes.shape[-1])
    params = list(G.parameters()) if isinstance(G, torch.nn.Module) else []
    flat = flat.to(dtype=params[0].dtype if params else torch.float32, device=z0.device)
    with torch.no_grad():
        f0_in, f0_out = reference if reference is not None else region.split_features(G(z0.to(flat)[None]))
        x = G(flat)
        f_in, f_out = region.split_features(x)
    inside = (f_in - f0_in).pow(2).sum(1).double().reshape(steps.shape)
    outside = (f_out - f0_out).pow(2).sum(1).double().reshape(steps.shape)
    return inside, outside


def locality(G: Callable, z0: torch.Tensor, directions: torch.Tensor, region: Region, target: float, *,
             max_step: float | None = None, first_step=0.25, rtol: float = 1e-2, max_iter: int = 30) -> Locality:
    """Walk each way along each direction (d, k) until the in-region change equals `target`, and measure outside.

    The step is found per direction and sign, on the square root of the change (about linear in the step): from
    `first_step` (a float, or (k,) guesses such as √(2·target / vᵀH_region v) from the region's metric) it is
    doubled or cut until the change crosses target (up to max_step, default ‖z0‖), then refined by false
    position, kept inside the middle 80 % of the bracket, until the change is within rtol of target. Each
    round renders the walks still searching in one batch. Assumes the change grows with the step up to the
    match.
    """
    target = checks.number(target, "target", low=0, low_open=True)
    checks.model(G, checks.latents(G, z0)[0], region)
    z0 = z0.detach()
    if z0.dim() != 1 or directions.dim() != 2 or directions.shape[0] != z0.shape[0]:
        raise ValueError(f"z0 must be (d,) and directions (d, k); got {tuple(z0.shape)} and {tuple(directions.shape)}")
    max_step = float(z0.norm()) if max_step is None else float(max_step)
    k = directions.shape[1]
    # the 2k walks, flattened: walk w goes along column w % k, towards −v for w < k and +v after
    V = directions.detach().repeat(1, 2)
    sign = torch.tensor([-1.0, 1.0], dtype=torch.float64).repeat_interleave(k)
    t = torch.as_tensor(first_step, dtype=torch.float64).expand(k).repeat(2).clamp(1e-12, max_step).clone()
    with torch.no_grad():
        params = list(G.parameters()) if isinstance(G, torch.nn.Module) else []
        reference = region.split_features(G(z0.to(params[0].dtype if params else torch.float32)[None]))

    def inside_at(active):
        return changes(G, z0, V[:, active], sign[active] * t[active], region, reference=reference)[0]

    goal = target ** 0.5
    lo, root_lo = torch.zeros(2 * k, dtype=torch.float64), torch.zeros(2 * k, dtype=torch.float64)
    hi, root_hi = torch.full((2 * k,), float("inf"), dtype=torch.float64), torch.zeros(2 * k, dtype=torch.float64)
    done = torch.zeros(2 * k, dtype=torch.bool)
    close = torch.zeros(2 * k, dtype=torch.bool)
    unreachable = torch.zeros(2 * k, dtype=torch.bool)
    value = torch.zeros(2 * k, dtype=torch.float64)
    for _ in range(max_iter):
        active = ~done
        value[active] = inside_at(active)
        root, below = value.sqrt(), value < target
        update_lo, update_hi = active & below & (t > lo), active & ~below & (t < hi)
        lo, root_lo = torch.where(update_lo, t, lo), torch.where(update_lo, root, root_lo)
        hi, root_hi = torch.where(update_hi, t, hi), torch.where(update_hi, root, root_hi)
        close = (value - target).abs() <= rtol * target
        unreachable = below & (t >= max_step)
        done = close | unreachable
        if done.all():
            break
        bracketed = torch.isfinite(hi)
        width = torch.where(bracketed, hi - lo, torch.zeros_like(hi))
        secant = lo + width * (goal - root_lo) / (root_hi - root_lo).clamp_min(1e-300)
        secant = torch.minimum(torch.maximum(secant, lo + 0.1 * width), hi - 0.1 * width)
        t = torch.where(done, t, torch.where(bracketed, secant, (2 * t).clamp_max(max_step)))
    t = torch.where(done, t, torch.where(torch.isfinite(hi), hi, t))  # out of rounds: the nearest step above
    inside, outside = changes(G, z0, V, sign * t, region, reference=reference)
    return Locality((sign * t).reshape(2, k), inside.reshape(2, k), outside.reshape(2, k),
                    ~unreachable.reshape(2, k), float(target))


# --- summaries ----------------------------------------------------------------------------------------------------

def geometric_mean(ratios, *, n_boot: int = 2000, seed: int = 0, level: float = 0.95) -> tuple[float, float, float]:
    """Geometric mean of positive ratios (codes, n) and a percentile bootstrap interval over codes (rows).

    Codes are resampled with replacement, all of a code's n values together (directions at one code are not
    independent). Returns (estimate, low, high).
    """
    logs = torch.as_tensor(ratios, dtype=torch.float64)
    logs = logs[:, None] if logs.dim() == 1 else logs
    if logs.dim() != 2 or logs.numel() == 0 or not (logs > 0).all():
        raise ValueError(f"ratios must be a non-empty (codes, n) array of positive values, got shape "
                         f"{tuple(logs.shape)}")
    logs = logs.log()
    return (logs.mean().exp().item(), *_interval(logs, n_boot, seed, level))


def fold_change(ratios_a, ratios_b, *, n_boot: int = 2000, seed: int = 0,
                level: float = 0.95) -> tuple[float, float, float]:
    """How many times larger a's ratios are than b's: the geometric mean of a over that of b, paired by code
    (rows of (codes, n_a) and (codes, n_b)), with a percentile bootstrap interval over codes."""
    a, b = (torch.as_tensor(r, dtype=torch.float64) for r in (ratios_a, ratios_b))
    a, b = (x[:, None] if x.dim() == 1 else x for x in (a, b))
    if len(a) != len(b) or not ((a > 0).all() and (b > 0).all()):
        raise ValueError(f"ratios_a and ratios_b must be positive with one row per code each; got {tuple(a.shape)} "
                         f"and {tuple(b.shape)}")
    diff = (a.log().mean(1) - b.log().mean(1))[:, None]  # per code
    return (diff.mean().exp().item(), *_interval(diff, n_boot, seed, level))


def _interval(logs, n_boot, seed, level):
    """exp of the bootstrap interval of the mean of logs (codes, n), resampling codes (rows); (nan, nan) for one
    code, which has nothing to resample (its interval would have no width)."""
    if len(logs) < 2:
        return math.nan, math.nan
    low, high = percentile_bootstrap(lambda draws: logs[torch.from_numpy(draws)].mean(dim=(1, 2)).numpy(), len(logs),
                                     n_boot=n_boot, level=level, seed=seed)
    return math.exp(low), math.exp(high)


# --- methods compared at a set of codes (chapter 07) --------------------------------------------------------------

METHODS = ("generalized", "global local axes", "low-rank (ours)", "LowRankGAN", "global top")  # in table order


@dataclass
class Found:
    """The directions of every method at every code of one generator (`directions_by_method`).

    directions : {region: one {method: unit directions (d, ≤ k)} per code}. lowrank_info : {"region, code i":
    {"ours": info, "LowRankGAN": info}} of the Robust PCA runs (`Directions.info`). seconds_pixel,
    seconds_rpca : mean seconds of one pixel Jacobian and of one Robust PCA recipe (nan where none ran).
    """

    directions: dict[str, list[dict[str, torch.Tensor]]]
    lowrank_info: dict[str, dict]
    seconds_pixel: float
    seconds_rpca: float


def leave_one_out(H: torch.Tensor, i: int) -> torch.Tensor:
    """The mean of H (b, ...) over every index but i: what a code's global local axes are fitted to."""
    others = [j for j in range(len(H)) if j != i]
    return H[others].mean(0)


def directions_by_method(G: Callable, codes: torch.Tensor, pairs: dict, masks: dict, whole: torch.Tensor, k: int, *,
                         tau: float = TAU, lowrank_codes: int = 1, lowrank_regions=(), pixel_size: int | None = None,
                         max_iter: int = 10000) -> Found:
    """Up to k directions of each method of `METHODS` at every code (b, d), for every region.

    pairs : {region: (H_region, H_rest) `Metric`s at the codes} (`metric.region_metrics`); masks : {region: mask};
    whole : (b, d, d) the whole-image metrics. generalized: `generalized_directions` of the code's pair; global
    local axes: of the average pair over the other codes (`leave_one_out`; only with two codes or more); global
    top: the whole metric's top eigenvectors. The two low-rank methods (`lowrank_directions` on our pair,
    `lowrankgan_directions` on a pixel Jacobian at pixel_size, one per code) run at the first `lowrank_codes`
    codes in `lowrank_regions` only: Robust PCA is slow. Their run times are measured here.
    """
    directions, info = {name: [] for name in masks}, {}
    pixel_times, rpca_times = [], []
    for i, z in enumerate(codes):
        jacobian = None
        if i < lowrank_codes and set(lowrank_regions) & set(masks):
            start = time.perf_counter()
            jacobian = pixel_jacobian(G, z, size=pixel_size)
            pixel_times.append(time.perf_counter() - start)
        eigvecs = torch.linalg.eigh(whole[i])[1].flip(1)
        for name, (region, rest) in pairs.items():
            found = {"generalized": generalized_directions(region.H[i], rest.H[i], k, tau=tau).vectors,
                     "global top": eigvecs[:, :k]}
            if len(codes) > 1:
                found["global local axes"] = generalized_directions(
                    leave_one_out(region.H, i), leave_one_out(rest.H, i), k, tau=tau).vectors
            if i < lowrank_codes and name in lowrank_regions:
                start = time.perf_counter()
                ours = lowrank_directions(region.H[i], rest.H[i], max_iter=max_iter)
                theirs = lowrankgan_directions(G, z, masks[name], size=pixel_size, max_iter=max_iter, jacobian=jacobian)
                rpca_times.append((time.perf_counter() - start) / 2)
                found["low-rank (ours)"], found["LowRankGAN"] = ours.vectors[:, :k], theirs.vectors[:, :k]
                info[f"{name}, code {i}"] = {"ours": ours.info, "LowRankGAN": theirs.info}
            directions[name].append(found)
    return Found(directions, info, float(np.mean(pixel_times)) if pixel_times else float("nan"),
                 float(np.mean(rpca_times)) if rpca_times else float("nan"))


def walk_ratios(G: Callable, z0: torch.Tensor, found: dict[str, torch.Tensor], H_region: torch.Tensor, mask,
                distance, target: float, *, rtol: float = 1e-2, pixels=None) -> dict[str, dict[str, list]]:
    """How local every direction of `found` ({method: (d, k)}) is at z0 (d,), from one batch of walks (`locality`).

    Each walk is matched to the change `target` of `distance` inside the mask (a `Region`, averaged over it),
    within rtol, from the step where the region's quadratic approximation reaches it (H_region (d, d) at z0).
    The same walks are then scored in pixels (`pixels`, default `distances.mse()`). Returns, per method, the
    in/out ratios in the distance ("lpips") and in pixels ("pixels"), the steps [−, +] and whether both ends
    reached the target ("reached"), one entry per direction.
    """
    from .distances import mse

    pixels = mse() if pixels is None else pixels
    labels = [(method, j) for method, V in found.items() for j in range(V.shape[1])]
    V = torch.cat(list(found.values()), dim=1)
    V = V / V.norm(dim=0)
    curvature = torch.einsum("dk,de,ek->k", V, H_region, V)  # vᵀ H_region v
    first = (2 * target / curvature.clamp_min(1e-12)).sqrt()  # the step where ½ t² vᵀH v = target
    walk = locality(G, z0, V, Region(distance, mask), target, first_step=first, rtol=rtol)
    inside, outside = changes(G, z0, V, walk.steps, Region(pixels, mask))
    pixel_ratio = inside.sum(0) / outside.sum(0)
    out = {}
    for n, (method, j) in enumerate(labels):
        entry = out.setdefault(method, {"lpips": [], "pixels": [], "steps": [], "reached": []})
        entry["lpips"].append(float(walk.ratio[n]))
        entry["pixels"].append(float(pixel_ratio[n]))
        entry["steps"].append(walk.steps[:, n].tolist())
        entry["reached"].append(bool(walk.reached[:, n].all()))
    return out


def method_summary(measured: list[dict], method: str, measure: str = "lpips", *, n_boot: int = 2000,
                   seed: int = 0) -> tuple[float, float, float] | None:
    """`geometric_mean` (with its interval over codes) of a method's ratios `measure` ("lpips" or "pixels") in
    `measured`, one `walk_ratios` per code; codes where the method did not run or found nothing are left out,
    and every code is cut to the fewest directions any has. None if it ran nowhere."""
    rows = [q[method][measure] for q in measured if method in q and q[method][measure]]
    if not rows:
        return None
    width = min(len(r) for r in rows)
    return geometric_mean([r[:width] for r in rows], n_boot=n_boot, seed=seed)


def fold_over_regions(measured: dict[str, list[dict]], a: str = "generalized", b: str = "global top", *,
                      measure: str = "lpips", k: int | None = None, n_boot: int = 2000,
                      seed: int = 0) -> tuple[float, float, float]:
    """`fold_change` of method a's ratios over method b's, every (region, code) of `measured` ({region: one
    `walk_ratios` per code}) a row of its first k directions."""
    rows_a = [q[a][measure][:k] for per_code in measured.values() for q in per_code]
    rows_b = [q[b][measure][:k] for per_code in measured.values() for q in per_code]
    return fold_change(rows_a, rows_b, n_boot=n_boot, seed=seed)


def estimate_text(value) -> str:
    """An estimate (estimate, low, high) as a table cell: "8.78 [7.75, 9.97]"; "8.78 (one code: no interval)"
    where there was one code to resample; "not run" for None (`method_summary` of a method that ran nowhere)."""
    if value is None:
        return "not run"
    estimate, low, high = value
    return f"{estimate:.3g} " + (interval(low, high) if math.isfinite(low) and math.isfinite(high)
                                 else "(one code: no interval)")


SEVERAL = 3.0  # a fold whose whole interval lies above this is "several times more local"


def locality_verdict(low: float) -> str:
    """How much more local than the global axes, judged on the lower end `low` of the fold's interval: above
    SEVERAL, above one, or not (nan: one code, no interval)."""
    if not math.isfinite(low):
        return "not to be judged against the global axes from one code (no interval)"
    return (f"several times more local than the global axes (the whole interval lies above {SEVERAL:g})"
            if low > SEVERAL else
            f"more local than the global axes, though not several times (the interval starts at {low:.3g}, below "
            f"{SEVERAL:g})" if low > 1 else
            f"not clearly more local than the global axes (the interval reaches {low:.3g}, at or below one)")


def homogeneity_note(model: str, value: float, n_codes: int, lpips_size: int | None, native: int, *,
                     chapter_model: str, seed: int, chapter_seed: int = 0) -> str:
    """Why this chapter's whole-image homogeneity of `model` (`value`, over n_codes codes, LPIPS at lpips_size
    px, `native` its images' size) is not chapter 03's for the same model (`chapter_model`, its codes from
    `chapter_seed`, LPIPS at the generator's own size): the fewer codes and the working size, as chapter 03
    measures them; "" when chapter 03 studies another model, or for one code (no pairs)."""
    if model != chapter_model or n_codes < 2:
        return ""
    reasons = [f"it averages over the {n_codes * (n_codes - 1)} ordered pairs of only "
               + (f"{n_codes} codes, the first {n_codes} of chapter 03's (the same seed)" if seed == chapter_seed
                  else f"{n_codes} codes, drawn from another seed than chapter 03's")]
    if lpips_size and lpips_size != native:
        reasons.append(f"LPIPS works at {lpips_size} px, the {native} px images resized, where chapter 03 works "
                       f"at the generator's own {native} px")
    return (f"The whole-image homogeneity of `{model}` here, {value:.3g}, is not chapter 03's for the same model: "
            f"{phrase_list(reasons)}. Chapter 03 measures its first codes at both working sizes and says how "
            f"much of the difference each of the two accounts for.")


def with_samples(G: Callable, mean: torch.Tensor, n: int, *, seed: int) -> torch.Tensor:
    """(1 + n, 3, H, W): the mean image (`regions.mean_image`) and n samples of G (seeded), to draw regions on."""
    with torch.no_grad():
        return torch.cat([mean[None], G(G.sample(n, seed=seed))])


def trace_share(H_region, H, area: float) -> float:
    """The region's share of the metric, a·tr H_region / tr H, averaged over codes (H_region a `Metric` or
    (b, d, d); H (b, d, d) the whole image's)."""
    H_region = H_region.H if isinstance(H_region, Metric) else H_region
    return float((area * torch.diagonal(H_region, dim1=1, dim2=2).sum(1) / torch.diagonal(H, dim1=1, dim2=2).sum(1))
                 .mean())


def held_out_transfer(H_region: torch.Tensor, H_rest: torch.Tensor, axes, *, tau: float = TAU) -> float:
    """How well global local axes do at a code they were not fitted to: the mean over codes i of the generalised
    Rayleigh quotient of axes[i][:, 0] under code i's pair (H_region[i], H_rest[i]), as a fraction of code i's
    own top generalised eigenvalue. axes : one (d, ≥1) per code, fitted without it (`leave_one_out`)."""
    fractions = []
    for i, V in enumerate(axes):
        own = generalized_directions(H_region[i], H_rest[i], 1, tau=tau).scores[0]
        fractions.append(float(quotients(H_region[i], H_rest[i], V[:, :1], tau=tau)[0] / own))
    return float(np.mean(fractions))


def walk_examples(G: Callable, z0: torch.Tensor, found: dict[str, dict], measured: dict[str, dict],
                  methods=("generalized", "LowRankGAN", "global top")) -> list[tuple[str, str, torch.Tensor]]:
    """Images along the first direction of each of `methods` in each region, at the code z0 (d,): (region, method,
    images (5, 3, H, W)) at −2, −1, 0, +1 and +2 times the matched steps of `walk_ratios`. found, measured :
    {region: {method: ...}} at z0; methods that did not run or found nothing there are left out."""
    walks = []
    for name, at_code in found.items():
        for method in methods:
            if method not in at_code or at_code[method].shape[1] == 0:
                continue
            v = at_code[method][:, 0]
            minus, plus = measured[name][method]["steps"][0]
            steps = torch.tensor([2 * minus, minus, 0.0, plus, 2 * plus], dtype=torch.float64)
            codes = z0.double() + steps[:, None] * (v / v.norm())[None]
            with torch.no_grad():
                walks.append((name, method, G(codes.to(z0))))
    return walks


# --- shared pieces ------------------------------------------------------------------------------------------------

def _pair(H_region, H_rest):
    A, B = checks.symmetric_matrix(H_region, "H_region"), checks.symmetric_matrix(H_rest, "H_rest")
    if A.shape != B.shape:
        raise ValueError(f"H_region and H_rest differ in shape: {tuple(A.shape)} and {tuple(B.shape)}")
    return A, B


def _metrics(H) -> torch.Tensor:
    return checks.symmetric_matrices(H, "the metrics")


def _metrics_single(H) -> bool:
    return not isinstance(H, Metric) and torch.as_tensor(H).dim() == 2


def _singular_value_threshold(A, tau, symmetric):
    """U shrink(Σ, tau) Vᵀ for A = U Σ Vᵀ. For symmetric A = Q Λ Qᵀ the singular values are |λ| and the result
    is Q sign(Λ) shrink(|Λ|, tau) Qᵀ: the same matrix from an eigh, which costs less than the SVD."""
    if symmetric:
        A = (A + A.T) / 2  # symmetric to roundoff already; make it exact for eigh
        values, Q = torch.linalg.eigh(A)
        return (Q * _shrink(values, tau)) @ Q.T
    U, sigma, VH = torch.linalg.svd(A, full_matrices=False)
    return (U * _shrink(sigma, tau)) @ VH


def _shrink(x, tau):
    return torch.sign(x) * (x.abs() - tau).clamp_min(0)
