"""Inversion in latent space: Adam (in z, a full eigenbasis or a top-k subspace), BasinCMA and CMA-ES, batched over
targets, starts and learning rates; learning-rate tuning; comparisons stored in units, so a long one resumes.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
import torch
from tqdm.auto import tqdm

from . import checks, cma, store
from .analysis import average_metric
from .distances import Distance
from .metric import metric

SCHEDULES = ("constant", "cosine", "step")
PIXEL_TERMS = ("l1", "mse")
BETAS, EPS = (0.9, 0.999), 1e-8  # Adam's, as torch.optim.Adam's defaults


@dataclass
class Inversion:
    """n runs (rows) of one inversion method; every row has its own target, start and learning rate.

    z_best : (n, d) the code of the lowest distance seen. loss_best : (n,) that distance.
    history : (n, budget) the lowest distance seen after each evaluation (one image through G: an Adam step,
        or one code CMA-ES proposed), so history[:, 0] is the start and history[:, -1] == loss_best.
    images : (n, 3, H, W) G(z_best). basis_name : 'z', or the basis label. seeds : (n,) start seeds (or ()).
    target_index : (n,) the target of each row. lr : (n,) learning rates. schedule : (n,) schedule names.
    units : the `Unit`s the rows were run or read back in (`run_method` with a store; else ()): what they cost.
    """

    z_best: torch.Tensor
    loss_best: torch.Tensor
    history: torch.Tensor
    images: torch.Tensor
    basis_name: str
    seeds: tuple = ()
    target_index: tuple = ()
    lr: tuple = ()
    schedule: tuple = ()
    units: tuple = ()


def eigen_basis(G, distance: Callable, *, n_points: int = 8, seed: int = 0, k: int | None = None) -> torch.Tensor:
    """Eigenvectors (d, k) of the metric averaged over `n_points` sampled codes, top first (the paper's frame)."""
    frame = average_metric(metric(G, G.sample(n_points, seed=seed), distance, progress=False)).eigvecs
    return frame[:, :k] if k else frame


# --- Adam, many rows at once -------------------------------------------------------------------------------

def adam(G, targets: torch.Tensor, distance: Callable, z0: torch.Tensor, *, basis=None, target_index=None,
         steps: int = 300, lr=0.05, schedule="cosine", pixel_weight: float = 0.0, pixel: str = "l1",
         chunk_size: int = 32, seeds: Sequence[int] = (), name: str | None = None, progress: bool = True,
         desc: str | None = None) -> Inversion:
    """Adam on n independent inversions at once, each from its own start z0[i] towards targets[target_index[i]].

    Row i runs on coordinates c with z = z0 + V (c − c0), c0 = Vᵀ z0: V = I (z-space) when its basis is None;
    a full orthonormal basis (d, d) spans z (z = V c); a top-k basis (d, k) searches the k-dimensional affine
    subspace through z0. Every row starts exactly at z0[i].

    Parameters
    ----------
    G : generator: codes (n, d) -> images (n, 3, H, W) in [-1, 1], with `latent_dim`.
    targets : (m, 3, H, W) or (3, H, W) target images in [-1, 1].
    distance : d(x0, x) -> (n,), e.g. `distances.lpips('alex')`; it is what `history` and `loss_best` report.
    z0 : (n, d) starting codes.
    basis : None, one (d, k) matrix with orthonormal columns for every row, or a sequence of n such entries
        (None or a matrix) for rows in different bases (rows sharing one matrix object share it).
    target_index : (n,) indices into targets (default: row i -> target i when m == n, target 0 when m == 1).
    steps : Adam steps per row = evaluations per row (the distance is measured at each step, before the update).
    lr : one learning rate or (n,) per row. schedule : 'constant', 'cosine' (lr · ½(1 + cos πt/steps)) or
        'step' (halved every ⌈steps/3⌉ steps, the paper's StepLR at 600 steps); one name or n names.
    pixel_weight, pixel : loss = distance + pixel_weight · mean |x − target| ('l1', the paper's) or mean squared
        ('mse'); the pixel term steers the search, `history` reports the distance alone.
    chunk_size : rows per forward/backward pass (rows are independent, so chunks give the same gradients).
    seeds : the start seeds, stored in the result. name : label stored as `basis_name` (default 'z' or
        'basis-k{k}'). desc : progress-bar label.
    """
    targets, z0 = checks.targets(targets, distance), checks.codes(z0, G)
    n = len(z0)
    index = checks.row_targets(target_index, n, len(targets))
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    if isinstance(chunk_size, bool) or not isinstance(chunk_size, int) or chunk_size < 1:
        raise ValueError(f"chunk_size must be a positive integer, got {chunk_size!r}")
    rates = checks.per_row(lr, n, "lr")
    if not (torch.isfinite(rates).all() and (rates > 0).all()):
        raise ValueError(f"lr must be positive and finite, got {rates.tolist()}")
    schedules = checks.per_row_names(schedule, n, SCHEDULES, "schedule")
    factors = schedule_factors(schedules, steps)  # (n, steps), float64 like rates
    if pixel not in PIXEL_TERMS:
        raise ValueError(f"pixel must be one of {', '.join(PIXEL_TERMS)}, got {pixel!r}")
    if not math.isfinite(pixel_weight) or pixel_weight < 0:
        raise ValueError(f"pixel_weight must be finite and >= 0, got {pixel_weight}")
    B, basis_name = _row_bases(basis, n, G.latent_dim, z0)
    targets = targets.to(z0)
    with torch.no_grad():
        first = G(z0[:1])
        checks.generated(first, 1, distance)
        checks.same_image_size(targets, first)

    measure = _against_targets(distance, targets)
    c0 = z0 if B is None else torch.einsum("nij,ni->nj", B, z0)
    c = c0.clone().requires_grad_(True)
    m, v = torch.zeros_like(c0), torch.zeros_like(c0)
    history = torch.empty(n, steps, device=z0.device)
    loss_best = torch.full((n,), math.inf, device=z0.device)
    z_best, images = z0.clone(), None
    chunks = [slice(s, min(s + chunk_size, n)) for s in range(0, n, chunk_size)]
    for step in tqdm(range(steps), desc=desc or f"Adam ({name or basis_name})", disable=not progress, leave=False):
        c.grad = None
        for rows in chunks:
            z = c[rows] if B is None else z0[rows] + torch.einsum("nij,nj->ni", B[rows], c[rows] - c0[rows])
            x = G(z)
            target = targets[index[rows]]
            value = measure(index[rows], x)
            if step == 0 and rows.start == 0:
                checks.distance_values(value, len(x))
            loss = value
            if pixel_weight:
                diff = x - target
                term = diff.abs() if pixel == "l1" else diff.pow(2)
                loss = loss + pixel_weight * term.flatten(1).mean(1)
            with torch.no_grad():
                if images is None:
                    images = torch.empty(n, *x.shape[1:], dtype=x.dtype, device=x.device)
                    images[rows] = x
                better = value < loss_best[rows]
                loss_best[rows] = torch.where(better, value, loss_best[rows])
                _assign(z_best, rows, better, z)
                _assign(images, rows, better, x)
                history[rows, step] = loss_best[rows]
            loss.sum().backward()  # rows are independent: the sum gives each its own gradient
        with torch.no_grad():
            adam_update(c, c.grad, m, v, step + 1, (rates * factors[:, step]).to(z0))
    if not torch.isfinite(loss_best).all():
        raise ValueError("the distance was not finite for some rows; check the generator and the targets")
    return Inversion(z_best.detach(), loss_best, history, images, name or basis_name, tuple(int(s) for s in seeds),
                     tuple(index.tolist()), tuple(rates.tolist()), schedules)


def _against_targets(distance, targets):
    """(target rows (r,), images x (r, 3, H, W)) -> (r,) distance(targets[rows], x). For a `Distance` whose value
    is its default ‖features(x0) − features(x)‖², the targets' features are computed once, here, instead of at
    every step (where the pass over the targets would cost as much as the forward pass over x); any other distance is
    called as it is."""
    if not (isinstance(distance, Distance) and type(distance).forward is Distance.forward):
        return lambda rows, x: distance(targets[rows], x)
    with torch.no_grad():
        features = distance.features(targets)

    def measure(rows, x):
        checks.images(x, "x")
        return (features[rows] - distance.features(x)).pow(2).sum(dim=1)
    return measure


def _assign(store, rows, better, values):
    """store[rows][better] = values[better], in place (store[rows] is a view for a slice)."""
    store[rows][better] = values.detach()[better]


def adam_update(p, grad, m, v, t: int, lr):
    """One step of torch.optim.Adam's update (betas 0.9, 0.999, eps 1e-8) with a learning rate per row (n,)."""
    beta1, beta2 = BETAS
    m.mul_(beta1).add_(grad, alpha=1 - beta1)
    v.mul_(beta2).addcmul_(grad, grad, value=1 - beta2)
    denom = (v.sqrt() / math.sqrt(1 - beta2 ** t)).add_(EPS)
    step = (lr / (1 - beta1 ** t)).reshape(-1, *([1] * (p.dim() - 1)))
    p.sub_(step * m / denom)


def schedule_factors(schedules, steps: int) -> torch.Tensor:
    """Learning-rate multipliers (n, steps) for n schedule names (see `adam`); float64."""
    t = torch.arange(steps, dtype=torch.float64)
    rows = []
    for name in schedules:
        if name == "constant":
            rows.append(torch.ones(steps, dtype=torch.float64))
        elif name == "cosine":
            rows.append(0.5 * (1 + torch.cos(math.pi * t / steps)))
        elif name == "step":
            rows.append(0.5 ** torch.div(t, math.ceil(steps / 3), rounding_mode="floor"))
        else:
            raise ValueError(f"schedule must be one of {', '.join(SCHEDULES)}, got {name!r}")
    return torch.stack(rows)


def invert(G, target: torch.Tensor, distance: Callable, *, basis: torch.Tensor | str | None = None, steps: int = 200,
           lr: float = 0.2, schedule: str = "cosine", seeds: Sequence[int] = (0, 1, 2), pixel_weight: float = 1.0,
           pixel: str = "l1", name: str | None = None, progress: bool = True) -> Inversion:
    """Invert one target from several starts, all in one batch: Adam on z (basis None) or in a basis.

    The defaults: the paper's loss, distance + mean |x − target| (pixel_weight 1, 'l1'); 200 steps at lr 0.2
    decayed on a cosine; 3 starts. Seed s starts at `G.sample(1, seed=s)` whatever the others. basis : None,
    'eigen' (the eigenbasis of the average metric, from `eigen_basis` with its defaults) or a (d, k) matrix with
    orthonormal columns. Other parameters as for `adam`.
    """
    target = checks.targets(target, distance)
    if len(target) != 1:
        raise ValueError(f"target must be one image of shape (3, H, W) or (1, 3, H, W), got {tuple(target.shape)}")
    if len(seeds) == 0:
        raise ValueError("need at least one seed")
    if isinstance(basis, str):
        if basis != "eigen":
            raise ValueError(f"basis must be None, 'eigen' or a (d, k) matrix, got {basis!r}")
        basis, name = eigen_basis(G, distance), name or "eigen"
    z0 = start_codes(G, seeds)
    return adam(G, target, distance, z0, basis=basis, steps=steps, lr=lr, schedule=schedule, seeds=seeds,
                pixel_weight=pixel_weight, pixel=pixel, name=name, progress=progress)


def start_codes(G, seeds: Sequence[int]) -> torch.Tensor:
    """(len(seeds), d) codes, row i = G.sample(1, seed=seeds[i]), so a start does not depend on the others."""
    return torch.cat([G.sample(1, seed=int(s)) for s in seeds]).detach()


# --- BasinCMA ---------------------------------------------------------------------------------------------

def basin_cma(G, targets: torch.Tensor, distance: Callable, z0: torch.Tensor, *, basis=None, target_index=None,
              budget: int = 300, generations: int = 4, popsize: int = 6, inner_steps: int = 6, sigma0: float = 0.5,
              lr=0.05, schedule="cosine", inner_lr=None, seeds: Sequence[int] = (), pixel_weight: float = 0.0,
              pixel: str = "l1", chunk_size: int = 32, name: str | None = None, progress: bool = True) -> Inversion:
    """BasinCMA (the paper's inversion of BigGAN): CMA-ES proposes starting codes, each gets a few Adam steps,
    CMA-ES is told the distances reached after them; then Adam refines the best code found.

    n searches at once, one per start z0[i] (CMA-ES's initial mean) and target targets[target_index[i]]. Each
    generation, every search's `popsize` proposals run `inner_steps` Adam steps at a constant `inner_lr`
    (default: lr), all n · popsize rows in one batch; CMA-ES is told the proposals with the lowest distance
    each reached (the paper's default, not the codes after Adam). After `generations`, the best code of each
    search gets the rest of the budget as one Adam run with `lr` and `schedule`.

    Parameters
    ----------
    basis : as for `adam`: the coordinates of both Adam phases (CMA-ES itself samples z isotropically with
        step size sigma0, as in the paper).
    budget : evaluations per search (images through G, with gradients); the CMA phase uses
        generations · popsize · inner_steps of them, the final Adam run the rest (at least one step).
    lr, schedule, inner_lr : one value or n values (per search).
    seeds : CMA-ES's sampling seed per search (default 0, 1, ...), also stored as the result's seeds.
    Returns an Inversion whose history (n, budget) is the lowest distance seen after each evaluation: each
    inner step of a generation counts `popsize` evaluations.
    """
    targets, z0 = checks.targets(targets, distance), checks.codes(z0, G)
    n, d = z0.shape
    index = checks.row_targets(target_index, n, len(targets))
    for label, value in (("generations", generations), ("popsize", popsize), ("inner_steps", inner_steps)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ValueError(f"{label} must be a positive integer, got {value!r}")
    if popsize < 2:
        raise ValueError(f"popsize must be at least 2 for CMA-ES, got {popsize}")
    cma_evaluations = generations * popsize * inner_steps
    if budget <= cma_evaluations:
        raise ValueError(f"budget ({budget}) must exceed the CMA phase's generations · popsize · inner_steps = "
                         f"{cma_evaluations} evaluations, leaving at least one final Adam step")
    if not (math.isfinite(sigma0) and sigma0 > 0):
        raise ValueError(f"sigma0 must be positive, got {sigma0}")
    seeds = tuple(range(n)) if not seeds else tuple(int(s) for s in seeds)
    if len(seeds) != n:
        raise ValueError(f"need one seed per start: {n} starts, {len(seeds)} seeds")
    rates = checks.per_row(lr, n, "lr")
    inner = rates if inner_lr is None else checks.per_row(inner_lr, n, "inner_lr")
    schedules = checks.per_row_names(schedule, n, SCHEDULES, "schedule")
    per_row_basis = basis if isinstance(basis, (list, tuple)) else [basis] * n
    if len(per_row_basis) != n:
        raise ValueError(f"basis: need one entry per start ({n}), got {len(per_row_basis)}")
    _, basis_name = _row_bases(basis, n, d, z0)

    searches = [cma.SeededCMA(z0[i].double().cpu().numpy(), sigma0, seed=s, popsize=popsize)
                for i, s in enumerate(seeds)]
    best = torch.full((n,), math.inf, device=z0.device)
    z_best = z0.clone()
    history = torch.empty(n, budget, device=z0.device)
    position = 0
    bar = tqdm(range(generations), desc=f"BasinCMA ({name or basis_name})", disable=not progress, leave=False)
    for _ in bar:
        proposals = torch.from_numpy(np.concatenate([s.ask() for s in searches])).to(z0)  # (n · popsize, d)
        rows = torch.arange(n).repeat_interleave(popsize)
        run = adam(G, targets, distance, proposals, basis=[per_row_basis[i] for i in rows.tolist()],
                   target_index=index[rows], steps=inner_steps, lr=inner[rows], schedule="constant",
                   pixel_weight=pixel_weight, pixel=pixel, chunk_size=chunk_size, progress=False)
        scores = run.loss_best.view(n, popsize)
        for i, search in enumerate(searches):
            search.tell(scores[i].double().cpu().numpy())
        per_search = run.history.view(n, popsize, inner_steps).min(1).values  # (n, inner_steps)
        running = torch.minimum(torch.cummin(per_search, dim=1).values, best[:, None])
        history[:, position:position + popsize * inner_steps] = running.repeat_interleave(popsize, dim=1)
        position += popsize * inner_steps
        top = scores.argmin(1)
        found = scores[torch.arange(n), top]
        better = found < best
        best = torch.where(better, found, best)
        z_best[better] = run.z_best.view(n, popsize, d)[torch.arange(n), top][better]
    bar.close()
    final = adam(G, targets, distance, z_best, basis=basis, target_index=index, steps=budget - position, lr=rates,
                 schedule=schedules, pixel_weight=pixel_weight, pixel=pixel, chunk_size=chunk_size,
                 progress=progress, desc=f"BasinCMA final Adam ({name or basis_name})")
    history[:, position:] = torch.minimum(final.history, best[:, None])
    better = final.loss_best <= best
    z_out = torch.where(better[:, None], final.z_best, z_best)
    with torch.no_grad():
        images = torch.where(better[:, None, None, None], final.images, G(z_out))
    loss = torch.minimum(final.loss_best, best)
    return Inversion(z_out, loss, history, images, name or f"BasinCMA {basis_name}", seeds, tuple(index.tolist()),
                     tuple(rates.tolist()), schedules)


# --- methods and learning-rate tuning ---------------------------------------------------------------------

@dataclass
class Method:
    """An inversion method: kind 'adam' or 'basin' (BasinCMA), the basis of its Adam steps (None: z), and
    options for `basin_cma` (generations, popsize, inner_steps, sigma0)."""

    name: str
    kind: str = "adam"
    basis: torch.Tensor | None = None
    options: dict = field(default_factory=dict)

    def __post_init__(self):
        if self.kind not in ("adam", "basin"):
            raise ValueError(f"Method kind must be 'adam' or 'basin', got {self.kind!r}")
        if self.kind == "adam" and self.options:
            raise ValueError(f"options {sorted(self.options)} are for BasinCMA; an 'adam' method takes none")


def run_method(G, targets, distance, method: Method, z0, *, target_index=None, budget: int = 300, lr=0.05,
               schedule="cosine", seeds: Sequence[int] = (), pixel_weight: float = 0.0, pixel: str = "l1",
               chunk_size: int = 32, store: str | Path | None = None, unit_rows: int = 64,
               progress: bool = True) -> Inversion:
    """Run `method` from each start z0 (n, d) with `budget` evaluations per run; lr and schedule per row.

    store : a folder, or None. With a folder the rows run in units of `unit_rows` (a multiple of chunk_size
    keeps the batches through G what they would be without a store); each finished unit is written there
    atomically under the digest of everything that decides its numbers (`unit_fingerprint`), and a unit already
    there is read back instead of run again: an interrupted comparison resumes where it stopped, with the same
    numbers.
    """
    if store is not None:
        return _run_stored(G, targets, distance, method, z0, Path(store), unit_rows, target_index=target_index,
                           budget=budget, lr=lr, schedule=schedule, seeds=seeds, pixel_weight=pixel_weight,
                           pixel=pixel, chunk_size=chunk_size, progress=progress)
    common = dict(target_index=target_index, lr=lr, schedule=schedule, seeds=seeds, pixel_weight=pixel_weight,
                  pixel=pixel, chunk_size=chunk_size, name=method.name, progress=progress)
    if method.kind == "adam":
        return adam(G, targets, distance, z0, basis=method.basis, steps=budget, **common)
    return basin_cma(G, targets, distance, z0, basis=method.basis, budget=budget, **method.options, **common)


# --- stores: finished units of a comparison on disk, so that a long run resumes ----------------------------

STORE_FORMAT = 1
_ARRAYS = ("z_best", "loss_best", "history", "images")


@dataclass(frozen=True)
class Unit:
    """One unit of rows that `run_method` ran, or read back, with a store: the generator and method, its rows, the
    images they put through G, the wall and CPU seconds (all threads) its run took, wherever and whenever it ran
    (nan if unknown), and whether it was read back."""

    generator: str
    method: str
    rows: int
    images: int
    seconds: float
    cpu_seconds: float
    read: bool


def unit_fingerprint(G, targets, distance, method: Method, z0, *, target_index, budget: int, lr, schedule, seeds,
                     pixel_weight: float, pixel: str, chunk_size: int, digests: dict | None = None) -> dict:
    """Everything that decides a unit's numbers, as JSON: the generator's and distance's weights, the method
    (kind, basis, options), the code of the optimisers, the starts, the targets of its rows, budget, learning
    rates, schedules, seeds, loss and batch size. digests : the model/code digests if already computed."""
    n = len(z0)
    index = checks.row_targets(target_index, n, len(targets))
    digests = digests or _static_digests(G, distance)
    fingerprint = {
        "format": STORE_FORMAT, **digests,
        "method": {"name": method.name, "kind": method.kind, "options": {k: method.options[k]
                                                                          for k in sorted(method.options)},
                   "basis_sha256": None if method.basis is None else store.tensor_digest(method.basis.float()),
                   "basis_shape": None if method.basis is None else list(method.basis.shape)},
        "z0_sha256": store.tensor_digest(z0.float()), "z0_shape": list(z0.shape),
        "targets_sha256": store.tensor_digest(targets[index].float()), "target_index": index.tolist(),
        "budget": int(budget), "lr": checks.per_row(lr, n, "lr").tolist(),
        "schedule": list(checks.per_row_names(schedule, n, SCHEDULES, "schedule")),
        "seeds": [int(s) for s in seeds], "pixel_weight": float(pixel_weight), "pixel": pixel,
        "chunk_size": int(chunk_size), "distance": store.describe(distance),
    }
    return store.as_json(fingerprint)


def _static_digests(G, distance) -> dict:
    return {"generator": getattr(G, "name", type(G).__name__), "generator_sha256": store.model_digest(G),
            "distance_sha256": store.model_digest(distance), "code_sha256": store.code_digest(_OPTIMISER_CODE)}


def _run_stored(G, targets, distance, method, z0, folder: Path, unit_rows: int, *, target_index, budget, lr,
                schedule, seeds, pixel_weight, pixel, chunk_size, progress) -> Inversion:
    """`run_method` unit by unit, each unit read from `folder` when there, else run and written there."""
    if isinstance(unit_rows, bool) or not isinstance(unit_rows, int) or unit_rows < 1:
        raise ValueError(f"unit_rows must be a positive integer, got {unit_rows!r}")
    targets, z0 = checks.targets(targets, distance), checks.codes(z0, G)
    n = len(z0)
    index = checks.row_targets(target_index, n, len(targets))
    rates, names = checks.per_row(lr, n, "lr"), checks.per_row_names(schedule, n, SCHEDULES, "schedule")
    seeds = tuple(int(s) for s in seeds)
    if seeds and len(seeds) != n:
        raise ValueError(f"need one seed per row: {n} rows, {len(seeds)} seeds")
    digests = _static_digests(G, distance)
    parts, units = [], []
    slices = [slice(s, min(s + unit_rows, n)) for s in range(0, n, unit_rows)]
    for rows in tqdm(slices, desc=f"{method.name}: units", disable=not progress or len(slices) == 1, leave=False):
        options = dict(target_index=index[rows], budget=budget, lr=rates[rows], schedule=names[rows],
                       seeds=seeds[rows], pixel_weight=pixel_weight, pixel=pixel, chunk_size=chunk_size)
        fingerprint = unit_fingerprint(G, targets, distance, method, z0[rows], digests=digests, **options)
        file = store.keyed_file(folder, fingerprint)
        stored = store.reusable(file, lambda f: _load_unit(f, fingerprint, z0.device), "running that unit again")
        if stored is not None:
            part, (seconds, cpu_seconds) = stored
        else:
            started, cpu_started = time.perf_counter(), time.process_time()
            part = run_method(G, targets, distance, method, z0[rows], progress=progress, **options)
            seconds, cpu_seconds = time.perf_counter() - started, time.process_time() - cpu_started
            save_unit(part, file, fingerprint, seconds=seconds, cpu_seconds=cpu_seconds)
        units.append(Unit(digests["generator"], method.name, len(part.z_best), len(part.z_best) * int(budget), seconds,
                          cpu_seconds, stored is not None))
        parts.append(part)
    return replace(_concatenate_runs(parts), units=tuple(units))


def save_unit(run: Inversion, file: str | Path, fingerprint: dict, *, seconds: float = math.nan,
              cpu_seconds: float = math.nan) -> Path:
    """Write an Inversion, the fingerprint it was computed for and the wall and CPU seconds it took to an .npz file,
    atomically."""
    return store.save_npz(file, fingerprint, **{name: getattr(run, name).detach().cpu().numpy() for name in _ARRAYS},
                          basis_name=run.basis_name, seeds=np.asarray(run.seeds, dtype=np.int64),
                          target_index=np.asarray(run.target_index, dtype=np.int64),
                          lr=np.asarray(run.lr, dtype=np.float64), schedule=np.asarray(run.schedule, dtype=str),
                          seconds=float(seconds), cpu_seconds=float(cpu_seconds))


def load_unit(file: str | Path, fingerprint: dict | None = None, device="cpu") -> Inversion:
    """Read a file written by `save_unit`; with `fingerprint`, refuse (ValueError) one written for another."""
    return _load_unit(file, fingerprint, device)[0]


def _load_unit(file, fingerprint, device) -> tuple[Inversion, tuple[float, float]]:
    """The Inversion in a unit file and the (wall, CPU) seconds its run took."""
    data = store.load_npz(file, fingerprint)
    arrays = {name: torch.from_numpy(data[name]).to(device) for name in _ARRAYS}
    run = Inversion(**arrays, basis_name=str(data["basis_name"]), seeds=tuple(data["seeds"].tolist()),
                    target_index=tuple(data["target_index"].tolist()), lr=tuple(data["lr"].tolist()),
                    schedule=tuple(str(s) for s in data["schedule"].tolist()))
    return run, (float(data["seconds"]), float(data["cpu_seconds"]))


def _concatenate_runs(parts: list) -> Inversion:
    names = {p.basis_name for p in parts}
    labels = (sum((getattr(p, f) for p in parts), ()) for f in ("seeds", "target_index", "lr", "schedule"))
    return Inversion(*(torch.cat([getattr(p, name) for p in parts]) for name in _ARRAYS),
                     names.pop() if len(names) == 1 else "mixed", *labels)


@dataclass
class Tuning:
    """The learning rate and schedule a method scored best with, and every candidate's score.

    lr, schedule : the choice. candidates : [(lr, schedule)]. scores : (candidates,) mean log10 of the final
    distance over the tuning runs (lower is better). runs : the Inversion of all candidates' rows.
    """

    lr: float
    schedule: str
    candidates: list
    scores: torch.Tensor
    runs: Inversion


def tune(G, targets, distance, method: Method, z0, *, target_index=None, lrs: Sequence[float] = (0.02, 0.05, 0.1, 0.2),
         schedules: Sequence[str] = ("cosine",), budget: int = 300, seeds: Sequence[int] = (),
         pixel_weight: float = 0.0, pixel: str = "l1", chunk_size: int = 32, store: str | Path | None = None,
         unit_rows: int = 64, progress: bool = True) -> Tuning:
    """Choose `method`'s learning rate and schedule on tuning targets: every candidate runs from every start z0
    (n, d) in one batch, with the full budget; the score is the mean log10 final distance (ties: the first).

    Tune on targets held out of the test set. store, unit_rows : as for `run_method`. Returns a `Tuning`.
    """
    z0 = checks.codes(z0, G)
    n = len(z0)
    index = checks.row_targets(target_index, n, len(checks.targets(targets)))
    candidates = [(float(lr), str(s)) for s in schedules for lr in lrs]
    if not candidates:
        raise ValueError("need at least one learning rate and one schedule to tune over")
    k = len(candidates)
    rates = torch.tensor([lr for lr, _ in candidates], dtype=torch.float64).repeat_interleave(n)
    names = [s for _, s in candidates for _ in range(n)]
    seeds = tuple(seeds) * k if seeds else ()
    runs = run_method(G, targets, distance, method, z0.repeat(k, 1), target_index=index.repeat(k), budget=budget,
                      lr=rates, schedule=names, seeds=seeds, pixel_weight=pixel_weight, pixel=pixel,
                      chunk_size=chunk_size, store=store, unit_rows=unit_rows, progress=progress)
    scores = runs.loss_best.double().clamp_min(1e-12).log10().view(k, n).mean(1).cpu()
    best = int(scores.argmin())
    return Tuning(candidates[best][0], candidates[best][1], candidates, scores, runs)


def invert_cma(G, target: torch.Tensor, distance: Callable, *, basis: torch.Tensor | None = None, eigvals=None,
               budget: int = 1000, seed: int = 0, sigma0: float = 0.5, power: float = 1 / 2.5,
               popsize: int | None = None, name: str | None = None, progress: bool = True) -> Inversion:
    """Black-box inversion by CMA-ES from z0 = G.sample(1, seed): on z (basis None) or on c, z = z0 + V c.

    Parameters
    ----------
    basis : (d, k) orthonormal columns, e.g. the top-k eigenvectors of the average metric.
    eigvals : (k,) their eigenvalues: CMA's initial stds ∝ λ^(−power) (`cma.hessian_cma_stds`); None: isotropic.
    budget : number of images evaluated (the same for every variant); populations go through G in one batch.
    sigma0 : CMA's initial step size in z units (per-coordinate stds have mean 1).
    Returns an `Inversion` for one seed whose history is the best-so-far loss per evaluation (1, budget).
    """
    target = checks.targets(target, distance)
    if len(target) != 1:
        raise ValueError(f"target must be one image of shape (3, H, W) or (1, 3, H, W), got {tuple(target.shape)}")
    z0 = G.sample(1, seed=int(seed)).detach()
    target = target.to(z0)
    if basis is None:
        if eigvals is not None:
            raise ValueError("eigvals need a basis: pass the eigenvectors as `basis`")
        to_z = lambda c: c  # noqa: E731
        x0, stds, basis_name = z0[0], None, name or "z"
    else:
        V = checks.orthonormal_basis(basis, G.latent_dim).to(z0)
        to_z = lambda c: z0 + c @ V.T  # noqa: E731
        x0 = torch.zeros(V.shape[1], dtype=torch.float64)
        stds = None if eigvals is None else cma.hessian_cma_stds(eigvals, power=power)
        if stds is not None and stds.numel() != V.shape[1]:
            raise ValueError(f"eigvals must have one value per basis vector ({V.shape[1]}), got {stds.numel()}")
        basis_name = name or f"basis-k{V.shape[1]}" + ("-hessian" if stds is not None else "")
    with torch.no_grad():
        start_image = G(z0)
        checks.generated(start_image, 1, distance)
        checks.same_image_size(target, start_image)
    bar = tqdm(total=budget, desc=f"CMA ({basis_name})", disable=not progress, leave=False)

    @torch.no_grad()
    def objective(c):
        bar.update(len(c))
        return distance(target, G(to_z(c.to(z0))))

    try:
        result = cma.cma_search(objective, x0, sigma0=sigma0, stds=stds, budget=budget, seed=seed, popsize=popsize)
    finally:
        bar.close()
    with torch.no_grad():
        z_best = to_z(result.best_x.to(z0)[None])
        images = G(z_best)
    history = result.history.to(z0)[None]
    return Inversion(z_best, history[:, -1], history, images, basis_name, (int(seed),))


# --- rows in different bases ----------------------------------------------------------------------------

def _row_bases(basis, n, d, like):
    """Per-row matrices B (n, d, d) (a top-k basis padded with zero columns), or None when every row is in z."""
    entries = list(basis) if isinstance(basis, (list, tuple)) else [basis] * n
    if len(entries) != n:
        raise ValueError(f"basis: need one entry per row ({n}), got {len(entries)}")
    if all(b is None for b in entries):
        return None, "z"
    checked, B = {}, torch.zeros(n, d, d, dtype=like.dtype, device=like.device)
    for i, b in enumerate(entries):
        if b is None:
            B[i] = torch.eye(d, dtype=like.dtype, device=like.device)
            continue
        if id(b) not in checked:
            checked[id(b)] = checks.orthonormal_basis(b, d).to(like)
        V = checked[id(b)]
        B[i, :, :V.shape[1]] = V
    ks = {v.shape[1] for v in checked.values()}
    return B, (f"basis-k{ks.pop()}" if len(ks) == 1 and len(checked) == 1 else "mixed bases")


# the code whose changes change a unit's numbers (its source is part of every stored unit's fingerprint)
_OPTIMISER_CODE = (adam, _against_targets, _assign, adam_update, schedule_factors, basin_cma, cma.SeededCMA,
                   _row_bases, run_method)
