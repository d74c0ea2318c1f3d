"""Paths under the metric H of a distance pulled back through a generator: geodesics between codes (energy
minimisation), shooting (the exponential map), lengths and energies of paths and curves, volume elements of the
surfaces that directions span, and the metric along a path.

Units, stated once. The Riemannian metric is H itself (`helpers.metric`): g_z(v, v) = vᵀH(z)v = 2‖J v‖², J the
Jacobian of z ↦ features(G(z)). A curve z(t), t ∈ [0, 1], has length ∫√(żᵀHż) dt and energy ∫żᵀHż dt (L² ≤ E,
equal at constant speed). Nearby codes have d(G(a), G(b)) ≈ ½(b − a)ᵀH(b − a), so a discrete path z_0..z_n has
length Σ√(2 d_i) and energy n·Σ 2 d_i, with d_i = d(G(z_i), G(z_{i+1})); both converge to the curve's as n grows.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from typing import Callable

import numpy as np
import torch

from . import checks, operators, solvers

FLOOR = 1e-3  # the preconditioner's eigenvalue floor, relative to λ₁ (see `geodesic`)
RTOL = 1e-3  # geodesic's default: stop after two iterations that each lower the energy by less than this, relative
COARSE = (4,)  # geodesic's default coarse level(s): a 4-step path solved first (benchmarks/README.md)
SHOOT_METHODS = ("discrete", "rk4")


# --- baselines ---------------------------------------------------------------------------------------------------

def straight(z_a: torch.Tensor, z_b: torch.Tensor, n: int) -> torch.Tensor:
    """The straight line from z_a to z_b in n equal steps: (p, n+1, d) for z_a, z_b (d,) or (p, d)."""
    a, b, t = _ends(z_a, z_b, n)
    return (1 - t) * a[:, None] + t * b[:, None]


def slerp(z_a: torch.Tensor, z_b: torch.Tensor, n: int) -> torch.Tensor:
    """Spherical interpolation from z_a to z_b in n equal steps of angle: (p, n+1, d) for z_a, z_b (d,) or (p, d).

    z(t) = (sin((1 − t)Ω) z_a + sin(tΩ) z_b) / sin Ω with Ω the angle between z_a and z_b (the usual GAN slerp: the
    norm changes along the way when ‖z_a‖ ≠ ‖z_b‖); codes at an angle below 1e-6 give the straight line.
    """
    a, b, t = _ends(z_a, z_b, n)
    cos = (a * b).sum(1) / (a.norm(dim=1) * b.norm(dim=1))
    omega = torch.arccos(cos.clamp(-1, 1))[:, None, None]
    if (omega > math.pi - 1e-6).any():
        raise ValueError("slerp between opposite codes (angle π) is undefined: every great circle joins them")
    small = omega < 1e-6
    sin = torch.where(small, torch.ones_like(omega), omega.sin())
    arc = (torch.sin((1 - t) * omega) * a[:, None] + torch.sin(t * omega) * b[:, None]) / sin
    return torch.where(small, (1 - t) * a[:, None] + t * b[:, None], arc)


def _ends(z_a, z_b, n):
    """z_a, z_b as (p, d) (no generator: shapes and finiteness only) and t (1, n+1, 1) in their dtype."""
    n = checks.positive_int(n, "n")
    a, b = checks.path_ends(None, z_a, z_b)
    return a, b, torch.linspace(0, 1, n + 1, dtype=a.dtype, device=a.device)[None, :, None]


# --- lengths and energies ----------------------------------------------------------------------------------------

def segment_lengths(G: Callable, distance: Callable, path: torch.Tensor) -> torch.Tensor:
    """√(2 d_i) (p, n) float64 of the n steps of a path (n+1, d) or (p, n+1, d), d_i = d(G(z_i), G(z_{i+1})):
    each step's length in the units of H (see the module). Differentiable in the path."""
    checked = checks.path(G, path)  # detached; the path itself keeps its graph
    z = path.reshape(checked.shape).to(checked)
    p, points, d = z.shape
    images = checks.generate(G, z.reshape(-1, d), distance)
    features = operators.has_features(G, z[0], distance)
    values = _step_distances(distance, images.reshape(p, points, *images.shape[1:]), features)
    checks.distance_values(values.flatten(), values.numel())
    # √ has no derivative at 0 (a repeated point): give that step a zero gradient, not nan
    moved = values > 0
    return torch.where(moved, (2 * torch.where(moved, values, torch.ones_like(values))).sqrt(), 0.0)


def path_length(G: Callable, distance: Callable, path: torch.Tensor) -> torch.Tensor:
    """Discrete length Σ√(2 d_i) (p,) float64 of a path (n+1, d) or (p, n+1, d)."""
    return segment_lengths(G, distance, path).sum(1)


def path_energy(G: Callable, distance: Callable, path: torch.Tensor) -> torch.Tensor:
    """Discrete energy n·Σ 2 d_i (p,) float64 of a path (n+1, d) or (p, n+1, d), over t ∈ [0, 1]."""
    steps = segment_lengths(G, distance, path)
    return steps.shape[1] * steps.pow(2).sum(1)


def curve_length(G: Callable, distance, curve: Callable, *, nodes: int = 32,
                 chunk_size: int | None = None) -> torch.Tensor:
    """Length ∫√(żᵀHż) dt (p,) float64 of a smooth curve over t ∈ [0, 1], by Gauss–Legendre quadrature with the
    exact metric: żᵀHż = 2‖J ż‖², one forward-mode JVP of the distance's feature map per node.

    curve : t (m,) float64 -> codes (m, d) or (p, m, d), written with torch operations (ż comes from forward mode
        through it). nodes : quadrature nodes (exact for polynomial speeds of degree < 2·nodes).
    """
    nodes = checks.positive_int(nodes, "nodes")
    x, w = np.polynomial.legendre.leggauss(nodes)
    t = torch.from_numpy((x + 1) / 2)
    weights = torch.from_numpy(w / 2)
    z = curve(t)
    if not isinstance(z, torch.Tensor) or z.dim() not in (2, 3) or z.shape[-2] != nodes:
        shape = tuple(z.shape) if isinstance(z, torch.Tensor) else type(z).__name__
        raise ValueError(f"curve(t) must return codes (m, d) or (p, m, d) for m = {nodes} times t, got {shape}")
    z = z[None] if z.dim() == 2 else z
    p, m, d = z.shape

    def positions(times):  # (m, 1) -> (m, p·d): the curve as a map for the engine's forward mode
        return curve(times[:, 0]).reshape(p, m, d).transpose(0, 1).reshape(m, p * d)

    (velocity,) = operators.feature_jacobian(lambda times: (positions(times),), t[:, None], torch.ones(1, 1).to(t),
                                             nodes)
    velocity = velocity.reshape(m, p, d).transpose(0, 1)
    flat, _ = checks.latents(G, z.reshape(-1, d))
    velocity = checks.tangents(velocity.reshape(-1, d), flat)
    f = operators.feature_map(G, flat, distance, "curve_length")
    chunk_size = operators.default_chunk_size(flat.device) if chunk_size is None else chunk_size
    (Jv,) = operators.feature_jacobian(lambda x: (f(x),), flat, velocity[None], chunk_size)  # (p·m, 1, F)
    speed = (2 * Jv.double().pow(2).sum((1, 2))).sqrt().reshape(p, m)
    return speed @ weights.to(speed)


def _step_distances(distance, images: torch.Tensor, features: bool) -> torch.Tensor:
    """d_i (p, n) float64 between consecutive images (p, n+1, 3, H, W): from the distance's features (each image's
    computed once) where it has them, else from the distance itself pair by pair."""
    p, points = images.shape[:2]
    if features:
        phi = distance.features(images.flatten(0, 1)).double().reshape(p, points, -1)
        return (phi[:, 1:] - phi[:, :-1]).pow(2).sum(2)
    values = distance(images[:, :-1].flatten(0, 1), images[:, 1:].flatten(0, 1))
    checks.distance_values(values, p * (points - 1))
    return values.double().reshape(p, points - 1)


# --- geodesics between codes: energy minimisation ----------------------------------------------------------------

@dataclass
class Geodesic:
    """Energy-minimising paths between p pairs of codes (`geodesic`).

    path : (p, n+1, d) codes in the metric's dtype, ends included. energy, length : (p,) float64, the path's
    discrete energy n·Σ 2 d_i and length Σ√(2 d_i). energies, lengths : (T+1, p) float64, their history per
    iteration from the start path (a pair that stopped keeps its last value). iterations : (p,) int64 L-BFGS
    iterations per pair. converged : (p,) bool, the relative tolerance met (or no lower energy left within
    roundoff along the search direction). evaluations : batched evaluations of the energy and its gradient (G and
    the distance on the interior points of the pairs still running).
    times : (T+1,) float64 wall-clock seconds from the call to each entry of the history (the preconditioner comes
    before the first). seconds : the whole call. coarse : the coarser solve this one started from, or None.
    """

    path: torch.Tensor
    energy: torch.Tensor
    length: torch.Tensor
    energies: torch.Tensor
    lengths: torch.Tensor
    iterations: torch.Tensor
    converged: torch.Tensor
    evaluations: int
    times: torch.Tensor
    seconds: float
    coarse: "Geodesic | None" = None

    def reversed(self) -> "Geodesic":
        """The same paths from z_b to z_a (the energy and the length are symmetric, so they are geodesics too)."""
        return replace(self, path=self.path.flip(1), coarse=self.coarse and self.coarse.reversed())

    @property
    def velocity(self) -> torch.Tensor:
        """The initial velocity ż(0) (p, d) of the path over t ∈ [0, 1], by the second-order one-sided difference
        n(−3z_0 + 4z_1 − z_2)/2 (n ≥ 2): the logarithm map of z_b at z_a, to shoot along."""
        z, n = self.path.double(), self.path.shape[1] - 1
        if n == 1:
            return z[:, 1] - z[:, 0]
        return n * (-3 * z[:, 0] + 4 * z[:, 1] - z[:, 2]) / 2


def geodesic(G: Callable, distance: Callable, z_a: torch.Tensor, z_b: torch.Tensor, *, n: int = 16,
             init: torch.Tensor | None = None, rtol: float = RTOL, max_iter: int = 200, coarse=COARSE,
             precondition: bool = True, floor: float = FLOOR, memory: int = 10,
             chunk_size: int | None = None) -> Geodesic:
    """Paths of n steps from z_a to z_b (d,) or (p, d) that minimise the discrete energy n·Σ 2 d(G(z_i), G(z_{i+1})),
    ends fixed, all interior points of all pairs at once; returns a `Geodesic` (path (p, n+1, d)).

    The energy needs only the distance between consecutive images (a `Distance`'s features are computed once per
    image and step; any other distance is called on the pairs). It starts from `init` (p, n+1, d) with the same
    ends, or the straight line, and runs L-BFGS (`memory` pairs of updates) with a backtracking line search per
    pair, so every pair's energy decreases monotonically. A pair stops when two iterations in a row lower its
    energy by less than rtol relative, or after max_iter iterations.

    coarse : a step count, or step counts, of coarser paths solved first, smallest first, each started from the
        previous one's path (the first from the start path) resampled linearly in t; counts ≥ n are skipped, () solves at n alone. A
        coarse evaluation costs (m − 1)/(n − 1) of a fine one, and most of the slow part of the descent, the
        path's large-scale bend, is settled there. The result's `coarse` holds that solve.
    precondition : optimise in coordinates where the energy's Gauss–Newton Hessian at the start is near the
        identity: interior point i at z_i = start_i + M_i (C W)_i, with C = L^(-1/2) (L the path's
        second-difference matrix) and M_i = (2n·H(t_i))^(-1/2), H(t) the metric interpolated linearly in t
        from the ends to the middle of the level's start path and on to the other end, its eigenvalues floored
        at `floor`·λ₁ point by point. Those three are the exact metric (`operators.GaussNewton.dense`, or double
        backprop for a distance without features), each the cost of d JVPs: the ends' once per call, the middle's
        once per pair and level (a metric that varies along the path, rather than the middle's alone, lowers
        the energy reached in a given time: benchmarks/README.md). Without it L-BFGS runs on the codes
        themselves.
    chunk_size : images per vmapped pass for H_mid.
    """
    start = time.perf_counter()
    n = checks.positive_int(n, "n")
    a, b = checks.path_ends(G, z_a, z_b)
    if not (isinstance(rtol, (int, float)) and 0 <= rtol < 1):
        raise ValueError(f"rtol must be a number in [0, 1), got {rtol!r}")
    max_iter = checks.positive_int(max_iter, "max_iter")
    memory = checks.positive_int(memory, "memory")
    if not (isinstance(floor, (int, float)) and 0 < floor <= 1):
        raise ValueError(f"floor must be a number in (0, 1], got {floor!r}")
    if isinstance(coarse, int) and not isinstance(coarse, bool):
        coarse = (coarse,)
    if not isinstance(coarse, (tuple, list)):
        raise TypeError(f"coarse must be a step count or a tuple of them (() for none), got {type(coarse).__name__}")
    levels = sorted(m for m in {checks.positive_int(m, "each coarse step count") for m in coarse} if 1 < m < n) + [n]
    path = straight(a, b, n).double() if init is None else _initial_path(G, init, a, b, n)
    result = ends = None
    with checks.probed(G, a, distance):  # one probe of G and the distance for every pass below
        for m in levels:
            factor = None
            if precondition and m > 1:
                if ends is None:  # the ends never move: their metrics serve every level
                    ends = _exact_metric(G, distance, torch.cat([a, b]), chunk_size)
                middle = _exact_metric(G, distance, _middle(path), chunk_size)
                factor = _interpolated_factor(ends[:len(a)], middle, ends[len(a):], m, floor)
            result = _minimise(G, distance, a, b, _resample(path, m), factor, rtol=rtol, max_iter=max_iter,
                               memory=memory, start=start, coarse=result)
            path = result.path.double()
    return result


def _minimise(G, distance, a, b, base, factor, *, rtol, max_iter, memory, start, coarse) -> Geodesic:
    """The batched L-BFGS of `geodesic` at one level: paths base (p, n+1, d) float64 to Geodesic; factor
    (p, n−1, d, d) = H_floored^(-1/2) at each interior point for the preconditioner, or None."""
    p, n, d = base.shape[0], base.shape[1] - 1, base.shape[2]
    energy = _PathEnergy(G, distance, a, b, n)
    if factor is not None and n > 1:
        C, M = _chain_factor(n - 1).to(base.device), factor / math.sqrt(2 * n)
    else:
        C = M = None

    def to_codes(W, pairs):  # z_i = start_i + M_i (C W)_i
        if C is None:
            return base[pairs, 1:-1] + W
        return base[pairs, 1:-1] + torch.einsum("qijk,qik->qij", M[pairs], C @ W)

    def to_coordinates(gradient, pairs):  # the gradient in W from the gradient in the interior codes (M_i symmetric)
        return gradient if C is None else C @ torch.einsum("qijk,qik->qij", M[pairs], gradient)

    W = torch.zeros(p, n - 1, d, dtype=torch.float64, device=a.device)
    everyone = list(range(p))
    values, gradient = energy(to_codes(W, everyone), everyone)
    g = to_coordinates(gradient, everyone)
    E, steps = n * 2 * values.sum(1), values
    energies, lengths = [E.clone()], [(2 * steps).sqrt().sum(1)]
    times = [time.perf_counter() - start]
    iterations = torch.zeros(p, dtype=torch.int64)
    converged = torch.zeros(p, dtype=torch.bool)
    slow = torch.zeros(p, dtype=torch.int64)  # consecutive iterations below rtol
    history = [[] for _ in range(p)]  # L-BFGS pairs (s, y, 1/sᵀy) per path
    active = [j for j in everyone if n > 1]
    for _ in range(max_iter):
        if not active:
            break
        direction = torch.stack([_lbfgs_direction(g[j], history[j]) for j in active])
        slope = (direction * g[active]).sum((1, 2))
        for i, j in enumerate(active):
            if not slope[i] < 0:  # not a descent direction (curvature pairs gone stale): restart from the gradient
                history[j].clear()
                direction[i] = -g[j]
                slope[i] = -g[j].pow(2).sum()
        step = torch.ones(len(active), dtype=torch.float64, device=a.device)
        if C is None:  # first iteration in raw codes: a step of unit size, as torch's L-BFGS takes
            first = torch.tensor([not history[j] for j in active])
            step[first] = (1 / direction[first].abs().sum((1, 2))).clamp(max=1).to(step)
        accepted = _line_search(lambda trial, pairs: energy(to_codes(trial, pairs), pairs), W, E, active, direction,
                                slope, step, n)
        stopped = []
        for i, j in enumerate(active):
            iterations[j] += 1
            if i not in accepted:  # no decrease found down to roundoff: the energy cannot be lowered further
                converged[j] = True
                stopped.append(j)
                continue
            w_new, v_new, E_new, grad_new = accepted[i]
            g_new = to_coordinates(grad_new[None], [j])[0]
            s, y = w_new - W[j], g_new - g[j]
            sy = (s * y).sum()
            if sy > 1e-10 * s.norm() * y.norm():  # keep only pairs with positive curvature
                history[j].append((s, y, 1 / sy))
                del history[j][:-memory]
            decrease = (E[j] - E_new) / E_new.abs().clamp_min(torch.finfo(torch.float64).tiny)
            W[j], g[j], E[j], steps[j] = w_new, g_new, E_new, v_new
            slow[j] = slow[j] + 1 if decrease < rtol else 0
            if slow[j] >= 2:
                converged[j] = True
                stopped.append(j)
        active = [j for j in active if j not in stopped]
        energies.append(E.clone())
        lengths.append((2 * steps).sqrt().sum(1))
        times.append(time.perf_counter() - start)
    everyone_codes = base.clone()
    everyone_codes[:, 1:-1] = to_codes(W, everyone)
    return Geodesic(everyone_codes.to(a.dtype), E.clone(), (2 * steps).sqrt().sum(1), torch.stack(energies),
                    torch.stack(lengths), iterations, converged, energy.evaluations,
                    torch.tensor(times, dtype=torch.float64), time.perf_counter() - start, coarse)


def _line_search(evaluate, W, E, active, direction, slope, step, n):
    """Backtracking from `step` until the energy of each active pair drops enough (Armijo, c = 1e-4), all pending
    pairs evaluated together: {i: (w, d_i, energy, gradient)} for the i-th active pair, absent where no decrease was
    found before the step reached roundoff. evaluate(W', pairs) -> (d_i, gradient in the codes)."""
    pending, accepted = list(range(len(active))), {}
    while pending:
        pairs = [active[i] for i in pending]
        trial = W[pairs] + step[pending, None, None] * direction[pending]
        values, gradient = evaluate(trial, pairs)
        energies = n * 2 * values.sum(1)
        still = []
        for k, i in enumerate(pending):
            j, new = active[i], energies[k]
            if torch.isfinite(new) and new <= E[j] + 1e-4 * step[i] * slope[i]:
                accepted[i] = (trial[k], values[k], new, gradient[k])
                continue
            # the minimum of the quadratic through E, the slope and the trial, within [0.1, 0.5]·step
            curvature = new - E[j] - slope[i] * step[i] if torch.isfinite(new) else torch.inf
            step[i] *= (-slope[i] * step[i] / (2 * curvature)).clamp(0.1, 0.5) if curvature > 0 else 0.1
            if step[i] * direction[i].abs().max() > 1e-12 * (1 + W[j].abs().max()):
                still.append(i)
        pending = still
    return accepted


def _initial_path(G, init, a, b, n):
    """A start path (p, n+1, d) float64 with the ends a, b (p, d); refuses other shapes and other ends."""
    z = checks.path(G, init)
    if z.shape != (len(a), n + 1, a.shape[1]):
        raise ValueError(f"init must have shape ({len(a)}, {n + 1}, {a.shape[1]}) for {len(a)} path(s) of n = {n} "
                         f"steps, got {tuple(init.shape)}")
    if not (torch.equal(z[:, 0], a) and torch.equal(z[:, -1], b)):
        raise ValueError("init must start at z_a and end at z_b")
    return z.double()


class _PathEnergy:
    """The discrete energy of paths with fixed ends as a function of their interior codes (q, n−1, d) float64 for
    the pairs numbered `pairs`: returns d_i (q, n) float64 and the gradient of n·Σ 2 d_i in the codes (float64).
    The ends' images (and features) are computed once; a non-finite energy comes back as such (a rejected step)."""

    def __init__(self, G, distance, a, b, n):
        self.G, self.distance, self.n = G, distance, n
        self.dtype = a.dtype
        self.features = operators.has_features(G, a, distance)
        with torch.no_grad():
            ends = checks.generate(G, torch.cat([a, b]), distance)
            ends = self.distance.features(ends) if self.features else ends
        self.first, self.last = ends[:len(a)], ends[len(a):]
        self.evaluations = 0

    def __call__(self, interior, pairs):
        q = len(pairs)
        if self.n == 1:  # no interior: the one step between the ends
            if self.features:
                values = (self.first[pairs].double() - self.last[pairs].double()).pow(2).sum(1)[:, None]
            else:
                values = self.distance(self.first[pairs], self.last[pairs]).double()[:, None]
            return values, interior.clone()
        self.evaluations += 1
        codes = interior.to(self.dtype).reshape(-1, interior.shape[-1]).requires_grad_(True)
        with torch.enable_grad():
            images = self.G(codes)
            if self.evaluations == 1:
                checks.generated(images.detach(), len(codes), self.distance)
            if self.features:
                inner = self.distance.features(images).reshape(q, self.n - 1, -1)
                phi = torch.cat([self.first[pairs, None], inner, self.last[pairs, None]], 1).double()
                values = (phi[:, 1:] - phi[:, :-1]).pow(2).sum(2)
            else:
                inner = images.reshape(q, self.n - 1, *images.shape[1:])
                x = torch.cat([self.first[pairs, None], inner, self.last[pairs, None]], 1)
                values = self.distance(x[:, :-1].flatten(0, 1), x[:, 1:].flatten(0, 1))
                checks.distance_values(values, q * self.n, finite=False)
                values = values.double().reshape(q, self.n)
            (gradient,) = torch.autograd.grad(self.n * 2 * values.sum(), codes)
        return values.detach(), gradient.double().reshape(interior.shape)


def _lbfgs_direction(g, history):
    """−H⁻¹g by the L-BFGS two-loop recursion over the stored pairs (s, y, ρ), initial scale sᵀy/yᵀy."""
    q = g.clone()
    alphas = []
    for s, y, rho in reversed(history):
        alpha = rho * (s * q).sum()
        q -= alpha * y
        alphas.append(alpha)
    if history:
        s, y, rho = history[-1]
        q *= 1 / (rho * (y * y).sum())
    for (s, y, rho), alpha in zip(history, reversed(alphas)):
        q += s * (alpha - rho * (y * q).sum())
    return -q


def _middle(path):
    """The middle (p, d) of paths (p, n+1, d): the middle point, or the midpoint of the middle step."""
    n = path.shape[1] - 1
    return path[:, n // 2] if n % 2 == 0 else (path[:, n // 2] + path[:, n // 2 + 1]) / 2


def _resample(path, m):
    """Paths (p, n+1, d) at m + 1 equally spaced t, linear between their points (the ends kept exactly)."""
    n = path.shape[1] - 1
    if m == n:
        return path
    t = torch.linspace(0, n, m + 1, dtype=torch.float64, device=path.device)
    left = t.floor().long().clamp(max=n - 1)
    w = (t - left)[None, :, None]
    out = (1 - w) * path[:, left] + w * path[:, left + 1]
    out[:, 0], out[:, -1] = path[:, 0], path[:, -1]
    return out


def _exact_metric(G, distance, points, chunk_size):
    """The exact metric H (b, d, d) float64 at the codes points (b, d), for `geodesic`'s preconditioner."""
    z, _ = checks.latents(G, points.to(checks.compute_dtype(G, points)))
    if operators.has_features(G, z, distance):
        H = operators.GaussNewton(G, z, distance, chunk_size=chunk_size, what="geodesic(precondition=True)").dense()
    else:
        H = operators.DoubleBackprop(G, z, distance).dense()
    checks.finite_metric(H, G, z, distance)
    checks.nonzero_metric(H, G)
    return H.to(device=points.device, dtype=torch.float64)


def _interpolated_factor(H_a, H_mid, H_b, m, floor):
    """(p, m−1, d, d) float64 H(t_i)^(-1/2) at the interior points t_i = i/m of an m-step path, H(t) linear in t from
    the metric H_a at t = 0 to H_mid at 1/2 and on to H_b at 1 (each (p, d, d)), its eigenvalues floored at
    floor·λ₁ point by point: the latent half of `geodesic`'s preconditioner."""
    t = torch.arange(1, m, dtype=torch.float64, device=H_a.device)[None, :, None, None] / m
    H = torch.where(t <= 0.5, H_a[:, None] + 2 * t * (H_mid - H_a)[:, None],
                    H_mid[:, None] + (2 * t - 1) * (H_b - H_mid)[:, None])
    lam, V = solvers.eigh_descending(H.flatten(0, 1))
    lam = lam.clamp_min(floor * lam[:, :1])
    return ((V * lam[:, None, :].rsqrt()) @ V.transpose(1, 2)).reshape(H.shape)


def _chain_factor(size):
    """L^(-1/2) (size, size) float64 of the second-difference matrix L = tridiag(−1, 2, −1) of a path's interior."""
    one = torch.ones(size - 1, dtype=torch.float64)
    L = 2 * torch.eye(size, dtype=torch.float64) - one.diag(1) - one.diag(-1)
    mu, Phi = torch.linalg.eigh(L)
    return (Phi * mu.rsqrt()) @ Phi.T


# --- shooting: the exponential map -------------------------------------------------------------------------------

def shoot(G: Callable, distance, z: torch.Tensor, v: torch.Tensor, *, n: int = 16, method: str = "discrete",
          chunk_size: int | None = None, max_newton: int = 50) -> torch.Tensor:
    """The geodesic from z (d,) or (p, d) with initial velocity v (same shape) over t ∈ [0, 1], at t = i/n: the
    path (p, n+1, d); its end is the exponential map exp_z(v), its length √(vᵀH(z)v) (constant speed).

    method : 'discrete' (default): the discrete Euler–Lagrange equations of the path energy,
        J_iᵀ(φ_{i+1} − 2φ_i + φ_{i−1}) = 0 (φ_i the features of G(z_i), J_i their Jacobian), solved for z_{i+1} by
        Gauss–Newton iterations with J_i (at most max_newton, each one forward pass), after a first step
        z_1 = z + v/n + a/(2n²); the paths `geodesic` minimises satisfy the same equations. Second order in 1/n.
        'rk4': the geodesic ODE z̈ = −(JᵀJ)⁻¹Jᵀ ∂²φ[ż, ż] by the classical Runge–Kutta scheme, fourth order in 1/n;
        ∂²φ comes from nested forward-mode JVPs, which see no curvature in the kinks of a piecewise-linear
        generator (ReLU): use it for smooth generators.
    Each step costs d JVPs (the Jacobian; four of them per 'rk4' step). Needs a distance with features.
    """
    if method not in SHOOT_METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {', '.join(SHOOT_METHODS)}")
    n = checks.positive_int(n, "n")
    max_newton = checks.positive_int(max_newton, "max_newton")
    z, _ = checks.latents(G, z)
    v = checks.tangents(v, z)
    checks.generate(G, z, distance)
    f = operators.feature_map(G, z, distance, "shoot")
    flow = _Flow(f, z.dtype, operators.default_chunk_size(z.device) if chunk_size is None else chunk_size)
    z, v, h = z.double(), v.double(), 1 / n
    if method == "rk4":
        path = [z]
        for _ in range(n):
            k1z, k1v = v, flow.acceleration(z, v)
            k2z, k2v = v + h / 2 * k1v, flow.acceleration(z + h / 2 * k1z, v + h / 2 * k1v)
            k3z, k3v = v + h / 2 * k2v, flow.acceleration(z + h / 2 * k2z, v + h / 2 * k2v)
            k4z, k4v = v + h * k3v, flow.acceleration(z + h * k3z, v + h * k3v)
            z = z + h / 6 * (k1z + 2 * k2z + 2 * k3z + k4z)
            v = v + h / 6 * (k1v + 2 * k2v + 2 * k3v + k4v)
            path.append(z)
    else:
        path = [z, z + h * v + h * h / 2 * flow.acceleration(z, v)]
        phi = [flow.features(path[0]), flow.features(path[1])]
        for _ in range(n - 1):
            J, solve = flow.jacobian(path[-1])
            target = 2 * phi[-1] - phi[-2]
            x, size = 2 * path[-1] - path[-2], math.inf
            for _ in range(max_newton):
                features = flow.features(x)
                delta = solve(J @ (features - target)[:, :, None])[:, :, 0]
                x = x - delta
                if not delta.norm() < size:  # no longer contracting: as close as the products resolve
                    break
                size = delta.norm()
                if size <= 1e3 * torch.finfo(flow.dtype).eps * (x - path[-1]).norm():
                    break
            path.append(x)
            phi.append(flow.features(x))
    return torch.stack(path, 1).to(flow.dtype)


class _Flow:
    """Features, Jacobians and geodesic accelerations of the feature map f at points (p, d) float64; f runs in
    `dtype` (the metric's), the results are float64."""

    def __init__(self, f, dtype, chunk_size):
        self.f, self.dtype, self.chunk_size = f, dtype, chunk_size

    def features(self, z):
        with torch.no_grad():
            return self.f(z.to(self.dtype)).double()

    def jacobian(self, z):
        """J (p, d, F) float64 (rows: the derivatives along each coordinate) and solve(R) = (J Jᵀ)⁺ R for R (p, d, m),
        eigenvalues of J Jᵀ below 10·eps·λ₁ (eps of the computing dtype) dropped."""
        d = z.shape[1]
        eye = torch.eye(d, dtype=self.dtype, device=z.device)
        (J,) = operators.feature_jacobian(lambda x: (self.f(x),), z.to(self.dtype), eye, self.chunk_size)
        J = J.double()
        lam, V = solvers.eigh_descending(J @ J.transpose(1, 2))
        keep = lam > 10 * torch.finfo(self.dtype).eps * lam[:, :1]
        inverse = torch.where(keep, 1 / torch.where(keep, lam, torch.ones_like(lam)), torch.zeros_like(lam))

        def solve(R):
            return V @ (inverse[:, :, None] * (V.transpose(1, 2) @ R))

        return J, solve

    def acceleration(self, z, v):
        """z̈ (p, d) = −(JᵀJ)⁺Jᵀ ∂²f[v, v] at z (p, d) with velocity v (p, d)."""
        J, solve = self.jacobian(z)
        curvature = operators.second_derivative(self.f, z.to(self.dtype), v.to(self.dtype)).double()
        return -solve(J @ curvature[:, :, None])[:, :, 0]


# --- volume elements -----------------------------------------------------------------------------------------------

def volume_element(G: Callable, distance, z: torch.Tensor, directions: torch.Tensor, *,
                   chunk_size: int | None = None) -> torch.Tensor:
    """log det(VᵀH(z)V) (b,) float64 at codes z (d,) or (b, d) for m directions V (d, m), shared, or (b, d, m), per
    code: twice the log of the m-dimensional volume element of the surface the directions span (√det(VᵀHV) is the
    metric's volume of a unit cube of their coordinates; for orthonormal V it is the product of the principal
    stretches within their span). VᵀHV = 2 (JV)ᵀ(JV): m forward-mode JVPs of the distance's feature map per code.
    −inf where the directions are dependent under H (a flat direction of the metric among them), to the roundoff of
    the metric's dtype: the smallest eigenvalue of VᵀHV at most 10·eps times the largest.
    """
    z, _ = checks.latents(G, z)
    if not isinstance(directions, torch.Tensor):
        raise TypeError(f"directions must be a torch.Tensor (d, m) or (b, d, m), got {type(directions).__name__}")
    b, d = z.shape
    if directions.dim() not in (2, 3) or directions.shape[-2] != d or (
            directions.dim() == 3 and directions.shape[0] != b) or directions.shape[-1] < 1:
        raise ValueError(f"directions must have shape ({d}, m) or ({b}, {d}, m) for codes {tuple(z.shape)}, got "
                         f"{tuple(directions.shape)}")
    if not torch.isfinite(directions).all():
        raise ValueError("directions contain non-finite values (nan or inf)")
    V = directions.detach().to(device=z.device, dtype=z.dtype)
    V = V.T if V.dim() == 2 else V.permute(2, 0, 1)  # (m, d) shared or (m, b, d) per code, as feature_jacobian takes
    f = operators.feature_map(G, z, distance, "volume_element")
    chunk_size = operators.default_chunk_size(z.device) if chunk_size is None else chunk_size
    (JV,) = operators.feature_jacobian(lambda x: (f(x),), z, V.contiguous(), chunk_size)  # (b, m, F)
    JV = JV.double().flatten(2)
    lam = torch.linalg.eigvalsh(2 * JV @ JV.transpose(1, 2))  # ascending
    dependent = lam[:, 0] <= 10 * torch.finfo(z.dtype).eps * lam[:, -1]  # within the roundoff of the JVPs' dtype
    logdet = lam.clamp_min(torch.finfo(torch.float64).tiny).log().sum(1)
    return torch.where(dependent, torch.full_like(logdet, -math.inf), logdet)


# --- the metric along a path -------------------------------------------------------------------------------------

@dataclass
class PathMetric:
    """The top-k eigenpairs of H at every point of p paths (`path_metric`).

    eigvals : (p, n+1, k) float64 descending. eigvecs : (p, n+1, d, k) unit columns. residuals : (p, n+1, k)
    ‖H v − λ v‖ of each pair (the certificate). columns : (p, n+1) int64 Gauss–Newton products (one JVP and one
    VJP each) spent per point, warm-started from the previous point. cold_columns : the same from a random start
    (only with cold=True), else None; `saved` is their difference.
    """

    eigvals: torch.Tensor
    eigvecs: torch.Tensor
    residuals: torch.Tensor
    columns: torch.Tensor
    cold_columns: torch.Tensor | None = None

    @property
    def saved(self) -> torch.Tensor | None:
        """Products saved by the warm starts, per point (p, n+1) (the first point has none), or None."""
        return None if self.cold_columns is None else self.cold_columns - self.columns

    def angles(self) -> torch.Tensor:
        """Principal angles (p, n, k) in radians, ascending, between the top-k eigenspaces of neighbouring points."""
        return principal_angles(self.eigvecs[:, :-1], self.eigvecs[:, 1:])


def path_metric(G: Callable, distance, path: torch.Tensor, k: int, *, tol: float = solvers.TOL,
                block: int | None = None, cold: bool = False, chunk_size: int | None = None) -> PathMetric:
    """Top-k eigenpairs of H at every point of a path (n+1, d) or p paths (p, n+1, d), by the certified block Krylov
    solver on Gauss–Newton products (`solvers.block_krylov`, `operators.GaussNewton`), point after point, each
    warm-started from the previous point's eigenvectors (the first from a random start); the p paths go together.

    tol : the certificate, residuals ≤ tol·λ₁. block : new directions per iteration (None: the solver's default).
    cold : also solve every point from a random start, to count the products the warm starts save.
    """
    z = checks.path(G, path)
    if not isinstance(cold, bool):
        raise TypeError(f"cold must be True or False, got {cold!r}")
    chunk_size = operators.default_chunk_size(z.device) if chunk_size is None else chunk_size
    found, cold_columns, basis = [], [], None
    for i in range(z.shape[1]):
        operator = operators.GaussNewton(G, z[:, i], distance, chunk_size=chunk_size, what="path_metric")
        found.append(solvers.block_krylov(operator, k, tol=tol, block=block, basis=basis))
        basis = found[-1].eigvecs
        if cold:
            cold_columns.append(solvers.block_krylov(operator, k, tol=tol, block=block).columns)
    return PathMetric(*(torch.stack([getattr(pairs, name) for pairs in found], 1)
                        for name in ("eigvals", "eigvecs", "residuals", "columns")),
                      cold_columns=torch.stack(cold_columns, 1) if cold else None)


def principal_angles(U: torch.Tensor, V: torch.Tensor) -> torch.Tensor:
    """Principal angles (..., k) in radians, ascending, between the column spaces of U and V (..., d, k), each with
    orthonormal columns: arccos of the singular values of UᵀV, and arcsin of those of V − U UᵀV for the small ones
    (accurate to roundoff near zero, where arccos is not)."""
    if U.shape != V.shape or U.dim() < 2:
        raise ValueError(f"U and V must be (..., d, k) of one shape, got {tuple(U.shape)} and {tuple(V.shape)}")
    U, V = U.double(), V.double()
    UV = U.transpose(-1, -2) @ V
    cosines = torch.linalg.svdvals(UV).clamp(max=1)  # descending: angles ascending
    sines = torch.linalg.svdvals(V - U @ UV).flip(-1).clamp(max=1)  # ascending
    return torch.where(cosines ** 2 < 0.5, torch.arccos(cosines), torch.arcsin(sines))
