"""The one gate for inputs: every public entry point of `helpers` checks its arguments here, with errors that say
what is wrong and what to do, and a metric or product that is not finite is explained here (which part made it so).
"""
from __future__ import annotations

import contextlib
import contextvars
import weakref

import numpy as np
import torch

from .threads import one_thread


# --- latent codes ------------------------------------------------------------------------------------------------

def latents(G, z) -> tuple[torch.Tensor, bool]:
    """z as (b, d) in the dtype the metric computes in (`compute_dtype`), and whether one code (d,) was given.

    Refuses a z that is not a dense real floating-point tensor (integer, bool and complex codes are refused
    rather than cast), of the wrong shape (d = G.latent_dim when G has one), empty, non-finite (also after the
    cast: values beyond float32's range for a float32 G), on the meta device or on another device than G; a G that
    computes in float16 or bfloat16, and a call under torch.inference_mode(). Codes made under inference mode are
    copied (autograd cannot record inference tensors).
    """
    z = _real_codes(z, "z")
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
    if isinstance(device, torch.device) and device.type == "meta":
        raise ValueError("the generator's weights are on the meta device (no values): load them first, e.g. "
                         "G.to_empty(device='cpu') then G.load_state_dict(state)")
    if isinstance(device, torch.device) and device != z.device:
        raise ValueError(f"z is on {z.device} but the generator is on {device}; move one of them")
    if G is not None and torch.is_inference_mode_enabled():  # (G None: plain interpolation, `geodesic.straight`)
        raise ValueError("helpers computes derivatives, which torch.inference_mode() switches off: call it outside "
                         "that block (inside torch.no_grad() is fine)")
    dtype = compute_dtype(G, z)
    if G is not None and dtype in LOW_PRECISION:
        raise TypeError(f"the generator computes in {dtype}, whose 3 significant digits make the metric's eigenvalues "
                        f"below about 1e-3·λ₁ noise (and finite differences fail): convert it and the distance, e.g. "
                        f"G.float() and distance.float()")
    cast = z.detach().to(dtype)
    if cast.is_inference():  # codes made under torch.inference_mode(): autograd cannot record them
        cast = cast.clone()
    if not torch.isfinite(cast).all():
        raise ValueError(f"z has values too large for {dtype} (largest |z| = {z.abs().max().item():.3g}), the dtype "
                         f"the generator computes in: use codes of ordinary size (G.sample draws N(0, 1) codes)")
    return cast, single


def _real_codes(z, what: str) -> torch.Tensor:
    """z unless it is not a dense, real floating-point tensor with values (TypeError or ValueError naming `what`)."""
    if not isinstance(z, torch.Tensor):
        hint = " (torch.from_numpy(...) converts an array)" if isinstance(z, np.ndarray) else \
            " (a seed? codes come from G.sample(n, seed=...))" if isinstance(z, (int, np.integer)) else ""
        raise TypeError(f"{what} must be a torch.Tensor, got {type(z).__name__}{hint}")
    if z.layout != torch.strided:
        raise TypeError(f"{what} must be a dense tensor, got layout {z.layout} (use .to_dense())")
    if z.is_complex() or not z.is_floating_point():
        raise TypeError(f"{what} must be real floating point, got {z.dtype}: complex, integer and bool codes are not "
                        f"cast silently (use .real, or .float() if integer values are meant)")
    if z.device.type == "meta":
        raise ValueError(f"{what} is on the meta device (a shape without values); create it on a real device")
    return z


LOW_PRECISION = (torch.float16, torch.bfloat16)  # too few digits for a metric (see `latents`)


def compute_dtype(G, z) -> torch.dtype:
    """The dtype of G's first floating parameter or buffer; z's floating dtype if it has none (else float32)."""
    if isinstance(G, torch.nn.Module):
        for tensor in (*G.parameters(), *G.buffers()):
            if tensor.is_floating_point():
                return tensor.dtype
    return z.dtype if z.is_floating_point() else torch.get_default_dtype()


def points(G, zs) -> torch.Tensor:
    """Many latent codes (n, d) for `batch.metric_many`, detached; refuses other shapes and what `latents` refuses
    in a single code (integer, complex, meta)."""
    zs = _real_codes(zs, "zs")
    latent_dim = getattr(G, "latent_dim", None)
    if zs.dim() != 2 or len(zs) == 0 or zs.shape[1] == 0 or (latent_dim is not None and zs.shape[1] != latent_dim):
        raise ValueError(f"zs must have shape (n, {latent_dim or 'd'}) with n >= 1, got {tuple(zs.shape)}")
    if not torch.isfinite(zs).all():
        raise ValueError("zs contains non-finite values (nan or inf)")
    return zs.detach()


def codes(z0, G) -> torch.Tensor:
    """Starting codes (n, d) of an optimisation, detached; refuses other shapes, non-finite values, what `latents`
    refuses in a code, and a generator that cannot give results (`model`: training mode, randomness, ...)."""
    if not isinstance(z0, torch.Tensor) or z0.dim() != 2 or z0.shape[1] != G.latent_dim or len(z0) == 0:
        shape = tuple(z0.shape) if isinstance(z0, torch.Tensor) else type(z0).__name__
        raise ValueError(f"starting codes must be (n, {G.latent_dim}), got {shape}")
    z0 = _real_codes(z0, "starting codes")
    if not torch.isfinite(z0).all():
        raise ValueError("starting codes contain non-finite values (nan or inf)")
    model(G, latents(G, z0[:2])[0])
    return z0.detach()


# --- images ------------------------------------------------------------------------------------------------------

def images(x: torch.Tensor, what: str = "images") -> None:
    """Raise unless x has the shape of images (n, 3, H, W). Cheap: no pass over the pixels."""
    if not isinstance(x, torch.Tensor):
        hint = ": if it returns (images, ...), wrap it to return the images alone, e.g. lambda z: net(z)[0]" if \
            isinstance(x, (tuple, list, dict)) else ""
        raise TypeError(f"{what}: expected a torch.Tensor of images, got {type(x).__name__}{hint}")
    if x.dim() != 4 or x.shape[1] != 3:
        hint = ("; these look channels-last (n, H, W, 3): x.permute(0, 3, 1, 2)" if x.dim() == 4 and x.shape[-1] == 3
                else "; grey images (n, 1, H, W) can be repeated: x.expand(-1, 3, -1, -1)" if x.dim() == 4 and
                x.shape[1] == 1 else "")
        raise ValueError(f"{what}: expected images of shape (n, 3, H, W), got {tuple(x.shape)}{hint}")


RANGE_MARGIN = 0.1  # images may overshoot the distance's range by this fraction of its width (no final tanh)


def image_count(x, codes: torch.Tensor) -> None:
    """Raise unless x is images (n, 3, H, W), one per code of codes (n, d). Shapes only: works inside vmap."""
    images(x, "generator output")
    if x.shape[0] != codes.shape[0]:
        raise ValueError(f"generator output: expected {codes.shape[0]} images for {codes.shape[0]} codes, got shape "
                         f"{tuple(x.shape)}: the generator must return one image per code, for any number of codes")


def generated(x: torch.Tensor, n: int, distance=None, what: str = "generator output") -> None:
    """Raise unless x is n RGB images (n, 3, H, W), floating point, finite and in the distance's range.

    The range is `distance.input_range` (LPIPS: (-1, 1); None or absent: any). Values outside it by more than
    RANGE_MARGIN of its width (outside [-1.2, 1.2] for LPIPS) are refused: another convention, such as [0, 2]
    (G(z) + 1), [-2, 2] (2·G(z)) or [0, 255], would change every distance by tens of per cent. A generator
    without a final tanh overshoots a little and is accepted. Images in [0, 1] lie inside [-1, 1] and cannot be
    told apart from real [-1, 1] images by their range; when no pixel of any image is below the middle of a range
    that is symmetric about zero, a warning says so (LPIPS would see them as dim, low-contrast images).
    One pass over the pixels: the metric calls this on its first forward pass only.
    """
    images(x, what)
    if x.shape[0] != n:
        raise ValueError(f"{what}: expected {n} images for {n} codes, got shape {tuple(x.shape)}: the generator "
                         f"must return one image per code, for any number of codes")
    if not x.is_floating_point():
        raise TypeError(f"{what}: expected floating-point images, got {x.dtype}; convert them (e.g. x / 127.5 - 1 "
                        f"for uint8 images in [0, 255])")
    finite = torch.isfinite(x).flatten(1).all(dim=1)
    if not finite.all():
        which = (~finite).nonzero().flatten().tolist()
        raise ValueError(f"{what} contains non-finite values (nan or inf) in image(s) {_listed(which)}")
    limits, declared = input_range(distance)
    if limits is not None:
        low, high = limits
        margin = RANGE_MARGIN * (high - low)
        lo, hi = torch.aminmax(x.detach())
        lo, hi = lo.item(), hi.item()
        if lo < low - margin or hi > high + margin:
            who = _name(distance) + ("" if declared else " (it computes with the lpips package's network)")
            raise ValueError(f"{what} spans [{lo:.4g}, {hi:.4g}] but {who} expects images in "
                             f"[{low:g}, {high:g}] (values beyond [{low - margin:g}, {high + margin:g}] are refused); "
                             f"rescale them: e.g. x - 1 for images in [0, 2], x / 2 for [-2, 2], 2 * x - 1 for "
                             f"[0, 1], x / 127.5 - 1 for [0, 255]")
        if declared and low < 0 < high and low == -high and lo >= 0:
            import warnings

            warnings.warn(f"{what}: no pixel is below {(low + high) / 2:g} (the images span [{lo:.3g}, {hi:.3g}]); "
                          f"{_name(distance)} expects [{low:g}, {high:g}]. If the generator's images are in [0, 1], "
                          f"pass 2 * x - 1: as they are, the distance sees dim, low-contrast images and the metric "
                          f"is off", stacklevel=3)


def input_range(distance) -> tuple[tuple[float, float] | None, bool]:
    """The pixel range (low, high) the distance is defined on, and whether it says so itself: its `input_range`
    (None: any range), else (-1, 1) when it computes with the `lpips` package's network (whose images are in
    [-1, 1], or [0, 1] with normalize=True: both inside the refused margin), else None."""
    if hasattr(distance, "input_range"):
        return distance.input_range, True
    if distance is None:
        return None, True
    try:
        known = _LPIPS_INSIDE.get(distance)
    except TypeError:  # not weakly referable
        known = None
    if known is None:
        from .store import walk

        known = any(kind == "module" and type(value).__module__.split(".")[0] == "lpips"
                    for _, kind, value in walk(distance))
        try:
            _LPIPS_INSIDE[distance] = known
        except TypeError:
            pass
    return ((-1.0, 1.0) if known else None), False


_LPIPS_INSIDE = weakref.WeakKeyDictionary()  # distance -> whether the lpips package's network is in it


def _name(distance) -> str:
    return getattr(distance, "__qualname__", type(distance).__name__)


def generate(G, z, distance) -> torch.Tensor:
    """G(z), checked (`generated`): n images (n, 3, H, W), floating, finite, in the distance's range. Unless `model`
    already checked G and the distance in this call (`probed`), it checks them first: so every entry point that
    reaches G through here (the operators, `helpers.geodesic`) refuses what `model` refuses. z : (b, d) in the
    dtype the metric computes in (`latents`)."""
    if (id(G), id(distance)) not in _PROBED.get():
        with torch.no_grad():
            model(G, z.detach(), distance)
    return _generate(G, z, distance)


def _generate(G, z, distance) -> torch.Tensor:
    x = run_generator(G, z)
    generated(x, len(z), distance)
    return x


def run_generator(G, z):
    """G(z); an error inside G is explained (the codes it got, and what to check) rather than left to torch."""
    try:
        return G(z)
    except (RuntimeError, TypeError, IndexError, AttributeError, ValueError) as err:
        if isinstance(err, ValueError) and _raised_in_helpers(err):  # already says what is wrong
            raise
        name = getattr(G, "name", type(G).__name__)
        got = f"{len(z)} code(s) of shape {tuple(z.shape[1:])}, {z.dtype} on {z.device}"
        if any(word in str(err).lower() for word in ("dtype", "double", "float", "half", "scalar type")):
            raise TypeError(f"the generator {name} failed on {z.dtype} codes on {z.device} ({err}). The metric computes "
                            f"in the dtype of G's parameters, or of z when G has none: pass z in the dtype (and on "
                            f"the device) G computes in, e.g. z.double() for a float64 G") from err
        hint = "" if getattr(G, "latent_dim", None) or "positional argument" in str(err) else (
            "; it has no latent_dim to check codes against: wrap it, Generator(net, latent_dim=d), so that codes of "
            "another size are named as such")
        if hasattr(G, "features") or "positional argument" in str(err):
            hint += "; the generator takes codes and the distance two batches of images: metric(G, z, distance), " \
                    "geodesic(G, distance, z_a, z_b)"
        raise ValueError(f"the generator {name} failed on {got}: {type(err).__name__}: {err}{hint}") from err


def _raised_in_helpers(err: BaseException) -> bool:
    tb = err.__traceback__
    while tb.tb_next is not None:
        tb = tb.tb_next
    import os

    return tb.tb_frame.f_code.co_filename.startswith(os.path.dirname(os.path.abspath(__file__)) + os.sep)


_PROBED = contextvars.ContextVar("probed", default=frozenset())  # (id(G), id(distance)) pairs `model` passed


@contextlib.contextmanager
def probed(G, z, distance=None, *, allow_tf32: bool = False):
    """Run `model` on G and the distance, then, within the block, let `generate` skip its own probe of them (an
    entry point that checked them once need not pay for it again on every operator it builds)."""
    model(G, z, distance, allow_tf32=allow_tf32)
    token = _PROBED.set(_PROBED.get() | {(id(G), id(distance))})
    try:
        yield
    finally:
        _PROBED.reset(token)


def targets(x, distance=None) -> torch.Tensor:
    """Target images (m, 3, H, W) (or one (3, H, W)), detached; checked like generator output (`generated`)."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"target must be a torch.Tensor, got {type(x).__name__}")
    if x.dim() == 3:
        x = x[None]
    if x.dim() != 4 or x.shape[1] != 3 or len(x) == 0:
        raise ValueError(f"targets must be images of shape (3, H, W) or (m, 3, H, W), got {tuple(x.shape)}")
    generated(x, len(x), distance, "target")  # finite, floating, in the distance's range
    if distance is not None:
        own = eval_mode(distance, "the distance")
        distance_axioms(distance, x.detach(), own)
    return x.detach()


def mask(value) -> torch.Tensor:
    """A region mask as a float32 (H, W) tensor; raises unless it is 2-D, finite, in [0, 1] and not all zero."""
    if not isinstance(value, (torch.Tensor, np.ndarray, list, tuple)):
        raise TypeError(f"a mask must be a tensor or array (H, W) of values in [0, 1], got {type(value).__name__} (an "
                        f"image? e.g. torch.from_numpy(np.asarray(image, dtype=np.float32) / 255))")
    try:
        value = torch.as_tensor(value)
    except (TypeError, ValueError, RuntimeError) as err:
        raise TypeError(f"a mask must be a tensor or array (H, W) of numbers in [0, 1]; this one cannot be read as "
                        f"one ({err})") from err
    if value.is_complex():
        raise TypeError(f"a mask must be real, got {value.dtype}")
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
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{name} must be a positive integer, got {value!r}")
    return int(value)


def number(value, name: str, *, low: float = -np.inf, high: float = np.inf, low_open: bool = False,
           high_open: bool = False) -> float:
    """value as a float, unless it is not a finite real number in the interval (a bool is not a number):
    then ValueError naming the option and the interval."""
    ok = isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, (bool, np.bool_))
    value_ = float(value) if ok else np.nan
    if ok and np.isfinite(value_):
        ok = (value_ > low if low_open else value_ >= low) and (value_ < high if high_open else value_ <= high)
    else:
        ok = False
    if not ok:
        if high == np.inf:
            interval = f"{'>' if low_open else '>='} {low:g}" if low > -np.inf else "(any)"
        else:
            interval = f"in {'(' if low_open else '['}{low:g}, {high:g}{')' if high_open else ']'}"
        raise ValueError(f"{name} must be a finite number {interval}, got {value!r}")
    return value_


def flag(value, name: str) -> bool:
    """value, unless it is not True or False."""
    if not isinstance(value, (bool, np.bool_)):
        raise TypeError(f"{name} must be True or False, got {value!r}")
    return bool(value)


def metric_options(method: str, d: int, *, k, eps, chunk_size, max_memory, tol, block, basis=None,
                   relative=False, hvp_kind=None, progress=None, allow_tf32=False, methods=(), hvp_kinds=()) -> None:
    """The options of `metric.metric` (and `metric_many`), the same checks for every method, whether it uses
    them or not: k a positive integer (below d for the top-k methods), eps a finite number > 0, tol None or in
    [0, 1), chunk_size None or a positive integer, max_memory a finite number > 0, block None or a positive
    integer, relative, progress (or None) and allow_tf32 True or False; basis, block, relative and hvp_kind only
    for the methods that use them."""
    if method not in methods:
        raise ValueError(f"unknown method {method!r}; choose one of {', '.join(methods)}")
    if method in ("lanczos", "finite-difference", "subspace"):
        if isinstance(k, bool) or not isinstance(k, (int, np.integer)) or not 0 < k < d:
            raise ValueError(f"k must be an integer between 1 and d-1 = {d - 1} for {method!r}, got {k!r}")
    else:
        positive_int(k, "k")
    number(eps, "eps", low=0, low_open=True)
    if tol is not None:
        number(tol, "tol", low=0, high=1, high_open=True)
    if chunk_size is not None:
        positive_int(chunk_size, "chunk_size")
    number(max_memory, "max_memory", low=0, low_open=True)
    if block is not None and not 1 <= positive_int(block, "block") <= d:
        raise ValueError(f"block must be between 1 and d = {d} (new directions per point and iteration), got {block!r}")
    flag(relative, "relative")
    flag(allow_tf32, "allow_tf32")
    if progress is not None:
        flag(progress, "progress")
    for option, value, owner in (("basis (a warm start)", basis, "subspace"), ("block", block, "subspace"),
                                 ("relative (a certificate per eigenvalue)", relative or None, "subspace"),
                                 ("hvp_kind", hvp_kind, "lanczos")):
        if value is not None and method != owner:
            raise ValueError(f"{option} is an option of method={owner!r}, not of {method!r}")
    if hvp_kind is not None and hvp_kind not in hvp_kinds:
        raise ValueError(f"unknown hvp_kind {hvp_kind!r}; choose one of {', '.join(hvp_kinds)}")


# --- distances and matrices --------------------------------------------------------------------------------------

def distance_values(values, n: int, *, finite: bool = True) -> None:
    """Raise unless `values` is one distance per image, shape (n,), and (with finite) free of nan and inf."""
    if not isinstance(values, torch.Tensor) or values.shape != (n,):
        shape = tuple(values.shape) if isinstance(values, torch.Tensor) else type(values).__name__
        raise ValueError(f"the distance must return one value per image, shape ({n},); got {shape}")
    if not values.is_floating_point():
        raise TypeError(f"the distance must return floating-point values, got {values.dtype}")
    if finite and not torch.isfinite(values).all():
        which = (~torch.isfinite(values)).nonzero().flatten().tolist()
        raise ValueError(f"the distance returned non-finite values (nan or inf) for image(s) {which[:10]} "
                         f"although its input images are finite")


def square_matrix(H) -> torch.Tensor:
    """One (d, d) matrix (a (1, d, d) batch or a `Metric` of one point too), finite, as float64 on the CPU."""
    H = getattr(H, "H", H) if not isinstance(H, torch.Tensor) else H  # a Metric's matrices (a tensor's .H is its adjoint)
    H = torch.as_tensor(H)
    if H.is_complex() or not (H.is_floating_point() or H.dtype in (torch.int32, torch.int64)):
        raise TypeError(f"expected a real matrix, got {H.dtype}")
    if H.dim() == 3 and H.shape[0] == 1:
        H = H[0]
    if H.dim() != 2 or H.shape[0] != H.shape[1]:
        raise ValueError(f"expected one (d, d) matrix (for several codes, loop or average them), got "
                         f"{tuple(H.shape)}")
    if not torch.isfinite(H).all():
        raise ValueError("the matrix has non-finite entries")
    return H.detach().double().cpu()


SYMMETRY_RTOL = 1e-6  # a metric from float32 products is symmetric to ~1e-7 of its largest entry


def symmetric_matrix(H, what: str = "the matrix") -> torch.Tensor:
    """`square_matrix`, also refused unless symmetric to SYMMETRY_RTOL of its largest entry (a metric is); returned
    exactly symmetric, float64 on the CPU."""
    H = square_matrix(H)
    _symmetric(H, what)
    return (H + H.T) / 2


def symmetric_matrices(H, what: str = "the matrices") -> torch.Tensor:
    """One (d, d) or several (b, d, d) metrics (or a `Metric`'s), finite and symmetric (`symmetric_matrix`), as
    float64 (b, d, d) on the CPU."""
    H = getattr(H, "H", H) if not isinstance(H, torch.Tensor) else H
    H = torch.as_tensor(H)
    if H.is_complex() or not (H.is_floating_point() or H.dtype in (torch.int32, torch.int64)):
        raise TypeError(f"{what} must be real, got {H.dtype}")
    H = H[None] if H.dim() == 2 else H
    if H.dim() != 3 or H.shape[1] != H.shape[2] or H.shape[0] == 0:
        raise ValueError(f"{what} must be (d, d) or (b, d, d), got {tuple(H.shape)}")
    if not torch.isfinite(H).all():
        raise ValueError(f"{what} have non-finite entries")
    H = H.detach().double().cpu()
    _symmetric(H, what)
    return H


def _symmetric(H: torch.Tensor, what: str) -> None:
    asymmetry = (H - H.transpose(-1, -2)).abs().amax().item()
    scale = H.abs().amax().item()
    if asymmetry > SYMMETRY_RTOL * scale:
        raise ValueError(f"{what} is not symmetric (max |H - Hᵀ| = {asymmetry:.3g} of a largest entry {scale:.3g}): a "
                         f"metric is; pass the metric itself (Metric.H), not a Jacobian or a product of two")


# --- bases -------------------------------------------------------------------------------------------------------

def directions(vectors, d: int, what: str = "vectors") -> torch.Tensor:
    """Latent directions (d, k), real and finite, k >= 1, as float64 on the CPU."""
    if not isinstance(vectors, torch.Tensor) or vectors.is_complex() or vectors.dim() != 2 or \
            vectors.shape[0] != d or vectors.shape[1] == 0:
        shape = tuple(vectors.shape) if isinstance(vectors, torch.Tensor) else type(vectors).__name__
        raise ValueError(f"{what} must be a real (d, k) tensor of directions with d = {d}, got {shape}")
    if not torch.isfinite(vectors).all():
        raise ValueError(f"{what} contain non-finite values")
    return vectors.detach().double().cpu()


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

def ignores_z_message(G, which, z=None) -> str:
    return (f"the metric is exactly zero at point(s) {which}: the output of "
            f"{getattr(G, 'name', type(G).__name__)} does not depend on z there (zero Jacobian: an output that "
            f"saturates, or a computation cut off from z by torch.no_grad(), .detach() or a trip through numpy)"
            + far_codes(z))


def far_codes(z) -> str:
    """A note for an error at codes z (b, d) of huge norm (over 100·√d, where N(0, I) codes have about √d), else ''."""
    if z is None:
        return ""
    norms = z.detach().double().norm(dim=-1)
    typical = z.shape[-1] ** 0.5
    if not (norms > 100 * typical).any():
        return ""
    return (f". The code(s) have norm up to {norms.max().item():.3g}, far beyond the codes G.sample draws (norm about "
            f"√d = {typical:.3g}): the generator saturates or overflows there. Use codes of ordinary norm")


def nonzero_metric(H, G, z=None) -> None:
    """Raise, naming the points, where a metric in H (b, d, d) is exactly zero (G ignores z there)."""
    zero = H.flatten(1).abs().amax(dim=1) == 0
    if zero.any():
        which = zero.nonzero().flatten().tolist()
        raise ValueError(ignores_z_message(G, which, None if z is None else z[which]))


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
            f"(e.g. a norm or square root at zero distance, a division by zero, an overflow)" + far_codes(z))


# --- models: what they compute with, eval mode, determinism, one image per code, distance axioms ------------------

# torch's layers whose output depends on training mode (batch statistics, random masks); a module of any other
# class counts too when its own forward reads `self.training`
_MODE_DEPENDENT = (torch.nn.modules.batchnorm._BatchNorm, torch.nn.modules.dropout._DropoutNd, torch.nn.RReLU)
SAME_IMAGE_RTOL = 1e-5  # one code's image alone and in a batch: float32 kernels differ by ~1e-6 of the pixel scale
SAME_IMAGE_RTOL_TF32 = 1e-2  # with TF32 convolutions allowed (a 10-bit mantissa)
DISTANCE_RTOL = 1e-5  # d(x, x) and negative values, relative to the distance between two different images
GROWTH_STEP = 1e-2  # the probe's nearby images: this fraction of the way from one image to another, and twice that
GROWTH_MIN = 3.0  # d(x0, x0 + 2δ) / d(x0, x0 + δ): 4 for a squared distance (to O(δ)), 2 for a norm


def reachable_modules(obj, label: str = "") -> list[tuple[str, torch.nn.Module]]:
    """(name, module) of every nn.Module that obj computes with, found by `store.walk` (the walk behind the store's
    fingerprints): submodules, and modules behind a function's closure, defaults and globals, a bound method's
    object, a partial's arguments, hooks, the methods of a module's class, or the attributes and containers of a
    plain object. Names read like `net.main.1` or `<lambda> closure: net`."""
    from .store import walk

    found: dict[int, tuple[str, torch.nn.Module]] = {}
    for path, kind, value in walk(obj, label):
        if kind == "module":
            found.setdefault(id(value), (path, value))
    return list(found.values())


def _mode_dependent(module: torch.nn.Module) -> bool:
    if isinstance(module, torch.nn.modules.instancenorm._InstanceNorm):
        return module.track_running_stats
    if isinstance(module, _MODE_DEPENDENT):
        return True
    forward = getattr(type(module), "forward", None)
    return "training" in getattr(getattr(forward, "__code__", None), "co_names", ())


def eval_mode(obj, what: str) -> list:
    """Refuse a generator or distance (`what`) that computes with a module in training mode whose output depends
    on it (batch norm, dropout, any module whose forward reads `self.training`), or with tensors on the meta
    device (no values), found anywhere it reaches (`reachable_modules`). Returns the random generators of its own
    that it reaches (torch.Generator, numpy's), for `model` to watch. No forward pass: costs a walk."""
    from .store import walk

    training, meta, generators, batch_statistics, inference = {}, [], [], {}, []
    for path, kind, value in walk(obj):
        if kind == "module" and value.training and _mode_dependent(value):
            training.setdefault(id(value), (path, value))
        elif kind == "module" and isinstance(value, torch.nn.modules.batchnorm._BatchNorm) and \
                value.running_mean is None:  # track_running_stats=False: batch statistics in eval mode too
            batch_statistics.setdefault(id(value), f"{path} ({type(value).__name__})")
        elif kind == "tensor" and (value.device.type == "meta" or torch.nn.parameter.is_lazy(value)):
            meta.append(path)
        elif kind == "tensor" and value.is_inference():
            inference.append(path)
        elif kind == "rng":
            generators.append(value)
    if inference:
        raise ValueError(f"{what} holds tensors made under torch.inference_mode() ({_listed_names(inference)}), which "
                         f"autograd cannot differentiate through: load or build it outside that block")
    if batch_statistics:
        raise ValueError(f"{what} computes with batch norm that keeps no running statistics "
                         f"({_listed_names(list(batch_statistics.values()))}, track_running_stats=False): it normalises "
                         f"by the statistics of each batch even in eval mode, so the metric of a code would change "
                         f"with its batch. Give it running statistics (track_running_stats=True, then load or "
                         f"estimate them) or remove it")
    if meta:
        raise ValueError(f"{what} has tensors without values, on the meta device or lazy modules not initialised yet "
                         f"({_listed_names(meta)}): load its weights first, e.g. module.to_empty(device='cpu') then "
                         f"module.load_state_dict(state), or one forward pass then load_state_dict for lazy modules")
    if training:
        listed = _listed_names([f"{path} ({type(module).__name__})" for path, module in training.values()])
        raise ValueError(f"{what} computes with module(s) in training mode: {listed}. In training mode batch "
                         f"norm uses the statistics of the batch (and changes its running statistics) and dropout "
                         f"is random, so the metric would be wrong. Call .eval() on them (e.g. my_net.eval() before "
                         f"Generator(my_net, d), or G.net.eval() after a G.net.train())")
    return generators


def _listed_names(names: list[str], most: int = 5) -> str:
    return ", ".join(names[:most]) + (f" and {len(names) - most} more" if len(names) > most else "")


class _Randomness:
    """Watches the global random generators (torch's on the CPU and on the device in use, numpy's) and `own` ones
    (torch.Generator, numpy Generator or RandomState objects a model holds): `drew()` says whether any advanced
    since the block began, i.e. something drew random numbers. (Python's `random` is left out: threads of a Dask
    client or an event loop draw from it while a model runs.)"""

    def __init__(self, device: torch.device, own=()):
        self.cuda = device.type == "cuda" and torch.cuda.is_initialized()
        self.device = device
        self.own = list(own)

    def __enter__(self):
        self.before = self._state()
        return self

    def __exit__(self, *exc):
        return False

    def _state(self):
        state = [torch.random.get_rng_state(), np.random.get_state()[1].copy(), np.random.get_state()[2]]
        if self.cuda:
            state.append(torch.cuda.get_rng_state(self.device))
        for generator in self.own:
            if isinstance(generator, torch.Generator):
                state.append(generator.get_state())
            elif isinstance(generator, np.random.RandomState):
                state.append(generator.get_state()[1].copy())
            else:
                state.append(repr(generator.bit_generator.state))
        return state

    def drew(self) -> bool:
        after = self._state()
        return any(not (torch.equal(a, b) if isinstance(a, torch.Tensor) else np.array_equal(a, b) if
                        isinstance(a, np.ndarray) else a == b) for a, b in zip(self.before, after))


def _drawing(call, device: torch.device, own=()):
    """call()'s result and whether it draws random numbers: a generator advanced while it ran, and again on a
    second run (which rules out another thread that happened to draw meanwhile)."""
    with _Randomness(device, own) as watch:
        out = call()
    if not watch.drew():
        return out, False
    with _Randomness(device, own) as watch:
        out = call()
    return out, watch.drew()


def _close(a: torch.Tensor, b: torch.Tensor, rtol: float) -> bool:
    """Equal to within rtol of a's largest magnitude (random noise and batch statistics are of its order)."""
    scale = a.detach().abs().max().clamp_min(1e-12)
    return bool(((a - b).abs().max() <= rtol * scale).item())


@one_thread()  # a few passes on one or two codes: threads would only wait on each other
def model(G, z, distance=None, *, allow_tf32: bool = False) -> None:
    """Check, before a metric or any other result of G, that G (and the distance, if given) can give one at all.

    No mode-dependent module in training mode and no tensor without values anywhere they reach (`eval_mode`); no
    random numbers drawn by either (torch's and numpy's global generators, and those they hold, do not advance
    while they run, twice); the first code's image the same alone and in a batch of two (with the second code,
    or with its negative when there is one code), to SAME_IMAGE_RTOL of the pixel scale, so that neither
    randomness nor the other codes of a batch change it; images of the right number and shape, floating, finite
    and in the distance's range (`generated`); and the distance a distance (`distance_axioms`).
    z : (b, d) codes in the dtype G computes in (`latents`). Costs a walk of both, two forward passes of G (on
    two codes and on one) and one call of the distance on five pairs of images; the operators check the whole
    batch's shape on their own passes.
    """
    name = getattr(G, "name", "the generator")
    own = eval_mode(G, "the generator")
    if distance is not None:
        own += eval_mode(distance, "the distance")
    rtol = SAME_IMAGE_RTOL_TF32 if allow_tf32 else SAME_IMAGE_RTOL
    with torch.no_grad():
        pair = z[:2] if len(z) > 1 else torch.cat([z, -z if z.abs().max() > 0 else torch.ones_like(z)])
        # the first code in a batch of two (finite differences and CMA-ES populations batch codes too), and alone
        (batch, alone), drew = _drawing(lambda: (_generate(G, pair, distance), run_generator(G, z[:1])), z.device,
                                        own)
        if drew:
            raise ValueError(f"{name} draws random numbers when it runs (noise injection, dropout, a random "
                             f"augmentation?): its image of a code changes from call to call, so the metric would be "
                             f"noise. Fix the noise (e.g. a buffer drawn once) or switch it off (.eval())")
        image_count(alone, z[:1])
        if not _close(alone, batch[:1], rtol):
            again = run_generator(G, z[:1])
            difference = (alone - batch[:1]).abs().max().item()
            if not _close(alone, again, rtol):
                raise ValueError(f"{name} is not deterministic: one code gave two different images (max difference "
                                 f"{(alone - again).abs().max().item():.3g}), so the metric would be noise. Fix the "
                                 f"noise (e.g. a buffer drawn once) or switch it off (.eval())")
            raise ValueError(f"{name} gives a code another image in a batch than alone (max difference "
                             f"{difference:.3g}): its output depends on the other codes of the batch (batch statistics?), "
                             f"so the metric of a code would change with its batch. Call .eval() on its modules, or "
                             f"remove what mixes the images of a batch")
        if distance is not None:
            distance_axioms(distance, batch, own)


@one_thread()
def distance_axioms(distance, x: torch.Tensor, own=()) -> None:
    """Refuse a `distance` that is not one on images x (n ≥ 1, the first two used): it must return one finite
    value per pair, d(x, x) = 0 and d ≥ 0 (to DISTANCE_RTOL of the distance between two different images), draw
    no random numbers (the global generators and those in `own` do not advance), and give an image the same value
    whatever else is in the batch (the two batches of the probe hold other images). Then x0 is a minimum of
    d(x0, ·), so its Hessian, the metric, is positive semi-definite. Symmetry is not asked: a divergence (KL,
    Bregman) has a metric too. And it must grow like the square of a small step from an image (d(a, a + 2δ) at least
    GROWTH_MIN times d(a, a + δ), δ = GROWTH_STEP·(c − a)): a norm has no Hessian at its minimum. One call on five
    pairs: (a, a), (a, c), (c, c), (a, a + δ), (a, a + 2δ)."""
    a = x[:1]
    c = x[1:2] if len(x) > 1 else -a  # a second image: the negative stays in a symmetric range
    step = (c - a) * GROWTH_STEP  # two nearby images on the segment from a to c, inside the images' range
    first, second = torch.cat([a, a, c, a, a]), torch.cat([a, c, c, a + step, a + 2 * step])
    values, drew = _drawing(lambda: run_distance(distance, first, second), x.device, own)
    distance_values(values, 5)
    name = _name(distance)
    if torch.finfo(values.dtype).eps > torch.finfo(x.dtype).eps:
        raise TypeError(f"{name} returns {values.dtype} values for {x.dtype} images: the metric would carry the "
                        f"rounding of {values.dtype} ({torch.finfo(values.dtype).eps:.1g} relative); return the "
                        f"images' dtype")
    if drew:
        raise ValueError(f"{name} draws random numbers when it runs (dropout, noise?): its values change from call "
                         f"to call, so the metric would be noise. Switch that off (.eval()) or fix the noise")
    same = max(values[0].abs().item(), values[2].abs().item())
    apart = values[1].abs().item()
    if same > DISTANCE_RTOL * apart or (apart == 0 and same > 0):
        raise ValueError(f"{name} is not a distance: d(x, x) = {same:.3g} for an image and itself (two different "
                         f"images are {apart:.3g} apart). The metric needs d(x0, x) to be smallest, zero, at x = x0: a "
                         f"function that ignores x0, or whose value for a pair depends on the other images of the "
                         f"batch, gives no metric")
    if values[1].item() < -DISTANCE_RTOL * apart:
        raise ValueError(f"{name} is not a distance: it returned a negative value ({values[1].item():.3g}) for two "
                         f"different images; the metric needs d ≥ 0 with its minimum at x = x0")
    near, twice = values[3].item(), values[4].item()
    if near > 0 and twice < GROWTH_MIN * near:
        raise ValueError(f"{name} grows like |x − x0|, not like its square: twice as far from an image it is "
                         f"{twice / near:.3g} times larger (a squared distance gives 4). A norm or a square root has no "
                         f"Hessian at x = x0 (the metric would be infinite, and finite differences return a number "
                         f"that depends on their step): square it, e.g. d(x0, x) = ‖f(x0) − f(x)‖²")


def run_distance(distance, x0, x):
    """distance(x0, x); an error inside it is explained (the images it got, and what a distance takes)."""
    try:
        return distance(x0, x)
    except (RuntimeError, TypeError, IndexError, AttributeError, ValueError) as err:
        if isinstance(err, ValueError) and _raised_in_helpers(err):
            raise
        raise ValueError(f"the distance {_name(distance)} failed on two batches of {len(x)} images of shape "
                         f"{tuple(x.shape[1:])} ({x.dtype}): {type(err).__name__}: {err}; a distance takes (x0, x), "
                         f"two batches of images (n, 3, H, W), and returns (n,) values") from err


def positive_semidefinite(eigvals: torch.Tensor, G, distance, *, rtol: float = 1e-3) -> None:
    """Refuse metrics whose spectrum (b, k) descending has an eigenvalue below −rtol·λ₁ (a top eigenvalue ≤ 0
    included, unless the whole metric is zero, which `nonzero_metric` explains): the Hessian of a distance at
    its minimum is positive semi-definite, up to rounding."""
    top = eigvals[:, :1]
    bad = (eigvals < -rtol * top.abs()).any(dim=1) | (top[:, 0] < 0)
    if bad.any():
        which = bad.nonzero().flatten().tolist()
        worst = float((eigvals[bad].min(dim=1).values / top[bad, 0].abs().clamp_min(1e-300)).min())
        name = _name(distance)
        raise ValueError(f"the metric at point(s) {_listed(which)} is not positive semi-definite (smallest "
                         f"eigenvalue {worst:.3g}·|λ₁|): {name} has no minimum at x = x0 through "
                         f"{getattr(G, 'name', type(G).__name__)}, so it is not a distance whose Hessian is a metric "
                         f"(or the finite-difference step eps is too large or too small for these codes)")


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

ENDS_RTOL = 1e3  # geodesic ends must be more than this many roundings of their dtype apart (relative to their norm)


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
    if G is not None:  # ends a few roundings apart: their images differ by rounding, so would every length
        scale = torch.maximum(a.norm(dim=1), b.norm(dim=1)).clamp_min(1)
        near = (a - b).norm(dim=1) <= ENDS_RTOL * torch.finfo(a.dtype).eps * scale
        if near.any():
            raise ValueError(f"z_a and z_b are equal up to rounding for path(s) {_listed(near.nonzero().flatten().tolist())} "
                             f"(closer than {ENDS_RTOL:g} roundings of {a.dtype}): the images along such a path differ "
                             f"by rounding error, so its length and energy would be noise; use ends further apart "
                             f"(or float64 codes and models)")
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
