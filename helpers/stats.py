"""Statistics: Pearson correlation along an axis, the one bootstrap resampler (percentile intervals over independent
units: codes, targets), paired effect sizes for comparing optimisers, and the summaries of a convergence curve.

Curves are (n, budget) histories of the lowest loss seen after each evaluation (`inversion.Inversion.history`).
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch
from scipy import stats as _scipy


def standardize(x: torch.Tensor) -> torch.Tensor:
    """x centred along the last axis and scaled to unit norm there, so that dot products are Pearson correlations."""
    x = x - x.mean(-1, keepdim=True)
    return x / x.norm(dim=-1, keepdim=True)


def pearson(x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
    """Pearson correlation of x with y along the last axis: (...,) for x, y (..., n); nan where one is constant."""
    return (standardize(x) * standardize(y)).sum(-1)


def percentile_bootstrap(replicate: Callable[[np.ndarray], np.ndarray], n_units: int, *, n_boot: int = 4000,
                         level: float = 0.95, seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval (low, high) of a statistic of n_units independent units (codes, targets).

    Each of n_boot resamples draws n_units units with replacement; replicate maps the draws, (n_boot, n_units)
    unit indices, to the statistic of each resample, (n_boot,). Resample the units that are independent (a
    code, with all of its values), not the values that share one. A replicate of nan marks a resample without
    a value (e.g. too few distinct units) and is left out; (nan, nan) if none has one. The draws are numpy's
    `default_rng(seed)`, so a seed gives the same interval on any machine.
    """
    if not 0 < level < 1:
        raise ValueError(f"level must be in (0, 1), got {level}")
    if isinstance(n_boot, bool) or not isinstance(n_boot, int) or n_boot < 1:
        raise ValueError(f"n_boot must be a positive integer, got {n_boot!r}")
    if n_units < 1:
        raise ValueError(f"there must be at least one unit to resample, got {n_units}")
    draws = np.random.default_rng(seed).integers(0, n_units, size=(n_boot, n_units))
    boot = np.asarray(replicate(draws), dtype=np.float64)
    if boot.shape != (n_boot,):
        raise ValueError(f"replicate must return one value per resample ({n_boot},), got shape {boot.shape}")
    boot = boot[~np.isnan(boot)]
    if len(boot) == 0:
        return math.nan, math.nan
    alpha = (1 - level) / 2
    low, high = np.quantile(boot, [alpha, 1 - alpha])
    return float(low), float(high)


def _array(values, what: str = "values") -> np.ndarray:
    a = np.asarray(values.detach().cpu() if hasattr(values, "detach") else values, dtype=np.float64)
    if a.ndim != 1 or len(a) == 0:
        raise ValueError(f"{what} must be a non-empty 1-d sequence, got shape {a.shape}")
    if np.isnan(a).any():
        raise ValueError(f"{what} contain NaN")
    return a


def _groups(groups, n: int) -> np.ndarray:
    if groups is None:
        return np.arange(n)
    g = np.asarray(groups.detach().cpu() if hasattr(groups, "detach") else groups)
    if g.shape != (n,):
        raise ValueError(f"groups must have one label per value ({n}), got shape {g.shape}")
    return np.unique(g, return_inverse=True)[1]


def bootstrap_ci(values, statistic=np.mean, *, groups=None, n_boot: int = 4000, level: float = 0.95,
                 seed: int = 0) -> tuple[float, float]:
    """Percentile bootstrap interval (low, high) of `statistic` of values (n,).

    groups : (n,) labels; whole groups are resampled (a cluster bootstrap), for values that are not
    independent, e.g. several starts on one target. Default: every value its own group.
    The groups are the units of `percentile_bootstrap` (its draws, so a seed gives the same interval).
    """
    a = _array(values)
    if isinstance(n_boot, bool) or not isinstance(n_boot, int) or n_boot < 100:
        raise ValueError(f"n_boot must be an integer >= 100, got {n_boot!r}")
    g = _groups(groups, len(a))
    members = [np.flatnonzero(g == k) for k in range(g.max() + 1)]
    if statistic is np.mean:  # the same numbers, vectorised: pooled mean of the drawn groups
        sums = np.array([a[m].sum() for m in members])
        counts = np.array([len(m) for m in members], dtype=np.float64)

        def replicate(draws):
            return sums[draws].sum(1) / counts[draws].sum(1)
    else:
        def replicate(draws):
            return np.array([statistic(a[np.concatenate([members[k] for k in draw])]) for draw in draws])
    return percentile_bootstrap(replicate, len(members), n_boot=n_boot, level=level, seed=seed)


@dataclass
class Paired:
    """A paired comparison of method a against method b on the same runs (lower is better).

    n : pairs. n_groups : independent groups (targets) among them. diff : per pair, a − b (or log10 a − log10 b
    when log). mean, ci : mean difference and its bootstrap interval (groups resampled; NaN with one group). median : median
    difference. wins : pairs where a < b. ties : a == b. dz : standardised effect, mean / sd of the differences
    (Cohen's d_z; 0 when they are all equal). ratio, ratio_ci : 10 ** mean and its interval when log (the
    geometric-mean ratio a / b), else None. p_wilcoxon : two-sided Wilcoxon signed-rank (NaN when every
    difference is 0). p_t : two-sided paired t-test (NaN when n < 2 or sd is 0). The p-values treat pairs as
    independent; the interval does not.
    """

    n: int
    n_groups: int
    diff: np.ndarray
    mean: float
    ci: tuple
    median: float
    wins: int
    ties: int
    dz: float
    ratio: float | None
    ratio_ci: tuple | None
    p_wilcoxon: float
    p_t: float


def paired(a, b, *, groups=None, log: bool = False, n_boot: int = 4000, level: float = 0.95, seed: int = 0) -> Paired:
    """Compare a (n,) with b (n,), pair by pair (lower is better); see `Paired`.

    log : compare log10 values (for losses spanning orders of magnitude; a and b must then be positive).
    groups : (n,) labels of pairs that share something (a target): the interval resamples whole groups.
    """
    a, b = _array(a, "a"), _array(b, "b")
    if a.shape != b.shape:
        raise ValueError(f"a and b must be paired: shapes {a.shape} and {b.shape}")
    finite = np.isfinite(a) & np.isfinite(b)
    if not finite.all():
        raise ValueError("a and b must be finite (censor values such as 'never reached' before comparing)")
    if log:
        if (a <= 0).any() or (b <= 0).any():
            raise ValueError("log=True needs positive values")
        diff = np.log10(a) - np.log10(b)
    else:
        diff = a - b
    g = _groups(groups, len(a))
    low, high = (math.nan, math.nan)  # one group alone has no spread to resample: no interval
    if g.max() > 0:
        low, high = bootstrap_ci(diff, groups=g, n_boot=n_boot, level=level, seed=seed)
    mean = float(diff.mean())
    sd = float(diff.std(ddof=1)) if len(diff) > 1 else 0.0
    dz = mean / sd if sd > 0 else 0.0
    p_w = p_t = float("nan")
    with warnings.catch_warnings():  # scipy warns on nearly identical differences; the p-value stands
        warnings.simplefilter("ignore", RuntimeWarning)
        if np.any(diff != 0):
            p_w = float(_scipy.wilcoxon(diff).pvalue)
        if len(diff) > 1 and sd > 0:
            p_t = float(_scipy.ttest_1samp(diff, 0.0).pvalue)
    ratio = (10 ** mean, (10 ** low, 10 ** high)) if log else (None, None)
    return Paired(len(a), int(g.max() + 1), diff, mean, (low, high), float(np.median(diff)), int((a < b).sum()),
                  int((a == b).sum()), dz, ratio[0], ratio[1], p_w, p_t)


def direction(result: Paired, *, ratio: bool | None = None, min_groups: int = 5) -> str:
    """What a paired comparison of a against b decides: 'lower' (a's values are lower: the whole interval is
    below no change), 'higher', 'undecided' (the interval holds no change) or 'too few' (fewer than min_groups
    independent groups to resample). ratio : judge the ratio interval (log comparisons; default when there is
    one) rather than the difference interval."""
    ratio = result.ratio_ci is not None if ratio is None else ratio
    low, high = result.ratio_ci if ratio else result.ci
    null = 1.0 if ratio else 0.0
    if result.n_groups < min_groups:
        return "too few"
    return "lower" if high < null else "higher" if low > null else "undecided"


def _history(history) -> np.ndarray:
    h = np.asarray(history.detach().cpu() if hasattr(history, "detach") else history, dtype=np.float64)
    if h.ndim == 1:
        h = h[None]
    if h.ndim != 2 or h.shape[1] == 0:
        raise ValueError(f"history must be (n, evaluations), got shape {h.shape}")
    return h


def evaluations_to_reach(history, threshold: float) -> np.ndarray:
    """(n,) number of evaluations after which the curve is at or below `threshold` (1-based); inf if never.

    history : (n, budget) lowest loss seen after each evaluation (or raw losses: the first crossing counts).
    """
    h = _history(history)
    reached = h <= threshold
    first = reached.argmax(1).astype(np.float64) + 1
    first[~reached.any(1)] = math.inf
    return first


def log_auc(history) -> np.ndarray:
    """(n,) area under the log10 curve per evaluation: the mean over evaluations of log10 of the lowest loss seen
    so far. 10 ** log_auc is the geometric-mean loss along the run: lower means lower sooner."""
    h = _history(history)
    best = np.minimum.accumulate(h, axis=1)
    if (best <= 0).any():
        raise ValueError("log_auc needs positive losses")
    return np.log10(best).mean(1)


def quartile_band(history) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(x, median, 25th percentile, 75th percentile) over the runs of curves (n, budget), x = 1 … budget: a curve
    with its band, as `viz.band_chart` takes it."""
    h = _history(history)
    return np.arange(1, h.shape[1] + 1), np.median(h, 0), np.quantile(h, 0.25, 0), np.quantile(h, 0.75, 0)
