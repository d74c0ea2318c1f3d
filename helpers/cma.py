"""CMA-ES: many searches at once, each drawing from its own seeded generator, with an exact budget of evaluations;
and the paper's Hessian-aware step sizes. Inversion and activation maximisation both search with it.
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from tqdm.auto import tqdm

from . import checks


@dataclass
class CMAResult:
    """best_x : (k,) float64. best_f : its value. history : (evaluations,) best-so-far after each evaluation."""

    best_x: torch.Tensor
    best_f: float
    history: torch.Tensor
    evaluations: int


class SeededCMA:
    """One CMA-ES search (`cma.CMAEvolutionStrategy`, ask and tell) that draws from its own random generator, so
    that it gives the same samples whatever other searches run beside it (cma's default draws from numpy's global
    state); numpy's global random state is left as it was."""

    def __init__(self, x0, sigma0, *, seed: int, stds=None, popsize=None):
        with warnings.catch_warnings():  # cma warns at import when matplotlib is missing; we never plot
            warnings.simplefilter("ignore")
            import cma
        rng = np.random.default_rng(int(seed))
        options = {"randn": lambda *shape: rng.standard_normal(shape), "verbose": -9, "seed": np.nan}
        if stds is not None:
            options["CMA_stds"] = stds
        if popsize is not None:
            options["popsize"] = int(popsize)
        state = np.random.get_state()
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self.es = cma.CMAEvolutionStrategy(np.asarray(x0, dtype=np.float64), float(sigma0), options)
        finally:
            np.random.set_state(state)
        self.population = None

    def ask(self) -> np.ndarray:
        state = np.random.get_state()
        try:
            self.population = np.stack(self.es.ask())
        finally:
            np.random.set_state(state)
        return self.population

    def tell(self, values) -> None:
        state = np.random.get_state()
        try:
            self.es.tell(list(self.population), np.asarray(values, dtype=np.float64).tolist())
        finally:
            np.random.set_state(state)

    def stop(self) -> bool:
        return bool(self.es.stop())


def cma_many(objective: Callable, x0, *, sigma0: float = 0.5, stds=None, budget: int = 1000, seeds=None,
             popsize: int | None = None, progress: bool = False, desc: str = "CMA-ES") -> list[CMAResult]:
    """Minimise R objectives with R CMA-ES searches at once: every generation, all populations go to the
    objective in one call.

    Parameters
    ----------
    objective : (X (N, k) float64, owner (N,) int64) -> (N,) values: row j belongs to search owner[j].
    x0 : (R, k) starts. sigma0 : initial step size. stds : None, (k,) or (R, k) per-coordinate multipliers of
        sigma0 (cma's `CMA_stds`).
    budget : exact number of evaluations per search; the last population is cut to fit (and not told to CMA).
    seeds : (R,) sampling seeds (default 0..R−1); each search draws from its own generator, so a search gives
        the same result alone or beside others. numpy's global random state is left as it was.
    popsize : CMA population size (default cma's 4 + 3 ln k).
    """
    x0 = np.asarray(torch.as_tensor(x0, dtype=torch.float64).cpu(), dtype=np.float64)
    if x0.ndim != 2 or x0.shape[1] < 1:
        raise ValueError(f"x0 must be (R, k) starts, got shape {x0.shape}")
    R, k = x0.shape
    if isinstance(budget, bool) or not isinstance(budget, int) or budget < 1:
        raise ValueError(f"budget must be at least 1 evaluation, got {budget!r}")
    seeds = list(range(R)) if seeds is None else [int(s) for s in seeds]
    if len(seeds) != R:
        raise ValueError(f"need one seed per search: {R} starts, {len(seeds)} seeds")
    if stds is not None:
        stds = np.asarray(torch.as_tensor(stds, dtype=torch.float64).cpu(), dtype=np.float64)
        stds = np.broadcast_to(stds, (R, k)) if stds.shape in ((k,), (1, k), (R, k)) else None
        if stds is None or not (stds > 0).all():
            raise ValueError(f"stds must be {k} (or {R}×{k}) positive values")
    searches = [SeededCMA(x0[r], sigma0, seed=seeds[r], stds=None if stds is None else stds[r], popsize=popsize)
                for r in range(R)]
    values = [[] for _ in range(R)]
    best_x, best_f = [x0[r].copy() for r in range(R)], [math.inf] * R
    bar = tqdm(total=budget * R, desc=desc, disable=not progress, leave=False)
    try:
        while True:
            active = [r for r in range(R) if len(values[r]) < budget and not searches[r].stop()]
            if not active:
                break
            populations = {r: searches[r].ask() for r in active}
            takes = {r: min(len(populations[r]), budget - len(values[r])) for r in active}
            X = np.concatenate([populations[r][:takes[r]] for r in active])
            owner = np.concatenate([np.full(takes[r], r) for r in active])
            f = checks.objective_values(objective(torch.from_numpy(X), torch.from_numpy(owner)), len(X))
            start = 0
            for r in active:
                fr = f[start:start + takes[r]]
                start += takes[r]
                values[r].extend(fr.tolist())
                if fr.min() < best_f[r]:
                    best_f[r], best_x[r] = float(fr.min()), populations[r][int(fr.argmin())].copy()
                if takes[r] == len(populations[r]):
                    searches[r].tell(fr)
            bar.update(len(X))
    finally:
        bar.close()
    return [CMAResult(torch.from_numpy(best_x[r]), best_f[r],
                      torch.cummin(torch.tensor(values[r], dtype=torch.float64), dim=0).values, len(values[r]))
            for r in range(R)]


def cma_search(objective: Callable, x0, *, sigma0: float = 0.5, stds=None, budget: int = 1000, seed: int = 0,
               popsize: int | None = None) -> CMAResult:
    """Minimise a batched objective X (n, k) float64 -> (n,) with CMA-ES (`cma.CMAEvolutionStrategy`, ask/tell).

    x0 : (k,) start. sigma0 : initial step size. stds : (k,) per-coordinate multipliers of sigma0 (`CMA_stds`).
    budget : exact number of objective evaluations; the last population is cut to fit (and not told to CMA).
    seed : seeds CMA's own random generator; numpy's global random state is left alone.
    popsize : CMA population size (default cma's 4 + 3 ln k). One search of `cma_many`.
    """
    x0 = torch.as_tensor(x0, dtype=torch.float64).cpu().flatten()
    return cma_many(lambda X, owner: objective(X), x0[None], sigma0=sigma0, stds=stds, budget=budget, seeds=[seed],
                    popsize=popsize)[0]


def hessian_cma_stds(eigvals, power: float = 1 / 2.5, *, floor: float = 1e-6) -> torch.Tensor:
    """CMA step sizes (k,) ∝ λ^(−power) per eigen-direction, normalised to mean 1 (the paper: power 1/2.5).

    eigvals (k,) are clamped below at floor · max(eigvals), so near-zero or slightly negative ones stay finite.
    """
    eigvals = torch.as_tensor(eigvals, dtype=torch.float64).flatten()
    if eigvals.numel() == 0 or not torch.isfinite(eigvals).all() or eigvals.max() <= 0:
        raise ValueError("eigvals must be finite with a positive maximum")
    stds = eigvals.clamp_min(floor * eigvals.max()).pow(-power)
    return stds / stds.mean()
