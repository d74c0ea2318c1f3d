"""The metric tensor H(z0) = ∂²/∂z² d(G(z0), G(z)) at z = z0 of an image distance pulled back through a generator.

`metric` computes it by five methods (exact forward-mode Jacobian, exact double backprop, top-k Lanczos on
exact or finite-difference Hessian-vector products, and a certified top-k block Krylov solver); `hvp` exposes
the operator for other solvers, `pullback` the exact engine for any feature map (layer activations, say), and
`region_metric` the metrics of an image region and of the rest of the image from one Jacobian pass.
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
from scipy.sparse.linalg import ArpackError, LinearOperator, eigsh
from torch.func import jvp, vjp, vmap
from tqdm.auto import tqdm

from .assets import atomic_path
from . import checks

METHODS = ("jacobian", "backprop", "lanczos", "finite-difference", "subspace")


@dataclass
class Metric:
    """Metric tensors at b points of a d-dimensional latent space.

    H : (b, d, d) float64, symmetric. For the top-k methods it is the rank-k reconstruction V Λ Vᵀ.
    eigvals : (b, k) descending. eigvecs : (b, d, k), unit columns. z : (b, d) the points.
    residuals : (b, k) float64, ‖H v − λ v‖ of each returned pair ('subspace' only: its certificate), else None.
    passes : (b, 2) int64, the Jacobian columns spent per point as [forward-mode JVPs, reverse-mode VJPs]
        ('jacobian' and 'subspace'), else None.
    """

    H: torch.Tensor
    eigvals: torch.Tensor
    eigvecs: torch.Tensor
    z: torch.Tensor
    method: str
    seconds: float = 0.0
    options: dict = field(default_factory=dict)
    residuals: torch.Tensor | None = None
    passes: torch.Tensor | None = None

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
        optional = {name: None if getattr(self, name) is None else getattr(self, name)[index]
                    for name in OPTIONAL_ARRAYS}
        return Metric(self.H[index], self.eigvals[index], self.eigvecs[index], self.z[index], self.method,
                      self.seconds * len(self.H[index]) / len(self), dict(self.options), **optional)

    def save(self, path: str | Path, *, extra: dict | None = None) -> Path:
        """Write to an .npz file atomically (a reader never sees a half-written file).

        extra : more named arrays or strings to store alongside (e.g. a metric store's fingerprint digest).
        """
        path = Path(path)
        optional = {name: getattr(self, name).cpu().numpy() for name in OPTIONAL_ARRAYS
                    if getattr(self, name) is not None}
        with atomic_path(path) as partial, open(partial, "wb") as f:
            np.savez(f, H=self.H.cpu().numpy(), eigvals=self.eigvals.cpu().numpy(),
                     eigvecs=self.eigvecs.cpu().numpy(), z=self.z.cpu().numpy(), method=self.method,
                     seconds=self.seconds, options=repr(self.options), **optional, **(extra or {}))
        return path

    @classmethod
    def load(cls, path) -> "Metric":
        """Read a file written by `save` (a path or an open binary file).

        A file that is not a complete, consistent Metric (truncated, another .npz, shapes that disagree, an
        unknown method) raises ValueError naming the file and the reason; a missing file, FileNotFoundError.
        """
        import ast
        import zipfile

        name = getattr(path, "name", path)
        try:
            with np.load(path, allow_pickle=False) as data:
                missing = [k for k in _SAVED if k not in data.files]
                if missing:
                    raise ValueError(f"it lacks {', '.join(missing)}")
                arrays = [torch.from_numpy(data[k]) for k in ("H", "eigvals", "eigvecs", "z")]
                method, seconds, options = str(data["method"]), float(data["seconds"]), str(data["options"])
                optional = {k: torch.from_numpy(data[k]) for k in OPTIONAL_ARRAYS if k in data.files}
            options = ast.literal_eval(options)
        except (FileNotFoundError, PermissionError, IsADirectoryError):
            raise
        except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError, SyntaxError, TypeError) as err:
            raise ValueError(f"{name} is not a readable Metric file ({type(err).__name__}: {err})") from err
        problem = _inconsistency(*arrays, method, options, **optional)
        if problem:
            raise ValueError(f"{name} is not a consistent Metric file: {problem}")
        return cls(*arrays, method=method, seconds=seconds, options=options, **optional)


_SAVED = ("H", "eigvals", "eigvecs", "z", "method", "seconds", "options")
OPTIONAL_ARRAYS = ("residuals", "passes")  # per-point arrays a Metric may carry (saved only when present)


def _inconsistency(H, eigvals, eigvecs, z, method, options, residuals=None, passes=None) -> str:
    """What is wrong with these fields of a Metric, or '' (shapes b, d, k must agree; method must be known)."""
    if method not in METHODS:
        return f"unknown method {method!r} (known: {', '.join(METHODS)})"
    if not isinstance(options, dict):
        return f"options must be a dict, got {type(options).__name__}"
    if any(not t.is_floating_point() for t in (H, eigvals, eigvecs, z)):
        return "H, eigvals, eigvecs and z must be floating point"
    if z.dim() != 2:
        return f"z must be (b, d), got {tuple(z.shape)}"
    b, d = z.shape
    k = eigvals.shape[-1] if eigvals.dim() == 2 else -1
    expected = {"H": (b, d, d), "eigvals": (b, k), "eigvecs": (b, d, k)}
    for label, tensor in (("H", H), ("eigvals", eigvals), ("eigvecs", eigvecs)):
        if tuple(tensor.shape) != expected[label] or not 0 < k <= d:
            return (f"shapes disagree: H {tuple(H.shape)}, eigvals {tuple(eigvals.shape)}, eigvecs "
                    f"{tuple(eigvecs.shape)}, z {tuple(z.shape)} (expected (b, d, d), (b, k), (b, d, k), (b, d))")
    if residuals is not None and tuple(residuals.shape) != (b, k):
        return f"residuals are {tuple(residuals.shape)}, expected (b, k) = {(b, k)}"
    if passes is not None and tuple(passes.shape) != (b, 2):
        return f"passes are {tuple(passes.shape)}, expected (b, 2) = {(b, 2)}"
    return ""


def metric(G: Callable, z: torch.Tensor, distance: Callable, method: str = "jacobian", *, k: int = 20,
           eps: float = 1e-4, chunk_size: int | None = None, max_memory: float = 2 ** 30, tol: float | None = None,
           block: int | None = None, basis: torch.Tensor | None = None, relative: bool = False,
           hvp_kind: str | None = None, progress: bool | None = None, allow_tf32: bool = False) -> Metric:
    """Metric tensor of `distance` pulled back through `G` at z (d,) or (b, d).

    Parameters
    ----------
    G : generator, codes (n, d) -> images (n, 3, H, W).
    z : point(s) at which to compute the metric.
    distance : d(x0, x) -> (n,). The 'jacobian' and 'subspace' methods need a `features` map with
        d = ‖f(x0) − f(x)‖².
    method : 'jacobian' (exact; d forward-mode JVPs, batched over directions and points),
        'backprop' (exact; one gradient with create_graph then d second backward passes: the paper's BP),
        'lanczos' (top-k; ARPACK on double-backprop Hessian-vector products: the paper's BackwardIter;
        hvp_kind='gauss-newton' for Gauss–Newton products),
        'finite-difference' (top-k; ARPACK on central differences of the gradient: the paper's ForwardIter),
        'subspace' (top-k with a certificate; block Krylov on Gauss–Newton products 2 Jᵀ(J V), batched JVPs
        and VJPs, until every returned pair has ‖H v − λ v‖ ≤ tol·λ₁, or ≤ tol·λ with relative=True; see
        `residuals` and `passes` of the result).
    k : number of eigenpairs for the top-k methods.
    eps : finite-difference step relative to ‖z‖ (‖step‖ = eps·max(‖z‖, 1), so z = 0 works too).
    chunk_size : images per vmapped pass ('jacobian' and 'subspace'); None: `default_chunk_size(device)`.
        Memory grows with it (the activations of chunk_size images and their tangents): lower it for large
        generators (BigGAN-deep-256 on CPU: 16).
    max_memory : bytes the 'jacobian' method may spend holding Jacobians; points are grouped to fit.
    tol : 'lanczos' and 'finite-difference': ARPACK's tolerance (None or 0: machine precision).
        'subspace': the certificate, residuals ≤ tol·λ₁ (None: 1e-4; 0: grow the basis to all d directions).
    relative : 'subspace': residuals ≤ tol·λ_i for each returned pair instead, so that every returned eigenvalue
        is certified to within tol relative of an eigenvalue of H (|λ_i − μ| ≤ ‖r_i‖ for some eigenvalue μ).
    block : 'subspace': new directions per point and iteration (None: `default_block(k, device)`).
    basis : 'subspace': a warm start, (d, m) for every point or (b, d, m) one per point, e.g. the average
        metric's top eigenvectors or the previous point's; None: a random start (fixed seed). When m > block
        the first block is `block` fixed random mixtures of the basis's columns (a Krylov seed inside its span).
    hvp_kind : 'lanczos': the Hessian-vector product ARPACK calls, one vector at a time (see `hvp`):
        'double-backprop' (None, the default: one vector at a time it was the faster one on CPU, a rough
        same-run ratio of about 1.3x at 256 px, see benchmarks/README.md) or 'gauss-newton' (needs `features`).
    progress : show a progress bar (default: when there is more than one point).
    allow_tf32 : let cuDNN convolutions use TF32 on the GPU (faster on Ampere and later; a 10-bit mantissa,
        errors of the order of 1e-3 relative); off by default, so H is float32-accurate whatever torch's
        global setting. No effect on CPU.

    dtype: the computation runs in the dtype of G's parameters (or floating buffers); a G without any runs in
    z's own floating dtype (float64 z: float64 throughout). H, eigvals and eigvecs are float64 either way.

    Checks (ValueError or TypeError with the reason, never a silent wrong answer): z's shape, device and
    finiteness and at least one code; on the first forward pass, that G returns (n, 3, H, W) floating-point,
    finite images in the distance's `input_range` (see `checks.generated`); that the distance
    returns one finite value per image; that G depends on z (a zero metric is refused); that the metric is
    finite, naming the source of a nan or inf (generator output, distance, or their derivatives).
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of {', '.join(METHODS)}")
    z, single = checks.latents(G, z)
    progress = len(z) > 1 if progress is None else progress
    chunk_size = default_chunk_size(z.device) if chunk_size is None else chunk_size
    with float32_convolutions(allow_tf32):
        return _metric(G, z, distance, method, k=k, eps=eps, chunk_size=chunk_size, max_memory=max_memory,
                       tol=tol, block=block, basis=basis, relative=relative, hvp_kind=hvp_kind, progress=progress,
                       allow_tf32=allow_tf32)


def _metric(G, z, distance, method, *, k, eps, chunk_size, max_memory, tol, block, basis, relative, hvp_kind,
            progress, allow_tf32) -> Metric:
    start = time.perf_counter()
    if basis is not None and method != "subspace":
        raise ValueError(f"basis (a warm start) is an option of method='subspace', not of {method!r}")
    if not isinstance(relative, bool):
        raise TypeError(f"relative must be True or False, got {relative!r}")
    if relative and method != "subspace":
        raise ValueError(f"relative (a certificate per eigenvalue) is an option of method='subspace', not of {method!r}")
    if hvp_kind is not None and method != "lanczos":
        raise ValueError(f"hvp_kind is an option of method='lanczos', not of {method!r}")
    if hvp_kind is not None and hvp_kind not in HVP_KINDS:
        raise ValueError(f"unknown hvp_kind {hvp_kind!r}; choose one of {', '.join(HVP_KINDS)}")
    lanczos_kind = LANCZOS_HVP if hvp_kind is None else hvp_kind
    residuals = passes = None
    if method == "jacobian":
        H = _jacobian_metric(G, z, distance, chunk_size=chunk_size, max_memory=max_memory, progress=progress,
                             allow_tf32=allow_tf32)
        checks.finite_metric(H, G, z, distance)
        eigvals, eigvecs = eigh_descending(H)
        options = {"chunk_size": chunk_size}
        passes = torch.tensor([[z.shape[1], 0]] * len(z))
    elif method == "backprop":
        H = _backprop_metric(G, z, distance, progress=progress)
        checks.finite_metric(H, G, z, distance)
        eigvals, eigvecs = eigh_descending(H)
        options = {}
    else:
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 0 < k < z.shape[1]:
            raise ValueError(f"k must be an integer between 1 and d-1 = {z.shape[1] - 1} for {method!r}, got {k!r}")
        if method == "subspace":
            tol = SUBSPACE_TOL if tol is None else tol
            block = default_block(k, z.device) if block is None else block
            eigvals, eigvecs, residuals, passes = _subspace_metric(
                G, z, distance, k=k, tol=tol, block=block, basis=basis, chunk_size=chunk_size, progress=progress,
                relative=relative)
            options = {"k": k, "tol": tol, "block": block, "chunk_size": chunk_size}
            options |= {"relative": True} if relative else {}
            options |= {"basis": describe_basis(basis)} if basis is not None else {}
        else:
            tol = 0.0 if tol is None else tol
            pairs = []
            for point in tqdm(z, desc=f"metric ({method})", disable=not progress, leave=False):
                if method == "lanczos":
                    operator = hvp(G, point, distance, kind=lanczos_kind, chunk_size=chunk_size,
                                   allow_tf32=allow_tf32)
                else:
                    operator = finite_difference_hvp(G, point, distance, eps=eps, allow_tf32=allow_tf32)
                try:
                    pairs.append(top_eigenpairs(operator, k, tol))
                except ArpackError as err:
                    if not operator.matvec(np.ones(z.shape[1])).any():  # H v = 0 for every v: G ignores z
                        raise ValueError(checks.ignores_z_message(G, [len(pairs)])) from err
                    raise
            eigvals = torch.stack([p[0] for p in pairs]).to(z.device)
            eigvecs = torch.stack([p[1] for p in pairs]).to(z.device)
            options = {"k": k, "tol": tol} | ({"eps": eps} if method == "finite-difference" else {})
            options |= {"hvp_kind": hvp_kind} if hvp_kind is not None else {}
        H = eigvecs @ torch.diag_embed(eigvals) @ eigvecs.transpose(1, 2)
        checks.finite_metric(H, G, z, distance)  # the products were checked; this is a last guard
    options |= {"allow_tf32": True} if allow_tf32 else {}
    checks.nonzero_metric(H, G)
    return Metric(H, eigvals, eigvecs, z.detach().clone(), method, time.perf_counter() - start, options,
                  residuals=None if residuals is None else residuals.to(z.device), passes=passes)


def region_metric(G: Callable, z: torch.Tensor, distance, mask, *, normalize: bool = True,
                  chunk_size: int | None = None, max_memory: float = 2 ** 30, progress: bool | None = None,
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
                   chunk_size: int | None = None, max_memory: float = 2 ** 30, progress: bool | None = None,
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
    z, _ = checks.latents(G, z)
    progress = len(z) > 1 if progress is None else progress
    chunk_size = default_chunk_size(z.device) if chunk_size is None else chunk_size
    checked = []

    def features(codes):
        images = G(codes)
        if not checked:  # the first call is pullback's probe, on plain tensors: check G's images once
            checks.generated(images, len(codes), base)
            checked.append(True)
        for region in regions.values():
            region._checked(images)  # shapes only
        maps = base.feature_maps(images)
        return tuple(part for region in regions.values() for part in region.split_features(images, maps=maps))

    start = time.perf_counter()
    H = pullback(features, z, chunk_size=chunk_size, max_memory=max_memory, progress=progress, allow_tf32=allow_tf32)
    checks.nonzero_metric(H[0] + H[1], G)
    seconds = time.perf_counter() - start
    options = {"chunk_size": chunk_size, "normalize": bool(normalize)} | ({"allow_tf32": True} if allow_tf32 else {})
    out = {}
    for n, name in enumerate(regions):
        out[name] = tuple(Metric(h, *eigh_descending(h), z.detach().clone(), "jacobian", seconds,
                                 options | {"part": part, "mask": name},
                                 passes=torch.tensor([[z.shape[1], 0]] * len(z)))
                          for h, part in ((H[2 * n], "region"), (H[2 * n + 1], "rest")))
    return out


def hvp(G: Callable, z: torch.Tensor, distance: Callable, *, kind: str | None = None, chunk_size: int | None = None,
        allow_tf32: bool = False) -> LinearOperator:
    """Exact Hessian-vector products v ↦ H(z) v at one point z (d,).

    kind : 'gauss-newton' (H v = 2 Jᵀ(J v) with J the Jacobian of the distance's feature map f∘G at z: one
        forward-mode JVP and one reverse-mode VJP, no second-order graph, only the forward graph kept; the
        default when the distance has `features`) or 'double-backprop' (the gradient's graph differentiated
        once more; any distance). Gauss–Newton is the faster one on blocks of vectors (`matmat`); one vector
        at a time (`matvec`, as ARPACK calls it) double backprop is, on CPU: see benchmarks/README.md.
    chunk_size : images per vmapped pass when a block of vectors is applied (`matmat`); None: by device.
    allow_tf32 : as for `metric`.

    Returns a float64 scipy `LinearOperator` of shape (d, d) whose `matmat` applies a block of vectors in
    batched passes; the graph is built once and reused. Its `kind` says which it is and `columns` counts the
    vectors applied so far.
    """
    z, _ = checks.latents(G, z)
    if len(z) != 1:
        raise ValueError(f"hvp works at one point; got {len(z)} codes")
    if kind is not None and kind not in HVP_KINDS:
        raise ValueError(f"unknown kind {kind!r}; choose one of {', '.join(HVP_KINDS)}")
    chunk_size = default_chunk_size(z.device) if chunk_size is None else chunk_size
    with float32_convolutions(allow_tf32):
        if kind is None:
            kind = "gauss-newton" if _has_features(G, z, distance) else "double-backprop"
        if kind == "gauss-newton":
            return _gauss_newton_operator(_feature_map(G, z, distance, "hvp(kind='gauss-newton')"), z, chunk_size,
                                          allow_tf32, lambda HV: checks.finite_products(HV, G, z, distance))
        gradient, z_var = _gradient_graph(G, z, distance)

    def apply(V):  # (d, m) -> (d, m)
        V = torch.as_tensor(V, dtype=z.dtype, device=z.device).T.contiguous()
        with float32_convolutions(allow_tf32):
            if len(V) == 1:
                (HV,) = torch.autograd.grad(gradient, z_var, grad_outputs=V, retain_graph=True)
            else:  # one vmapped backward pass through the gradient's graph for the whole block
                (HV,) = torch.autograd.grad(gradient, z_var, grad_outputs=V[:, None, :], retain_graph=True,
                                            is_grads_batched=True)
                HV = HV[:, 0]
        return checks.finite_products(HV, G, z, distance)

    return _block_operator(z.shape[1], apply, kind)


HVP_KINDS = ("gauss-newton", "double-backprop")
# ARPACK applies one vector at a time, and there torch's forward-mode JVP costs about three forward passes
# (the primal, again as a convolution with a zero weight tangent, and the tangent), so a Gauss–Newton product
# is slower than double backprop; in blocks (`matmat`, method='subspace') it is the faster one.
LANCZOS_HVP = "double-backprop"


def finite_difference_hvp(G: Callable, z: torch.Tensor, distance: Callable, *, eps: float = 1e-4,
                          allow_tf32: bool = False) -> LinearOperator:
    """Hv ≈ (g(z + h v) − g(z − h v)) / 2h with g the gradient of d(G(z), G(·)) and ‖h v‖ = eps·‖z‖.

    Unlike the paper's code (which returns ½ Hv, see notebook 1), this is the Hessian itself.
    The step is relative to ‖z‖ but at least eps (‖h v‖ = eps·max(‖z‖, 1)), so z = 0 works too.
    allow_tf32 : as for `metric`.
    """
    z, _ = checks.latents(G, z)
    if len(z) != 1:
        raise ValueError(f"finite_difference_hvp works at one point; got {len(z)} codes")
    if not eps > 0:
        raise ValueError(f"eps must be positive, got {eps}")
    with torch.no_grad(), float32_convolutions(allow_tf32):
        x0 = checks.generate(G, z, distance)
    radius = eps * max(z.norm().item(), 1.0)

    def matvec(v):
        v = torch.as_tensor(np.asarray(v).reshape(1, -1), dtype=z.dtype, device=z.device)
        h = radius / v.norm().clamp_min(1e-30)
        points = torch.cat([z + h * v, z - h * v]).requires_grad_(True)
        with float32_convolutions(allow_tf32):
            values = distance(x0, G(points))
            checks.distance_values(values, 2, finite=False)  # shape only: no pass over the values per product
            if not values.requires_grad:
                raise ValueError(checks.ignores_z_message(G, [0]))
            (g,) = torch.autograd.grad(values.sum(), points)
        return checks.finite_products(((g[0] - g[1]) / (2 * h))[None], G, z, distance).ravel()

    return _symmetric_operator(z.shape[1], matvec)


# --- methods ---------------------------------------------------------------------------------------------

def _jacobian_metric(G, z, distance, *, chunk_size, max_memory, progress, allow_tf32):
    f = _feature_map(G, z, distance, "method='jacobian'")
    return pullback(f, z, chunk_size=chunk_size, max_memory=max_memory, progress=progress, allow_tf32=allow_tf32)


def _has_features(G, z, distance) -> bool:
    """Whether the distance has a working `features` map (a subclass may leave it unimplemented)."""
    features = getattr(distance, "features", None)
    if features is None:
        return False
    try:
        with torch.no_grad():
            features(checks.generate(G, z[:1], distance))  # the probe: checks G's images once, not per pass
    except NotImplementedError:
        return False
    return True


def _feature_map(G, z, distance, what):
    """x ↦ features(G(x)), or TypeError naming `what` when the distance has no feature map."""
    if not _has_features(G, z, distance):
        missing = "has no `features` map" if getattr(distance, "features", None) is None else \
            "has a `features` map that is not implemented"
        raise TypeError(f"{type(distance).__name__} {missing}, which {what} needs; use method='backprop', "
                        f"'lanczos' or 'finite-difference' (or hvp(kind='double-backprop')) for a general distance")
    return lambda x: distance.features(G(x))


def pullback(f: Callable, z: torch.Tensor, *, chunk_size: int | None = None, max_memory: float = 2 ** 30,
             progress: bool = False, allow_tf32: bool = False):
    """Exact metric H = 2 JᵀJ (b, d, d) float64 of d(z) = ‖f(z) − f(z0)‖² at each z0 of z (b, d).

    f maps codes (n, d) to features (n, F), or to a tuple of such (then one metric per output, as a list).
    J comes from forward-mode JVPs along every basis direction, vmapped with `chunk_size` images in flight
    (None: `default_chunk_size(z.device)`); points are grouped so that their Jacobians (d × points × F floats)
    fit in `max_memory` bytes.
    allow_tf32 : as for `metric`.
    """
    chunk_size = default_chunk_size(z.device) if chunk_size is None else chunk_size
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
    """Jacobian-vector products (points, n, F), one tensor per output of f (a tuple), at the points z (points, d).

    directions : (n, d), the same n directions at every point, or (n, points, d), n directions per point.
    A vmapped call holds all n directions of as many points as fit in chunk_size images, or, when n >
    chunk_size, one point's directions in chunks of chunk_size: every call repeats the primal pass of its
    points (and torch's forward-mode convolution rule spends as much again on a zero weight tangent), so
    whole points per call keep that at 2/n of the work, where chunking points across directions made a
    batch cost more per point than one point alone.
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


def _jvp_columns(f, z, directions, chunk_size):
    """JVPs of f at z (points, d) along directions (n, d) or (n, points, d): a tuple of (n, points, F)."""
    points = z.shape[0]
    shared = directions.dim() == 2

    def column(direction):
        return jvp(f, (z,), (direction.expand(points, -1) if shared else direction,))[1]

    per_call = max(1, chunk_size // points)  # directions per vmapped call: chunk_size images in flight
    with torch.no_grad(), _quiet_forward_ad():
        return vmap(column, chunk_size=per_call)(directions)


@contextlib.contextmanager
def _quiet_forward_ad():
    """torch's own forward-AD decompositions still use torch.jit.script on first use: silence that warning."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*torch.jit.script.*", category=FutureWarning)
        yield


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
        x0 = checks.generate(G, z, distance)
    z_var = z.detach().clone().requires_grad_(True)
    values = distance(x0, G(z_var))
    checks.distance_values(values, len(z))
    if not values.requires_grad:
        raise ValueError(checks.ignores_z_message(G, list(range(len(z)))))
    (gradient,) = torch.autograd.grad(values.sum(), z_var, create_graph=True)
    if not gradient.requires_grad:  # the gradient is constant in z: the metric is zero
        raise ValueError(checks.ignores_z_message(G, list(range(len(z)))))
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


# --- the top of the spectrum: Gauss–Newton products and a certified block solver --------------------------
#
# H = 2 JᵀJ with J the Jacobian of the feature map f∘G, so a block H V costs one batch of forward-mode JVPs
# (J V, through `_feature_jacobian`, the exact engine's own) and one batch of reverse-mode VJPs (Jᵀ U, through
# one forward graph kept per point). No second-order graph is ever built.

SUBSPACE_TOL = 1e-4  # default certificate of method='subspace': every pair's residual ≤ 1e-4·λ₁


def default_chunk_size(device) -> int:
    """Images per vmapped pass when chunk_size is None: 64 on CPU, 256 on other devices.

    On CPU larger calls are slower per image (activations leave the caches) and 64 images already amortise
    the per-call work; a GPU needs more images in flight to be busy.
    """
    return 64 if torch.device(device).type == "cpu" else 256


def default_block(k: int, device) -> int:
    """New directions per iteration of method='subspace' when block is None: min(k, 8) on CPU, k elsewhere.

    Smaller blocks reach the certificate in fewer passes (each new block comes from a richer Krylov space),
    larger ones in fewer sequential steps, which is what a GPU needs to be busy.
    """
    return min(k, 8) if torch.device(device).type == "cpu" else k


def describe_basis(basis: torch.Tensor) -> dict:
    """A warm-start basis as a small literal: shape, dtype and the sha256 of its values (for options and stores)."""
    import hashlib

    data = basis.detach().cpu().contiguous()
    return {"shape": list(data.shape), "dtype": str(data.dtype),
            "sha256": hashlib.sha256(data.reshape(-1).view(torch.uint8).numpy().tobytes()).hexdigest()}


def _vjp_columns(f, z):
    """Jᵀ U at the points z (points, d): returns apply(U) for cotangents U (n, points, F) -> (n, points, d).

    The forward graph is built once here and reused by every call (vmapped over the n cotangents).
    """
    _, pull = vjp(f, z)

    def apply(U, chunk_size):
        per_call = max(1, chunk_size // z.shape[0])
        (out,) = vmap(pull, chunk_size=per_call)(U)
        return out

    return apply


def _gauss_newton_operator(f, z, chunk_size, allow_tf32, finite):
    """H v = 2 Jᵀ(J v) at one point z (1, d) as a LinearOperator (see `hvp`); call within float32_convolutions.
    finite(HV (m, d)) returns the products as float64 numpy (d, m), or raises if they are not finite."""
    pull = _vjp_columns(f, z)

    def apply(V):  # (d, m) -> (d, m)
        V = torch.as_tensor(V, dtype=z.dtype, device=z.device).T.contiguous()
        with float32_convolutions(allow_tf32):
            if len(V) == 1:  # one vector: plain jvp and vjp, no vmap
                with torch.no_grad(), _quiet_forward_ad():
                    U = jvp(f, (z,), (V,))[1][None]
            else:
                (U,) = _feature_jacobian(lambda x: (f(x),), z, V, chunk_size)
                U = U.transpose(0, 1)
            HV = 2 * pull(U, chunk_size)[:, 0]
        return finite(HV)

    return _block_operator(z.shape[1], apply, "gauss-newton")


def _block_operator(d, apply, kind):
    """A symmetric (d, d) float64 LinearOperator from apply((d, m) array) -> (d, m), counting columns applied."""
    def matmat(V):
        V = np.asarray(V, dtype=np.float64).reshape(d, -1)
        operator.columns += V.shape[1]
        return apply(V)

    operator = LinearOperator((d, d), matvec=lambda v: matmat(v).ravel(), rmatvec=lambda v: matmat(v).ravel(),
                              matmat=matmat, dtype=np.float64)
    operator.kind, operator.columns = kind, 0
    return operator


def _subspace_metric(G, z, distance, *, k, tol, block, basis, chunk_size, progress, relative=False, seed: int = 0):
    """Top-k eigenpairs of H at each point of z (b, d) by block Krylov iteration with Rayleigh–Ritz.

    The basis Q of each point grows by `block` orthonormal directions per iteration: the residuals of its
    unconverged Ritz pairs (top first), which span the next Krylov block. H Q is kept (each column costs one JVP
    and one VJP), so the Ritz pairs and their residuals ‖H x − θ x‖ come from float64 linear algebra on
    (d, s) matrices with no further passes. A point stops when its top k residuals are ≤ tol·θ₁ (relative:
    ≤ tol·θ_i each), or when Q
    spans all d directions (then Rayleigh–Ritz is exact). Points are solved in lockstep groups of
    chunk_size // block, so a call holds at most chunk_size images.

    Returns eigvals (b, k), eigvecs (b, d, k), residuals (b, k) float64 and passes (b, 2) int64.
    """
    f = _feature_map(G, z, distance, "method='subspace'")
    b, d = z.shape
    if isinstance(block, bool) or not isinstance(block, int) or block < 1:
        raise ValueError(f"block must be a positive integer, got {block!r}")
    if not (isinstance(tol, (int, float)) and 0 <= tol < 1):
        raise ValueError(f"tol must be a number in [0, 1) for method='subspace' (residuals ≤ tol·λ₁), got {tol!r}")
    starts = checks.warm_start(basis, b, d, z.device)
    generator = torch.Generator().manual_seed(seed)
    cold = torch.randn(d, block, generator=generator, dtype=torch.float64).to(z.device)
    if starts is not None and starts[0].shape[1] > block:
        # A wide warm basis seeds the Krylov space with `block` fixed random mixtures of its columns: started
        # from the whole basis the solver spent its first columns on directions the point does not need and grew
        # the Krylov space slowly (on the faces model, top 20 at tol 1e-4: 60-68 columns against 48-64 cold;
        # mixed: 48-56; see benchmarks/README.md).
        mix = torch.randn(starts[0].shape[1], block, generator=generator, dtype=torch.float64).to(z.device)
        starts = [start @ mix for start in starts]
    per_group = max(1, chunk_size // block)
    eigvals = torch.empty(b, k, dtype=torch.float64, device=z.device)
    eigvecs = torch.empty(b, d, k, dtype=torch.float64, device=z.device)
    residuals = torch.empty(b, k, dtype=torch.float64, device=z.device)
    passes = torch.empty(b, 2, dtype=torch.int64)
    bar = tqdm(total=b, desc="metric (subspace)", disable=not progress, leave=False)
    for first in range(0, b, per_group):
        index = range(first, min(first + per_group, b))
        group = _solve_group(_gauss_newton_blocks(f, z[list(index)], chunk_size, G, distance, list(index)),
                             [cold if starts is None else starts[i] for i in index], k=k, tol=tol, block=block,
                             seed=seed, relative=relative)
        for i, (vals, vecs, res, s) in zip(index, group):
            eigvals[i], eigvecs[i], residuals[i], passes[i] = vals, vecs, res, torch.tensor([s, s])
        bar.update(len(index))
        bar.set_postfix_str(f"passes/point {passes[:index[-1] + 1, 0].float().mean():.0f} of d = {d}")
    bar.close()
    if tol > 0:
        scale = eigvals if relative else eigvals[:, :1]
        if (residuals > tol * scale).any():  # only when tol is below what float32 passes resolve (the basis is full)
            worst = float((residuals / scale).max())
            warnings.warn(f"method='subspace' could not certify tol = {tol:g}: with the basis spanning all {d} "
                          f"directions the largest residual is still {worst:.1e}·{'λ_i' if relative else 'λ₁'} "
                          f"(float32 rounding of the passes); the returned residuals say how accurate each pair "
                          f"is", RuntimeWarning, stacklevel=4)
    return eigvals, eigvecs, residuals, passes


def _solve_group(apply, starts, *, k, tol, block, seed, relative=False):
    """The block Krylov iteration for a few points in lockstep; a list of (eigvals, eigvecs, residuals, passes).

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
                done[i] = (theta[:k], _fix_signs(X[:, :k]), res[:k], s)
                active.remove(i)
                continue
            # next block: residuals of unconverged pairs, top first, then of the pairs beyond k
            order = [j for j in range(min(k, s)) if unconverged[j]] + list(range(k, s))
            size = min(block, d - s)
            new[i] = _orthonormal(R[:, order[:size]], Q[i], generator, size)
    return [done[i] for i in range(p)]


def _gauss_newton_blocks(f, z, chunk_size, G, distance, labels):
    """apply(active, blocks) for `_solve_group`: H W = 2 Jᵀ(J W) at the points z[active], batched over points
    and columns (one JVP call and one VJP call per block); the forward graph of the active points is kept.
    Non-finite products raise ValueError naming their source (G and distance) and the points (labels)."""
    graph = {}

    def apply(active, blocks):
        if graph.get("active") != active:  # the points still running: their forward graph, built once
            graph.update(active=list(active), pull=_vjp_columns(f, z[active]))
        W = torch.stack(blocks)  # (p, d, m)
        directions = W.permute(2, 0, 1).to(z.dtype)  # (m, p, d)
        (U,) = _feature_jacobian(lambda x: (f(x),), z[active], directions, chunk_size)  # (p, m, F)
        HW = 2 * graph["pull"](U.transpose(0, 1), chunk_size)  # (m, p, d)
        bad = ~torch.isfinite(HW).all(dim=0).all(dim=1)  # (p,): per point
        if bad.any():
            which = [active[i] for i in bad.nonzero().flatten().tolist()]
            raise ValueError(checks.nonfinite_source(G, z[which], distance, [labels[i] for i in which],
                                               "a Hessian-vector product"))
        return list(HW.permute(1, 2, 0).double())

    return apply


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


def _fix_signs(X):
    """Eigenvectors (d, k) with the largest-magnitude entry of each column positive (a reproducible sign)."""
    pivot = X.gather(0, X.abs().argmax(0, keepdim=True))
    return X * torch.where(pivot < 0, -1.0, 1.0)


# --- shared pieces -----------------------------------------------------------------------------------------

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
