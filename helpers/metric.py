"""The metric tensor H(z0) = ∂²/∂z² d(G(z0), G(z)) at z = z0 of an image distance pulled back through a generator.

`metric` computes it by four methods (exact forward-mode Jacobian, exact double backprop, and top-k Lanczos
on exact or finite-difference Hessian-vector products); `hvp` exposes the operator for other solvers,
`pullback` the exact engine for any feature map (layer activations, say), and `region_metric` the metrics
of an image region and of the rest of the image from one Jacobian pass.
"""
from __future__ import annotations

import contextlib
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from scipy.sparse.linalg import LinearOperator, eigsh
from torch.func import jvp, vmap
from tqdm.auto import tqdm

from .assets import atomic_path

METHODS = ("jacobian", "backprop", "lanczos", "finite-difference")


@dataclass
class Metric:
    """Metric tensors at b points of a d-dimensional latent space.

    H : (b, d, d) float64, symmetric. For the top-k methods it is the rank-k reconstruction V Λ Vᵀ.
    eigvals : (b, k) descending. eigvecs : (b, d, k), unit columns. z : (b, d) the points.
    """

    H: torch.Tensor
    eigvals: torch.Tensor
    eigvecs: torch.Tensor
    z: torch.Tensor
    method: str
    seconds: float = 0.0
    options: dict = field(default_factory=dict)

    def __len__(self) -> int:
        return self.H.shape[0]

    @property
    def seconds_per_point(self) -> float:
        return self.seconds / len(self)

    def top(self, k: int) -> tuple[torch.Tensor, torch.Tensor]:
        """The k largest eigenvalues (b, k) and their eigenvectors (b, d, k)."""
        if k > self.eigvals.shape[1]:
            raise ValueError(f"only {self.eigvals.shape[1]} eigenpairs were computed (method {self.method!r})")
        return self.eigvals[:, :k], self.eigvecs[:, :, :k]

    def __getitem__(self, index) -> "Metric":
        index = [index] if isinstance(index, int) else index
        return Metric(self.H[index], self.eigvals[index], self.eigvecs[index], self.z[index], self.method,
                      self.seconds * len(self.H[index]) / len(self), dict(self.options))

    def save(self, path: str | Path) -> Path:
        """Write to an .npz file atomically (a reader never sees a half-written file)."""
        path = Path(path)
        with atomic_path(path) as partial, open(partial, "wb") as f:
            np.savez(f, H=self.H.cpu().numpy(), eigvals=self.eigvals.cpu().numpy(),
                     eigvecs=self.eigvecs.cpu().numpy(), z=self.z.cpu().numpy(), method=self.method,
                     seconds=self.seconds, options=repr(self.options))
        return path

    @classmethod
    def load(cls, path: str | Path) -> "Metric":
        import ast

        with np.load(path, allow_pickle=False) as data:
            return cls(*(torch.from_numpy(data[k]) for k in ("H", "eigvals", "eigvecs", "z")),
                       method=str(data["method"]), seconds=float(data["seconds"]),
                       options=ast.literal_eval(str(data["options"])))


def metric(G: Callable, z: torch.Tensor, distance: Callable, method: str = "jacobian", *, k: int = 20,
           eps: float = 1e-4, chunk_size: int = 256, max_memory: float = 2 ** 30, tol: float = 0.0,
           progress: bool | None = None, allow_tf32: bool = False) -> Metric:
    """Metric tensor of `distance` pulled back through `G` at z (d,) or (b, d).

    Parameters
    ----------
    G : generator, codes (n, d) -> images (n, 3, H, W).
    z : point(s) at which to compute the metric.
    distance : d(x0, x) -> (n,). The 'jacobian' method needs a `features` map with d = ‖f(x0) − f(x)‖².
    method : 'jacobian' (exact; d forward-mode JVPs, batched over directions and points),
        'backprop' (exact; one gradient with create_graph then d second backward passes: the paper's BP),
        'lanczos' (top-k; ARPACK on double-backprop Hessian-vector products: the paper's BackwardIter),
        'finite-difference' (top-k; ARPACK on central differences of the gradient: the paper's ForwardIter).
    k : number of eigenpairs for the top-k methods.
    eps : finite-difference step relative to ‖z‖ (‖step‖ = eps·‖z‖).
    chunk_size : images per vmapped forward pass of the 'jacobian' method (directions × points).
    max_memory : bytes the 'jacobian' method may spend holding Jacobians; points are grouped to fit.
    tol : ARPACK tolerance (0 = machine precision).
    progress : show a progress bar (default: when there is more than one point).
    allow_tf32 : let cuDNN convolutions use TF32 on the GPU (faster on Ampere and later; a 10-bit mantissa,
        errors of the order of 1e-3 relative); off by default, so H is float32-accurate whatever torch's
        global setting. No effect on CPU.
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    z, single = _check_latents(G, z)
    progress = len(z) > 1 if progress is None else progress
    with float32_convolutions(allow_tf32):
        return _metric(G, z, distance, method, k=k, eps=eps, chunk_size=chunk_size, max_memory=max_memory,
                       tol=tol, progress=progress, allow_tf32=allow_tf32)


def _metric(G, z, distance, method, *, k, eps, chunk_size, max_memory, tol, progress, allow_tf32) -> Metric:
    start = time.perf_counter()
    if method == "jacobian":
        H = _jacobian_metric(G, z, distance, chunk_size=chunk_size, max_memory=max_memory, progress=progress,
                             allow_tf32=allow_tf32)
        eigvals, eigvecs = eigh_descending(H)
        options = {"chunk_size": chunk_size}
    elif method == "backprop":
        H = _backprop_metric(G, z, distance, progress=progress)
        eigvals, eigvecs = eigh_descending(H)
        options = {}
    else:
        if not 0 < k < z.shape[1]:
            raise ValueError(f"k must be between 1 and d-1 = {z.shape[1] - 1} for {method!r}, got {k}")
        pairs = []
        for point in tqdm(z, desc=f"metric ({method})", disable=not progress, leave=False):
            if method == "lanczos":
                operator = hvp(G, point, distance, allow_tf32=allow_tf32)
            else:
                operator = finite_difference_hvp(G, point, distance, eps=eps, allow_tf32=allow_tf32)
            pairs.append(top_eigenpairs(operator, k, tol))
        eigvals = torch.stack([p[0] for p in pairs]).to(z.device)
        eigvecs = torch.stack([p[1] for p in pairs]).to(z.device)
        H = eigvecs @ torch.diag_embed(eigvals) @ eigvecs.transpose(1, 2)
        options = {"k": k, "tol": tol} | ({"eps": eps} if method == "finite-difference" else {})
    options |= {"allow_tf32": True} if allow_tf32 else {}
    _check_nonzero(H, G)
    return Metric(H, eigvals, eigvecs, z.detach().clone(), method, time.perf_counter() - start, options)


def region_metric(G: Callable, z: torch.Tensor, distance, mask, *, normalize: bool = True, chunk_size: int = 256,
                  max_memory: float = 2 ** 30, progress: bool | None = None,
                  allow_tf32: bool = False) -> tuple[Metric, Metric]:
    """Exact metrics of `distance` restricted to the region M and to the rest, 1 − M, at z (d,) or (b, d).

    Both come from ONE forward-mode Jacobian pass: `pullback` of a feature map that runs G and the distance's
    feature maps once per direction and returns the two weightings of the same features (they share J; only
    the weights differ). See `distances.Region` for the weighting. With a = the mask's area fraction,
    a·H_region + (1 − a)·H_rest = H, the metric of the whole distance (normalize=True; the mask resize keeps
    every layer's area fraction at a), and H_region + H_rest = H with normalize=False.

    distance : a `distances.Distance` with `feature_maps` (MSE, LPIPS), or a `distances.Region` (its mask is
        then replaced by `mask`). mask : (H, W) values in [0, 1] (`distances.box` makes boxes).
    Other options as for `metric`. Returns (region, rest), two `Metric`s; their `seconds` is the shared pass.
    """
    return region_metrics(G, z, distance, {"region": mask}, normalize=normalize, chunk_size=chunk_size,
                          max_memory=max_memory, progress=progress, allow_tf32=allow_tf32)["region"]


def region_metrics(G: Callable, z: torch.Tensor, distance, masks: dict, *, normalize: bool = True,
                   chunk_size: int = 256, max_memory: float = 2 ** 30, progress: bool | None = None,
                   allow_tf32: bool = False) -> dict[str, tuple[Metric, Metric]]:
    """`region_metric` for several masks {name: (H, W) mask} from ONE Jacobian pass: {name: (region, rest)}.

    The pass runs G and the distance's feature maps once per direction; each mask only adds two weighted
    copies of the features (Jacobian memory and Gram matrices grow with the number of masks, the passes do not).
    """
    from .distances import Region

    base = distance.distance if isinstance(distance, Region) else distance
    regions = {name: Region(base, mask, normalize=normalize) for name, mask in masks.items()}
    if not regions:
        raise ValueError("no masks given")
    for name, region in regions.items():
        if not (1 - region.mask).any():
            raise ValueError(f"mask {name!r} covers the whole image: its complement is empty")
    z, _ = _check_latents(G, z)
    progress = len(z) > 1 if progress is None else progress

    def features(codes):
        images = G(codes)
        for region in regions.values():
            region._checked(images)  # shapes only
        maps = base.feature_maps(images)
        return tuple(part for region in regions.values() for part in region.split_features(images, maps=maps))

    start = time.perf_counter()
    H = pullback(features, z, chunk_size=chunk_size, max_memory=max_memory, progress=progress, allow_tf32=allow_tf32)
    _check_nonzero(H[0] + H[1], G)
    seconds = time.perf_counter() - start
    options = {"chunk_size": chunk_size, "normalize": bool(normalize)} | ({"allow_tf32": True} if allow_tf32 else {})
    out = {}
    for n, name in enumerate(regions):
        out[name] = tuple(Metric(h, *eigh_descending(h), z.detach().clone(), "jacobian", seconds,
                                 options | {"part": part, "mask": name})
                          for h, part in ((H[2 * n], "region"), (H[2 * n + 1], "rest")))
    return out


def hvp(G: Callable, z: torch.Tensor, distance: Callable, *, allow_tf32: bool = False) -> LinearOperator:
    """Exact Hessian-vector products v ↦ H(z) v at one point z (d,), by double backprop.

    Returns a float64 scipy `LinearOperator` of shape (d, d); the graph is built once and reused.
    allow_tf32 : as for `metric`.
    """
    z, _ = _check_latents(G, z)
    if len(z) != 1:
        raise ValueError(f"hvp works at one point; got {len(z)} codes")
    with float32_convolutions(allow_tf32):
        gradient, z_var = _gradient_graph(G, z, distance)

    def matvec(v):
        v = torch.as_tensor(np.asarray(v).reshape(1, -1), dtype=z.dtype, device=z.device)
        with float32_convolutions(allow_tf32):
            (hv,) = torch.autograd.grad(gradient, z_var, grad_outputs=v, retain_graph=True)
        return hv.detach().double().cpu().numpy().ravel()

    return _symmetric_operator(z.shape[1], matvec)


def finite_difference_hvp(G: Callable, z: torch.Tensor, distance: Callable, *, eps: float = 1e-4,
                          allow_tf32: bool = False) -> LinearOperator:
    """Hv ≈ (g(z + h v) − g(z − h v)) / 2h with g the gradient of d(G(z), G(·)) and ‖h v‖ = eps·‖z‖.

    Unlike the paper's code (which returns ½ Hv, see notebook 1), this is the Hessian itself.
    allow_tf32 : as for `metric`.
    """
    z, _ = _check_latents(G, z)
    if len(z) != 1:
        raise ValueError(f"finite_difference_hvp works at one point; got {len(z)} codes")
    with torch.no_grad(), float32_convolutions(allow_tf32):
        x0 = G(z)
    radius = eps * z.norm().item()

    def matvec(v):
        v = torch.as_tensor(np.asarray(v).reshape(1, -1), dtype=z.dtype, device=z.device)
        h = radius / v.norm().clamp_min(1e-30)
        points = torch.cat([z + h * v, z - h * v]).requires_grad_(True)
        with float32_convolutions(allow_tf32):
            (g,) = torch.autograd.grad(distance(x0, G(points)).sum(), points)
        return ((g[0] - g[1]) / (2 * h)).detach().double().cpu().numpy().ravel()

    return _symmetric_operator(z.shape[1], matvec)


# --- methods ---------------------------------------------------------------------------------------------

def _jacobian_metric(G, z, distance, *, chunk_size, max_memory, progress, allow_tf32):
    features = getattr(distance, "features", None)
    if features is None:
        raise TypeError(f"{type(distance).__name__} has no `features` map, which method='jacobian' needs; use "
                        f"method='backprop', 'lanczos' or 'finite-difference' for a general distance")
    try:
        with torch.no_grad():
            features(G(z[:1]))
    except NotImplementedError:
        raise TypeError(f"{type(distance).__name__}.features is not implemented; use method='backprop', "
                        f"'lanczos' or 'finite-difference'") from None
    return pullback(lambda x: features(G(x)), z, chunk_size=chunk_size, max_memory=max_memory, progress=progress,
                    allow_tf32=allow_tf32)


def pullback(f: Callable, z: torch.Tensor, *, chunk_size: int = 256, max_memory: float = 2 ** 30,
             progress: bool = False, allow_tf32: bool = False):
    """Exact metric H = 2 JᵀJ (b, d, d) float64 of d(z) = ‖f(z) − f(z0)‖² at each z0 of z (b, d).

    f maps codes (n, d) to features (n, F), or to a tuple of such (then one metric per output, as a list).
    J comes from forward-mode JVPs along every basis direction, vmapped with `chunk_size` images in flight;
    points are grouped so that their Jacobians (d × points × F floats) fit in `max_memory` bytes.
    allow_tf32 : as for `metric`.
    """
    with float32_convolutions(allow_tf32):
        return _pullback(f, z, chunk_size=chunk_size, max_memory=max_memory, progress=progress)


def _pullback(f, z, *, chunk_size, max_memory, progress):
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
        for out, J in zip(H, _feature_jacobian(outputs, block, directions, chunk_size)):
            out[start:start + len(block)] = 2 * _gram64(J)
    return H[0] if single else H


def _feature_jacobian(f, z, directions, chunk_size):
    """Jacobians (points, d, F), one per output of f (a tuple): column i is the JVP along direction i."""
    points = z.shape[0]

    def column(direction):
        return jvp(f, (z,), (direction.expand(points, -1),))[1]

    per_call = max(1, chunk_size // points)  # directions per vmapped call: chunk_size images in flight
    with torch.no_grad(), warnings.catch_warnings():
        # torch's own forward-AD decompositions still use torch.jit.script on first use
        warnings.filterwarnings("ignore", message=".*torch.jit.script.*", category=FutureWarning)
        J = vmap(column, chunk_size=per_call)(directions)  # each (d, points, F)
    return tuple(j.transpose(0, 1) for j in J)


def _gram64(J, block: int = 1 << 16):
    """J Jᵀ accumulated in float64 over feature blocks; J is (points, d, F) float32."""
    out = torch.zeros(J.shape[0], J.shape[1], J.shape[1], dtype=torch.float64, device=J.device)
    for s in range(0, J.shape[2], block):
        part = J[:, :, s:s + block].double()
        out += part @ part.transpose(1, 2)
    return out


def _gradient_graph(G, z, distance):
    """Gradient of d(G(z0), G(z)) at z = z0, kept differentiable (create_graph) for second derivatives."""
    with torch.no_grad():
        x0 = G(z)
    z_var = z.detach().clone().requires_grad_(True)
    values = distance(x0, G(z_var))
    check_distance_values(values, len(z))
    (gradient,) = torch.autograd.grad(values.sum(), z_var, create_graph=True)
    return gradient, z_var


def _backprop_metric(G, z, distance, *, progress):
    """The paper's BP: one backward pass per latent dimension through the gradient's graph.

    Points are batched: the distance is a sum over images, so row i of every point's Hessian comes out of
    one backward pass of the i-th gradient coordinates.
    """
    gradient, z_var = _gradient_graph(G, z, distance)
    b, d = z.shape
    H = torch.empty(b, d, d, dtype=torch.float64, device=z.device)
    for i in tqdm(range(d), desc="metric (backprop)", disable=not progress, leave=False):
        (row,) = torch.autograd.grad(gradient[:, i].sum(), z_var, retain_graph=i < d - 1)
        H[:, i] = row.double()
    return (H + H.transpose(1, 2)) / 2


# --- shared pieces -----------------------------------------------------------------------------------------

def _check_latents(G, z):
    if not isinstance(z, torch.Tensor):
        raise TypeError(f"z must be a torch.Tensor, got {type(z).__name__}")
    single = z.dim() == 1
    z = z.unsqueeze(0) if single else z
    latent_dim = getattr(G, "latent_dim", None)
    if z.dim() != 2 or (latent_dim is not None and z.shape[1] != latent_dim):
        want = f"({latent_dim},) or (b, {latent_dim})" if latent_dim else "(d,) or (b, d)"
        raise ValueError(f"z must have shape {want}, got {tuple(z.shape if not single else z.shape[1:])}")
    if not torch.isfinite(z).all():
        raise ValueError("z contains non-finite values (nan or inf)")
    device = getattr(G, "device", None)
    if isinstance(device, torch.device) and device != z.device:
        raise ValueError(f"z is on {z.device} but the generator is on {device}; move one of them")
    params = list(G.parameters()) if isinstance(G, torch.nn.Module) else []
    dtype = params[0].dtype if params else torch.float32
    return z.detach().to(dtype), single


def check_distance_values(values, n: int) -> None:
    """Raise unless `values` is one distance per image, shape (n,)."""
    if not isinstance(values, torch.Tensor) or values.shape != (n,):
        shape = tuple(values.shape) if isinstance(values, torch.Tensor) else type(values).__name__
        raise ValueError(f"the distance must return one value per image, shape ({n},); got {shape}")


def _check_nonzero(H, G):
    zero = H.flatten(1).abs().amax(dim=1) == 0
    if zero.any():
        which = zero.nonzero().flatten().tolist()
        raise ValueError(f"the metric is exactly zero at point(s) {which}: the output of "
                         f"{getattr(G, 'name', type(G).__name__)} does not depend on z there (zero Jacobian)")


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


def eigh_descending(H: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Eigenvalues (..., d) in descending order and their eigenvectors (..., d, d) as columns, of symmetric H."""
    eigvals, eigvecs = torch.linalg.eigh(H)
    return eigvals.flip(-1), eigvecs.flip(-1)


def _symmetric_operator(d, matvec):
    return LinearOperator((d, d), matvec=matvec, rmatvec=matvec, dtype=np.float64)


def top_eigenpairs(operator, k: int, tol: float = 0.0) -> tuple[torch.Tensor, torch.Tensor]:
    """The k largest eigenvalues (k,) descending and eigenvectors (d, k), float64 on the CPU, by ARPACK Lanczos.

    operator : a symmetric (d, d) scipy `LinearOperator` or dense array; the start vector is fixed, so the
    same operator gives the same numbers every run.
    """
    d = operator.shape[0]
    v0 = np.random.default_rng(0).standard_normal(d)  # fixed start vector: same numbers every run
    eigvals, eigvecs = eigsh(operator, k=k, which="LA", tol=tol, v0=v0)
    order = np.argsort(eigvals)[::-1]
    return torch.from_numpy(eigvals[order].copy()), torch.from_numpy(eigvecs[:, order].copy())
