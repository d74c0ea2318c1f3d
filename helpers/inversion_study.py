"""Chapter 05's comparison of inversion methods: every method tuned on held-out targets, then run from the same starts
with the same budget on generated targets and photographs; what the runs cost, where the codes end, and the verdicts.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, fields, replace
from pathlib import Path

import numpy as np
import torch

from . import inversion, stats
from .optimisers import bullets, compare, verdict
from .photos import photo_targets
from .profiles import PROFILES
from .report import CI_MATH, interval, phrase_list, plural

# the pairs of methods compared, first against second (those that both ran)
PAIRS = [("eigenbasis", "z"), ("top-k", "z"), ("top-k", "eigenbasis"), ("BasinCMA, z", "z"),
         ("BasinCMA, eigenbasis", "z"), ("BasinCMA, eigenbasis", "BasinCMA, z")]
# the pairs the paper speaks of, in the chapter's verdicts
PAPERS_PAIRS = [("eigenbasis", "z"), ("top-k", "z"), ("BasinCMA, eigenbasis", "BasinCMA, z")]


@dataclass
class Plan:
    """The parameters of chapter 05 that decide its comparison; `models[0]` runs `methods` with `budget` images a
    run, the other models `other_methods` with `other_budget`. See the chapter's parameters cell."""

    models: list
    methods: list
    other_methods: list
    budget: int
    other_budget: int
    n_targets: int
    n_starts: int
    n_tune: int
    n_photos: int
    lrs: list
    schedules: list
    pixel_weight: float
    basin_generations: int
    basin_popsize: int
    basin_inner_steps: int
    basin_sigma: float
    top_k: int
    seed: int
    threshold: float
    inversion_store: str | None
    unit_rows: int

    @classmethod
    def from_parameters(cls, parameters: dict, **overrides) -> Plan:
        """The plan of a chapter's parameters (e.g. its `globals()`; names it does not know are ignored)."""
        names = [f.name for f in fields(cls)]
        return cls(**{name: parameters[name] for name in names if name not in overrides}, **overrides)

    def profile(self, profile: dict) -> Plan:
        """This plan with a profile's overrides (`profiles.PROFILES[...]`), for the same models."""
        known = {f.name for f in fields(self)}
        return replace(self, **{k: v for k, v in profile.items() if k in known and k != "models"})

    def methods_of(self, name: str) -> list:
        return self.methods if name == self.models[0] else self.other_methods

    def budget_of(self, name: str) -> int:
        return self.budget if name == self.models[0] else self.other_budget

    def photos_of(self, name: str) -> int:
        """How many photographs a model is inverted on: n_photos, at most the ones scikit-image ships."""
        return min(self.n_photos, 2 if "eye" in name else 101)

    def images(self) -> dict:
        """{model: images through G} of the comparison: every tuning candidate and every test run spends the whole
        budget."""
        out = {}
        for name in self.models:
            runs = (self.n_tune * len(self.lrs) * len(self.schedules)
                    + (self.n_targets + self.photos_of(name)) * self.n_starts)
            out[name] = len(self.methods_of(name)) * self.budget_of(name) * runs
        return out


@dataclass
class Targets:
    """A model's targets: tune (n_tune, 3, H, W) held out for tuning; generated (n_targets, ...) test images with
    their codes z_true; photos (n_photos, ...) real photographs with their labels."""

    tune: torch.Tensor
    generated: torch.Tensor
    z_true: torch.Tensor
    photos: torch.Tensor
    labels: list

    @property
    def test(self) -> torch.Tensor:
        """The test targets: the generated ones, then the photographs."""
        return torch.cat([self.generated, self.photos])


def targets(plan: Plan, name: str, G) -> Targets:
    """Tuning targets, generated test targets (with their true codes) and photographs for a model."""
    z_tune, z_true = G.sample(plan.n_tune, seed=plan.seed + 1), G.sample(plan.n_targets, seed=plan.seed + 2)
    with torch.no_grad():
        tune_images, test_images = G(z_tune), G(z_true)
    count = plan.photos_of(name)
    kind = "eye" if "eye" in name else "face"
    photos, labels = photo_targets(kind, count, test_images.shape[-1]) if count else (test_images[:0], [])
    return Targets(tune_images, test_images, z_true, photos.to(test_images), labels)


def methods(plan: Plan, name: str, eigvecs: torch.Tensor) -> dict:
    """{label: inversion.Method} a model runs, in the eigenbasis `eigvecs` (d, d) of its average metric."""
    basin = dict(generations=plan.basin_generations, popsize=plan.basin_popsize, inner_steps=plan.basin_inner_steps,
                 sigma0=plan.basin_sigma)
    V = eigvecs
    every = {"z": inversion.Method("z"), "eigenbasis": inversion.Method("eigenbasis", basis=V),
             "top-k": inversion.Method("top-k", basis=V[:, :plan.top_k]),
             "BasinCMA, z": inversion.Method("BasinCMA, z", kind="basin", options=basin),
             "BasinCMA, eigenbasis": inversion.Method("BasinCMA, eigenbasis", kind="basin", basis=V, options=basin)}
    wanted = plan.methods_of(name)
    unknown = sorted(set(wanted) - set(every))
    if unknown:
        raise ValueError(f"unknown methods {unknown}; choose from {list(every)}")
    return {label: every[label] for label in wanted}


@dataclass
class ModelRuns:
    """Every method on one model: tuning {label: inversion.Tuning}; runs {label: inversion.Inversion} on the test
    targets, row i on target index[i] from start z0[i] (n_starts rows per target, the generated targets first);
    units: the stored units of all of its runs (what they cost); images: images through G."""

    targets: Targets
    tuning: dict
    runs: dict
    index: torch.Tensor
    z0: torch.Tensor
    n_starts: int
    budget: int
    units: list
    images: int

    @property
    def generated(self) -> torch.Tensor:
        """The rows on generated targets."""
        return torch.arange(len(self.targets.generated) * self.n_starts)

    @property
    def photographs(self) -> torch.Tensor:
        """The rows on photographs."""
        return torch.arange(len(self.targets.generated) * self.n_starts, len(self.index))


def run(plan: Plan, name: str, model, distance, targets: Targets, *, progress: bool = False) -> ModelRuns:
    """Tune every method of a model on its tuning targets (one start each), then run it on every test target from
    n_starts starts with the learning rate and schedule it tuned to; model: an `optimisers.Model`. With
    plan.inversion_store the runs are kept there in units and read back when a run is repeated."""
    G, seed = model.G, plan.seed
    tune_seeds = [seed + 2000 + i for i in range(plan.n_tune)]
    test = targets.test
    index = torch.arange(len(test)).repeat_interleave(plan.n_starts)  # row i: target index[i], start i % n_starts
    test_seeds = [seed + 1000 + i for i in range(len(index))]
    test_z0 = inversion.start_codes(G, test_seeds)
    budget = plan.budget_of(name)
    stored = dict(store=plan.inversion_store and str(Path(plan.inversion_store) / name), unit_rows=plan.unit_rows)
    common = dict(budget=budget, pixel_weight=plan.pixel_weight, progress=progress, **stored)
    tuning, runs, units = {}, {}, []
    for label, method in methods(plan, name, model.average.eigvecs).items():
        tuned = tuning[label] = inversion.tune(G, targets.tune, distance, method, inversion.start_codes(G, tune_seeds),
                                               lrs=plan.lrs, schedules=plan.schedules, seeds=tune_seeds, **common)
        runs[label] = inversion.run_method(G, test, distance, method, test_z0, target_index=index, lr=tuned.lr,
                                           schedule=tuned.schedule, seeds=test_seeds, **common)
        units += [*tuned.runs.units, *runs[label].units]
    return ModelRuns(targets, tuning, runs, index, test_z0, plan.n_starts, budget, units, plan.images()[name])


def _edge(lr: float, lrs) -> str | None:
    """"lowest" or "highest" when `lr` is at that end of the grid `lrs` (of more than one value), else None."""
    if len(set(lrs)) < 2:
        return None
    return "lowest" if lr == min(lrs) else "highest" if lr == max(lrs) else None


def tuning_table(results: dict, lrs) -> dict:
    """{column: values} per model and method: the learning rate and schedule it tuned to, its tuning score (mean
    log10 LPIPS, lower is better) at every learning rate of the grid `lrs` (the best schedule there; the chosen one
    in bold), and whether the choice lies at an edge of the grid."""
    tuned = [(name, label, t) for name, entry in results.items() for label, t in entry.tuning.items()]
    table = {"model": [name for name, _, _ in tuned], "method": [label for _, label, _ in tuned],
             "tuned to": [f"{t.lr:g}, {t.schedule}" for _, _, t in tuned]}
    for lr in lrs:
        cells = []
        for _, _, t in tuned:
            scores = [float(s) for (c, _), s in zip(t.candidates, t.scores) if c == float(lr)]
            cell = f"{min(scores):.3f}" if scores else "–"
            cells.append(f"**{cell}**" if scores and float(lr) == t.lr else cell)
        table[f"score at {lr:g}"] = cells
    table["at the grid's edge"] = [_edge(t.lr, lrs) or "no" for _, _, t in tuned]
    return table


def tuning_note(results: dict, lrs, schedules) -> str:
    """Sentences on where the tuned learning rates lie in the grid `lrs`: plainly for the baseline, Adam in z, on
    every model (an edge means the comparisons with z there may be against an under-tuned baseline), then for the
    other methods."""
    if len(set(lrs)) < 2:
        return ("This run's grid has a single learning rate, so no learning rate was tuned"
                + (" (only the schedule)." if len(schedules) > 1 else "."))
    grid = phrase_list(f"{lr:g}" for lr in sorted(lrs))
    parts = []
    for name, entry in results.items():
        if "z" not in entry.tuning:
            continue
        lr = entry.tuning["z"].lr
        edge = _edge(lr, lrs)
        parts.append(f"On `{name}` the baseline, Adam in $z$, tuned to a learning rate of {lr:g}, "
                     + ("inside the grid, so its best lies within it" if edge is None else
                        f"the {edge} of the grid: its best may lie {'below' if edge == 'lowest' else 'above'} the "
                        f"grid, so the comparisons with $z$ on `{name}` may be against an under-tuned baseline")
                     + ".")
    others = [f"{label} on `{name}` ({_edge(t.lr, lrs)}, {t.lr:g})" for name, entry in results.items()
              for label, t in entry.tuning.items() if label != "z" and _edge(t.lr, lrs)]
    parts.append(f"Of the other methods, {phrase_list(others)} tuned to an edge of the grid" if others else
                 "No other method tuned to an edge of the grid")
    return f"The grid of learning rates is {grid}. " + " ".join(parts) + (
        "; a wider grid (`-p lrs`) would tell whether they do better beyond it." if others else ".")


# --- what the runs cost -----------------------------------------------------------------------------------

@dataclass
class Cost:
    """What a comparison costs per model: images (this run's and the full profile's) through G, and CPU seconds per
    image ÷ the cores torch uses (the time per image if every core stays busy)."""

    images: dict
    full_images: dict
    seconds_per_image: dict
    cores: int

    def table(self) -> dict:
        """{column: values} per model, with the full profile's estimated hours."""
        models = list(self.images)
        return {"model": models, "images, this run": [self.images[n] for n in models],
                f"ms per image (CPU ÷ {plural(self.cores, 'core')})": [1000 * self.seconds_per_image[n]
                                                                       for n in models],
                "images, full profile": [self.full_images[n] for n in models],
                "full profile, estimated hours": [self.full_images[n] * self.seconds_per_image[n] / 3600
                                                  for n in models]}

    def ratio(self) -> float:
        """The most an image of another model costs, in images of the first model (1 with one model)."""
        models = list(self.images)
        if len(models) == 1:
            return 1.0
        return max(self.seconds_per_image[n] for n in models[1:]) / self.seconds_per_image[models[0]]

    def estimate(self, store: str | None) -> str:
        """The full profile's time as a phrase for the chapter's prose (below its cost table)."""
        models = list(self.images)
        hours = sum(self.full_images[n] * self.seconds_per_image[n] for n in models) / 3600
        number = lambda x: f"{x:.2g}" if x < 100 else f"{x:,.0f}"  # noqa: E731
        # A header's parenthesis: short, no parentheses inside; the cost table below gives the details.
        return (f"the full profile's inversions: about {number(hours)} hours on {plural(self.cores, 'busy core')}, "
                "estimated from this run's time per image, in the cost table below"
                + (f"; a killed run resumes from the runs it stored in {store}" if store else ""))


def cost(plan: Plan, results: dict, sections: dict) -> Cost:
    """The cost of this run's comparison and of the full profile's, from the stored units' own CPU times (so also
    when they were read back; CPU time depends less than wall time on what else the machine runs), else from the
    CPU seconds of the chapter's section "inversion, <model>" in `sections` (`optimisers.Clock.sections`)."""
    cores = torch.get_num_threads()
    per_image = {}
    for name, entry in results.items():
        timed = [u for u in entry.units if math.isfinite(u.cpu_seconds)]
        per_image[name] = (sum(u.cpu_seconds for u in timed) / sum(u.images for u in timed) if timed
                           else sections[f"inversion, {name}"][1] / entry.images) / cores
    return Cost({n: e.images for n, e in results.items()}, plan.profile(PROFILES["full"]).images(), per_image, cores)


# --- the comparisons and where the codes end --------------------------------------------------------------

def comparisons(results: dict, threshold: float) -> dict:
    """{model: {(a, b): optimisers.MethodPair}} on the generated targets, for the pairs in PAIRS."""
    return {name: compare(entry.runs, PAIRS, entry.generated, entry.index[entry.generated].numpy(), threshold)
            for name, entry in results.items()}


def verdicts(comparisons: dict, threshold: float, results: dict | None = None, lrs=()) -> str:
    """The comparisons the paper makes (PAPERS_PAIRS), one `optimisers.verdict` per model and pair, as a list; with
    the runs `results` and the grid `lrs`, each says which of its two methods tuned to an edge of the grid (and so
    may be under-tuned)."""
    def caveat(name, a, b):
        tuning = results[name].tuning if results and name in results else {}
        edges = [(m, _edge(tuning[m].lr, lrs)) for m in (a, b) if m in tuning and _edge(tuning[m].lr, lrs)]
        return "".join(f"; **{m}** tuned to the {edge} learning rate of the grid, so it may be under-tuned"
                       for m, edge in edges)

    return bullets(verdict(name, a, b, pair, threshold) + caveat(name, a, b) for name, pairs in comparisons.items()
                   for (a, b), pair in pairs.items() if (a, b) in PAPERS_PAIRS)


def best_method(entry: ModelRuns) -> tuple[str, float]:
    """The method with the lowest median (over generated targets) best LPIPS of the starts, and that median."""
    best_of_starts = {m: float(run.loss_best[entry.generated].view(-1, entry.n_starts).min(1).values.median())
                      for m, run in entry.runs.items()}
    best = min(best_of_starts, key=best_of_starts.get)
    return best, best_of_starts[best]


def final_lpips(results: dict, methods) -> dict:
    """{"ours: <model>, <targets>": the median final LPIPS of each of `methods` on the generated targets and, where
    the model was inverted on any, on the photographs (the like comparison with the paper's real image); "–" where
    a method did not run}."""
    columns = {}
    for name, entry in results.items():
        for targets, rows in (("generated", entry.generated), ("photographs", entry.photographs)):
            if len(rows):
                columns[f"ours: {name}, {targets}"] = [
                    float(entry.runs[m].loss_best[rows].median()) if m in entry.runs else "–" for m in methods]
    return columns


def best_images(entry: ModelRuns) -> tuple[torch.Tensor, list, list]:
    """(images (targets, 1 + methods, 3, H, W), row labels, column labels): every test target and, per method, the
    image of its best start."""
    t = entry.targets
    columns = {"target": list(t.test.cpu())}
    for label, run in entry.runs.items():
        loss = run.loss_best.view(-1, entry.n_starts)
        columns[label] = list(run.images[loss.argmin(1) + torch.arange(len(loss)) * entry.n_starts].cpu())
    grid = torch.stack([torch.stack(images) for images in columns.values()], dim=1)
    return grid, [f"generated {i}" for i in range(len(t.generated))] + t.labels, list(columns)


@dataclass
class CodeErrors:
    """Where the runs end in latent space. table: {column: values} per model and method, medians over generated
    targets of ‖z − z_true‖ at the start and the end, the share of the error δ in the top-k eigen-subspace and
    ½ δᵀHδ. near: {model: (gaps, gaps in the top k, the gap between two random codes)} between codes whose images
    lie within the threshold of the same target (models with such pairs)."""

    table: dict
    near: dict


def code_errors(results: dict, models: dict, top_k: int, threshold: float) -> CodeErrors:
    """`CodeErrors` of the runs on generated targets; models: {name: optimisers.Model}."""
    rows = {"model": [], "method": [], "‖z − z_true‖ at the start": [], "at the end": [],
            f"share in the top {top_k}": [], "½ δᵀHδ": []}
    near = {}
    for name, entry in results.items():
        generated, avg = entry.generated, models[name].average
        z_true = entry.targets.z_true[entry.index[generated]].double().cpu()
        start = (entry.z0[generated].double().cpu() - z_true).norm(dim=1)
        Vk = avg.eigvecs.double()[:, :top_k]
        for label, run in entry.runs.items():
            err = run.z_best[generated].double().cpu() - z_true
            rows["model"].append(name)
            rows["method"].append(label)
            rows["‖z − z_true‖ at the start"].append(float(start.median()))
            rows["at the end"].append(float(err.norm(dim=1).median()))
            rows[f"share in the top {top_k}"].append(float((((err @ Vk) ** 2).sum(1) / (err ** 2).sum(1)).median()))
            rows["½ δᵀHδ"].append(float((0.5 * ((err @ avg.H_mean.double()) * err).sum(1)).median()))
        gaps = _near_gaps(entry, Vk, threshold)
        if gaps:
            near[name] = (torch.cat(gaps[0]), torch.cat(gaps[1]), math.sqrt(2 * models[name].G.latent_dim))
    return CodeErrors(rows, near)


def _near_gaps(entry: ModelRuns, Vk: torch.Tensor, threshold: float):
    """([gaps], [gaps along Vk]) per target between the final codes (all methods) whose images lie within
    `threshold` of it; () when no target has two."""
    generated = entry.generated
    codes = torch.cat([run.z_best[generated].cpu() for run in entry.runs.values()])
    close = torch.cat([run.loss_best[generated].cpu() for run in entry.runs.values()]) <= threshold
    owner = entry.index[generated].repeat(len(entry.runs))
    gaps, gaps_top = [], []
    for target in range(len(entry.targets.generated)):
        group = codes[close & (owner == target)].double()
        if len(group) > 1:
            pair = torch.triu_indices(len(group), len(group), 1)
            diff = group[pair[0]] - group[pair[1]]
            gaps.append(diff.norm(dim=1))
            gaps_top.append((diff @ Vk).norm(dim=1))
    return (gaps, gaps_top) if gaps else ()


def code_verdict(errors: CodeErrors, first: str, latent_dim: int, top_k: int, threshold: float) -> str:
    """Sentences on where the first model's codes end against where they started, how much of the error lies in
    the top-k subspace, and how far apart codes with nearly the same image lie."""
    rows = errors.table
    k_share = top_k / latent_dim
    first_errors = [i for i, m in enumerate(rows["model"]) if m == first]
    share_median = float(np.median([rows[f"share in the top {top_k}"][i] for i in first_errors]))
    end_median = float(np.median([rows["at the end"][i] for i in first_errors]))
    start_median = rows["‖z − z_true‖ at the start"][first_errors[0]]
    change = end_median / start_median
    sentences = [f"On `{first}` the runs (median over methods) end {end_median:.3g} from the true code, against "
                 f"{start_median:.3g} at the start: " + ("the codes move away from the true code" if change > 1.05 else
                                                         "the error barely shrinks" if change > 0.7 else
                                                         "the codes move towards the true code")
                 + f". A median share of {share_median:.2g} of what is left lies in the top {top_k} eigenvectors, "
                 + ("less than" if share_median < 0.8 * k_share else "more than" if share_median > 1.25 * k_share
                    else "about as much as") + f" the share of a random direction ({k_share:.2g})."]
    for name, (gap, gap_top, random_gap) in errors.near.items():
        top, random_top = float(gap_top.median()), math.sqrt(2 * top_k)
        sentences.append(f"On `{name}`, {plural(len(gap), 'pair')} of codes whose images are both within {threshold:g} "
                         f"LPIPS of the same target lie a median {float(gap.median()):.3g} apart, where two random codes "
                         f"lie about {random_gap:.3g} apart; along the top {top_k} eigenvectors they are {top:.3g} apart, "
                         f"against about {random_top:.3g} for two random codes" + (
                             ": closer than random codes in the steep directions" if top < 0.7 * random_top
                             else ": even in the steep directions these codes are not much closer than random ones, so "
                                  f"an LPIPS of {threshold:g} leaves room for quite different codes") + ".")
    return " ".join(sentences)


# --- where this agrees with the paper, and what the run can decide ----------------------------------------

# the paper's claims a run is held against: per pair of methods, what to say for each decision of its interval
CLAIMS = {
    ("eigenbasis", "z"): {
        "lower": "ends lower than in $z$, as the paper says",
        "higher": "ends higher than in $z$, against the paper's claim",
        "undecided": "cannot be told from Adam in $z$ at this sample size",
        "too few": "is compared with Adam in $z$ on too few targets to judge"},
    ("BasinCMA, eigenbasis", "BasinCMA, z"): {
        "lower": "ends lower than without it, as in the paper's BigGAN example",
        "higher": "ends higher than without it, unlike the paper's BigGAN example",
        "undecided": "cannot be told from BasinCMA without it, where the paper's one BigGAN image showed a clear gap",
        "too few": "is compared with BasinCMA without it on too few targets to judge"},
    ("top-k", "z"): {
        "lower": "ends lower than Adam in $z$", "higher": "ends higher than Adam in $z$",
        "undecided": "cannot be told from Adam in $z$", "too few": "is compared with Adam in $z$ on too few targets"},
}


def _held(pairs: dict, key: tuple, subject: str, detail) -> list:
    """[subject, what the interval of the pair's final-LPIPS ratio decides in CLAIMS' words, detail(its Paired)], or
    [] when the pair did not run."""
    if key not in pairs:
        return []
    final = pairs[key].final
    return [subject + CLAIMS[key][stats.direction(final)] + detail(final)]


def _with_interval(label: str):
    return lambda r: f" ({label} {r.ratio:.3g}, {interval(*r.ratio_ci, form=CI_MATH)})."


def agreement(plan: Plan, comparisons: dict, toy_matches: bool) -> str:
    """Sentences on where the run agrees with the paper: the toy quadratic, the eigenbasis against z on every model,
    BasinCMA with and without the basis and the top-k subspace on the first model."""
    first = plan.models[0]
    parts = [("The toy quadratic agrees: with the authors' setting we get their numbers to the digits they print; "
              if toy_matches else "With the authors' toy setting we do not get their numbers; ")
             + "the sweep adds that the gain depends on the start, the learning rate and the number of steps."]
    for name in plan.models:
        parts += _held(comparisons[name], ("eigenbasis", "z"), f"On `{name}`, Adam in the full eigenbasis ",
                       _with_interval("final LPIPS ratio"))
    parts += _held(comparisons[first], ("BasinCMA, eigenbasis", "BasinCMA, z"), f"On `{first}`, BasinCMA with the basis ",
                   _with_interval("ratio"))
    parts += _held(comparisons[first], ("top-k", "z"), "Adam confined to the top-$k$ subspace ",
                   lambda r: f" (ratio {r.ratio:.3g}); the paper's inversion used the full basis.")
    parts.append(f"The paper inverted with BigGAN, a much larger generator, with several hundred Adam steps a run; these "
                 f"runs test the claim on small generators with {plan.budget} and {plan.other_budget} images a run.")
    return " ".join(parts)


def scope(plan: Plan, comparisons: dict, cost: Cost) -> str:
    """Sentences on what this run's sample sizes and budgets can decide, and what the full profile runs."""
    full = PROFILES["full"]
    n_targets, n_starts, models = plan.n_targets, plan.n_starts, plan.models
    widths = [high / low for name in models for pair in comparisons[name].values()
              for low, high in [pair.final.ratio_ci] if math.isfinite(low) and math.isfinite(high)]
    return (f"This run has {plural(n_targets * n_starts, 'pair')} per model and comparison ({plural(n_targets, 'target')}"
            f" × {plural(n_starts, 'start')}), with intervals that resample the {plural(n_targets, 'target')}. "
            + (f"Its $95\\%$ intervals of a final-LPIPS ratio are a median factor of {float(np.median(widths)):.3g} wide "
               f"(upper end ÷ lower end): a difference between methods well inside that factor cannot be decided, one "
               f"well outside it can" if widths and n_targets >= 5 else
               "That is too few targets to decide anything: this run only shows that every step works")
            + f", and its budgets ({plan.budget} and {plan.other_budget} images a run) are short where the paper ran "
            f"hundreds of steps. " + (f"The other models get only {phrase_list(plan.other_methods)}, since an image of "
                                      f"theirs cost {cost.ratio():.2g} times one of `{models[0]}` in this run (CPU time "
                                      f"per image through the generator). "
                                      if set(plan.other_methods) < set(plan.methods) and len(models) > 1 else "")
            + f"The full profile (`--profile full`) runs {full['n_targets']} targets × {full['n_starts']} starts, every "
            f"method on every model with {full['budget']} images a run, learning rates tuned over "
            f"{len(full['lrs'])} values × {len(full['schedules'])} schedules.")
