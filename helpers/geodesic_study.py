"""Chapter 09's study of paths under the perceptual metric: geodesics between pairs of codes beside the straight line
and slerp on each model, how flat the latent space looks, the area element over a 2-D slice and how the top
eigenspace turns along a geodesic; with the tables and the sentences that judge them (phrased with `report`).
"""
from __future__ import annotations

import math
import re
import time
import warnings
from dataclasses import dataclass

import numpy as np
import torch

from . import checks, distances, generators, geodesic, metric, report, solvers, stats
from .report import CI_MATH, interval, phrase_list, plural

KINDS = ("straight", "slerp", "geodesic")  # the three paths between each pair, in the order tables show them
STILL = 1e-6  # radians: eigenspaces this close are the same (roundoff of the solver's certificate and below)
MIN_PAIRS = 5  # fewer pairs than this decide nothing (`stats.direction`'s least number of groups)
EVEN = 1.05  # `speed_verdict`: unevenness ratios within this factor of each other are about as even


def load(models, distance: str, *, eye_class: str = "brown", device="cpu") -> tuple:
    """The chapter's set-up: (the distance loaded, {name: generator}); the eyes model draws eyes of `eye_class`."""
    warnings.filterwarnings("ignore", module="torchvision.models._utils")
    loaded = distances.load(distance, device=device)
    options = {"cdcgan-eyes128": {"eye_class": eye_class}}
    return loaded, {name: generators.load(name, device=device, **options.get(name, {})) for name in models}


# --- geodesics beside the straight line and slerp ----------------------------------------------------------------

@dataclass
class Pairs:
    """One model's pairs of codes and the paths between each: `paths` {kind: (p, n+1, d)} (of KINDS), `steps`
    {kind: (p, n) float64} each step's perceptual length in the units of H (a sum of √(2 d_i) over sub-steps,
    see `between`), `result` the `geodesic.Geodesic` that found the geodesics, `seconds` the whole computation."""

    name: str
    paths: dict
    steps: dict
    result: geodesic.Geodesic
    seconds: float

    @property
    def n_pairs(self) -> int:
        return self.paths["geodesic"].shape[0]

    @property
    def n_steps(self) -> int:
        return self.paths["geodesic"].shape[1] - 1

    def lengths(self) -> dict:
        """{kind: (p,) float64} discrete perceptual lengths Σ√(2 d_i)."""
        return {kind: steps.sum(1) for kind, steps in self.steps.items()}

    def unevenness(self) -> dict:
        """{kind: (p,) float64} largest step over smallest step of each path: 1 at constant perceptual speed."""
        return {kind: steps.max(1).values / steps.min(1).values for kind, steps in self.steps.items()}

    def reversed(self) -> "Pairs":
        """The same paths walked from z_b to z_a: codes and steps in reverse order."""
        return Pairs(self.name, {kind: path.flip(1) for kind, path in self.paths.items()},
                     {kind: steps.flip(1) for kind, steps in self.steps.items()}, self.result.reversed(), self.seconds)

    def deviation(self) -> torch.Tensor:
        """(p,) float64: how far the geodesic leaves the chord in latent space, the largest distance of its points
        from the straight line through its ends, over the chord's length ‖z_b − z_a‖."""
        z = self.paths["geodesic"].double()
        a, chord = z[:, :1], z[:, -1:] - z[:, :1]
        size = chord.norm(dim=-1, keepdim=True)
        unit, offset = chord / size, z - a
        across = offset - (offset * unit).sum(-1, keepdim=True) * unit
        return across.norm(dim=-1).amax(1) / size[:, 0, 0]


def pair_codes(G, n_pairs: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    """n_pairs pairs of codes (z_a, z_b), each (n_pairs, d): the first and the second half of G.sample(2·n_pairs)."""
    z = G.sample(2 * n_pairs, seed=seed)
    return z[:n_pairs], z[n_pairs:]


def pairs(name: str, G, distance, n_pairs: int, n_steps: int, seed: int, *, refine: int = 4, **options) -> Pairs:
    """The straight line, slerp and the geodesic (`geodesic.geodesic`, all pairs at once; options go to it) between
    n_pairs pairs of G's codes from `seed`, in n_steps steps each, with their step lengths (`between`)."""
    z_a, z_b = pair_codes(G, n_pairs, seed)
    return between(name, G, distance, z_a, z_b, n_steps, refine=refine, **options)


def between(name: str, G, distance, z_a: torch.Tensor, z_b: torch.Tensor, n_steps: int, *, refine: int = 4,
            kinds=KINDS, **options) -> Pairs:
    """The paths `kinds` (of KINDS, in that order) between codes z_a, z_b (p, d), in n_steps steps each, with their
    step lengths; options go to `geodesic.geodesic` (all pairs at once).

    refine : each step is measured as the sum of `refine` sub-steps (the straight line and slerp at n_steps·refine
        points, the geodesic linearly between its codes), so that the lengths approach those of the curves: a sum
        of chords falls short of a curve's length, the more so the more the curve bends within a step. With
        refine=1 the step lengths are `geodesic.segment_lengths` of the paths themselves.
    """
    start = time.perf_counter()
    refine = checks.positive_int(refine, "refine")
    if "geodesic" not in kinds or not set(kinds) <= set(KINDS):
        raise ValueError(f"kinds must be some of {KINDS}, the geodesic among them, got {kinds!r}")
    result = geodesic.geodesic(G, distance, z_a, z_b, n=n_steps, **options)
    n_pairs, fine = result.path.shape[0], n_steps * refine
    paths = {"straight": lambda m: geodesic.straight(z_a, z_b, m), "slerp": lambda m: geodesic.slerp(z_a, z_b, m)}
    coarse = {kind: result.path if kind == "geodesic" else paths[kind](n_steps).to(result.path) for kind in kinds}
    refined = {kind: _polyline(result.path.double(), refine) if kind == "geodesic" else paths[kind](fine)
               for kind in kinds}
    with torch.no_grad():
        steps = {kind: geodesic.segment_lengths(G, distance, path.to(result.path)).reshape(n_pairs, n_steps, refine)
                 .sum(2) for kind, path in refined.items()}
    return Pairs(name, coarse, steps, result, time.perf_counter() - start)


def _polyline(path: torch.Tensor, refine: int) -> torch.Tensor:
    """Paths (p, n+1, d) with every step cut into `refine` equal parts: (p, n·refine + 1, d)."""
    w = (torch.arange(refine, dtype=path.dtype, device=path.device) / refine)[None, None, :, None]
    inner = (1 - w) * path[:, :-1, None] + w * path[:, 1:, None]
    return torch.cat([inner.flatten(1, 2), path[:, -1:]], 1)


def path_images(G, found: Pairs, pair: int = 0) -> torch.Tensor:
    """The images (k, n+1, 3, H, W) along the k paths of one pair (rows in the order of `found.paths`)."""
    with torch.no_grad():
        return torch.stack([G(path[pair]) for path in found.paths.values()])


def step_labels(found: Pairs) -> list[str]:
    """Column labels t = 0, 1/n, ..., 1 of a path's images."""
    return [f"t = {i / found.n_steps:.3g}" for i in range(found.n_steps + 1)]


def cost_table(found: dict) -> dict:
    """The columns of `viz.markdown_table`: what each model's geodesics cost."""
    rows = list(found.values())
    return {"model": list(found),
            "seconds": [p.seconds for p in rows],
            "L-BFGS iterations (median)": [int(p.result.iterations.median()) for p in rows],
            "batched evaluations": [p.result.evaluations + (p.result.coarse.evaluations if p.result.coarse else 0)
                                    for p in rows],
            "converged": [f"{int(p.result.converged.sum())} of {p.n_pairs}" for p in rows]}


def speed_curves(found: Pairs, pair: int = 0) -> tuple:
    """(t, {kind: perceptual speed}) of one pair: each step's length times n, at the step's middle t, for
    `viz.line_panels`; a constant-speed path is flat at its length."""
    n = found.n_steps
    t = (np.arange(n) + 0.5) / n
    return t, {kind: (steps[pair] * n).tolist() for kind, steps in found.steps.items()}


# --- flatness -----------------------------------------------------------------------------------------------------

@dataclass
class Flatness:
    """One model's comparison of path lengths over its pairs (geometric-mean ratios with bootstrap intervals over
    pairs, `stats.paired` with log=True): geodesic / straight (`line`), geodesic / slerp (`arc`), slerp / straight
    (`arc_line`); `deviation` (mean, (low, high)) of `Pairs.deviation`; `uneven` {kind: geometric mean of
    `Pairs.unevenness`}; n pairs; `verdict` 'flat', 'curved', 'undecided' or 'too few' against the threshold."""

    line: stats.Paired
    arc: stats.Paired
    arc_line: stats.Paired
    deviation: tuple
    uneven: dict
    n: int
    verdict: str


def flatness(found: Pairs, threshold: float) -> Flatness:
    """The length ratios of `Pairs` and the verdict: 'flat' when the whole interval of geodesic / straight is at
    least `threshold` (the geodesic saves at most 1 − threshold of the straight line's length), 'curved' when it is
    wholly below, else 'undecided'; 'too few' under MIN_PAIRS pairs."""
    lengths = found.lengths()
    line = stats.paired(lengths["geodesic"], lengths["straight"], log=True)
    arc = stats.paired(lengths["geodesic"], lengths["slerp"], log=True)
    arc_line = stats.paired(lengths["slerp"], lengths["straight"], log=True)
    deviation = found.deviation()
    spread = stats.bootstrap_ci(deviation) if found.n_pairs > 1 else (math.nan, math.nan)
    uneven = {kind: float(values.log().mean().exp()) for kind, values in found.unevenness().items()}
    verdict = _verdict(found.n_pairs, *line.ratio_ci, threshold)
    return Flatness(line, arc, arc_line, (float(deviation.mean()), spread), uneven, found.n_pairs, verdict)


def _verdict(n: int, low: float, high: float, threshold: float) -> str:
    """`flatness`'s rule from the pair count and the interval of geodesic / straight."""
    return ("too few" if n < MIN_PAIRS or not (math.isfinite(low) and math.isfinite(high)) else
            "flat" if low >= threshold else "curved" if high < threshold else "undecided")


ROWS = ["geodesic / straight length", "its 95% interval", "pairs with a shorter geodesic", "geodesic / slerp length",
        "slerp / straight length", "deviation from the chord / chord", "largest / smallest step, straight",
        "largest / smallest step, slerp", "largest / smallest step, geodesic"]


def flatness_columns(flat: dict) -> dict:
    """{"ours: <model>": one value per row of ROWS} for `report.result_table`."""
    return {f"ours: {name}": [f.line.ratio, interval(*f.line.ratio_ci, alone="one pair"),
                              f"{f.line.wins} of {f.n}", f.arc.ratio, f.arc_line.ratio, f.deviation[0],
                              *(f.uneven[kind] for kind in KINDS)] for name, f in flat.items()}


def flatness_note(n_pairs: int, n_steps: int, seed: int) -> str:
    return (f"{plural(n_pairs, 'pair')} of codes per model from seed {seed}, paths of {n_steps} steps; ratios are "
            f"geometric means over pairs, intervals bootstrapped over pairs")


def flatness_sentences(flat: dict, threshold: float) -> dict:
    """{model: a sentence on its ratio, interval, wins, deviation and verdict}."""
    out = {}
    for name, f in flat.items():
        low, high = f.line.ratio_ci
        ci = interval(low, high, ".3g", CI_MATH, alone="one pair")
        judged = {"flat": f"the whole interval is at least {threshold:.3g}: it looks flat under LPIPS",
                  "curved": f"the whole interval is below {threshold:.3g}: it is not flat under LPIPS",
                  "undecided": f"the interval straddles {threshold:.3g}: this run cannot tell",
                  "too few": ""}[f.verdict]  # said once, for all such models, by `flatness_verdict`
        out[name] = (f"on `{name}` the geodesic is {f.line.ratio:.3g} times as long as the straight line "
                     f"({ci}; shorter in {f.line.wins} of {f.n} pairs) and strays from the chord by "
                     f"{f.deviation[0]:.3g} of its length on average" + (f"; {judged}" if judged else ""))
    return out


def flatness_verdict(flat: dict, threshold: float) -> str:
    """The chapter's answer, model by model, to whether the latent space looks flat under LPIPS."""
    sentences = flatness_sentences(flat, threshold)
    groups = {verdict: [f"`{name}`" for name, f in flat.items() if f.verdict == verdict]
              for verdict in ("flat", "curved", "undecided", "too few")}
    summary = []
    if groups["flat"]:
        summary.append(f"looks flat on {phrase_list(groups['flat'])}")
    if groups["curved"]:
        summary.append(f"is measurably curved on {phrase_list(groups['curved'])}")
    if groups["undecided"]:
        summary.append(f"is undecided on {phrase_list(groups['undecided'])}")
    if groups["too few"]:
        summary.append(f"cannot be judged from so few pairs (under {MIN_PAIRS}) on {phrase_list(groups['too few'])}")
    head = (f"Taking a geodesic at least {threshold:.3g} times as long as the straight line (the whole interval) as "
            f"flat, the latent space {phrase_list(summary)}.")
    return " ".join([head] + [sentence[0].upper() + sentence[1:] + "." for sentence in sentences.values()])


def shao_comparison(flat: dict, threshold: float, *, recorded: dict | None = None, profile: str = "full") -> str:
    """Whether this run agrees with Shao et al.'s near-straight geodesics, model by model; for the models it leaves
    open, the answer of the recorded `profile` run where that decides them (`recorded`: `recorded_verdicts`)."""
    def judged(verdicts: dict, whom: str, every: str = "") -> str:
        """What the run with these {model: verdict} says of Shao et al. (`whom`); a group of all models is `every`."""
        stance = {"flat": "agree", "curved": "disagree", "undecided": "open", "too few": "open"}
        groups = {side: [f"`{name}`" for name, verdict in verdicts.items() if stance[verdict] == side]
                  for side in ("agree", "disagree", "open")}
        names = {side: every if every and len(group) == len(verdicts) > 1 else phrase_list(group)
                 for side, group in groups.items()}
        parts = [f"agrees with {whom} on {names['agree']}"] if groups["agree"] else []
        if groups["disagree"]:
            parts.append(f"disagrees{'' if parts else ' with ' + whom} on {names['disagree']}, where the geodesic is "
                         f"shorter than the straight line by more than {1 - threshold:.0%} of its length")
        return phrase_list(parts + ([f"leaves {names['open']} open"] if groups["open"] else []))

    text = f"Under LPIPS this run {judged({name: f.verdict for name, f in flat.items()}, 'them')}."
    left = [name for name, f in flat.items() if f.verdict in ("undecided", "too few")]
    settled = {name: recorded[name][0] for name in left
               if name in (recorded or {}) and recorded[name][0] in ("flat", "curved")}
    if settled:
        which = "them" if len(settled) == len(left) > 1 else phrase_list(f"`{name}`" for name in settled)
        text += (f" The recorded {profile}-profile run decides {which}: it "
                 f"{judged(settled, 'Shao et al.', every='each of them')}.")
    shortest = min(flat, key=lambda name: flat[name].line.ratio)
    return (text + f" The largest saving in this run is on `{shortest}`: "
            f"{1 - flat[shortest].line.ratio:.1%} of the straight line's length.")


def recorded_verdicts(names, threshold: float, *, profile: str = "full", path=None) -> dict:
    """{model: (verdict, "ratio [low, high]")} of the recorded `profile` run's `geodesic_flatness` table (in
    book/recorded.json) for those of `names` it holds, each verdict by `flatness`'s rule; {} if nothing is recorded."""
    return _verdicts_of(report.recorded_table("geodesic_flatness", profile, path), names, threshold)


def _verdicts_of(table: dict | None, names, threshold: float) -> dict:
    if table is None or not all(row in table["rows"] for row in ROWS[:3]):
        return {}
    ratio, ci, wins = (table["rows"].index(row) for row in ROWS[:3])
    found = {}
    for label, column in table["columns"].items():
        name = label.removeprefix("ours: ")
        parts, counted = report.interval_parts(column[ci]), re.fullmatch(r"\s*(\d+) of (\d+)\s*", str(column[wins]))
        if name not in names or not isinstance(column[ratio], (int, float)) or counted is None:
            continue
        low, high = parts or (math.nan, math.nan)
        shown = f"{column[ratio]:.3g}" + (f" [{low:.3g}, {high:.3g}]" if parts else "")
        found[name] = (_verdict(int(counted.group(2)), low, high, threshold), shown)
    return found


def recorded_flatness(flat: dict, threshold: float, *, profile: str = "full", path=None) -> str:
    """The recorded `profile` run's answer (`recorded_verdicts`) for the models of `flat` (this run's
    {model: Flatness}), and where this run's own verdict differs; "" when nothing is recorded."""
    table = report.recorded_table("geodesic_flatness", profile, path)
    found = _verdicts_of(table, flat, threshold)
    if not found:
        return ""
    groups = {verdict: {name: shown for name, (v, shown) in found.items() if v == verdict}
              for verdict in ("curved", "flat", "undecided", "too few")}
    said = {"curved": f"is not flat on {{names}}: {{whole}} lies below {threshold:.3g}",
            "flat": f"looks flat on {{names}}: {{whole}} is at least {threshold:.3g}",
            "undecided": f"stays undecided on {{names}}: {{each}} straddles {threshold:.3g}",
            "too few": "could not be judged on {names}: too few pairs"}

    def phrase(verdict, group):
        several = len(group) > 1
        return said[verdict].format(names=phrase_list(f"`{name}` ({shown})" for name, shown in group.items()),
                                    whole="each whole interval" if several else "the whole interval",
                                    each="each interval" if several else "the interval")

    answer = "; it ".join(phrase(verdict, group) for verdict, group in groups.items() if group)
    over = (table.get("note") or "").split(";")[0].strip()  # the pairs and the steps (`flatness_note`)
    text = (f"**The answer of the recorded {profile}-profile run** ({over + '; ' if over else ''}in brackets, the "
            f"geodesic's length over the straight line's with its $95\\%$ bootstrap interval over pairs): under LPIPS "
            f"the latent space {answer}.")
    differ = [f"`{name}`" for name, (verdict, _) in found.items()
              if flat[name].verdict in ("flat", "curved") and verdict in ("flat", "curved")
              and verdict != flat[name].verdict]
    if differ:
        text += f" This run's own verdict is the opposite on {phrase_list(differ)}."
    return text


def speed_verdict(flat: dict) -> str:
    """How unevenly each path moves (largest step over smallest, each step measured in sub-steps): the straight
    line's most uneven model, the geodesic's largest ratio, and on which models the geodesic is the more even."""
    line = {name: f.uneven["straight"] for name, f in flat.items()}
    geo = {name: f.uneven["geodesic"] for name, f in flat.items()}
    worst = max(line, key=line.get)
    # the geodesic's ratio over the straight line's, beyond 5 % either way (both are 1 on a flat map)
    relative = {name: geo[name] / line[name] for name in flat}
    groups = {"more evenly than": [f"`{n}`" for n, r in relative.items() if r < 1 / EVEN],
              "about as evenly as": [f"`{n}`" for n, r in relative.items() if 1 / EVEN <= r <= EVEN],
              "less evenly than": [f"`{n}`" for n, r in relative.items() if r > EVEN]}
    where = {how: "every model" if len(flat) > 1 and len(names) == len(flat) else phrase_list(names)
             for how, names in groups.items() if names}
    compared = phrase_list(f"{how} the straight line on {models}" for how, models in where.items())
    return (f"On the straight line the largest step changes the image {line[worst]:.3g} times as much as the "
            f"smallest on `{worst}` (geometric mean over pairs), the most uneven of the models; along the geodesic "
            f"the ratio is at most {max(geo.values()):.3g} on any model. The geodesic spreads the change of the "
            f"image {compared}" + (f" (ratios within {EVEN - 1:.0%} of each other count as about as even)."
                                   if "about as evenly as" in where else "."))


# --- the area element over a 2-D slice ----------------------------------------------------------------------------

@dataclass
class Slice:
    """A 2-D slice of latent space through `centre` (d,) along the top two eigenvectors `directions` (d, 2) of the
    metric there, at `offsets` (g,) along each; `log_area` (g, g) float64: log10 of the area element √det(PᵀHP)
    relative to the centre's (rows: the second eigenvector's offset, columns: the first's); `eigvals` (2,) the two
    eigenvalues at the centre."""

    centre: torch.Tensor
    directions: torch.Tensor
    offsets: torch.Tensor
    log_area: torch.Tensor
    eigvals: torch.Tensor

    def codes(self, rows, cols) -> torch.Tensor:
        """The codes (len(rows), len(cols), d) at the given grid indices."""
        s, t = self.offsets[list(cols)], self.offsets[list(rows)]
        u, v = self.directions.T
        return (self.centre + t[:, None, None] * v + s[None, :, None] * u).to(self.centre)

    def corners(self) -> list[int]:
        """Grid indices of the two ends and the middle, for a 3 × 3 montage of the slice."""
        g = len(self.offsets)
        return sorted({0, g // 2, g - 1})


def area_slice(G, distance, centre: torch.Tensor, grid: int, radius: float) -> Slice:
    """The area element over a grid × grid slice through `centre` (d,) spanned by the top two eigenvectors of the
    exact metric there, offsets from −radius to radius (latent units); `geodesic.volume_element` at every point."""
    top = metric.metric(G, centre[None], distance)
    eigvals, directions = top.eigvals[0, :2], top.eigvecs[0, :, :2]
    offsets = torch.linspace(-radius, radius, grid, dtype=torch.float64)
    t, s = torch.meshgrid(offsets, offsets, indexing="ij")
    points = centre.double() + s.reshape(-1, 1) * directions[:, 0] + t.reshape(-1, 1) * directions[:, 1]
    log_det = geodesic.volume_element(G, distance, points.to(centre), directions)
    middle = geodesic.volume_element(G, distance, centre, directions)[0]
    log_area = ((log_det - middle) / 2 / math.log(10)).reshape(grid, grid)
    return Slice(centre, directions, offsets, log_area, eigvals)


def slice_heatmap(slices: dict) -> dict:
    """The arguments of `viz.heatmap` for the slices, one panel per model, on one colour scale symmetric about 0:
    viz.heatmap(**slice_heatmap(slices), title=...)."""
    labels = [f"{x:.3g}" for x in next(iter(slices.values())).offsets.tolist()]
    bound = max(float(s.log_area.abs().max()) for s in slices.values()) or 1.0
    return {"matrices": {name: s.log_area for name, s in slices.items()}, "x_labels": labels, "y_labels": labels,
            "zmin": -bound, "zmax": bound}


def slice_images(G, piece: Slice) -> tuple:
    """(images (3, 3, 3, H, W), row labels, column labels) at the slice's corners, edge midpoints and centre, rows
    and columns in the order of `slice_heatmap`'s (the second eigenvector's offset grows downwards)."""
    idx = piece.corners()
    with torch.no_grad():
        codes = piece.codes(idx, idx)
        images = G(codes.reshape(-1, codes.shape[-1]))
    images = images.reshape(len(idx), len(idx), *images.shape[1:])
    offsets = piece.offsets.tolist()
    return images, [f"second {offsets[i]:+.3g}" for i in idx], [f"first {offsets[j]:+.3g}" for j in idx]


def slice_verdict(slices: dict) -> str:
    """How much the area element changes over each slice, in decades."""
    spans = {name: float(s.log_area.max() - s.log_area.min()) for name, s in slices.items()}
    widest, narrowest = max(spans, key=spans.get), min(spans, key=spans.get)
    return (f"Over the slice the area element spans {spans[widest]:.3g} decades on `{widest}`, the most, and "
            f"{spans[narrowest]:.3g} on `{narrowest}`, the least")


# --- how the top eigenspace turns along a geodesic -------------------------------------------------------------

@dataclass
class Turning:
    """The top-k eigenspaces along one geodesic (`geodesic.path_metric`): `steps` (n,) Grassmann distance ‖θ‖ (radians,
    θ the k principal angles) between neighbouring points, `ends` that distance between the two ends, `largest`
    (n,) the largest principal angle per step, `log_volume` (n+1,) log10 of the top-k volume element √(λ₁⋯λ_k) at
    every point, `k`, and `columns` (n+1,) Gauss–Newton products spent per point (warm-started)."""

    steps: torch.Tensor
    ends: float
    largest: torch.Tensor
    log_volume: torch.Tensor
    k: int
    columns: torch.Tensor

    @property
    def total(self) -> float:
        """The length of the path the eigenspace travels, Σ of `steps` (radians)."""
        return float(self.steps.sum())

    @property
    def winding(self) -> float:
        """total / ends: 1 when the eigenspace turns steadily from one end's to the other's, more when it wanders."""
        if self.ends > STILL:
            return self.total / self.ends
        return 1.0 if self.total <= STILL * len(self.steps) else math.inf  # a metric whose eigenspace never moves


def turning(G, distance, path: torch.Tensor, k: int, *, tol: float = solvers.TOL) -> Turning:
    """`Turning` along one path (n+1, d); tol : the certificate of `geodesic.path_metric`."""
    found = geodesic.path_metric(G, distance, path, k, tol=tol)
    theta = found.angles()[0]
    ends = geodesic.principal_angles(found.eigvecs[0, 0], found.eigvecs[0, -1])
    volume = found.eigvals[0].clamp_min(torch.finfo(torch.float64).tiny).log10().sum(1) / 2
    return Turning(theta.norm(dim=1), float(ends.norm()), theta[:, -1], volume, k, found.columns[0])


def turning_table(turns: dict) -> dict:
    """The columns of `viz.markdown_table`: per model, angles in degrees and the top-k volume's range in decades."""
    return {"model": list(turns),
            "largest angle between neighbours (°)": [math.degrees(float(t.largest.max())) for t in turns.values()],
            "eigenspace's path (°)": [math.degrees(t.total) for t in turns.values()],
            "between the ends (°)": [math.degrees(t.ends) for t in turns.values()],
            "path / ends": [t.winding for t in turns.values()],
            "top-k volume, range (decades)": [float(t.log_volume.max() - t.log_volume.min()) for t in turns.values()]}


def turning_curves(turns: dict) -> dict:
    """{model: (steps 1..n, {"largest angle": degrees})} for `viz.line_panels`."""
    return {name: (list(range(1, len(t.largest) + 1)), {"largest angle": np.degrees(t.largest.numpy()).tolist()})
            for name, t in turns.items()}


def turning_verdict(turns: dict, steady: float) -> str:
    """Whether the top-k eigenspace turns steadily (the path it travels at most `steady` times the distance between
    the ends' eigenspaces) or wanders, model by model."""
    holds = {name: t.winding <= steady for name, t in turns.items()}
    smooth = [f"`{name}`" for name, ok in holds.items() if ok]
    wander = [f"`{name}`" for name, ok in holds.items() if not ok]
    parts = []
    if smooth:
        parts.append(f"turns steadily from one end's eigenspace to the other's on {phrase_list(smooth)}")
    if wander:
        parts.append(f"wanders on {phrase_list(wander)}, travelling more than {steady:.3g} times the distance "
                     f"between the ends' eigenspaces")
    step = max(math.degrees(float(t.largest.max())) for t in turns.values())
    return (f"Taking a path at most {steady:.3g} times the distance between the ends as steady, the top eigenspace "
            f"{phrase_list(parts)}; no step between neighbouring points turns it by more than {step:.3g}°.")


def scope(n_pairs: int, threshold: float) -> str:
    """What a run with n_pairs pairs per model can decide."""
    if n_pairs < MIN_PAIRS:
        return (f"With {plural(n_pairs, 'pair')} per model this run decides nothing: a verdict needs at least "
                f"{MIN_PAIRS} pairs to resample. The full profile (`--profile full`) runs enough pairs.")
    return (f"With {plural(n_pairs, 'pair')} per model the intervals are bootstrapped over pairs; a model whose "
            f"interval straddles {threshold:.3g} is left undecided, and more pairs narrow the intervals.")
