"""The metric tensor H(z0) = ∂²/∂z² d(G(z0), G(z)) at z = z0 of an image distance pulled back through a generator.

`metric` computes it by four methods (exact forward-mode Jacobian, exact double backprop, and top-k Lanczos
on exact or finite-difference Hessian-vector products); `hvp` exposes the operator for other solvers, and
`pullback` the exact engine for any feature map (layer activations, say).
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
from torch.func import jvp, vmap
from tqdm.auto import tqdm

from .assets import atomic_path
from .distances import check_generated

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

    def save(self, path: str | Path, *, extra: dict | None = None) -> Path:
        """Write to an .npz file atomically (a reader never sees a half-written file).

        extra : more named arrays or strings to store alongside (e.g. a metric store's fingerprint digest).
        """
        path = Path(path)
        with atomic_path(path) as partial, open(partial, "wb") as f:
            np.savez(f, H=self.H.cpu().numpy(), eigvals=self.eigvals.cpu().numpy(),
                     eigvecs=self.eigvecs.cpu().numpy(), z=self.z.cpu().numpy(), method=self.method,
                     seconds=self.seconds, options=repr(self.options), **(extra or {}))
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
            options = ast.literal_eval(options)
        except (FileNotFoundError, PermissionError, IsADirectoryError):
            raise
        except (zipfile.BadZipFile, EOFError, OSError, ValueError, KeyError, SyntaxError, TypeError) as err:
            raise ValueError(f"{name} is not a readable Metric file ({type(err).__name__}: {err})") from err
        problem = _inconsistency(*arrays, method, options)
        if problem:
            raise ValueError(f"{name} is not a consistent Metric file: {problem}")
        return cls(*arrays, method=method, seconds=seconds, options=options)


_SAVED = ("H", "eigvals", "eigvecs", "z", "method", "seconds", "options")


def _inconsistency(H, eigvals, eigvecs, z, method, options) -> str:
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
    return ""


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
    eps : finite-difference step relative to ‖z‖ (‖step‖ = eps·max(‖z‖, 1), so z = 0 works too).
    chunk_size : images per vmapped forward pass of the 'jacobian' method (directions × points).
    max_memory : bytes the 'jacobian' method may spend holding Jacobians; points are grouped to fit.
    tol : ARPACK tolerance (0 = machine precision).
    progress : show a progress bar (default: when there is more than one point).
    allow_tf32 : let cuDNN convolutions use TF32 on the GPU (faster on Ampere and later; a 10-bit mantissa,
        errors of the order of 1e-3 relative); off by default, so H is float32-accurate whatever torch's
        global setting. No effect on CPU.

    dtype: the computation runs in the dtype of G's parameters (or floating buffers); a G without any runs in
    z's own floating dtype (float64 z: float64 throughout). H, eigvals and eigvecs are float64 either way.

    Checks (ValueError or TypeError with the reason, never a silent wrong answer): z's shape, device and
    finiteness and at least one code; on the first forward pass, that G returns (n, 3, H, W) floating-point,
    finite images in the distance's `input_range` (see `distances.check_generated`); that the distance
    returns one finite value per image; that G depends on z (a zero metric is refused); that the metric is
    finite, naming the source of a nan or inf (generator output, distance, or their derivatives).
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
        _check_finite_metric(H, G, z, distance)
        eigvals, eigvecs = eigh_descending(H)
        options = {"chunk_size": chunk_size}
    elif method == "backprop":
        H = _backprop_metric(G, z, distance, progress=progress)
        _check_finite_metric(H, G, z, distance)
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
            try:
                pairs.append(top_eigenpairs(operator, k, tol))
            except ArpackError as err:
                if not operator.matvec(np.ones(z.shape[1])).any():  # H v = 0 for every v: G ignores z
                    raise ValueError(_ignores_z_message(G, [len(pairs)])) from err
                raise
        eigvals = torch.stack([p[0] for p in pairs]).to(z.device)
        eigvecs = torch.stack([p[1] for p in pairs]).to(z.device)
        H = eigvecs @ torch.diag_embed(eigvals) @ eigvecs.transpose(1, 2)
        _check_finite_metric(H, G, z, distance)  # the products were checked; this is a last guard
        options = {"k": k, "tol": tol} | ({"eps": eps} if method == "finite-difference" else {})
    options |= {"allow_tf32": True} if allow_tf32 else {}
    _check_nonzero(H, G)
    return Metric(H, eigvals, eigvecs, z.detach().clone(), method, time.perf_counter() - start, options)


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
        return _finite_product(hv, G, z, distance)

    return _symmetric_operator(z.shape[1], matvec)


def finite_difference_hvp(G: Callable, z: torch.Tensor, distance: Callable, *, eps: float = 1e-4,
                          allow_tf32: bool = False) -> LinearOperator:
    """Hv ≈ (g(z + h v) − g(z − h v)) / 2h with g the gradient of d(G(z), G(·)) and ‖h v‖ = eps·‖z‖.

    Unlike the paper's code (which returns ½ Hv, see notebook 1), this is the Hessian itself.
    The step is relative to ‖z‖ but at least eps (‖h v‖ = eps·max(‖z‖, 1)), so z = 0 works too.
    allow_tf32 : as for `metric`.
    """
    z, _ = _check_latents(G, z)
    if len(z) != 1:
        raise ValueError(f"finite_difference_hvp works at one point; got {len(z)} codes")
    if not eps > 0:
        raise ValueError(f"eps must be positive, got {eps}")
    with torch.no_grad(), float32_convolutions(allow_tf32):
        x0 = _generate(G, z, distance)
    radius = eps * max(z.norm().item(), 1.0)

    def matvec(v):
        v = torch.as_tensor(np.asarray(v).reshape(1, -1), dtype=z.dtype, device=z.device)
        h = radius / v.norm().clamp_min(1e-30)
        points = torch.cat([z + h * v, z - h * v]).requires_grad_(True)
        with float32_convolutions(allow_tf32):
            values = distance(x0, G(points))
            check_distance_values(values, 2, finite=False)  # shape only: no pass over the values per product
            if not values.requires_grad:
                raise ValueError(_ignores_z_message(G, [0]))
            (g,) = torch.autograd.grad(values.sum(), points)
        return _finite_product((g[0] - g[1]) / (2 * h), G, z, distance)

    return _symmetric_operator(z.shape[1], matvec)


# --- methods ---------------------------------------------------------------------------------------------

def _jacobian_metric(G, z, distance, *, chunk_size, max_memory, progress, allow_tf32):
    features = getattr(distance, "features", None)
    if features is None:
        raise TypeError(f"{type(distance).__name__} has no `features` map, which method='jacobian' needs; use "
                        f"method='backprop', 'lanczos' or 'finite-difference' for a general distance")
    try:
        with torch.no_grad():
            features(_generate(G, z[:1], distance))  # the probe: checks G's images once, not per pass
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
        x0 = _generate(G, z, distance)
    z_var = z.detach().clone().requires_grad_(True)
    values = distance(x0, G(z_var))
    check_distance_values(values, len(z))
    if not values.requires_grad:
        raise ValueError(_ignores_z_message(G, list(range(len(z)))))
    (gradient,) = torch.autograd.grad(values.sum(), z_var, create_graph=True)
    if not gradient.requires_grad:  # the gradient is constant in z: the metric is zero
        raise ValueError(_ignores_z_message(G, list(range(len(z)))))
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
    """z as (b, d) in the dtype the metric computes in (see `metric`), and whether one code (d,) was given."""
    if not isinstance(z, torch.Tensor):
        raise TypeError(f"z must be a torch.Tensor, got {type(z).__name__}")
    single = z.dim() == 1
    z = z.unsqueeze(0) if single else z
    latent_dim = getattr(G, "latent_dim", None)
    if z.dim() != 2 or (latent_dim is not None and z.shape[1] != latent_dim):
        want = f"({latent_dim},) or (b, {latent_dim})" if latent_dim else "(d,) or (b, d)"
        raise ValueError(f"z must have shape {want}, got {tuple(z.shape if not single else z.shape[1:])}")
    if z.shape[0] == 0 or z.shape[1] == 0:
        raise ValueError(f"z holds no codes (shape {tuple(z.shape)}); pass at least one code of dimension d >= 1")
    if not torch.isfinite(z).all():
        raise ValueError("z contains non-finite values (nan or inf)")
    device = getattr(G, "device", None)
    if isinstance(device, torch.device) and device != z.device:
        raise ValueError(f"z is on {z.device} but the generator is on {device}; move one of them")
    return z.detach().to(_compute_dtype(G, z)), single


def _compute_dtype(G, z) -> torch.dtype:
    """The dtype of G's first floating parameter or buffer; z's floating dtype if it has none (else float32)."""
    if isinstance(G, torch.nn.Module):
        for tensor in (*G.parameters(), *G.buffers()):
            if tensor.is_floating_point():
                return tensor.dtype
    return z.dtype if z.is_floating_point() else torch.get_default_dtype()


def _generate(G, z, distance):
    """G(z), checked once per call of a method: n images (n, 3, H, W), floating, finite, in the distance's range."""
    try:
        x = G(z)
    except RuntimeError as err:
        if not any(word in str(err).lower() for word in ("dtype", "double", "float", "half", "scalar type")):
            raise
        raise TypeError(f"the generator failed on {z.dtype} codes on {z.device} ({err}). The metric computes in "
                        f"the dtype of G's parameters, or of z when G has none: pass z in the dtype (and on the "
                        f"device) G computes in, e.g. z.double() for a float64 G") from err
    check_generated(x, len(z), distance)
    return x


def check_distance_values(values, n: int, *, finite: bool = True) -> None:
    """Raise unless `values` is one distance per image, shape (n,), and (with finite) free of nan and inf."""
    if not isinstance(values, torch.Tensor) or values.shape != (n,):
        shape = tuple(values.shape) if isinstance(values, torch.Tensor) else type(values).__name__
        raise ValueError(f"the distance must return one value per image, shape ({n},); got {shape}")
    if finite and not torch.isfinite(values).all():
        which = (~torch.isfinite(values)).nonzero().flatten().tolist()
        raise ValueError(f"the distance returned non-finite values (nan or inf) for image(s) {which[:10]} "
                         f"although its input images are finite")


def _ignores_z_message(G, which) -> str:
    return (f"the metric is exactly zero at point(s) {which}: the output of "
            f"{getattr(G, 'name', type(G).__name__)} does not depend on z there (zero Jacobian)")


def _check_nonzero(H, G):
    zero = H.flatten(1).abs().amax(dim=1) == 0
    if zero.any():
        raise ValueError(_ignores_z_message(G, zero.nonzero().flatten().tolist()))


def _check_finite_metric(H, G, z, distance):
    """Raise, naming where the nan or inf comes from, unless every metric in H (b, d, d) is finite."""
    bad = ~torch.isfinite(H).flatten(1).all(dim=1)
    if bad.any():
        which = bad.nonzero().flatten().tolist()
        raise ValueError(_nonfinite_source(G, z[which], distance, which))


def _finite_product(hv, G, z, distance):
    """A Hessian-vector product as float64 numpy, refused (with its source) if not finite: ARPACK would fail
    with a bare error code, or return nan eigenpairs."""
    out = hv.detach().double().cpu().numpy().ravel()
    if not np.isfinite(out).all():
        raise ValueError(_nonfinite_source(G, z, distance, [0], "a Hessian-vector product"))
    return out


def _nonfinite_source(G, z, distance, which, what: str = "the metric") -> str:
    """Why `what` is not finite at the points z (b, d) (labelled `which`): only run once something failed."""
    name = getattr(G, "name", type(G).__name__)
    with torch.no_grad():
        x = G(z)
        bad_images = ~torch.isfinite(x).flatten(1).all(dim=1)
        if bad_images.any():
            return (f"{what} is non-finite at point(s) {which[:10]}: the generator output ({name}) contains nan or "
                    f"inf there")
        values = distance(x, x)
        if not torch.isfinite(values).all():
            return (f"{what} is non-finite at point(s) {which[:10]}: the distance returns nan or inf there "
                    f"(its input images are finite)")
    return (f"{what} is non-finite at point(s) {which[:10]} although the generator output ({name}) and the "
            f"distance values there are finite: a derivative of the generator or the distance is nan or inf "
            f"(e.g. a norm or square root at zero distance, a division by zero, an overflow)")


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
