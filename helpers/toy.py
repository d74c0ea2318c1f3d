"""The paper's toy quadratic: Adam on a rotated two-dimensional quadratic in its original coordinates and in its
eigenbasis, one run or a sweep over start angles and learning rates, and what a sweep says.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from .inversion import adam_update
from .report import phrase_list


@dataclass
class ToyQuadratic:
    """Adam on f(x) = ½ xᵀ H x, H = R Λ Rᵀ, in the original coordinates and in the eigenbasis (x = R c).

    f_original, f_eigenbasis : final f. history_original, history_eigenbasis : (steps + 1,) f from the start.
    x_original, x_eigenbasis : (2,) final points. H : (2, 2).
    """

    f_original: float
    f_eigenbasis: float
    history_original: torch.Tensor
    history_eigenbasis: torch.Tensor
    x_original: torch.Tensor
    x_eigenbasis: torch.Tensor
    H: torch.Tensor


def toy_quadratic(*, rotate: bool = True, steps: int = 100, lr: float = 0.1, eigenvalues=(1.0, 10.0),
                  angle: float = math.pi / 4, start=(0.0, 5.0)) -> ToyQuadratic:
    """The paper's toy: Adam (torch.optim.Adam, same lr and steps) on a rotated quadratic, original basis vs
    eigenbasis.

    Defaults: eigenvalues 1 and 10 rotated by 45°, start (0, 5) (f = 68.75, 45° from both eigenvectors), lr 0.1,
    100 steps. The paper does not give its start, lr or steps (the authors' notebook: 60°, start (3, 9), 150
    steps at lr 0.1). rotate=False sets R = I, where both runs coincide. `toy_sweep` varies start and lr.
    """
    angle = angle if rotate else 0.0
    R = _rotation(angle)
    H = R @ torch.diag(torch.tensor(eigenvalues, dtype=torch.float64)) @ R.T
    x0 = torch.tensor(start, dtype=torch.float64)
    f = lambda x: 0.5 * x @ H @ x  # noqa: E731

    def run(to_x, p0):
        p = p0.clone().requires_grad_(True)
        optimizer = torch.optim.Adam([p], lr=lr)
        values = []
        for _ in range(steps):
            value = f(to_x(p))
            values.append(value.detach())
            optimizer.zero_grad()
            value.backward()
            optimizer.step()
        x = to_x(p).detach()
        values.append(f(x))
        return torch.stack(values), x

    history_original, x_original = run(lambda x: x, x0)
    history_eigen, x_eigen = run(lambda c: R @ c, R.T @ x0)
    return ToyQuadratic(history_original[-1].item(), history_eigen[-1].item(), history_original, history_eigen,
                        x_original, x_eigen, H)


@dataclass
class ToySweep:
    """Adam on the rotated quadratic for every start angle × learning rate, in both coordinate systems.

    f_original, f_eigenbasis : (angles, lrs, steps + 1) f after each step (index 0: the start).
    start_angles : (angles,) radians from the flat eigenvector (eigenvalue eigenvalues[0]). lrs : (lrs,).
    """

    f_original: torch.Tensor
    f_eigenbasis: torch.Tensor
    start_angles: torch.Tensor
    lrs: torch.Tensor
    eigenvalues: tuple
    rotation: float
    radius: float

    def best_so_far(self, which: str = "original") -> torch.Tensor:
        """(angles, lrs, steps + 1) lowest f reached up to each step, which = 'original' or 'eigenbasis'."""
        return torch.cummin(self._f(which), dim=-1).values

    def level(self, which: str = "original", steps: int | None = None) -> torch.Tensor:
        """(angles, lrs) mean of log10 f over the last quarter of the first `steps` steps (default all): the level
        Adam has reached by then, whether it stopped on a peak or in a trough of its oscillation."""
        f = self._f(which)
        steps = f.shape[-1] - 1 if steps is None else int(steps)
        if not 1 <= steps < f.shape[-1]:
            raise ValueError(f"steps must be in [1, {f.shape[-1] - 1}], got {steps}")
        return f[..., (3 * steps) // 4:steps + 1].clamp_min(1e-300).log10().mean(-1)

    def gap(self, steps: int | None = None) -> torch.Tensor:
        """(angles, lrs) log10 (f in x ÷ f in the eigenbasis) by the `level` each reached after `steps` (default all):
        above zero where the eigenbasis got lower."""
        return self.level("original", steps) - self.level("eigenbasis", steps)

    @property
    def off_axis(self) -> torch.Tensor:
        """(angles,) the starts off both eigenvectors (more than 0.01 radians from each)."""
        return (self.start_angles > 0.01) & (self.start_angles < math.pi / 2 - 0.01)

    def gap_curves(self, checkpoints=(10, 25, 50, 100, 200, 300, 500, 1000)) -> tuple[list, dict]:
        """(steps, {"lr <lr>": median `gap` over the starts off the eigenvectors after each of them}): the checkpoints
        below the sweep's steps, then its steps."""
        steps = self.f_original.shape[-1] - 1
        at = [s for s in checkpoints if s < steps] + [steps]
        gaps = [self.gap(s)[self.off_axis] for s in at]
        return at, {f"lr {lr}": [float(g[:, j].median()) for g in gaps] for j, lr in enumerate(self.lrs.tolist())}

    def _f(self, which):
        if which not in ("original", "eigenbasis"):
            raise ValueError(f"which must be 'original' or 'eigenbasis', got {which!r}")
        return self.f_original if which == "original" else self.f_eigenbasis


def toy_sweep(start_angles, lrs, *, steps: int = 200, eigenvalues=(1.0, 10.0), rotation: float = math.pi / 4,
              radius: float = 5.0) -> ToySweep:
    """Adam (`inversion.adam_update`, all runs at once) on f(x) = ½ xᵀ R Λ Rᵀ x from starts at `radius`, at angle θ from
    the flat eigenvector, in x and in the eigen-coordinates c = Rᵀ x; float64.

    start_angles : radians. lrs : learning rates. rotation : angle of the eigenvectors against the axes.
    """
    angles = torch.as_tensor(start_angles, dtype=torch.float64).flatten()
    rates = torch.as_tensor(lrs, dtype=torch.float64).flatten()
    if not len(angles) or not len(rates) or not (rates > 0).all():
        raise ValueError("need at least one start angle and one positive learning rate")
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    R = _rotation(rotation)
    lam = torch.tensor(eigenvalues, dtype=torch.float64)
    H = R @ torch.diag(lam) @ R.T
    grid_angle, grid_lr = torch.meshgrid(angles, rates, indexing="ij")
    c_start = radius * torch.stack([torch.cos(grid_angle), torch.sin(grid_angle)], -1).reshape(-1, 2)
    lr = grid_lr.reshape(-1)
    x_start = c_start @ R.T

    def run(p, gradient, value):
        m, v = torch.zeros_like(p), torch.zeros_like(p)
        values = [value(p)]
        for t in range(1, steps + 1):
            adam_update(p, gradient(p), m, v, t, lr)
            values.append(value(p))
        return torch.stack(values, -1).view(len(angles), len(rates), steps + 1)

    f_original = run(x_start.clone(), lambda x: x @ H, lambda x: 0.5 * ((x @ H) * x).sum(-1))
    f_eigen = run(c_start.clone(), lambda c: c * lam, lambda c: 0.5 * (c * c * lam).sum(-1))
    return ToySweep(f_original, f_eigen, angles, rates, tuple(float(e) for e in eigenvalues), float(rotation),
                    float(radius))


def _rotation(angle: float) -> torch.Tensor:
    cos, sin = math.cos(angle), math.sin(angle)
    return torch.tensor([[cos, -sin], [sin, cos]], dtype=torch.float64)


# The authors' notebook: eigenvectors 60° from the axes, start (3, 9), 150 Adam steps at learning rate 0.1.
AUTHORS_SETTING = "eigenvectors 60° from the axes, start (3, 9), 150 Adam steps at learning rate 0.1"
PAPER_VALUES = (0.007, 7.155)  # the paper's f in the eigenbasis and in the original coordinates, in that setting


def authors_toy() -> tuple[float, float]:
    """(f in the eigenbasis, f in the original coordinates) in the setting of the authors' notebook, as it prints
    them: their f is xᵀHx, twice ours, printed at the last step evaluated."""
    run = toy_quadratic(angle=-math.pi / 3, start=(3.0, 9.0), steps=150, lr=0.1)
    return 2 * run.history_eigenbasis[149].item(), 2 * run.history_original[149].item()


def matches_paper(eigenbasis: float, original: float) -> bool:
    """Whether `authors_toy`'s values are the paper's to the digits it prints."""
    return round(eigenbasis, 3) == PAPER_VALUES[0] and round(original, 3) == PAPER_VALUES[1]


def verdict(sweep: ToySweep) -> str:
    """Sentences on where the eigenbasis helped in a sweep: settings that start off the eigenvectors where it ended
    at least ten times lower, settings where both runs converged, and where the original coordinates won."""
    ratio, off_axis, lrs = sweep.gap(), sweep.off_axis, sweep.lrs.tolist()
    steps = sweep.f_original.shape[-1] - 1
    both_converged = (sweep.level("original") < -8) & (sweep.level("eigenbasis") < -8)
    helped = ratio > 1
    lrs_helped = [lr for j, lr in enumerate(lrs) if helped[off_axis, j].any()]
    hurt = ratio < -math.log10(2)
    n_hurt, on_axis = int(hurt.sum()), int(hurt[~off_axis].sum())
    converged = int(both_converged.sum())
    return (f"After {steps} steps, Adam in the eigenbasis reached an $f$ at least ten times lower in "
            f"{_of(int(helped[off_axis].sum()), int(off_axis.sum()) * len(lrs))} settings that start off the "
            f"eigenvectors" + (f", at learning rate{'s' * (len(lrs_helped) > 1)} {phrase_list(lrs_helped)}"
                            if lrs_helped else "")
            + (f". In {_of(converged, ratio.numel())} settings both runs had converged" if converged else
               f". In none of the {ratio.numel()} settings had both runs converged")
            + " ($f$ below $10^{-8}$ in both), and "
            + (f"in {n_hurt} the original coordinates ended" if n_hurt else
               "in none did the original coordinates end") + " more than twice as low"
            + (f", {_of(on_axis, n_hurt, 'them')} from a start on an eigenvector, where "
               f"Adam in the original coordinates moves both coordinates at once and so covers more ground per "
               f"step" if on_axis else "") + ".")


def _of(k: int, n: int, them: str = "") -> str:
    """k of n, for generated sentences: "none of the 5", "all 5", "2 of the 5" (then the noun); with `them`,
    "all of them", "2 of them", "it" (one of one)."""
    if them:
        return "it" if k == n == 1 else "all of them" if k == n else f"{k} of {them}"
    return f"none of the {n}" if k == 0 else f"all {n}" if k == n > 1 else f"{k} of the {n}"
