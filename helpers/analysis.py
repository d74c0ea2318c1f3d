"""What the metric says about the generator: spectrum, homogeneity across positions, the average metric,
the shuffled-weights and layer-wise controls, comparison of two metrics, and coordinate-block restriction.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import NamedTuple, Sequence

import numpy as np
import torch
from torch import nn

from . import generators
from .metric import Metric, eigh_descending, pullback
from .stats import pearson, percentile_bootstrap, standardize

FLOOR = 1e-12  # logs clip values at FLOOR × the largest eigenvalue of the metric they come from
FRACTIONS = (0.99, 0.999, 0.9999)  # fractions of the eigenvalue sum whose eigen-dimensions are counted


# --- spectrum ------------------------------------------------------------------------------------------------

@dataclass
class SpectrumSummary:
    """Per-rank statistics of spectra over positions: mean, median, p5, p95 are (k,)."""

    mean: torch.Tensor
    median: torch.Tensor
    p5: torch.Tensor
    p95: torch.Tensor
    normalized: bool


@dataclass
class Dimensions:
    """counts (b, m): eigen-dimensions holding each fraction of the eigenvalue sum; mean (m,) over b."""

    counts: torch.Tensor
    mean: torch.Tensor
    fractions: tuple[float, ...]

    @property
    def labels(self) -> list[str]:
        """The fractions as percentages: "99%", "99.9%", "99.99%"."""
        return [f"{100 * f:g}%" for f in self.fractions]


def spectrum_summary(eigvals, normalize: bool = True) -> SpectrumSummary:
    """Mean, median and 5th/95th percentiles of the eigenvalue at each rank over positions.

    eigvals : (b, k) eigenvalues, a `Metric`, or (b, d, d) metrics; sorted descending here.
    normalize : divide each position's spectrum by its top eigenvalue first.
    Percentiles interpolate linearly (numpy's default); eigenvalues are used as they are (no clipping).
    """
    lam = _spectrum(eigvals)
    if normalize:
        lam = lam / lam[:, :1]
    q = torch.quantile(lam, torch.tensor([0.05, 0.5, 0.95], dtype=lam.dtype, device=lam.device), dim=0)
    return SpectrumSummary(lam.mean(0), q[1], q[0], q[2], normalize)


def dims_for_fraction(eigvals, fractions: Sequence[float] = FRACTIONS, *,
                      rtol: float = 1e-12) -> Dimensions:
    """Smallest n such that the top-n eigenvalues sum to at least `fraction` of the eigenvalue sum.

    eigvals : (b, k) eigenvalues, a `Metric`, or (b, d, d) metrics; negative roundoff is clipped at 0.
    fractions : (m,) fractions in (0, 1]. For a top-k spectrum the sum is over the k computed eigenvalues.
    rtol : a cumulative fraction within rtol below the target counts as reaching it (ties are roundoff).
    """
    lam = _spectrum(eigvals).clamp_min(0)
    cumulative = lam.cumsum(-1) / lam.sum(-1, keepdim=True)  # (b, k), nondecreasing
    target = torch.tensor(fractions, dtype=lam.dtype, device=lam.device) - rtol
    counts = (cumulative[:, None, :] < target[None, :, None]).sum(-1) + 1  # first rank that reaches it
    counts = counts.clamp_max(lam.shape[1])
    return Dimensions(counts, counts.double().mean(0), tuple(float(f) for f in fractions))


def decades(eigvals, *, floor: float = FLOOR) -> torch.Tensor:
    """(b,) log10 of the top eigenvalue over the smallest, at each position: how many decades the spectrum spans.

    eigvals : (b, k), a `Metric`, or (b, d, d) metrics. The smallest is clipped at floor × the top eigenvalue
    (roundoff zeros and negatives), so no span exceeds log10(1 / floor).
    """
    lam = _spectrum(eigvals)
    return torch.log10(lam[:, 0] / lam[:, -1].clamp_min(floor * lam[:, 0]))


def random_direction_null(H, n_directions: int = 1000, seed: int = 0) -> torch.Tensor:
    """vᵀ H v for uniformly random unit vectors v: the spectrum an isotropic metric would show.

    H : (b, d, d) or a `Metric`. Returns (b, n_directions); the same directions at every position.
    E[vᵀHv] = tr(H)/d and Var[vᵀHv] = 2/(d+2) · (tr(H²)/d − (tr(H)/d)²).
    """
    H = _metrics(H)
    gen = torch.Generator().manual_seed(int(seed))
    v = torch.randn(n_directions, H.shape[-1], generator=gen, dtype=torch.float64).to(H)
    v = v / v.norm(dim=1, keepdim=True)
    return torch.einsum("na,bac,nc->bn", v, H, v)


# --- homogeneity ---------------------------------------------------------------------------------------------

@dataclass
class OffDiagonal:
    """Mean and median of the off-diagonal entries of a square matrix (nan entries ignored)."""

    mean: float
    median: float


def homogeneity(H, eigvals=None, eigvecs=None, *, scale: str = "log", against: str = "target",
                floor: float = FLOOR, max_memory: float = 2 ** 28) -> torch.Tensor:
    """Correlation, across ranks k, of α_k^{ij} = u_k^{(i)ᵀ} H_j u_k^{(i)} with λ_k(H_j), for all pairs.

    H : (b, d, d) metrics or a `Metric` (then eigvals, eigvecs come from it). eigvals (b, k) descending and
        eigvecs (b, d, k) columns; computed by eigh when not given. Returns (b, b), row i = eigenvector source.
    scale : 'log' correlates log10 α with log10 λ; 'linear' the values themselves.
    against : 'target' correlates with λ_k(H_j) (the paper's position homogeneity); 'source' with λ_k(H_i)
        (the authors' layer-by-layer amplification matrix).
    floor : before log10, α^{ij} and λ(H_j) are clipped at floor × λ_1(H_j), so roundoff zeros and tiny
        negatives give log10 = log10(floor·λ_1) instead of nan (the authors' code drops such ranks instead).
    max_memory : bytes for the intermediate per block of source rows i (a loop over blocks, not pairs).
    The diagonal is set to 1 (α^{ii} = λ(H_i) exactly); a constant spectrum gives nan.
    """
    if scale not in ("log", "linear") or against not in ("target", "source"):
        raise ValueError(f"scale must be 'log' or 'linear' and against 'target' or 'source'; got {scale!r}, "
                         f"{against!r}")
    H, eigvals, eigvecs = _unpack(H, eigvals, eigvecs)
    b, d, k = eigvecs.shape
    top = eigvals[:, 0].clamp_min(torch.finfo(H.dtype).tiny)  # (b,)
    lam_hat = standardize(_rescale(eigvals, top[:, None], scale, floor))  # (b, k)
    # α = Σ_ab u_a u_b H_ab over the upper triangle (off-diagonal terms twice): one matmul per block of i.
    rows_, cols_ = torch.triu_indices(d, d, device=H.device)
    packed = H[:, rows_, cols_] * torch.where(rows_ == cols_, 1.0, 2.0).to(H)  # (b, p)
    block = int(max(1, max_memory // (2 * 8 * k * packed.shape[1])))
    out = torch.empty(b, b, dtype=H.dtype, device=H.device)
    for s in range(0, b, block):
        U = eigvecs[s:s + block].transpose(1, 2)  # (m, k, d)
        outer = U.index_select(2, rows_) * U.index_select(2, cols_)  # (m, k, p): u_a u_b for a ≤ b
        alpha = (outer.flatten(0, 1) @ packed.T).view(len(U), k, b).transpose(1, 2)  # (m, b, k)
        x_hat = standardize(_rescale(alpha, top[None, :, None], scale, floor))
        y_hat = lam_hat[None, :, :] if against == "target" else lam_hat[s:s + block, None, :]
        out[s:s + block] = (x_hat * y_hat).sum(-1)
    return out.fill_diagonal_(1.0)


def vec_correlation(H) -> torch.Tensor:
    """Pearson correlation of vec(H_i) with vec(H_j) for all pairs. H : (b, d, d) or a `Metric`. Returns (b, b)."""
    flat = standardize(_metrics(H).flatten(1))
    return flat @ flat.T


def offdiag_summary(matrix: torch.Tensor) -> OffDiagonal:
    """Mean and median (linear interpolation) of the off-diagonal entries of a (b, b) matrix, nan ignored."""
    values = off_diagonal(matrix)
    return OffDiagonal(values.nanmean().item(), values.nanquantile(0.5).item())


def homogeneity_vs_distance(z, matrix: torch.Tensor) -> float:
    """Pearson r between the code distances ‖z_i − z_j‖ and the off-diagonal entries of a (b, b) matrix.

    z : (b, d) codes or a `Metric` (its points). All ordered pairs i ≠ j are used, so asymmetric matrices
    (log homogeneity) count both directions.
    """
    z = (z if isinstance(z, torch.Tensor) else z.z).to(matrix)
    distance = torch.cdist(z, z)
    return pearson(off_diagonal(distance), off_diagonal(matrix)).item()


def homogeneity_vs_distance_interval(z, matrix: torch.Tensor, *, n_boot: int = 1000, level: float = 0.95,
                                     seed: int = 0, min_codes: int = 5) -> tuple[float, float]:
    """Percentile bootstrap interval of `homogeneity_vs_distance`, resampling codes (not pairs).

    Pairs share codes, so they are not independent: each replicate draws b codes with replacement
    (`stats.percentile_bootstrap`) and correlates over the ordered pairs of distinct codes among them.
    Replicates with fewer than three distinct codes, or a constant column, are skipped. Returns (low, high);
    (nan, nan) with fewer than `min_codes` codes (too few to resample: with three, every usable replicate is
    the same set) or if no replicate is usable.
    """
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    z = (z if isinstance(z, torch.Tensor) else z.z).to(matrix)
    distance = torch.cdist(z, z)
    if len(z) < min_codes:
        return float("nan"), float("nan")

    def replicate(draws):
        values = torch.full((len(draws),), float("nan"), dtype=torch.float64)
        for r, idx in enumerate(torch.from_numpy(draws).to(matrix.device)):
            if len(idx.unique()) < 3:
                continue
            distinct = idx[:, None] != idx[None, :]
            x, y = distance[idx][:, idx][distinct], matrix[idx][:, idx][distinct]
            if x.std() > 0 and y.std() > 0:
                values[r] = pearson(x, y).item()
        return values.numpy()

    return percentile_bootstrap(replicate, len(z), n_boot=n_boot, level=level, seed=seed)


# --- average metric and subspaces ------------------------------------------------------------------------------

@dataclass
class AverageMetric:
    """Mean metric over positions: H_mean (d, d), eigvals (d,) descending, eigvecs (d, d) columns."""

    H_mean: torch.Tensor
    eigvals: torch.Tensor
    eigvecs: torch.Tensor


@dataclass
class Subspace:
    """A metric restricted to a block of coordinates: H (b, n, n), eigvals (b, n), eigvecs (b, n, n)."""

    H: torch.Tensor
    eigvals: torch.Tensor
    eigvecs: torch.Tensor
    block: object


def average_metric(H) -> AverageMetric:
    """Mean of the metrics over positions and its eigendecomposition. H : (b, d, d) or a `Metric`."""
    H_mean = _metrics(H).mean(0)
    H_mean = (H_mean + H_mean.T) / 2
    eigvals, eigvecs = eigh_descending(H_mean)
    return AverageMetric(H_mean, eigvals, eigvecs)


def restrict(H, block) -> Subspace:
    """The metric on a coordinate block (moving only those coordinates): H[:, block, block] and its spectrum.

    H : (b, d, d) or a `Metric`. block : a slice (e.g. `G.blocks["class"]`) or a sequence of indices.
    """
    H = _metrics(H)
    sub = H[:, block][:, :, block]
    eigvals, eigvecs = eigh_descending(sub)
    return Subspace(sub, eigvals, eigvecs, block)


def restrict_metric(m: Metric, block) -> Metric:
    """The `Metric` of a coordinate block: H, eigenpairs and points restricted to it (see `restrict`).

    The metric of a generator on a block of its input, the other coordinates held at their values (e.g. the
    eyes model's noise space, class fixed), is exactly the full metric restricted to the block.
    """
    sub = restrict(m, block)
    return Metric(sub.H, sub.eigvals, sub.eigvecs, m.z[:, block], m.method, m.seconds,
                  {**m.options, "restricted_to": repr(block)})


# --- controls: shuffled weights and layer-wise metrics -------------------------------------------------------

@dataclass
class LayerAlignment:
    """Amplification of the last layer's eigenvectors by every layer, for L layers at b points.

    alpha (b, L, k): α_{l,k} = u_kᵀ H_l u_k with u_k the k-th eigenvector of the last layer's metric.
    corr_log, corr_linear (b, L, L): correlation across ranks of log10 α (resp. α) between layers.
    slope, intercept (b, L): least squares log10 α_{l,k} ≈ slope · log10 λ_k(H_L) + intercept.
    """

    alpha: torch.Tensor
    corr_log: torch.Tensor
    corr_linear: torch.Tensor
    slope: torch.Tensor
    intercept: torch.Tensor


def shuffle_weights(module: nn.Module, seed: int = 0) -> nn.Module:
    """A deep copy in which every parameter tensor is randomly permuted (flatten, permute, reshape).

    Only parameters are shuffled: buffers (e.g. batch-norm running statistics) are copied unchanged.
    Each tensor keeps its multiset of values; the original module is untouched; same seed, same copy.
    """
    shuffled = copy.deepcopy(module)
    gen = torch.Generator().manual_seed(int(seed))
    with torch.no_grad():
        for p in shuffled.parameters():
            order = torch.randperm(p.numel(), generator=gen).to(p.device)
            p.copy_(p.flatten()[order].view_as(p))
    return shuffled


def layer_metrics(G: nn.Module, z: torch.Tensor, modules: Sequence, *, chunk_size: int = 256,
                  max_memory: float = 2 ** 30) -> list[torch.Tensor]:
    """Exact metric of d_l(z) = ‖f_l(z) − f_l(z0)‖² at z0 for each hooked module f_l: H_l = 2 J_lᵀ J_l.

    G : module mapping codes (n, d) to anything; modules : submodules of G (or their names), each called
    once per forward pass. z : (d,) or (b, d). Returns a list of (b, d, d) float64, one per module.
    J_l is the Jacobian of the flattened module output, from forward-mode JVPs along each basis direction
    (vmapped, chunk_size images per pass); points are grouped so their Jacobians fit in max_memory bytes.
    """
    modules = [G.get_submodule(m) if isinstance(m, str) else m for m in modules]
    z = z.unsqueeze(0) if z.dim() == 1 else z
    params = list(G.parameters())
    z = z.detach().to(params[0].dtype if params else z.dtype)

    def outputs(x):
        captured = {}
        hooks = [m.register_forward_hook(lambda _m, _in, out, l=l: captured.__setitem__(l, out.clone()))
                 for l, m in enumerate(modules)]  # clone: a later in-place op (ReLU(True)) must not alter it
        try:
            G(x)
        finally:
            for h in hooks:
                h.remove()
        missing = [l for l in range(len(modules)) if l not in captured]
        if missing:
            raise ValueError(f"module(s) {missing} did not run in the forward pass of G")
        return tuple(captured[l].flatten(1) for l in range(len(modules)))

    return pullback(outputs, z, chunk_size=chunk_size, max_memory=max_memory)


def layer_alignment(layer_H: Sequence[torch.Tensor], *, floor: float = FLOOR) -> LayerAlignment:
    """How each layer amplifies the eigenvectors of the last layer's metric, at each point.

    layer_H : L metrics, each (b, d, d) (or (d, d) for one point), the last one the reference.
    floor : before log10, α_{l,k} is clipped at floor × max_k α_{l,k} (roundoff zeros and negatives).
    """
    Hs = torch.stack([h if h.dim() == 3 else h[None] for h in layer_H], dim=1)  # (b, L, d, d)
    lam, U = eigh_descending(Hs[:, -1])  # (b, d), (b, d, d)
    alpha = torch.einsum("bak,blac,bck->blk", U, Hs, U)
    log_alpha = _rescale(alpha, alpha.amax(-1, keepdim=True).clamp_min(torch.finfo(alpha.dtype).tiny), "log", floor)
    x_hat, y_hat = standardize(log_alpha), standardize(alpha)
    corr_log = x_hat @ x_hat.transpose(1, 2)
    corr_linear = y_hat @ y_hat.transpose(1, 2)
    x = log_alpha[:, -1:, :]  # log10 λ(H_L), clipped the same way
    xc = x - x.mean(-1, keepdim=True)
    slope = (xc * log_alpha).sum(-1) / xc.pow(2).sum(-1)
    intercept = log_alpha.mean(-1) - slope * x.mean(-1)
    return LayerAlignment(alpha, corr_log, corr_linear, slope, intercept)


# --- comparing two metrics at the same points -----------------------------------------------------------------

@dataclass
class Comparison:
    """Two metrics at the same b points: vec_corr, log_spectrum_corr, overlap (b,); cosine (b, k).

    vec_corr: correlation of vec(H_a) with vec(H_b). log_spectrum_corr: of log10 eigenvalues across ranks.
    cosine: |u_kᵀ v_k| for rank-matched eigenvectors.
    overlap: ‖U_aᵀ U_b‖_F² / k of the top-k subspaces (1: the same subspace, 0: orthogonal).
    """

    vec_corr: torch.Tensor
    log_spectrum_corr: torch.Tensor
    cosine: torch.Tensor
    overlap: torch.Tensor


def compare_metrics(H_a, H_b, k: int = 10, *, floor: float = FLOOR) -> Comparison:
    """Compare two metrics (e.g. LPIPS and pixel MSE) computed at the same points.

    H_a, H_b : (b, d, d) or `Metric`s. k : number of top eigenvectors compared.
    floor : log10 clips eigenvalues at floor × the top eigenvalue; spectra are compared over common ranks.
    """
    H_a, lam_a, U_a = _unpack(H_a)
    H_b, lam_b, U_b = _unpack(H_b)
    if H_a.shape != H_b.shape:
        raise ValueError(f"metrics must have the same shape, got {tuple(H_a.shape)} and {tuple(H_b.shape)}")
    if not 0 < k <= min(U_a.shape[2], U_b.shape[2]):
        raise ValueError(f"k must be between 1 and {min(U_a.shape[2], U_b.shape[2])}, got {k}")
    vec_corr = pearson(H_a.flatten(1), H_b.flatten(1))
    ranks = min(lam_a.shape[1], lam_b.shape[1])
    logs = [_rescale(lam[:, :ranks], lam[:, :1].clamp_min(torch.finfo(lam.dtype).tiny), "log", floor)
            for lam in (lam_a, lam_b)]
    top_a, top_b = U_a[:, :, :k], U_b[:, :, :k]
    cosine = (top_a * top_b).sum(1).abs()
    overlap = (top_a.transpose(1, 2) @ top_b).pow(2).sum((1, 2)) / k
    return Comparison(vec_corr, pearson(*logs), cosine, overlap)



class Agreement(NamedTuple):
    """How one method's metric matches a reference at the same points (floats): relative Frobenius error over all
    points, the largest relative error of the top-k eigenvalues, and the mean over points of corr(vec H, vec H_ref)."""

    rel_frobenius: float
    top_eig_rel_error: float
    corr_vecH: float


def method_agreement(result: Metric, reference: Metric, k: int) -> Agreement:
    """`Agreement` of `result` with `reference` (two `Metric`s of the same b points); k ranks at most, fewer if
    `result` has fewer eigenvalues (a top-k method)."""
    k = min(result.eigvals.shape[1], k)
    rel_frobenius = float((result.H - reference.H).norm() / reference.H.norm())
    top, true = result.eigvals[:, :k], reference.eigvals[:, :k]
    eig_error = float(((top - true).abs() / true).max())
    pairs = zip(result.H.cpu().numpy(), reference.H.cpu().numpy())
    corr = np.mean([np.corrcoef(a.flatten(), b.flatten())[0, 1] for a, b in pairs])
    return Agreement(rel_frobenius, eig_error, float(corr))

# --- shared pieces --------------------------------------------------------------------------------------------

def _metrics(H) -> torch.Tensor:
    """(b, d, d) from a tensor or anything with an `H` attribute (`Metric`, `Subspace`)."""
    H = H if isinstance(H, torch.Tensor) else getattr(H, "H", H)  # (a tensor's own .H is its adjoint)
    if not isinstance(H, torch.Tensor) or H.dim() != 3 or H.shape[1] != H.shape[2]:
        raise ValueError(f"expected metrics of shape (b, d, d), got {getattr(H, 'shape', type(H).__name__)}")
    return H


def _unpack(H, eigvals=None, eigvecs=None):
    """H (b, d, d), eigvals (b, k) descending, eigvecs (b, d, k): from a `Metric`, or eigh of H when missing."""
    if eigvals is None and eigvecs is None and not isinstance(H, torch.Tensor):
        eigvals, eigvecs = H.eigvals, H.eigvecs
    H = _metrics(H)
    if eigvals is None or eigvecs is None:
        eigvals, eigvecs = eigh_descending(H)
    return H, eigvals.to(H), eigvecs.to(H)


def _spectrum(eigvals) -> torch.Tensor:
    """(b, k) eigenvalues sorted descending, from eigenvalues, a `Metric`, or (b, d, d) metrics."""
    eigvals = eigvals if isinstance(eigvals, torch.Tensor) else eigvals.eigvals
    if eigvals.dim() == 3:
        eigvals = torch.linalg.eigvalsh(eigvals)
    return eigvals.sort(dim=-1, descending=True).values


def _rescale(values, top, scale, floor):
    """log10 of values clipped at floor × top ('log'), or the values themselves ('linear')."""
    return torch.log10(torch.maximum(values, floor * top)) if scale == "log" else values


def off_diagonal(matrix: torch.Tensor) -> torch.Tensor:
    """The off-diagonal entries of a (b, b) matrix, row by row: (b (b − 1),), pair (i, j) for i ≠ j in order."""
    mask = ~torch.eye(matrix.shape[0], dtype=torch.bool, device=matrix.device)
    return matrix[mask]


# --- spectrum and homogeneity helpers (notebooks 2 and 3) ------------------------------------------------------

def pair_amplification(H, sources: Sequence[int], targets: Sequence[int]) -> torch.Tensor:
    """α^{ij}_k = u_k^{(i)ᵀ} H_j u_k^{(i)} for i in `sources`, j in `targets`: (len(sources), len(targets), k).

    H : (b, d, d) or a `Metric` (its eigenvectors are used; otherwise eigh, descending). α^{ii}_k = λ_k(H_i).
    """
    H, _, U = _unpack(H)
    U_src = U[list(sources)]  # (s, d, k)
    return torch.einsum("iak,jac,ick->ijk", U_src, H[list(targets)], U_src)


def subspace_energy(H, basis: torch.Tensor) -> torch.Tensor:
    """Fraction of each metric's trace that lies in the span of the first n columns of `basis`, n = 1..m.

    H : (b, d, d) or a `Metric`; basis : (d, m) orthonormal columns (e.g. `average_metric(H).eigvecs`).
    Returns (b, m), nondecreasing in n; with all d columns it is 1. A random n-subspace holds n/d on average.
    """
    H = _metrics(H)
    basis = basis.to(H)
    captured = torch.einsum("ak,bac,ck->bk", basis, H, basis)  # (b, m): u_nᵀ H_i u_n
    return captured.cumsum(-1) / H.diagonal(dim1=1, dim2=2).sum(-1, keepdim=True)


def layer_homogeneity(layer_H: Sequence[torch.Tensor], *, scale: str = "log", floor: float = FLOOR) -> torch.Tensor:
    """The authors' layer-by-layer matrix at each point: `homogeneity` across layers with against='source'.

    layer_H : L metrics, each (b, d, d) (e.g. from `layer_metrics`). Returns (b, L, L); entry [p, l, m]
    correlates α_k = u_kᵀ H_m u_k (u_k the eigenvectors of layer l) with λ_k(H_l) across ranks, at point p.
    """
    Hs = torch.stack([h if h.dim() == 3 else h[None] for h in layer_H], dim=1)  # (b, L, d, d)
    return torch.stack([homogeneity(h, scale=scale, against="source", floor=floor) for h in Hs])


# --- the spectrum against random directions, and class against noise (chapter 02) -------------------------------

@dataclass
class RandomDirections:
    """A metric's spectrum beside vᵀHv for random unit directions v, at b positions, both divided by the top
    eigenvalue at each position: eigenvalues (b, k), random (b, n). The spreads are 5th-to-95th percentile ranges
    in decades over all values; ranks_above counts the ranks at which the mean normalized spectrum lies above
    the median random value."""

    eigenvalues: torch.Tensor
    random: torch.Tensor
    eigenvalue_spread: float
    random_spread: float
    ranks_above: int


def spread_decades(values: torch.Tensor, *, floor: float = FLOOR) -> float:
    """log10 of the 95th over the 5th percentile of all `values` (clipped at floor): their spread in decades."""
    low, high = np.percentile(values.clamp_min(floor).flatten().cpu().numpy(), [5, 95])
    return float(np.log10(high / low))


def random_directions(m: Metric, n_directions: int = 1000, seed: int = 0) -> RandomDirections:
    """The spectrum of `m` against `random_direction_null` (what a metric without preferred directions gives)."""
    lam = m.eigvals
    eigenvalues = lam / lam[:, :1]
    random = random_direction_null(m, n_directions, seed=seed) / lam[:, :1]
    above = int((spectrum_summary(lam).mean > random.median()).sum())
    return RandomDirections(eigenvalues, random, spread_decades(eigenvalues), spread_decades(random), above)


@dataclass
class ClassNoise:
    """A metric split into a model's coordinate blocks: spectra {"full (108-d)", "noise (100-d)", "class (8-d)":
    (b, k)}, and the top eigenvalues of the average metric of each block over their common ranks, class_eigvals
    and noise_eigvals (n,), with their ratio class / noise rank by rank."""

    spectra: dict[str, torch.Tensor]
    class_eigvals: torch.Tensor
    noise_eigvals: torch.Tensor
    ratio: torch.Tensor


def class_noise(model) -> ClassNoise | None:
    """The class and noise blocks of a loaded model (`batch.ModelMetrics`), from its metric on its full input when
    it has one (the eyes DCGAN); None for a model without named blocks."""
    G, m = (model.full, model.full_metric) if model.full is not None else (model.G, model.metric)
    if not G.blocks:
        return None
    blocks = {block: restrict(m, G.blocks[block]) for block in ("noise", "class")}
    spectra = {f"full ({G.latent_dim}-d)": m.eigvals,
               **{f"{block} ({sub.H.shape[-1]}-d)": sub.eigvals for block, sub in blocks.items()}}
    average = {block: average_metric(sub.H).eigvals for block, sub in blocks.items()}
    n = min(len(average["class"]), len(average["noise"]))
    cls, noise = average["class"][:n], average["noise"][:n]
    return ClassNoise(spectra, cls, noise, cls / noise)


# --- the homogeneity tests and their controls (chapter 03) -----------------------------------------------------

@dataclass
class HomogeneityTests:
    """The homogeneity of metrics at b codes by three measures, {measure: (b, b) matrix}: "log scale" and "linear
    scale" (`homogeneity`) and "vec(H) correlation" (`vec_correlation`); summary {measure: `OffDiagonal`}."""

    matrices: dict[str, torch.Tensor]
    summary: dict[str, OffDiagonal]

    @property
    def log(self) -> torch.Tensor:
        return self.matrices["log scale"]


def homogeneity_tests(H) -> HomogeneityTests:
    """The paper's homogeneity matrices of H ((b, d, d) or a `Metric`) and the summary of each."""
    matrices = {"log scale": homogeneity(H, scale="log"), "linear scale": homogeneity(H, scale="linear"),
                "vec(H) correlation": vec_correlation(H)}
    return HomogeneityTests(matrices, {name: offdiag_summary(matrix) for name, matrix in matrices.items()})


@dataclass
class PairScatter:
    """For n codes, log10 λ_k(H_j) and log10 α^{ij}_k (`pair_amplification`), both (n, n, k) (row i: eigenvectors,
    column j: metric), and the least-squares slope of log10 α on log10 λ over the n_pairs ordered pairs i ≠ j."""

    log_lambda: torch.Tensor
    log_alpha: torch.Tensor
    slope: float
    n_pairs: int


def pair_scatter(m: Metric, codes: Sequence[int], *, floor: float = FLOOR) -> PairScatter:
    """Rank by rank, how the eigenvectors of each of `codes` are stretched by the metric of each other one.

    Values are clipped at floor × λ_1(H_j) before log10, as in `homogeneity`.
    """
    codes = list(codes)
    alpha = pair_amplification(m, codes, codes)
    lam = m.eigvals[codes][None].expand_as(alpha)  # λ_k(H_j) for column j
    low = floor * m.eigvals[codes, :1][None]
    log_lambda, log_alpha = torch.log10(lam.clamp_min(low)), torch.log10(alpha.clamp_min(low))
    pairs = ~torch.eye(len(codes), dtype=torch.bool)
    x, y = log_lambda[pairs].flatten(), log_alpha[pairs].flatten()
    slope = float(torch.cov(torch.stack([x, y]))[0, 1] / x.var())
    return PairScatter(log_lambda, log_alpha, slope, int(pairs.sum()))


def pair_distances(z: torch.Tensor) -> torch.Tensor:
    """‖z_i − z_j‖ for the ordered pairs i ≠ j of codes z (b, d), float64, in the order of `off_diagonal`."""
    z = z.double()
    return off_diagonal(torch.cdist(z, z))


@dataclass
class FrameEnergy:
    """The fraction of each code's tr(H) in a top-n subspace, (b, d) for n = 1..d: of the average metric's
    eigenvectors (one frame for every code) and of the code's own (the most any n-dimensional subspace holds)."""

    average: torch.Tensor
    own: torch.Tensor

    def mean_at(self, n: int) -> tuple[float, float]:
        """The mean over codes of both fractions for a subspace of dimension n: (average frame, own frame)."""
        return self.average[:, n - 1].mean().item(), self.own[:, n - 1].mean().item()


def frame_energy(m: Metric) -> FrameEnergy:
    """How much of each code's metric the average metric's frame captures, beside the code's own eigenvectors."""
    own = m.eigvals.clamp_min(0)
    return FrameEnergy(subspace_energy(m, average_metric(m).eigvecs), own.cumsum(-1) / own.sum(-1, keepdim=True))


def shuffled_generator(G, seed: int = 0):
    """G with every weight tensor permuted at random (`shuffle_weights`), named "<name>-shuffled<seed>": a network
    of the same architecture and weight distributions that has learned nothing."""
    return generators.Generator(shuffle_weights(G.net, seed=seed), G.latent_dim, name=f"{G.name}-shuffled{seed}")


@dataclass
class LayerTests:
    """The layer-by-layer tests at b codes over L block outputs: labels (L,) from `generators.layers`; the authors'
    layer matrices log and linear (L, L), mean over codes (`layer_homogeneity`); the amplification of the image's
    eigenvectors by every layer (`layer_alignment`); summary {measure: `OffDiagonal`} of the four matrices."""

    labels: list[str]
    log: torch.Tensor
    linear: torch.Tensor
    alignment: LayerAlignment
    summary: dict[str, OffDiagonal]


def layer_tests(G, z: torch.Tensor) -> LayerTests:
    """The metric of every block output of G (`generators.layers`) at codes z (b, d), and how the layers align."""
    names = generators.layers(G)
    layer_H = layer_metrics(G, z, list(names.values()))
    log, linear = (layer_homogeneity(layer_H, scale=scale).mean(0) for scale in ("log", "linear"))
    aligned = layer_alignment(layer_H)
    summary = {"authors' matrix, log": offdiag_summary(log), "authors' matrix, linear": offdiag_summary(linear),
               "image-eigenvector amplification, log": offdiag_summary(aligned.corr_log.mean(0)),
               "image-eigenvector amplification, linear": offdiag_summary(aligned.corr_linear.mean(0))}
    return LayerTests(list(names), log, linear, aligned, summary)


def comparison_means(c: Comparison) -> dict[str, float]:
    """The means over points of a `Comparison`: vec(H) and log-spectrum correlations, the |cosine| of the top
    eigenvectors and the overlap of the top-k subspaces, under the labels the chapters print."""
    return {"corr vec(H)": c.vec_corr.mean().item(), "corr log spectrum": c.log_spectrum_corr.mean().item(),
            "cosine of the top eigenvectors (abs.)": c.cosine[:, 0].mean().item(),
            f"top-{c.cosine.shape[1]} subspace overlap": c.overlap.mean().item()}



def homogeneity_row(m: Metric, tests: HomogeneityTests, layers: LayerTests, *, top_k: int = 10,
                    seed: int = 0) -> dict:
    """One model's numbers for chapter 03's table across models, under the labels it prints: the log- and
    linear-scale homogeneity (mean, median), the vec(H) correlation (mean), r with the code distance and its 95%
    bootstrap interval over codes (a (low, high) pair; nan with too few codes), the average frame's top-k energy,
    the number of block outputs and the authors' layer matrix (log and linear means)."""
    log, linear, vec = (tests.summary[name] for name in ("log scale", "linear scale", "vec(H) correlation"))
    return {"log scale, mean": log.mean, "log scale, median": log.median, "linear scale, mean": linear.mean,
            "linear scale, median": linear.median, "vec(H) correlation, mean": vec.mean,
            "r with the code distance": homogeneity_vs_distance(m.z, tests.log),
            "r: 95% bootstrap interval over codes": homogeneity_vs_distance_interval(m.z, tests.log, seed=seed),
            f"average frame, top-{top_k} energy": frame_energy(m).mean_at(min(top_k, m.z.shape[1]))[0],
            "layers (block outputs)": len(layers.labels),
            "layer matrix, log, mean": layers.summary["authors' matrix, log"].mean,
            "layer matrix, linear, mean": layers.summary["authors' matrix, linear"].mean}
