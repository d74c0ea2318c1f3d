"""The one gate for inputs: every public entry point of `helpers` checks its arguments here, with errors that say
what is wrong and what to do, and a metric or product that is not finite is explained here (which part made it so).
"""
from __future__ import annotations

import numpy as np
import torch


# --- latent codes ------------------------------------------------------------------------------------------------

def latents(G, z) -> tuple[torch.Tensor, bool]:
    """z as (b, d) in the dtype the metric computes in (`compute_dtype`), and whether one code (d,) was given.

    Refuses a z that is not a tensor, of the wrong shape (d = G.latent_dim when G has one), empty, non-finite or
    on another device than G.
    """
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
    return z.detach().to(compute_dtype(G, z)), single


def compute_dtype(G, z) -> torch.dtype:
    """The dtype of G's first floating parameter or buffer; z's floating dtype if it has none (else float32)."""
    if isinstance(G, torch.nn.Module):
        for tensor in (*G.parameters(), *G.buffers()):
            if tensor.is_floating_point():
                return tensor.dtype
    return z.dtype if z.is_floating_point() else torch.get_default_dtype()


def points(G, zs) -> torch.Tensor:
    """Many latent codes (n, d) for `batch.metric_many`, detached; refuses other shapes and integer codes."""
    if not isinstance(zs, torch.Tensor):
        raise TypeError(f"zs must be a torch.Tensor, got {type(zs).__name__}")
    latent_dim = getattr(G, "latent_dim", None)
    if zs.dim() != 2 or len(zs) == 0 or (latent_dim is not None and zs.shape[1] != latent_dim):
        raise ValueError(f"zs must have shape (n, {latent_dim or 'd'}) with n >= 1, got {tuple(zs.shape)}")
    if not zs.is_floating_point():
        raise TypeError(f"zs must be floating point, got {zs.dtype}")
    return zs.detach()


def codes(z0, G) -> torch.Tensor:
    """Starting codes (n, d) of an optimisation, detached; refuses other shapes and non-finite values."""
    if not isinstance(z0, torch.Tensor) or z0.dim() != 2 or z0.shape[1] != G.latent_dim or len(z0) == 0:
        shape = tuple(z0.shape) if isinstance(z0, torch.Tensor) else type(z0).__name__
        raise ValueError(f"starting codes must be (n, {G.latent_dim}), got {shape}")
    if not torch.isfinite(z0).all():
        raise ValueError("starting codes contain non-finite values (nan or inf)")
    return z0.detach()


# --- images ------------------------------------------------------------------------------------------------------

def images(x: torch.Tensor, what: str = "images") -> None:
    """Raise unless x has the shape of images (n, 3, H, W). Cheap: no pass over the pixels."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{what}: expected a torch.Tensor of images, got {type(x).__name__}")
    if x.dim() != 4 or x.shape[1] != 3:
        raise ValueError(f"{what}: expected images of shape (n, 3, H, W), got {tuple(x.shape)}")


def generated(x: torch.Tensor, n: int, distance=None, what: str = "generator output") -> None:
    """Raise unless x is n RGB images (n, 3, H, W), floating point, finite and in the distance's range.

    The range is `distance.input_range` (LPIPS: (-1, 1); None or absent: any). Values slightly outside it
    are accepted (a generator without a final tanh overshoots a little); values beyond it by more than half
    its width (outside [-2, 2] for LPIPS), i.e. another convention such as [0, 255], are refused. Images in
    [0, 1] lie inside [-1, 1] and cannot be told apart from real [-1, 1] images: they are not caught.
    One pass over the pixels: the metric calls this on its first forward pass only.
    """
    images(x, what)
    if x.shape[0] != n:
        raise ValueError(f"{what}: expected {n} images for {n} codes, got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"{what}: expected floating-point images, got {x.dtype}; convert them (e.g. x / 127.5 - 1 "
                        f"for uint8 images in [0, 255])")
    finite = torch.isfinite(x).flatten(1).all(dim=1)
    if not finite.all():
        which = (~finite).nonzero().flatten().tolist()
        raise ValueError(f"{what} contains non-finite values (nan or inf) in image(s) {_listed(which)}")
    limits = getattr(distance, "input_range", None)
    if limits is not None:
        low, high = limits
        margin = (high - low) / 2
        lo, hi = torch.aminmax(x.detach())
        lo, hi = lo.item(), hi.item()
        if lo < low - margin or hi > high + margin:
            raise ValueError(f"{what} spans [{lo:.4g}, {hi:.4g}] but {type(distance).__name__} expects images in "
                             f"[{low:g}, {high:g}] (values beyond [{low - margin:g}, {high + margin:g}] are refused); "
                             f"rescale them, e.g. x / 127.5 - 1 for images in [0, 255]")


def generate(G, z, distance) -> torch.Tensor:
    """G(z), checked (`generated`): n images (n, 3, H, W), floating, finite, in the distance's range. A dtype
    mismatch between z and G is explained (the metric computes in G's dtype)."""
    try:
        x = G(z)
    except RuntimeError as err:
        if not any(word in str(err).lower() for word in ("dtype", "double", "float", "half", "scalar type")):
            raise
        raise TypeError(f"the generator failed on {z.dtype} codes on {z.device} ({err}). The metric computes in "
                        f"the dtype of G's parameters, or of z when G has none: pass z in the dtype (and on the "
                        f"device) G computes in, e.g. z.double() for a float64 G") from err
    generated(x, len(z), distance)
    return x


def targets(x, distance=None) -> torch.Tensor:
    """Target images (m, 3, H, W) (or one (3, H, W)), detached; checked like generator output (`generated`)."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"target must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() == 3:
        x = x[None]
    if x.dim() != 4 or x.shape[1] != 3 or len(x) == 0:
        raise ValueError(f"targets must be images of shape (3, H, W) or (m, 3, H, W), got {tuple(x.shape)}")
    generated(x, len(x), distance, "target")  # finite, floating, in the distance's range
    return x.detach()


def mask(value) -> torch.Tensor:
    """A region mask as a float32 (H, W) tensor; raises unless it is 2-D, finite, in [0, 1] and not all zero."""
    value = torch.as_tensor(value)
    if value.dim() != 2 or min(value.shape) == 0:
        raise ValueError(f"a mask must have shape (H, W), got {tuple(value.shape)}")
    value = value.detach().float()
    if not torch.isfinite(value).all() or value.min() < 0 or value.max() > 1:
        raise ValueError("mask values must be finite and in [0, 1]")
    if not value.any():
        raise ValueError("the mask is all zero: the region is empty")
    return value


def _listed(indices: list[int], most: int = 10) -> str:
    return str(indices[:most])[:-1] + (", ...]" if len(indices) > most else "]")


# --- options -----------------------------------------------------------------------------------------------------

def positive_int(value, name: str) -> int:
    """value, unless it is not a positive integer (a bool is not): then ValueError naming the option."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return value


# --- distances and matrices --------------------------------------------------------------------------------------

def distance_values(values, n: int, *, finite: bool = True) -> None:
    """Raise unless `values` is one distance per image, shape (n,), and (with finite) free of nan and inf."""
    if not isinstance(values, torch.Tensor) or values.shape != (n,):
        shape = tuple(values.shape) if isinstance(values, torch.Tensor) else type(values).__name__
        raise ValueError(f"the distance must return one value per image, shape ({n},); got {shape}")
    if finite and not torch.isfinite(values).all():
        which = (~torch.isfinite(values)).nonzero().flatten().tolist()
        raise ValueError(f"the distance returned non-finite values (nan or inf) for image(s) {which[:10]} "
                         f"although its input images are finite")


def square_matrix(H) -> torch.Tensor:
    """One (d, d) matrix (a (1, d, d) batch or a `Metric` of one point too), finite, as float64 on the CPU."""
    H = getattr(H, "H", H) if not isinstance(H, torch.Tensor) else H  # a Metric's matrices (a tensor's .H is its adjoint)
    H = torch.as_tensor(H)
    if H.dim() == 3 and H.shape[0] == 1:
        H = H[0]
    if H.dim() != 2 or H.shape[0] != H.shape[1]:
        raise ValueError(f"expected one (d, d) matrix (for several codes, loop or average them), got "
                         f"{tuple(H.shape)}")
    if not torch.isfinite(H).all():
        raise ValueError("the matrix has non-finite entries")
    return H.detach().double().cpu()


# --- bases -------------------------------------------------------------------------------------------------------

def orthonormal_basis(basis, d: int) -> torch.Tensor:
    """A (d, k) matrix with orthonormal columns (to 1e-4), 1 <= k <= d, as given; refuses anything else."""
    basis = torch.as_tensor(basis)
    if basis.dim() != 2 or basis.shape[0] != d or not 0 < basis.shape[1] <= d:
        raise ValueError(f"basis must be a (d, k) matrix with d = {d} and 1 <= k <= d, got {tuple(basis.shape)}")
    gram = basis.double().T @ basis.double()
    error = (gram - torch.eye(basis.shape[1], dtype=torch.float64, device=basis.device)).abs().max().item()
    if error > 1e-4:
        raise ValueError(f"basis columns must be orthonormal (max |VᵀV − I| = {error:.2g}); orthonormalise with "
                         f"torch.linalg.qr or use eigenvectors of a symmetric matrix")
    return basis


def warm_start(basis, b: int, d: int, device) -> list[torch.Tensor] | None:
    """A warm-start basis of the 'subspace' solver as one (d, m) float64 tensor per point, checked; None stays
    None (a random start). basis : (d, m) for every point or (b, d, m) one per point, finite, independent columns."""
    if basis is None:
        return None
    if not isinstance(basis, torch.Tensor):
        raise TypeError(f"basis must be a torch.Tensor of shape (d, m) or (b, d, m), got {type(basis).__name__}")
    if basis.dim() not in (2, 3) or basis.shape[-2] != d or not 1 <= basis.shape[-1] <= d or \
            (basis.dim() == 3 and basis.shape[0] != b):
        raise ValueError(f"basis must have shape ({d}, m) or ({b}, {d}, m) with 1 <= m <= {d}, "
                         f"got {tuple(basis.shape)}")
    if not basis.is_floating_point() or not torch.isfinite(basis).all():
        raise ValueError("basis must be floating point with finite values")
    bases = basis.detach().to(device=device, dtype=torch.float64)
    bases = bases.expand(b, -1, -1) if bases.dim() == 2 else bases
    singular = torch.linalg.svdvals(bases)
    if (singular[:, -1] <= 1e-8 * singular[:, 0]).any():
        raise ValueError("basis has linearly dependent columns (or a zero column): it is no basis")
    return list(bases)


def warm_start_request(basis, zs, method) -> None:
    """A warm-start basis for `metric_many`: (d, m) shared or (n, d, m) per point (`warm_start` checks the rest)."""
    if basis is None:
        return
    if method != "subspace":
        raise ValueError(f"basis (a warm start) is an option of method='subspace', not of {method!r}")
    if not isinstance(basis, torch.Tensor):
        raise TypeError(f"basis must be a torch.Tensor of shape (d, m) or (n, d, m), got {type(basis).__name__}")
    n, d = zs.shape
    if not (basis.dim() == 2 and basis.shape[0] == d) and not (basis.dim() == 3 and basis.shape[:2] == (n, d)):
        raise ValueError(f"basis must have shape ({d}, m) for every point or ({n}, {d}, m) for the {n} points, "
                         f"got {tuple(basis.shape)}")


# --- results that must be finite and non-zero --------------------------------------------------------------------

def ignores_z_message(G, which) -> str:
    return (f"the metric is exactly zero at point(s) {which}: the output of "
            f"{getattr(G, 'name', type(G).__name__)} does not depend on z there (zero Jacobian)")


def nonzero_metric(H, G) -> None:
    """Raise, naming the points, where a metric in H (b, d, d) is exactly zero (G ignores z there)."""
    zero = H.flatten(1).abs().amax(dim=1) == 0
    if zero.any():
        raise ValueError(ignores_z_message(G, zero.nonzero().flatten().tolist()))


def finite_metric(H, G, z, distance) -> None:
    """Raise, naming where the nan or inf comes from, unless every metric in H (b, d, d) is finite."""
    bad = ~torch.isfinite(H).flatten(1).all(dim=1)
    if bad.any():
        which = bad.nonzero().flatten().tolist()
        raise ValueError(nonfinite_source(G, z[which], distance, which))


def finite_products(HV, G, z, distance):
    """Hessian-vector products HV (m, d) as a float64 numpy (d, m), refused (with their source) if not finite:
    ARPACK would fail with a bare error code, or return nan eigenpairs."""
    out = HV.detach().T.double().cpu().numpy()
    if not np.isfinite(out).all():
        raise ValueError(nonfinite_source(G, z, distance, [0], "a Hessian-vector product"))
    return out


def nonfinite_source(G, z, distance, which, what: str = "the metric") -> str:
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


# --- optimisation ------------------------------------------------------------------------------------------------

def objective_values(f, n: int) -> np.ndarray:
    """An objective's values for n candidates as a float64 numpy (n,); refuses another shape and nan or inf."""
    f = torch.as_tensor(f).detach().double().cpu().numpy().ravel()
    if f.shape != (n,):
        raise ValueError(f"the objective must return one value per row, shape ({n},); got {f.shape}")
    if not np.isfinite(f).all():
        raise ValueError(f"the objective returned nan or inf for {int((~np.isfinite(f)).sum())} of {n} candidates "
                         f"(the generator output or the distance is not finite there)")
    return f


def row_targets(target_index, n: int, m: int) -> torch.Tensor:
    """Which of m targets each of n rows inverts, (n,) int64: `target_index`, or by default row i -> target i
    (m == n) or every row -> target 0 (m == 1)."""
    if target_index is None:
        if m not in (1, n):
            raise ValueError(f"{m} targets for {n} rows: pass target_index (which target each row inverts)")
        return torch.arange(n) if m == n else torch.zeros(n, dtype=torch.long)
    index = torch.as_tensor(target_index).long().cpu().flatten()
    if index.shape != (n,) or (index < 0).any() or (index >= m).any():
        raise ValueError(f"target_index must be {n} indices in [0, {m}), got {index.tolist()[:10]}")
    return index


def per_row(value, n: int, what: str) -> torch.Tensor:
    """One number, or one per row, as float64 (n,) on the CPU."""
    value = torch.as_tensor(value, dtype=torch.float64).cpu().flatten()
    if value.numel() == 1:
        value = value.expand(n)
    if value.shape != (n,):
        raise ValueError(f"{what} must be one value or one per row ({n}), got {value.numel()}")
    return value.clone()


def per_row_names(names, n: int, known, what: str) -> tuple:
    """One name, or one per row, each one of `known`, as a tuple of n names."""
    names = (names,) * n if isinstance(names, str) else tuple(names)
    if len(names) != n:
        raise ValueError(f"{what} must be one name or one per row ({n}), got {len(names)}")
    bad = sorted({s for s in names if s not in known})
    if bad:
        raise ValueError(f"{what} must be one of {', '.join(known)}, got {bad[0]!r}")
    return names


def same_image_size(target, x) -> None:
    """Targets (m, 3, H, W) the size of the generator's images x (n, 3, H, W)."""
    if target.shape[1:] != x.shape[1:]:
        raise ValueError(f"target is {tuple(target.shape[1:])} but the generator makes {tuple(x.shape[1:])} "
                         f"images; resize the target (e.g. sample_target_images(size={x.shape[-1]}))")


# --- paths (helpers.geodesic) ------------------------------------------------------------------------------------

def path_ends(G, z_a, z_b) -> tuple[torch.Tensor, torch.Tensor]:
    """The ends of p paths as two (p, d) tensors in the dtype the metric computes in (`latents` checks each);
    one end (d,) is shared by every path of the other's (p, d). Refuses ends whose counts differ and equal ends."""
    a, _ = latents(G, z_a)
    b, _ = latents(G, z_b)
    if len(a) != len(b) and 1 not in (len(a), len(b)):
        raise ValueError(f"z_a and z_b must hold as many codes (or one of them a single code), got {len(a)} and "
                         f"{len(b)}")
    a, b = torch.broadcast_tensors(a, b)
    same = (a == b).all(dim=1)
    if same.any():
        raise ValueError(f"z_a and z_b are equal for path(s) {_listed(same.nonzero().flatten().tolist())}: a path "
                         f"between equal codes has length zero and no direction; drop those pairs")
    return a.contiguous(), b.contiguous()


def path(G, z) -> torch.Tensor:
    """A discrete path (n+1, d), or p of them (p, n+1, d), as (p, n+1, d) in the metric's dtype (`latents` checks
    the codes); refuses fewer than two points (n >= 1 segments)."""
    if not isinstance(z, torch.Tensor):
        raise TypeError(f"a path must be a torch.Tensor of shape (n+1, d) or (p, n+1, d), got {type(z).__name__}")
    if z.dim() not in (2, 3) or z.shape[-2] < 2:
        raise ValueError(f"a path must have shape (n+1, d) or (p, n+1, d) with n >= 1 segments (at least two "
                         f"points), got {tuple(z.shape)}")
    z = z[None] if z.dim() == 2 else z
    flat, _ = latents(G, z.reshape(-1, z.shape[-1]))
    return flat.reshape(z.shape)


def tangents(v, z: torch.Tensor) -> torch.Tensor:
    """Tangent vectors v for the codes z (p, d): (d,) (shared) or (p, d), finite, as z's dtype and device."""
    if not isinstance(v, torch.Tensor):
        raise TypeError(f"v must be a torch.Tensor, got {type(v).__name__}")
    if v.shape not in (z.shape, z.shape[1:]):
        raise ValueError(f"v must have shape {tuple(z.shape[1:])} or {tuple(z.shape)}, like z, got {tuple(v.shape)}")
    if not torch.isfinite(v).all():
        raise ValueError("v contains non-finite values (nan or inf)")
    return v.detach().to(device=z.device, dtype=z.dtype).expand_as(z).contiguous()
