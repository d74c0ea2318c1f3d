"""How to multiply by the metric H(z) of a distance pulled back through a generator: operators that apply H at one
or many points to blocks of vectors, or give it dense, by Gauss–Newton products, double backprop or finite differences.

Every operator takes points z (b, d) and offers `matmat(V, points)` (blocks (p, d, m) at the points numbered
`points`), `linear_operator(i)` (point i as a float64 scipy `LinearOperator`, for ARPACK) and `dense()` (H (b, d, d)
float64). `GaussNewton` is exact: H = 2 JᵀJ with J the Jacobian of the distance's feature map through G, and its
`dense()` is `pullback`, the one exact engine (forward-mode JVPs along every direction). The solvers in
`helpers.solvers` take any of them; `Dense` wraps plain matrices. Device, dtype and chunking policy live here.
"""
from __future__ import annotations

import contextlib
import warnings
from typing import Callable, Sequence

import numpy as np
import torch
from scipy.sparse.linalg import LinearOperator
from torch.func import jvp, vjp, vmap
from tqdm.auto import tqdm

from . import checks

KINDS = ("gauss-newton", "double-backprop", "finite-difference")


# --- policy: chunks and float32 ----------------------------------------------------------------------------------

def default_chunk_size(device) -> int:
    """Images per vmapped pass when chunk_size is None: 64 on CPU, 256 on other devices.

    On CPU larger calls are slower per image (activations leave the caches) and 64 images already amortise
    the per-call work; a GPU needs more images in flight to be busy.
    """
    return 64 if torch.device(device).type == "cpu" else 256


@contextlib.contextmanager
def float32_convolutions(allow_tf32: bool = False):
    """Within this block cuDNN convolutions run in full float32, unless allow_tf32; the setting is restored after.

    torch lets cuDNN convolutions use TF32 by default on Ampere and later GPUs; its 10-bit mantissa gives
    errors of the order of 1e-3 relative, far more than the exact methods differ from each other.
    """
    if allow_tf32:
        yield
        return
    saved = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32 = saved


@contextlib.contextmanager
def _quiet_forward_ad():
    """torch's own forward-AD decompositions still use torch.jit.script on first use: silence that warning."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*torch.jit.script.*", category=FutureWarning)
        yield


# --- the exact engine: forward-mode Jacobians of a feature map ---------------------------------------------------

def pullback(f: Callable, z: torch.Tensor, *, chunk_size: int | None = None, max_memory: float = 2 ** 30,
             progress: bool = False, allow_tf32: bool = False):
    """Exact metric H = 2 JᵀJ (b, d, d) float64 of d(z) = ‖f(z) − f(z0)‖² at each z0 of z (b, d).

    f maps codes (n, d) to features (n, F), or to a tuple of such (then one metric per output, as a list).
    J comes from forward-mode JVPs along every basis direction, vmapped with `chunk_size` images in flight
    (None: `default_chunk_size(z.device)`); points are grouped so that their Jacobians (d × points × F floats)
    fit in `max_memory` bytes.
    allow_tf32 : let cuDNN convolutions use TF32 on the GPU (see `float32_convolutions`).
    """
    chunk_size = default_chunk_size(z.device) if chunk_size is None else chunk_size
    with float32_convolutions(allow_tf32):
        b, d = z.shape
        with torch.no_grad():
            probe = f(z[:1])
        single = isinstance(probe, torch.Tensor)
        outputs = (lambda x: (f(x),)) if single else f
        probe = (probe,) if single else tuple(probe)
        if any(p.dim() != 2 or p.shape[0] != 1 for p in probe):
            raise ValueError(f"the feature map must return (n, F) for n codes, got {[tuple(p.shape) for p in probe]}")
        n_features = sum(p.shape[1] for p in probe)
        points_per_group = int(max(1, min(b, max_memory // (z.element_size() * d * n_features))))
        directions = torch.eye(d, dtype=z.dtype, device=z.device)
        H = [torch.empty(b, d, d, dtype=torch.float64, device=z.device) for _ in probe]
        groups = range(0, b, points_per_group)
        for start in tqdm(groups, desc="metric (jacobian)", disable=not progress, leave=False):
            block = z[start:start + points_per_group]
            for out, J in zip(H, feature_jacobian(outputs, block, directions, chunk_size)):
                out[start:start + len(block)] = 2 * gram64(J)
    return H[0] if single else H


def feature_jacobian(f: Callable, z: torch.Tensor, directions: torch.Tensor, chunk_size: int) -> tuple:
    """Jacobian-vector products (points, n, F), one tensor per output of f (a tuple), at the points z (points, d).

    directions : (n, d), the same n directions at every point, or (n, points, d), n directions per point.
    A vmapped call holds all n directions of as many points as fit in chunk_size images, or, when n >
    chunk_size, one point's directions in chunks of chunk_size: every call repeats the primal pass of its
    points (and torch's forward-mode convolution rule spends as much again on a zero weight tangent), so
    whole points per call keep that at 2/n of the work.
    """
    points, n = z.shape[0], directions.shape[0]
    per_point = directions.dim() == 3
    step = max(1, chunk_size // n)  # points per call
    out = None
    for s in range(0, points, step):
        part = _jvp_columns(f, z[s:s + step], directions[:, s:s + step] if per_point else directions, chunk_size)
        if step >= points:
            out = part
            break
        if out is None:  # laid out as one call's output, (n, points, F): the Gram matrix sees the same strides
            out = tuple(torch.empty(n, points, *j.shape[2:], dtype=j.dtype, device=j.device) for j in part)
        for o, j in zip(out, part):
            o[:, s:s + j.shape[1]] = j
    return tuple(j.transpose(0, 1) for j in out)


def second_derivative(f: Callable, z: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """∂²f(z)[v, v] (points, F): the second derivative of f (codes (n, d) -> features (n, F)) at the points z
    (points, d) along v (points, d), by nested forward-mode JVPs: the acceleration of t ↦ f(z + t v) at t = 0.
    A piecewise-linear f (ReLU) has none almost everywhere: its curvature sits in kinks that no derivative sees."""
    with torch.no_grad(), _quiet_forward_ad():
        return jvp(lambda x: jvp(f, (x,), (v,))[1], (z,), (v,))[1]


def _jvp_columns(f, z, directions, chunk_size):
    """JVPs of f at z (points, d) along directions (n, d) or (n, points, d): a tuple of (n, points, F)."""
    points = z.shape[0]
    shared = directions.dim() == 2

    def column(direction):
        return jvp(f, (z,), (direction.expand(points, -1) if shared else direction,))[1]

    per_call = max(1, chunk_size // points)  # directions per vmapped call: chunk_size images in flight
    with torch.no_grad(), _quiet_forward_ad(), _explained("forward-mode (torch.func.jvp under vmap)"):
        return vmap(column, chunk_size=per_call)(directions)


_TRANSFORM_WORDS = ("vmap", "functorch", "forward ad", "forward-mode", "forward mode", "jvp", "nyi", "batching rule",
                    "dual")


@contextlib.contextmanager
def _explained(what: str):
    """Turn an error that torch.func raises inside the generator or distance (an operation it cannot transform) into
    one that says so and names the methods that need no transform."""
    try:
        yield
    except RuntimeError as err:
        if not any(word in str(err).lower() for word in _TRANSFORM_WORDS):
            raise
        raise ValueError(f"the generator or distance does something that {what} cannot differentiate: {err}. "
                         f"method='backprop' or 'lanczos' use plain autograd instead (or rewrite that operation, "
                         f"e.g. without an in-place update, a memory-format copy or random numbers)") from err


def _vjp_columns(f, z):
    """Jᵀ U at the points z (points, d): returns apply(U, chunk_size) for cotangents U (n, points, F) ->
    (n, points, d). The forward graph is built once here and reused by every call (vmapped over the n cotangents)."""
    with _explained("reverse-mode (torch.func.vjp)"):
        _, pull = vjp(f, z)

    def apply(U, chunk_size):
        per_call = max(1, chunk_size // z.shape[0])
        with _explained("reverse-mode (torch.func.vjp under vmap)"):
            (out,) = vmap(pull, chunk_size=per_call)(U)
        return out

    return apply


def gram64(J: torch.Tensor, block: int = 1 << 16) -> torch.Tensor:
    """J Jᵀ (points, d, d) accumulated in float64 over feature blocks; J is (points, d, F), usually float32."""
    out = torch.zeros(J.shape[0], J.shape[1], J.shape[1], dtype=torch.float64, device=J.device)
    for s in range(0, J.shape[2], block):
        part = J[:, :, s:s + block].double()
        out += part @ part.transpose(1, 2)
    return out


# --- operators ---------------------------------------------------------------------------------------------------

class Operator:
    """H at b points z (b, d) as an operator. Subclasses implement `_apply(V, points)`; V (p, d, m) in z's dtype ->
    H V (p, d, m) float64 at the points numbered `points` (p of them); `columns` (b,) counts the vectors applied."""

    kind = ""

    def __init__(self, z: torch.Tensor):
        self.z = z
        self.columns = torch.zeros(len(z), dtype=torch.int64)

    @property
    def shape(self) -> tuple[int, int, int]:
        return (self.z.shape[0], self.z.shape[1], self.z.shape[1])

    def matmat(self, V: torch.Tensor, points: Sequence[int] | None = None) -> torch.Tensor:
        """H V (p, d, m) float64 for blocks V (p, d, m) at the points numbered `points` (default: all b)."""
        points = list(range(len(self.z))) if points is None else list(points)
        V = torch.as_tensor(V)
        if V.dim() != 3 or V.shape[:2] != (len(points), self.z.shape[1]):
            raise ValueError(f"V must be (p, d, m) = ({len(points)}, {self.z.shape[1]}, m) for the {len(points)} "
                             f"points, got {tuple(V.shape)}")
        self.columns[points] += V.shape[2]
        return self._apply(V.to(device=self.z.device), points)

    def linear_operator(self, i: int = 0) -> LinearOperator:
        """Point i as a symmetric (d, d) float64 scipy LinearOperator; its `matmat` applies a block at once, and
        its `kind` and `columns` (vectors applied so far through it) say what it is."""
        d = self.z.shape[1]

        def matmat(V):
            V = np.asarray(V, dtype=np.float64).reshape(d, -1)
            operator.columns += V.shape[1]
            self.columns[i] += V.shape[1]
            return self._apply_one(V, i)

        operator = LinearOperator((d, d), matvec=lambda v: matmat(v).ravel(), rmatvec=lambda v: matmat(v).ravel(),
                                  matmat=matmat, dtype=np.float64)
        operator.kind, operator.columns = self.kind, 0
        return operator

    def dense(self, *, progress: bool = False) -> torch.Tensor:
        """H (b, d, d) float64, from H applied to the identity at every point (symmetrised)."""
        d = self.z.shape[1]
        eye = torch.eye(d, dtype=self.z.dtype, device=self.z.device)
        H = torch.stack([self.matmat(eye[None], [i])[0] for i in
                         tqdm(range(len(self.z)), desc=f"metric ({self.kind})", disable=not progress, leave=False)])
        return (H + H.transpose(1, 2)) / 2

    def _apply(self, V, points):
        raise NotImplementedError

    def _apply_one(self, V: np.ndarray, i: int) -> np.ndarray:
        """H V for one point's float64 numpy block (d, m) -> (d, m); what ARPACK calls."""
        HV = self._apply(torch.as_tensor(V, dtype=self.z.dtype, device=self.z.device)[None], [i])[0]
        return HV.cpu().numpy()


class Dense(Operator):
    """Given matrices H (b, d, d) (or one (d, d)) as an operator: for testing solvers, or a metric already computed."""

    kind = "dense"

    def __init__(self, H: torch.Tensor):
        H = torch.as_tensor(H, dtype=torch.float64)
        H = H[None] if H.dim() == 2 else H
        if H.dim() != 3 or H.shape[1] != H.shape[2]:
            raise ValueError(f"H must be (d, d) or (b, d, d), got {tuple(H.shape)}")
        super().__init__(torch.zeros(H.shape[0], H.shape[1], dtype=torch.float64, device=H.device))
        self.H = H

    def _apply(self, V, points):
        return self.H[points] @ V.to(self.H)

    def dense(self, *, progress: bool = False) -> torch.Tensor:
        return self.H.clone()


class GaussNewton(Operator):
    """H V = 2 Jᵀ(J V), J the Jacobian of the distance's feature map x ↦ features(G(x)) at each point: one batch of
    forward-mode JVPs and one of reverse-mode VJPs per block, no second-order graph (the forward graph of the points
    last applied to is kept). Exact for every distance d = ‖f(x0) − f(x)‖²; `dense()` is `pullback`.

    z : (b, d) in the dtype the metric computes in (`checks.latents`). chunk_size : images per vmapped pass.
    what : the method's name, for the error when the distance has no feature map.
    """

    kind = "gauss-newton"

    def __init__(self, G, z, distance, *, chunk_size: int | None = None, max_memory: float = 2 ** 30,
                 allow_tf32: bool = False, what: str = "the Gauss–Newton operator"):
        super().__init__(z)
        self.G, self.distance, self.allow_tf32, self.max_memory = G, distance, allow_tf32, max_memory
        self.chunk_size = default_chunk_size(z.device) if chunk_size is None else chunk_size
        with float32_convolutions(allow_tf32):
            self.f = feature_map(G, z, distance, what)
        self._graph: tuple = ((), None)

    def dense(self, *, progress: bool = False) -> torch.Tensor:
        return pullback(self.f, self.z, chunk_size=self.chunk_size, max_memory=self.max_memory, progress=progress,
                        allow_tf32=self.allow_tf32)

    def _pull(self, points):
        """Jᵀ at the points, from their forward graph, built once per set of points."""
        if self._graph[0] != tuple(points):
            self._graph = (tuple(points), _vjp_columns(self.f, self.z[list(points)]))
        return self._graph[1]

    def _apply(self, V, points):
        with float32_convolutions(self.allow_tf32):
            pull = self._pull(points)
            directions = V.permute(2, 0, 1).to(self.z.dtype)  # (m, p, d)
            (U,) = feature_jacobian(lambda x: (self.f(x),), self.z[points], directions, self.chunk_size)  # (p, m, F)
            HV = 2 * pull(U.transpose(0, 1), self.chunk_size)  # (m, p, d)
        bad = ~torch.isfinite(HV).all(dim=0).all(dim=1)  # (p,): per point
        if bad.any():
            which = [points[i] for i in bad.nonzero().flatten().tolist()]
            raise ValueError(checks.nonfinite_source(self.G, self.z[which], self.distance, which,
                                                     "a Hessian-vector product"))
        return HV.permute(1, 2, 0).double()

    def _apply_one(self, V, i):
        z = self.z[i:i + 1]
        V = torch.as_tensor(V, dtype=z.dtype, device=z.device).T.contiguous()  # (m, d)
        with float32_convolutions(self.allow_tf32):
            pull = self._pull([i])
            if len(V) == 1:  # one vector: plain jvp and vjp, no vmap
                with torch.no_grad(), _quiet_forward_ad(), _explained("forward-mode (torch.func.jvp)"):
                    U = jvp(self.f, (z,), (V,))[1][None]
            else:
                (U,) = feature_jacobian(lambda x: (self.f(x),), z, V, self.chunk_size)
                U = U.transpose(0, 1)
            HV = 2 * pull(U, self.chunk_size)[:, 0]
        return checks.finite_products(HV, self.G, z, self.distance)


class DoubleBackprop(Operator):
    """H V by differentiating the gradient of d(G(z0), G(z)) once more (its graph built once, with create_graph):
    works for any distance. `dense()` is the paper's BP: one backward pass per latent dimension, all points at once.

    z : (b, d) in the dtype the metric computes in. The gradient's graph (`gradient`, (b, d), of `z_var`) is public.
    """

    kind = "double-backprop"

    def __init__(self, G, z, distance, *, allow_tf32: bool = False):
        super().__init__(z)
        self.G, self.distance, self.allow_tf32 = G, distance, allow_tf32
        with float32_convolutions(allow_tf32), torch.enable_grad():  # also when called under torch.no_grad()
            with torch.no_grad():
                x0 = checks.generate(G, z, distance)
            self.z_var = z.detach().clone().requires_grad_(True)
            values = distance(x0, G(self.z_var))
            checks.distance_values(values, len(z))
            if not values.requires_grad:
                raise ValueError(checks.ignores_z_message(G, list(range(len(z))), z))
            (self.gradient,) = torch.autograd.grad(values.sum(), self.z_var, create_graph=True)
        if not self.gradient.requires_grad:  # the gradient is constant in z: the metric is zero
            raise ValueError(checks.ignores_z_message(G, list(range(len(z))), z))

    def dense(self, *, progress: bool = False) -> torch.Tensor:
        # The distance is a sum over images, so row i of every point's Hessian comes out of one backward pass of
        # the i-th gradient coordinates.
        b, d = self.z.shape
        H = torch.empty(b, d, d, dtype=torch.float64, device=self.z.device)
        with float32_convolutions(self.allow_tf32), torch.enable_grad():
            for i in tqdm(range(d), desc="metric (backprop)", disable=not progress, leave=False):
                (row,) = torch.autograd.grad(self.gradient[:, i].sum(), self.z_var, retain_graph=i < d - 1)
                H[:, i] = row.double()
        return (H + H.transpose(1, 2)) / 2

    def _backward(self, V, points):
        """H V (m, p, d) for V (m, p, d): one (vmapped) backward pass through the gradient's graph."""
        b, d = self.z.shape
        if len(points) == b and points == list(range(b)):
            outputs = V
        else:  # zero cotangents at the other points: the distance is a sum over points, they do not mix
            outputs = V.new_zeros(V.shape[0], b, d)
            outputs[:, points] = V
        with float32_convolutions(self.allow_tf32), torch.enable_grad():
            if len(outputs) == 1:
                (HV,) = torch.autograd.grad(self.gradient, self.z_var, grad_outputs=outputs[0], retain_graph=True)
                HV = HV[None]
            else:
                (HV,) = torch.autograd.grad(self.gradient, self.z_var, grad_outputs=outputs, retain_graph=True,
                                            is_grads_batched=True)
        return HV[:, points]

    def _apply(self, V, points):
        HV = self._backward(V.permute(2, 0, 1).to(self.z.dtype), list(points))  # (m, p, d)
        if not torch.isfinite(HV).all():
            raise ValueError(checks.nonfinite_source(self.G, self.z[list(points)], self.distance, list(points),
                                                     "a Hessian-vector product"))
        return HV.permute(1, 2, 0).double()

    def _apply_one(self, V, i):
        V = torch.as_tensor(V, dtype=self.z.dtype, device=self.z.device).T.contiguous()  # (m, d)
        HV = self._backward(V[:, None, :], [i])[:, 0]
        return checks.finite_products(HV, self.G, self.z[i:i + 1], self.distance)


class FiniteDifference(Operator):
    """H v ≈ (g(z + h v) − g(z − h v)) / 2h with g the gradient of d(G(z0), G(·)) and ‖h v‖ = eps·max(‖z‖, 1), so
    z = 0 works too. Unlike the paper's code (which returns ½ Hv), this is the Hessian itself. One vector at a time.

    z : (b, d) in the dtype the metric computes in; eps : the step relative to ‖z‖.
    """

    kind = "finite-difference"

    def __init__(self, G, z, distance, *, eps: float = 1e-4, allow_tf32: bool = False):
        super().__init__(z)
        if not eps > 0:
            raise ValueError(f"eps must be positive, got {eps}")
        self.G, self.distance, self.allow_tf32 = G, distance, allow_tf32
        with torch.no_grad(), float32_convolutions(allow_tf32):
            self.x0 = checks.generate(G, z, distance)
        self.radius = [eps * max(point.norm().item(), 1.0) for point in z]

    def _product(self, v, i):
        """H v (d,) at point i for one vector v (d,)."""
        z = self.z[i:i + 1]
        v = v.reshape(1, -1).to(dtype=z.dtype, device=z.device)
        h = self.radius[i] / v.norm().clamp_min(1e-30)
        points = torch.cat([z + h * v, z - h * v]).detach().requires_grad_(True)
        with float32_convolutions(self.allow_tf32), torch.enable_grad():  # also when called under torch.no_grad()
            values = self.distance(self.x0[i:i + 1], self.G(points))
            checks.distance_values(values, 2, finite=False)  # shape only: no pass over the values per product
            if not values.requires_grad:
                raise ValueError(checks.ignores_z_message(self.G, [i], self.z[i:i + 1]))
            (g,) = torch.autograd.grad(values.sum(), points)
        return (g[0] - g[1]) / (2 * h)

    def _apply(self, V, points):
        HV = torch.stack([torch.stack([self._product(V[p, :, j], i) for j in range(V.shape[2])], 1)
                          for p, i in enumerate(points)])
        if not torch.isfinite(HV).all():
            raise ValueError(checks.nonfinite_source(self.G, self.z[list(points)], self.distance, list(points),
                                                     "a Hessian-vector product"))
        return HV.double()

    def linear_operator(self, i: int = 0) -> LinearOperator:
        d = self.z.shape[1]

        def matvec(v):
            self.columns[i] += 1
            v = torch.as_tensor(np.asarray(v).reshape(1, -1))
            return checks.finite_products(self._product(v, i)[None], self.G, self.z[i:i + 1], self.distance).ravel()

        operator = LinearOperator((d, d), matvec=matvec, rmatvec=matvec, dtype=np.float64)
        operator.kind = self.kind
        return operator


# --- feature maps --------------------------------------------------------------------------------------------------

def has_features(G, z, distance) -> bool:
    """Whether the distance has a working `features` map (a subclass may leave it unimplemented); the probe is
    G's first checked forward pass (`checks.generate` on z[:1])."""
    features = getattr(distance, "features", None)
    if features is None:
        return False
    try:
        with torch.no_grad():
            features(checks.generate(G, z[:1], distance))
    except NotImplementedError:
        return False
    return True


def feature_map(G, z, distance, what: str) -> Callable:
    """x ↦ features(G(x)), or TypeError naming `what` when the distance has no feature map."""
    if not has_features(G, z, distance):
        missing = "has no `features` map" if getattr(distance, "features", None) is None else \
            "has a `features` map that is not implemented"
        raise TypeError(f"{type(distance).__name__} {missing}, which {what} needs; use method='backprop', "
                        f"'lanczos' or 'finite-difference' (or hvp(kind='double-backprop')) for a general distance")
    def f(codes):
        images = G(codes)
        checks.image_count(images, codes)  # every pass, vmapped ones included: shapes cost nothing to check
        return distance.features(images)

    return f
