"""Eigensolvers for the metric: dense `eigh_descending`, ARPACK Lanczos (`top_eigenpairs`, `lanczos`) and the
certified block Krylov solver (`block_krylov`); each takes any operator of `helpers.operators` (or plain matrices).
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch
from scipy.sparse.linalg import eigsh
from tqdm.auto import tqdm

from . import checks

TOL = 1e-4  # block_krylov's default certificate: every returned pair's residual ≤ 1e-4·λ₁


@dataclass
class Eigenpairs:
    """The top k eigenpairs at b points. eigvals : (b, k) float64 descending. eigvecs : (b, d, k) unit columns.
    residuals : (b, k) ‖H v − λ v‖ of each pair, where the solver certifies them, else None.
    columns : (b,) int64 operator columns (Hessian-vector products) spent per point, where counted, else None."""

    eigvals: torch.Tensor
    eigvecs: torch.Tensor
    residuals: torch.Tensor | None = None
    columns: torch.Tensor | None = None


def eigh_descending(H: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Eigenvalues (..., d) in descending order and their eigenvectors (..., d, d) as columns, of symmetric H."""
    eigvals, eigvecs = torch.linalg.eigh(H)
    return eigvals.flip(-1), eigvecs.flip(-1)


def fix_signs(X: torch.Tensor) -> torch.Tensor:
    """Columns of X (d, k) flipped so that each one's largest-magnitude entry is positive: eigenvectors and
    directions get a reproducible sign."""
    if X.shape[1] == 0:
        return X
    pivot = X.gather(0, X.abs().argmax(0, keepdim=True))
    return X * torch.where(pivot < 0, -1.0, 1.0).to(X)


# --- Lanczos (ARPACK) --------------------------------------------------------------------------------------------

def top_eigenpairs(operator, k: int, tol: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """The k largest eigenvalues (k,) descending and eigenvectors (d, k), float64 on the CPU, by ARPACK Lanczos.

    operator : a symmetric (d, d) scipy `LinearOperator` or dense array; the start vector is fixed, so the
    same operator gives the same numbers every run. tol : ARPACK's tolerance (0: machine precision).
    """
    d = operator.shape[0]
    v0 = np.random.default_rng(0).standard_normal(d)  # fixed start vector: same numbers every run
    eigvals, eigvecs = eigsh(operator, k=k, which="LA", tol=tol, v0=v0)
    order = np.argsort(eigvals)[::-1]
    return torch.from_numpy(eigvals[order].copy()), torch.from_numpy(eigvecs[:, order].copy())


def lanczos(operator, k: int, *, tol: float = 0.0) -> Eigenpairs:
    """Top-k eigenpairs of an operator of `helpers.operators` at each of its points by ARPACK Lanczos, one
    vector at a time (`top_eigenpairs` on `operator.linear_operator(i)`); on the operator's device."""
    pairs = [top_eigenpairs(operator.linear_operator(i), k, tol) for i in range(len(operator.z))]
    device = operator.z.device
    return Eigenpairs(torch.stack([p[0] for p in pairs]).to(device), torch.stack([p[1] for p in pairs]).to(device),
                      columns=operator.columns.clone())


# --- certified block Krylov --------------------------------------------------------------------------------------

def default_block(k: int, device) -> int:
    """New directions per iteration of `block_krylov` when block is None: min(k, 8) on CPU, k elsewhere.

    Smaller blocks reach the certificate in fewer products (each new block comes from a richer Krylov space),
    larger ones in fewer sequential steps, which is what a GPU needs to be busy.
    """
    return min(k, 8) if torch.device(device).type == "cpu" else k


def block_krylov(operator, k: int, *, tol: float = TOL, block: int | None = None, basis=None, relative: bool = False,
                 points_per_group: int | None = None, seed: int = 0, progress: bool = False) -> Eigenpairs:
    """Top-k eigenpairs at every point of `operator` by block Krylov iteration with Rayleigh–Ritz, certified.

    The basis Q of each point grows by `block` orthonormal directions per iteration: the residuals of its
    unconverged Ritz pairs (top first), which span the next Krylov block. H Q is kept, so the Ritz pairs and
    their residuals ‖H x − θ x‖ come from float64 linear algebra on (d, s) matrices with no further products.
    A point stops when its top k residuals are ≤ tol·θ₁ (relative: ≤ tol·θ_i each), or when Q spans all d
    directions (then Rayleigh–Ritz is exact; a tol that float32 products cannot reach is reported with a
    warning). tol = 0 grows the basis to all d directions.

    operator : any operator of `helpers.operators` (`matmat(V, points)`); points are solved in lockstep groups
        of `points_per_group` (default all), one `matmat` per group and iteration.
    block : new directions per point and iteration (None: `default_block(k, device)`).
    basis : a warm start, (d, m) for every point or (b, d, m) one per point; None: a random start (fixed seed).
        When m > block the first block is `block` fixed random mixtures of the basis's columns (a Krylov seed
        inside its span).
    Returns `Eigenpairs` with residuals and columns (the basis size s, one product each, per point).
    """
    b, d = operator.z.shape
    device = operator.z.device
    if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 0 < k < d:
        raise ValueError(f"k must be an integer between 1 and d-1 = {d - 1}, got {k!r}")
    block = checks.positive_int(default_block(k, device) if block is None else block, "block")
    if not (isinstance(tol, (int, float)) and 0 <= tol < 1):
        raise ValueError(f"tol must be a number in [0, 1) for method='subspace' (residuals ≤ tol·λ₁), got {tol!r}")
    starts = checks.warm_start(basis, b, d, device)
    generator = torch.Generator().manual_seed(seed)
    cold = torch.randn(d, block, generator=generator, dtype=torch.float64).to(device)
    if starts is not None and starts[0].shape[1] > block:
        # a wide warm basis seeds the Krylov space with `block` fixed random mixtures of its columns, rather than
        # spending the first products on all of its directions
        mix = torch.randn(starts[0].shape[1], block, generator=generator, dtype=torch.float64).to(device)
        starts = [start @ mix for start in starts]
    per_group = b if points_per_group is None else max(1, int(points_per_group))
    eigvals = torch.empty(b, k, dtype=torch.float64, device=device)
    eigvecs = torch.empty(b, d, k, dtype=torch.float64, device=device)
    residuals = torch.empty(b, k, dtype=torch.float64, device=device)
    columns = torch.empty(b, dtype=torch.int64)
    bar = tqdm(total=b, desc="metric (subspace)", disable=not progress, leave=False)
    for first in range(0, b, per_group):
        index = list(range(first, min(first + per_group, b)))

        def apply(active, blocks, index=index):
            return list(operator.matmat(torch.stack(blocks), [index[a] for a in active]))

        group = _solve_group(apply, [cold if starts is None else starts[i] for i in index], k=k, tol=tol,
                             block=block, seed=seed, relative=relative)
        for i, (vals, vecs, res, s) in zip(index, group):
            eigvals[i], eigvecs[i], residuals[i], columns[i] = vals, vecs, res, s
        bar.update(len(index))
        bar.set_postfix_str(f"passes/point {columns[:index[-1] + 1].float().mean():.0f} of d = {d}")
    bar.close()
    if tol > 0:
        scale = eigvals if relative else eigvals[:, :1]
        if (residuals > tol * scale).any():  # only when tol is below what float32 products resolve (the basis is full)
            worst = float((residuals / scale).max())
            warnings.warn(f"method='subspace' could not certify tol = {tol:g}: with the basis spanning all {d} "
                          f"directions the largest residual is still {worst:.1e}·{'λ_i' if relative else 'λ₁'} "
                          f"(float32 rounding of the products); the returned residuals say how accurate each pair "
                          f"is", RuntimeWarning, stacklevel=4)
    return Eigenpairs(eigvals, eigvecs, residuals, columns)


def _solve_group(apply, starts, *, k, tol, block, seed, relative=False):
    """The block Krylov iteration for a few points in lockstep; a list of (eigvals, eigvecs, residuals, s).

    apply(active, blocks) returns H W (d, m) float64 for each block W of the points numbered `active`;
    starts : one (d, m) float64 start per point (all of one width).
    """
    p, d = len(starts), starts[0].shape[0]
    device = starts[0].device
    generator = torch.Generator().manual_seed(seed + 1)
    Q = [torch.zeros(d, 0, dtype=torch.float64, device=device) for _ in range(p)]
    HQ = [q.clone() for q in Q]
    new = [_orthonormal(start, q, generator) for start, q in zip(starts, Q)]
    done: dict[int, tuple] = {}
    active = list(range(p))
    while active:
        for i, hw in zip(active, apply(list(active), [new[i] for i in active])):
            Q[i], HQ[i] = torch.cat([Q[i], new[i]], 1), torch.cat([HQ[i], hw], 1)
        for i in list(active):
            theta, X, HX = _rayleigh_ritz(Q[i], HQ[i])
            R = HX - X * theta
            res = R.norm(dim=0)
            s = Q[i].shape[1]
            unconverged = ~(res <= tol * (theta if relative else theta[0]))
            if (s >= k and not unconverged[:k].any()) or s >= d:
                done[i] = (theta[:k], fix_signs(X[:, :k]), res[:k], s)
                active.remove(i)
                continue
            # next block: residuals of unconverged pairs, top first, then of the pairs beyond k
            order = [j for j in range(min(k, s)) if unconverged[j]] + list(range(k, s))
            size = min(block, d - s)
            new[i] = _orthonormal(R[:, order[:size]], Q[i], generator, size)
    return [done[i] for i in range(p)]


def _rayleigh_ritz(Q, HQ):
    """Ritz values (s,) descending, Ritz vectors X = Q S and H X = (H Q) S, from Q (d, s) and H Q."""
    T = Q.T @ HQ
    theta, S = eigh_descending((T + T.T) / 2)
    return theta, Q @ S, HQ @ S


def _orthonormal(W, Q, generator, size=None):
    """Columns of W (d, m) made orthonormal and orthogonal to Q (d, s), padded with random directions to `size`
    columns; a column that is (numerically) in the span of the others is replaced by a random one."""
    d = Q.shape[0]
    size = W.shape[1] if size is None else size
    W = torch.cat([W, torch.randn(d, max(0, size - W.shape[1]), generator=generator, dtype=torch.float64
                                  ).to(W.device)], 1)
    columns = []
    for j in range(size):
        w = W[:, j]
        for _ in range(3):  # a random replacement is tried until one is independent
            scale = w.norm()
            for _ in range(2):  # Gram–Schmidt twice: orthogonal to working precision
                for basis in (Q, *columns):
                    basis = basis if basis.dim() == 2 else basis[:, None]
                    w = w - basis @ (basis.T @ w)
            if w.norm() > 1e-10 * scale:
                break
            w = torch.randn(d, generator=generator, dtype=torch.float64).to(W.device)
        columns.append(w / w.norm())
    return torch.stack(columns, 1)
