"""The metric tensor H(z0) = ∂²/∂z² d(G(z0), G(z)) at z = z0 of an image distance pulled back through a generator:
`metric` (one call, five methods), its `Metric` result and files, `hvp` at a point, and `region_metric(s)`.

The façade over the engine's two halves: `helpers.operators` (how to multiply by H: the exact pullback and
Gauss–Newton products, double backprop, finite differences) and `helpers.solvers` (dense eigh, ARPACK Lanczos,
the certified block Krylov solver). Method → operator and solver: 'jacobian' → `GaussNewton.dense` (= `pullback`,
the exact engine) + eigh; 'backprop' → `DoubleBackprop.dense` + eigh; 'lanczos' → `DoubleBackprop` (or
Gauss–Newton) + `lanczos`; 'finite-difference' → `FiniteDifference` + `lanczos`; 'subspace' → `GaussNewton` +
`block_krylov`.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch
from scipy.sparse.linalg import ArpackError, LinearOperator
from tqdm.auto import tqdm

from . import checks, operators, solvers
from .assets import atomic_path
# the engine's public pieces, so that `metric.pullback` & co. stay where users found them
from .operators import default_chunk_size, float32_convolutions, pullback
from .solvers import default_block, eigh_descending, top_eigenpairs

__all__ = ["METHODS", "Metric", "metric", "hvp", "finite_difference_hvp", "region_metric", "region_metrics",
           "describe_basis", "pullback", "eigh_descending", "top_eigenpairs", "default_chunk_size", "default_block",
           "float32_convolutions", "SUBSPACE_TOL", "HVP_KINDS", "OPTIONAL_ARRAYS"]

SUBSPACE_TOL = solvers.TOL  # default certificate of method='subspace': every pair's residual ≤ 1e-4·λ₁
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
        checks.positive_int(k, "k")
        if k > self.eigvals.shape[1]:
            raise ValueError(f"only {self.eigvals.shape[1]} eigenpairs were computed (method {self.method!r})")
        return self.eigvals[:, :k], self.eigvecs[:, :, :k]

    def __getitem__(self, index) -> "Metric":
        if isinstance(index, (int, np.integer)) and not isinstance(index, bool):
            if not -len(self) <= index < len(self):
                raise IndexError(f"point {index} of a Metric of {len(self)} point(s)")
            index = [int(index)]
        elif not isinstance(index, (slice, list, range, torch.Tensor, np.ndarray)):
            raise TypeError(f"a Metric is indexed by point: an integer, a slice, a list or a tensor of indices or a "
                            f"boolean mask, got {type(index).__name__}")
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
            loaded = np.load(path, allow_pickle=False)
            if not isinstance(loaded, np.lib.npyio.NpzFile):
                raise ValueError("it is a single array (.npy), not the .npz archive Metric.save writes")
            with loaded as data:
                missing = [k for k in _SAVED if k not in data.files]
                if missing:
                    raise ValueError(f"it lacks {', '.join(missing)}")
                arrays = [torch.from_numpy(data[k]) for k in ("H", "eigvals", "eigvecs", "z")]
                method, seconds, options = str(data["method"]), float(data["seconds"]), str(data["options"])
                optional = {k: torch.from_numpy(data[k]) for k in OPTIONAL_ARRAYS if k in data.files}
            options = ast.literal_eval(options)
        except IsADirectoryError:
            raise ValueError(f"{name} is a directory, not a Metric file (a metric store? read it with "
                             f"batch.load_store)") from None
        except (FileNotFoundError, PermissionError):
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
        'double-backprop' (None, the default: one vector at a time it is the cheaper product on CPU) or
        'gauss-newton' (needs `features`).
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
    z, single = checks.latents(G, z)
    checks.metric_options(method, z.shape[1], k=k, eps=eps, chunk_size=chunk_size, max_memory=max_memory, tol=tol,
                          block=block, basis=basis, relative=relative, hvp_kind=hvp_kind, progress=progress,
                          allow_tf32=allow_tf32, methods=METHODS, hvp_kinds=HVP_KINDS)
    progress = len(z) > 1 if progress is None else progress
    chunk_size = default_chunk_size(z.device) if chunk_size is None else chunk_size
    with float32_convolutions(allow_tf32), checks.probed(G, z, distance, allow_tf32=allow_tf32):
        return _metric(G, z, distance, method, k=k, eps=eps, chunk_size=chunk_size, max_memory=max_memory,
                       tol=tol, block=block, basis=basis, relative=relative, hvp_kind=hvp_kind, progress=progress,
                       allow_tf32=allow_tf32)


def _metric(G, z, distance, method, *, k, eps, chunk_size, max_memory, tol, block, basis, relative, hvp_kind,
            progress, allow_tf32) -> Metric:
    start = time.perf_counter()
    residuals = passes = None
    if method in ("jacobian", "backprop"):
        if method == "jacobian":
            operator = operators.GaussNewton(G, z, distance, chunk_size=chunk_size, max_memory=max_memory,
                                             allow_tf32=allow_tf32, what="method='jacobian'")
            options = {"chunk_size": chunk_size}
            passes = torch.tensor([[z.shape[1], 0]] * len(z))
        else:
            operator = operators.DoubleBackprop(G, z, distance, allow_tf32=allow_tf32)
            options = {}
        H = operator.dense(progress=progress)
        checks.finite_metric(H, G, z, distance)
        eigvals, eigvecs = eigh_descending(H)
    else:
        if method == "subspace":
            tol = SUBSPACE_TOL if tol is None else tol
            block = checks.positive_int(solvers.default_block(k, z.device) if block is None else block, "block")
            operator = operators.GaussNewton(G, z, distance, chunk_size=chunk_size, allow_tf32=allow_tf32,
                                             what="method='subspace'")
            found = solvers.block_krylov(operator, k, tol=tol, block=block, basis=basis, relative=relative,
                                         points_per_group=max(1, chunk_size // block), progress=progress)
            eigvals, eigvecs, residuals = found.eigvals, found.eigvecs, found.residuals
            passes = torch.stack([found.columns, found.columns], 1)
            options = {"k": k, "tol": tol, "block": block, "chunk_size": chunk_size}
            options |= {"relative": True} if relative else {}
            options |= {"basis": describe_basis(basis)} if basis is not None else {}
        else:
            tol = 0.0 if tol is None else tol
            pairs = []
            for i, point in enumerate(tqdm(z, desc=f"metric ({method})", disable=not progress, leave=False)):
                operator = _hvp_operator(G, point[None], distance, method, hvp_kind, eps=eps, chunk_size=chunk_size,
                                         allow_tf32=allow_tf32)
                try:
                    pairs.append(solvers.lanczos(operator, k, tol=tol))
                except ArpackError as err:
                    if not operator.linear_operator().matvec(np.ones(z.shape[1])).any():  # G ignores z: H v = 0
                        raise ValueError(checks.ignores_z_message(G, [i], z[i:i + 1])) from err
                    raise
            eigvals = torch.cat([p.eigvals for p in pairs])
            eigvecs = torch.cat([p.eigvecs for p in pairs])
            options = {"k": k, "tol": tol} | ({"eps": eps} if method == "finite-difference" else {})
            options |= {"hvp_kind": hvp_kind} if hvp_kind is not None else {}
        H = eigvecs @ torch.diag_embed(eigvals) @ eigvecs.transpose(1, 2)
        checks.finite_metric(H, G, z, distance)  # the products were checked; this is a last guard
    options |= {"allow_tf32": True} if allow_tf32 else {}
    checks.nonzero_metric(H, G, z)
    checks.positive_semidefinite(eigvals, G, distance)
    return Metric(H, eigvals, eigvecs, z.detach().clone(), method, time.perf_counter() - start, options,
                  residuals=None if residuals is None else residuals.to(z.device), passes=passes)


def _hvp_operator(G, z, distance, method, hvp_kind, *, eps, chunk_size, allow_tf32) -> operators.Operator:
    """The operator ARPACK calls at one point z (1, d) for 'lanczos' (double backprop unless hvp_kind says
    otherwise) and 'finite-difference'."""
    if method == "finite-difference":
        return operators.FiniteDifference(G, z, distance, eps=eps, allow_tf32=allow_tf32)
    if (hvp_kind or LANCZOS_HVP) == "gauss-newton":
        return operators.GaussNewton(G, z, distance, chunk_size=chunk_size, allow_tf32=allow_tf32,
                                     what="hvp(kind='gauss-newton')")
    return operators.DoubleBackprop(G, z, distance, allow_tf32=allow_tf32)


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
    _speed_options(chunk_size, allow_tf32, max_memory, progress)
    checks.flag(normalize, "normalize")
    checks.model(G, z, base, allow_tf32=allow_tf32)
    progress = len(z) > 1 if progress is None else progress
    chunk_size = default_chunk_size(z.device) if chunk_size is None else chunk_size
    checked = []

    def features(codes):
        images = G(codes)
        checks.image_count(images, codes)
        if not checked:  # the first call is pullback's probe, on plain tensors: check G's images once
            checks.generated(images, len(codes), base)
            checked.append(True)
        for region in regions.values():
            region.checked(images)  # shapes only
        maps = base.feature_maps(images)
        return tuple(part for region in regions.values() for part in region.split_features(images, maps=maps))

    start = time.perf_counter()
    H = pullback(features, z, chunk_size=chunk_size, max_memory=max_memory, progress=progress, allow_tf32=allow_tf32)
    checks.nonzero_metric(H[0] + H[1], G, z)
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
    """Exact Hessian-vector products v ↦ H(z) v at one point z (d,), as a float64 scipy `LinearOperator` (d, d).

    kind : 'gauss-newton' (H v = 2 Jᵀ(J v), `operators.GaussNewton`; the default when the distance has
        `features`) or 'double-backprop' (`operators.DoubleBackprop`; any distance). Gauss–Newton is the faster
        one on blocks of vectors (`matmat`); one vector at a time (`matvec`, as ARPACK calls it) double backprop
        is, on CPU.
    chunk_size : images per vmapped pass when a block of vectors is applied (`matmat`); None: by device.
    allow_tf32 : as for `metric`.

    The graph is built once and reused; the operator's `kind` says which it is and `columns` counts the vectors
    applied so far. For blocks at many points at once use `helpers.operators` directly.
    """
    z, _ = checks.latents(G, z)
    if len(z) != 1:
        raise ValueError(f"hvp works at one point; got {len(z)} codes")
    if kind is not None and kind not in HVP_KINDS:
        raise ValueError(f"unknown kind {kind!r}; choose one of {', '.join(HVP_KINDS)}")
    _speed_options(chunk_size, allow_tf32)
    with float32_convolutions(allow_tf32), checks.probed(G, z, distance, allow_tf32=allow_tf32):
        if kind is None:
            kind = "gauss-newton" if operators.has_features(G, z, distance) else "double-backprop"
        if kind == "gauss-newton":
            operator = operators.GaussNewton(G, z, distance, chunk_size=chunk_size, allow_tf32=allow_tf32,
                                             what="hvp(kind='gauss-newton')")
        else:
            operator = operators.DoubleBackprop(G, z, distance, allow_tf32=allow_tf32)
    return operator.linear_operator()


HVP_KINDS = ("gauss-newton", "double-backprop")
# ARPACK applies one vector at a time, and there torch's forward-mode JVP costs about three forward passes
# (the primal, again as a convolution with a zero weight tangent, and the tangent), so a Gauss–Newton product
# is slower than double backprop; in blocks (method='subspace') it is the faster one.
LANCZOS_HVP = "double-backprop"


def finite_difference_hvp(G: Callable, z: torch.Tensor, distance: Callable, *, eps: float = 1e-4,
                          allow_tf32: bool = False) -> LinearOperator:
    """Hv ≈ (g(z + h v) − g(z − h v)) / 2h at one point z (d,), as a scipy `LinearOperator` (see
    `operators.FiniteDifference`): the Hessian itself (the paper's code returns ½ Hv), with ‖h v‖ = eps·max(‖z‖, 1).
    allow_tf32 : as for `metric`.
    """
    z, _ = checks.latents(G, z)
    if len(z) != 1:
        raise ValueError(f"finite_difference_hvp works at one point; got {len(z)} codes")
    checks.number(eps, "eps", low=0, low_open=True)
    _speed_options(None, allow_tf32)
    with float32_convolutions(allow_tf32), checks.probed(G, z, distance, allow_tf32=allow_tf32):
        return operators.FiniteDifference(G, z, distance, eps=eps, allow_tf32=allow_tf32).linear_operator()


def _speed_options(chunk_size, allow_tf32, max_memory=1, progress=None) -> None:
    """The options of `region_metric(s)`, `hvp` and `finite_difference_hvp` that `checks.metric_options` checks
    for `metric`."""
    if chunk_size is not None:
        checks.positive_int(chunk_size, "chunk_size")
    checks.number(max_memory, "max_memory", low=0, low_open=True)
    checks.flag(allow_tf32, "allow_tf32")
    if progress is not None:
        checks.flag(progress, "progress")


def describe_basis(basis: torch.Tensor) -> dict:
    """A warm-start basis as a small literal: shape, dtype and the sha256 of its values (for options and stores)."""
    import hashlib

    data = basis.detach().cpu().contiguous()
    return {"shape": list(data.shape), "dtype": str(data.dtype),
            "sha256": hashlib.sha256(data.reshape(-1).view(torch.uint8).numpy().tobytes()).hexdigest()}


