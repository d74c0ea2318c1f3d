# ---
# jupyter:
#   jupytext:
#     formats: py:percent
#     notebook_metadata_filter: -jupytext.text_representation.jupytext_version
#     text_representation:
#       extension: .py
#       format_name: percent
#       format_version: '1.3'
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Optimization in the eigenbasis: inversion
#
# **What this chapter tests.** The paper's practical claim: since the metric is strongly anisotropic and much
# the same at every code, an optimizer should work better in the eigenbasis of the average metric. This page
# tests it on inversion (finding the code of a target image) as the paper did: Adam and BasinCMA in $z$, in
# the full eigenbasis and in the top-$k$ eigen-subspace, each with its own tuned learning rate and the same
# budget, over many targets and starts, with paired effect sizes. The paper's other use of the metric,
# Hessian-aware CMA-ES for activation maximisation, has its own chapter, [chapter 08](08_activation.ipynb).
# Its tables, beside the paper's numbers, are also on the [results page](results.md).
#
# **Rerun it** ({glue:text}`run_times`; {glue:text}`full_estimate`):
#
# ```bash
# python -m helpers.book run --only 05 -p n_targets 20 -p n_starts 5 -p seed 1
# ```

# %% tags=["parameters"]
inversion_models = None  # None: the book's first model (generators.EMBEDDED[0]) and the eyes model
distance = "lpips-alex"
seed = 0
n_points = 8  # codes of the average metric (read back from chapter 02's metric store when it has them)
top_k = 20  # size of the eigen-subspace (top-k Adam)
# inversion
methods = ["z", "eigenbasis", "top-k", "BasinCMA, z", "BasinCMA, eigenbasis"]  # for the first model
other_methods = ["z", "eigenbasis"]  # for the other models
budget = 50  # images through G per run (Adam steps, or BasinCMA's evaluations), every method of the first model
other_budget = 30  # the same for the other models (the eyes model costs five times as much per image)
n_targets = 10  # generated test targets per model
n_starts = 3  # starts per target: the pairs of the comparison are targets × starts
n_tune = 2  # generated tuning targets per model (held out of the test set), one start each
n_photos = 1  # real photographs per model (faces: the astronaut, then LFW faces; eyes: the astronaut's eyes)
lrs = [0.2, 0.4, 0.8]  # learning rates each method is tuned over (0.1 never won at the default profile)
schedules = ["cosine"]  # learning-rate schedules each method is tuned over: constant, cosine, step
pixel_weight = 1.0  # weight of the mean absolute pixel difference added to LPIPS (the paper's LPIPS + L1)
basin_generations = 2  # BasinCMA: CMA-ES generations before the final Adam run
basin_popsize = 5  # BasinCMA: codes CMA-ES proposes per generation
basin_inner_steps = 3  # BasinCMA: Adam steps from each proposal
basin_sigma = 0.5  # BasinCMA: CMA-ES step size in z
threshold = 0.1  # the LPIPS a run must reach for "evaluations to threshold"
inversion_store = "runs/inversion"  # finished runs are kept here, so a killed run resumes where it stopped (None: no)
unit_rows = 64  # runs per stored unit (a multiple of 32, the rows per pass through the generator)
# the toy quadratic
toy_angles = 7  # start angles from the flat eigenvector, evenly from 0 to 90 degrees
toy_lrs = [0.01, 0.03, 0.1, 0.3, 1.0]
toy_steps = 300
device = "cpu"
cpu_threads = None  # torch threads on the CPU (None: torch's default, every core)
progress = False  # progress bars for the long loops (in Jupyter; the book runner shows its own)

# %%
import math
import os
import time
import warnings

# Threads that wait for work sleep instead of spinning: on a busy machine spinning threads multiply the run
# time (measured on 2 shared cores: 199 against 76 ms per image); on an idle one it costs nothing.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import torch
from IPython.display import display

from helpers import analysis, distances, generators, inversion, stats, toy, viz
from helpers.catalogue import model_metrics
from helpers.photos import photo_targets
from helpers.profiles import PROFILES
from helpers.report import glue, phrase_list, plural, result_table, run_times

warnings.filterwarnings("ignore", module="torchvision.models._utils")  # lpips's deprecated `pretrained=`
if cpu_threads:
    torch.set_num_threads(cpu_threads)
glue("run_times", run_times("05_inversion"))
models = [generators.EMBEDDED[0], "cdcgan-eyes128"] if inversion_models is None else list(inversion_models)
d = distances.load(distance, device=device)
started, cpu_started = time.time(), time.process_time()
clock = {}  # seconds of wall and CPU time per section


def tick(section, since):
    clock[section] = (time.time() - since[0], time.process_time() - since[1])
    return time.time(), time.process_time()


mark = (started, cpu_started)
glue("first_model", models[0])
glue("models_text", " and ".join(f"`{m}`" for m in models))

# %% [markdown]
# ## The toy quadratic: when does the eigenbasis help?
#
# Why should a rotation matter? Gradient descent does not care: rotate the coordinates and its path rotates
# with them. Adam does. It divides each coordinate's step by a running estimate of that coordinate's
# gradient size, so it adapts to curvature that lies along the axes. When the steep and flat directions are
# tilted against the axes, every coordinate sees a mixture of both; in the eigenbasis they are the axes.
#
# The paper shows this on $f(x) = x^\top H x$ in two dimensions, with eigenvalues $1$ and $10$ and the
# eigenvectors rotated away from the axes. With the setting of the authors' notebook
# ({glue:text}`toy_paper_setting`), Adam ends at $f$ = {glue:text}`toy_paper_eigen:.2e` in the eigenbasis
# and {glue:text}`toy_paper_original:.4g` in the original coordinates: the paper's {paper}`0.007` and
# {paper}`7.155`.
#
# One setting can mislead: near the minimum Adam's steps oscillate, so $f$ jumps up and down by orders of
# magnitude, and where a run stops decides how large the gap looks. The sweep below runs Adam from starts
# on a circle, at angles from the flat eigenvector to the steep one, with several learning rates, in both
# coordinate systems, and measures where each run has got to by the mean of $\log_{10} f$ over the last
# quarter of its steps, which does not depend on the step it stops at. The heat map shows the ratio of the
# two after all the steps; the line chart, how it changes with the number of steps.

# %%
paper_toy = toy.toy_quadratic(angle=-math.pi / 3, start=(3.0, 9.0), steps=150, lr=0.1)
# the authors' f is xᵀHx, twice ours; their notebook prints it at the last step evaluated
glue("toy_paper_setting", "eigenvectors 60° from the axes, start (3, 9), 150 Adam steps at learning rate 0.1")
glued_toy = (glue("toy_paper_eigen", 2 * paper_toy.history_eigenbasis[149].item()),
              glue("toy_paper_original", 2 * paper_toy.history_original[149].item()))

angles = torch.linspace(0, math.pi / 2, toy_angles)
sweep = toy.toy_sweep(angles, toy_lrs, steps=toy_steps)
ratio = sweep.level("original") - sweep.level("eigenbasis")  # (angles, lrs): log10 of f in x ÷ f in the eigenbasis
degrees = [f"{a:.0f}°" for a in torch.rad2deg(angles).tolist()]
top = float(ratio.abs().max().clamp_min(1.0))
viz.heatmap(ratio, [str(lr) for lr in toy_lrs], degrees, colorscale="RdBu", zmin=-top, zmax=top,
            xlabel="learning rate", ylabel="start, from the flat eigenvector", colorbar_title="log10 ratio",
            title=f"log10 (f in x ÷ f in the eigenbasis) after {toy_steps} steps")

# %%
checkpoints = [s for s in (10, 25, 50, 100, 200, 300, 500, 1000) if s < toy_steps] + [toy_steps]
off_axis = (angles > 0.01) & (angles < math.pi / 2 - 0.01)
viz.line_chart(checkpoints, {f"lr {lr}": [float((sweep.level("original", s) - sweep.level("eigenbasis", s))
                                                [off_axis, j].median()) for s in checkpoints]
                             for j, lr in enumerate(toy_lrs)},
               title="median over starts off the eigenvectors", xlabel="Adam steps",
               ylabel="log10 (f in x ÷ f in the eigenbasis)")

# %%
both_converged = (sweep.level("original") < -8) & (sweep.level("eigenbasis") < -8)
helped = ratio > 1
lrs_helped = [lr for j, lr in enumerate(toy_lrs) if helped[off_axis, j].any()]
hurt = ratio < -math.log10(2)
glue("toy_verdict",
     f"After {toy_steps} steps, Adam in the eigenbasis reached an $f$ at least ten times lower in "
     f"{int(helped[off_axis].sum())} of {int(off_axis.sum()) * len(toy_lrs)} settings that start off the "
     f"eigenvectors" + (f", at learning rates {', '.join(map(str, lrs_helped))}" if lrs_helped else "")
     + f". In {int(both_converged.sum())} of the {ratio.numel()} settings both runs had converged ($f$ below "
     f"$10^{{-8}}$ in both), and in {int(hurt.sum())} the original coordinates ended more than twice as low"
     + (f", {int(hurt[~off_axis].sum())} of them from a start on an eigenvector, where Adam in the original "
        f"coordinates moves both coordinates at once and so covers more ground per step" if hurt[~off_axis].any()
        else "") + ".")

# %% [markdown]
# {glue:md}`toy_verdict:myst`
#
# The heat map and the line chart show where the argument holds in two dimensions: the gap is not one
# number, but a function of the start, the learning rate and how long Adam runs. A
# generator is not a quadratic either: its metric changes from code to code (chapter 03 measured how
# much), and LPIPS is far from quadratic away from the target. The rest of the page asks whether the gain
# survives that.
#
# ## The models, their average metrics and the targets
#
# For each model the average metric comes from the codes chapter 02 computed its metric at (read back from
# the store the chapters share under `runs/metrics`, or computed if absent); for the eyes model it is the
# noise block of the full metric. The eigenbasis is the frame of its eigenvectors, steepest first; the
# top-$k$ subspace keeps the first $k$ of them, with $k$ = {glue:text}`top_k:d`.
#
# The targets are of two kinds. Generated targets are images the model made from codes drawn with another
# seed: their true codes $z_\text{true}$ are known, and the model can reproduce them exactly. Real
# photographs ship with scikit-image: the astronaut's face (Eileen Collins) and faces of its subset of
# Labeled Faces in the Wild (grey, a low resolution) for the face models; the astronaut's eyes for the eyes
# model. Learning rates are tuned on separate generated targets, never on the test targets.

# %%
glue("top_k", top_k)


def load_model(name):
    """(G, average metric) for a model: its metrics at n_points codes, from the store the chapters share."""
    shared = model_metrics(name, distance, n_points, seed, loaded=d, device=device)
    return shared.G, analysis.average_metric(shared.metric)


loaded = {name: load_model(name) for name in models}
viz.markdown_table({"model": list(loaded), "d": [G.latent_dim for G, _ in loaded.values()],
                    f"trace in the top {top_k}": [float(avg.eigvals[:top_k].sum() / avg.eigvals.sum())
                                                  for _, avg in loaded.values()],
                    "λ1 / λd": [float(avg.eigvals[0] / avg.eigvals[-1].clamp_min(1e-30))
                                for _, avg in loaded.values()]},
                   precision=3)

# %%
def targets_for(name):
    """Tuning targets, generated test targets (with their true codes) and photographs for a model."""
    G = loaded[name][0]
    z_tune, z_true = G.sample(n_tune, seed=seed + 1), G.sample(n_targets, seed=seed + 2)
    with torch.no_grad():
        tune_images, test_images = G(z_tune), G(z_true)
    kind = "eye" if "eye" in name else "face"
    count = min(n_photos, 2 if kind == "eye" else 101)  # the photographs scikit-image ships
    photos, labels = photo_targets(kind, count, test_images.shape[-1]) if count else (test_images[:0], [])
    return dict(tune=tune_images, generated=test_images, z_true=z_true, photos=photos.to(test_images), labels=labels)


targets = {name: targets_for(name) for name in models}
for name, t in targets.items():
    shown = torch.cat([t["generated"], t["photos"]]).cpu()
    display(viz.image_grid(shown, nrow=min(len(shown), 12), title=f"{name}: the test targets"))
mark = tick("models and targets", mark)

# %% [markdown]
# ## Every method, tuned, with the same budget
#
# Five methods, all with the paper's loss, LPIPS plus {glue:text}`pixel_weight:.3g` times the mean absolute
# pixel difference (the runs report LPIPS alone):
#
# - **z**: Adam on the code itself;
# - **eigenbasis**: Adam on the coordinates $c = V^\top z$ in the full eigenbasis $V$, a rotation of $z$ that
#   starts from the same code;
# - **top-k**: Adam on $c$ in the top-$k$ subspace, $z = z_0 + V_k c$: only the steepest directions move;
# - **BasinCMA, z** and **BasinCMA, eigenbasis**: the paper's inversion of BigGAN. CMA-ES proposes
#   {glue:text}`basin_popsize:d` codes per generation around the start; each gets
#   {glue:text}`basin_inner_steps:d` Adam steps; CMA-ES learns from the distances they reach; after
#   {glue:text}`basin_generations:d` generations Adam refines the best code for the rest of the budget. The
#   basis is that of the Adam steps.
#
# The budget is the number of images a run puts through the generator: every Adam step is one, every code
# BasinCMA tries costs its inner steps. Each method gets {glue:text}`budget:d` images per run on the first
# model and {glue:text}`other_budget:d` on the others, whose images cost more. On the first model all five
# methods run; on the others {glue:text}`other_methods_text`.
#
# Each method's learning rate (and, with more than one listed in `schedules`, its schedule) is tuned
# separately, as the paper tuned Adam per basis: every candidate runs the full budget on
# {glue:text}`n_tune:d` held-out generated targets, and the one with the lowest mean log LPIPS is used on the
# test targets. All candidates of a method run in one batch, as do all test runs.

# %%
glue("pixel_weight", pixel_weight)
glue("basin_popsize", basin_popsize)
glue("basin_inner_steps", basin_inner_steps)
glue("basin_generations", basin_generations)
glue("budget", budget)
glue("other_budget", other_budget)
glue("n_tune", n_tune)
glue("other_methods_text", phrase_list(other_methods) if len(models) > 1 else "(none)")


def method_specs(name):
    """{label: inversion.Method} for a model, with its eigenbasis."""
    V = loaded[name][1].eigvecs
    basin = dict(generations=basin_generations, popsize=basin_popsize, inner_steps=basin_inner_steps,
                 sigma0=basin_sigma)
    every = {"z": inversion.Method("z"), "eigenbasis": inversion.Method("eigenbasis", basis=V),
             "top-k": inversion.Method("top-k", basis=V[:, :top_k]),
             "BasinCMA, z": inversion.Method("BasinCMA, z", kind="basin", options=basin),
             "BasinCMA, eigenbasis": inversion.Method("BasinCMA, eigenbasis", kind="basin", basis=V, options=basin)}
    wanted = methods if name == models[0] else other_methods
    unknown = sorted(set(wanted) - set(every))
    if unknown:
        raise ValueError(f"unknown methods {unknown}; choose from {list(every)}")
    return {label: every[label] for label in wanted}


def seeds_from(offset, n):
    return [seed + offset + i for i in range(n)]


def comparison_images(p):
    """{model: images through G} of the comparison with parameters p (a dict of this chapter's parameters): every
    tuning candidate and every test run spends the whole budget."""
    out = {}
    for i, name in enumerate(models):
        photos = min(p["n_photos"], 2 if "eye" in name else 101)
        runs = p["n_tune"] * len(p["lrs"]) * len(p["schedules"]) + (p["n_targets"] + photos) * p["n_starts"]
        n_methods = len(p["methods"] if i == 0 else p["other_methods"])
        out[name] = n_methods * (p["budget"] if i == 0 else p["other_budget"]) * runs
    return out


results = {}
for name in models:
    G, t = loaded[name][0], targets[name]
    run_budget = budget if name == models[0] else other_budget
    tune_seeds = seeds_from(2000, n_tune)
    test_images = torch.cat([t["generated"], t["photos"]])
    index = torch.arange(len(test_images)).repeat_interleave(n_starts)  # row i: target index[i], start i % n_starts
    test_seeds = seeds_from(1000, len(index))
    test_z0 = inversion.start_codes(G, test_seeds)
    entry = results[name] = {"tuning": {}, "runs": {}, "index": index, "z0": test_z0, "budget": run_budget}
    stored = dict(store=inversion_store and os.path.join(inversion_store, name), unit_rows=unit_rows)
    entry["units"] = []  # what each stored unit of runs cost (empty without a store)
    for label, method in method_specs(name).items():
        tuned = inversion.tune(G, t["tune"], d, method, inversion.start_codes(G, tune_seeds), lrs=lrs,
                               schedules=schedules, budget=run_budget, seeds=tune_seeds, pixel_weight=pixel_weight,
                               progress=progress, **stored)
        entry["tuning"][label] = tuned
        entry["runs"][label] = inversion.run_method(G, test_images, d, method, test_z0, target_index=index,
                                                    budget=run_budget, lr=tuned.lr, schedule=tuned.schedule,
                                                    seeds=test_seeds, pixel_weight=pixel_weight, progress=progress,
                                                    **stored)
        entry["units"] += [*tuned.runs.units, *entry["runs"][label].units]
    entry["images"] = comparison_images(globals())[name]
    mark = tick(f"inversion, {name}", mark)

viz.markdown_table({"model": [n for n in models for _ in results[n]["tuning"]],
                    "method": [m for n in models for m in results[n]["tuning"]],
                    "learning rate": [t.lr for n in models for t in results[n]["tuning"].values()],
                    "schedule": [t.schedule for n in models for t in results[n]["tuning"].values()],
                    "tuning score (mean log10 LPIPS)": [float(t.scores.min()) for n in models
                                                        for t in results[n]["tuning"].values()]}, precision=3)

# the full profile's comparison: its images through each generator × this run's CPU seconds per image there ÷ the
# cores torch uses, i.e. the time if every core stays busy (from the stored units' own times, so also when they were
# read back; CPU time depends less than wall time on what else the machine runs)
full_images = comparison_images(globals() | PROFILES["full"])
cores = torch.get_num_threads()
seconds_per_image = {}
for name in models:
    timed = [u for u in results[name]["units"] if math.isfinite(u.cpu_seconds)]
    seconds_per_image[name] = (sum(u.cpu_seconds for u in timed) / sum(u.images for u in timed) if timed
                               else clock[f"inversion, {name}"][1] / results[name]["images"]) / cores
full_hours = sum(full_images[name] * seconds_per_image[name] for name in models) / 3600
number = lambda x: f"{x:.2g}" if x < 100 else f"{x:,.0f}"  # noqa: E731
viz.markdown_table({"model": models, "images, this run": [results[n]["images"] for n in models],
                    f"ms per image (CPU ÷ {cores} cores)": [1000 * seconds_per_image[n] for n in models],
                    "images, full profile": [full_images[n] for n in models],
                    "full profile, estimated hours": [full_images[n] * seconds_per_image[n] / 3600 for n in models]},
                   precision=3)
glue("full_estimate",
     f"the full profile's inversions, an estimate: about {number(full_hours)} hours on "
     f"{plural(cores, 'core')} that stay busy, "
     f"{phrase_list([f'{full_images[n]:,} images through {n}' for n in models])} at this run's "
     f"{phrase_list([number(1000 * seconds_per_image[n]) for n in models])} ms per image (CPU time ÷ cores; "
     f"small runs cost more per image than the full profile's batches)"
     + (f"; a killed run resumes from the runs it stored in {inversion_store}" if inversion_store else ""))

# %%
edges = [f"{label} ({n})" for n in models for label, t in results[n]["tuning"].items()
         if len(lrs) > 1 and t.lr in (min(lrs), max(lrs))]
glue("tuning_note",
     "This run's grid has a single learning rate, so nothing was tuned." if len(lrs) * len(schedules) == 1
     else "Every tuned learning rate lies inside the grid, so the grid brackets each method's best." if not edges
     else f"For {', '.join(edges)} the best learning rate is at the edge of the grid: a wider grid (`-p lrs`) might "
          f"do better still for {'it' if len(edges) == 1 else 'them'}.")

# %% [markdown]
# {glue:md}`tuning_note:myst`
#
# ## How fast each method converges
#
# The curves show, for the generated targets, the lowest LPIPS a run has reached after each image: the
# median over targets and starts, and the band from the 25th to the 75th percentile.

# %%
def band(history):
    """(x, median, 25th, 75th percentile) of histories (n, budget)."""
    h = history.double().cpu().numpy()
    return np.arange(1, h.shape[1] + 1), np.median(h, 0), np.quantile(h, 0.25, 0), np.quantile(h, 0.75, 0)


n_generated = n_targets * n_starts
for name in models:
    display(viz.band_chart({label: band(run.history[:n_generated]) for label, run in results[name]["runs"].items()},
                           log_y=True, band="25–75 %", xlabel="images through the generator",
                           ylabel="lowest LPIPS so far",
                           title=f"{name}: {plural(n_targets, 'generated target')} × {plural(n_starts, 'start')}"))

# %% [markdown]
# ## Final LPIPS, images to a threshold, area under the curve
#
# Three measures per run: the final (lowest) LPIPS; the number of images it took to reach an LPIPS of
# {glue:text}`threshold:.3g`; and the area under its curve, reported as the geometric mean of the lowest
# LPIPS along the run (lower means lower sooner). The first table summarises each method on the generated
# targets; the second compares methods pair by pair. A pair is one target and one start: both methods start
# from the same code. The effect size is the ratio of final LPIPS (the geometric mean over pairs of
# $\text{LPIPS}_a / \text{LPIPS}_b$; below one means the first method ends lower) with a $95\%$ bootstrap
# interval that resamples whole targets, since the starts on one target are not independent; the same for
# the area under the curve; "wins" counts pairs where the first method ends lower; "reached first" counts
# pairs where each reached the threshold with fewer images. The Wilcoxon p-value treats pairs as
# independent, so it is the more optimistic of the two.

# %%
glue("threshold", threshold)


def summary_table(entry, rows):
    out = {"method": [], "median LPIPS": [], "median best of starts": [], f"reached {threshold:g}": [],
           "median images to it": [], "area (geometric mean)": []}
    for label, run in entry["runs"].items():
        final = run.loss_best[rows].double().cpu()
        reach = stats.evaluations_to_reach(run.history[rows], threshold)
        out["method"].append(label)
        out["median LPIPS"].append(float(final.median()))
        out["median best of starts"].append(float(final.view(-1, n_starts).min(1).values.median()))
        out[f"reached {threshold:g}"].append(f"{int(np.isfinite(reach).sum())}/{len(reach)}")
        median = float(np.median(reach))
        out["median images to it"].append(median if math.isfinite(median) else "not reached")
        out["area (geometric mean)"].append(float(10 ** stats.log_auc(run.history[rows]).mean()))
    return out


PAIRS = [("eigenbasis", "z"), ("top-k", "z"), ("top-k", "eigenbasis"), ("BasinCMA, z", "z"),
         ("BasinCMA, eigenbasis", "z"), ("BasinCMA, eigenbasis", "BasinCMA, z")]


def compare(entry, rows):
    """{(a, b): (final Paired, area Paired, reached-first counts)} for the pairs of methods both run."""
    groups = entry["index"][rows].numpy()
    out = {}
    for a, b in PAIRS:
        if a in entry["runs"] and b in entry["runs"]:
            ra, rb = entry["runs"][a], entry["runs"][b]
            final = stats.paired(ra.loss_best[rows], rb.loss_best[rows], groups=groups, log=True)
            area = stats.paired(10 ** stats.log_auc(ra.history[rows]), 10 ** stats.log_auc(rb.history[rows]),
                                groups=groups, log=True)
            reach_a = stats.evaluations_to_reach(ra.history[rows], threshold)
            reach_b = stats.evaluations_to_reach(rb.history[rows], threshold)
            out[(a, b)] = (final, area, (int((reach_a < reach_b).sum()), int((reach_b < reach_a).sum())))
    return out


def span(low, high, spec=".3g", form="[{}, {}]"):
    """An interval as text, or 'no interval' when there was one target (or unit) only, nothing to resample."""
    if not (math.isfinite(low) and math.isfinite(high)):
        return "no interval: one target"
    return form.format(format(low, spec), format(high, spec))


CI_MATH = "$95\\%$ CI {} to {}"  # an interval in a glued sentence (math: the percent sign)


def comparison_table(comparisons):
    ci = lambda r: f"{r.ratio:.3g} {span(*r.ratio_ci)}"  # noqa: E731
    return {"first vs second": [f"{a} vs {b}" for a, b in comparisons],
            "pairs": [f.n for f, _, _ in comparisons.values()],
            "wins": [f.wins for f, _, _ in comparisons.values()],
            "final LPIPS ratio [95 % CI]": [ci(f) for f, _, _ in comparisons.values()],
            "p (Wilcoxon)": [f.p_wilcoxon for f, _, _ in comparisons.values()],
            "area ratio [95 % CI]": [ci(a) for _, a, _ in comparisons.values()],
            "reached first": [f"{x} vs {y}" for _, _, (x, y) in comparisons.values()]}


generated = torch.arange(n_generated)
comparisons = {name: compare(results[name], generated) for name in models}
for name in models:
    display(viz.markdown_table({"": [f"**{name}**, {plural(n_targets, 'generated target')} × "
                                     f"{plural(n_starts, 'start')}"]}))
    display(viz.markdown_table(summary_table(results[name], generated), precision=3))
    display(viz.markdown_table(comparison_table(comparisons[name]), precision=3))

# %%
def judge(result, *, ratio=True, min_groups=5):
    """'lower', 'higher', 'undecided' (the interval holds no change) or 'too few' (fewer than min_groups targets
    or units to resample) for a Paired comparison of a against b (ratio: log ratios, else differences)."""
    low, high = result.ratio_ci if ratio else result.ci
    null = 1.0 if ratio else 0.0
    if result.n_groups < min_groups:
        return "too few"
    return "lower" if high < null else "higher" if low > null else "undecided"


def verdict(name, a, b):
    """A sentence on method a against method b on a model, from the paired comparison."""
    final, area, (first_a, first_b) = comparisons[name][(a, b)]
    low, high = final.ratio_ci
    judged = {"lower": f"**{a}** ended lower than **{b}**", "higher": f"**{a}** ended higher than **{b}**",
              "undecided": f"this sample cannot tell **{a}** from **{b}**",
              "too few": f"too few targets to compare **{a}** with **{b}**"}[judge(final)]
    return (f"on `{name}`, {judged}: final LPIPS ratio {final.ratio:.3g} ({span(low, high, form=CI_MATH)}), "
            f"lower in {final.wins} of {plural(final.n, 'pair')} (Wilcoxon p = {final.p_wilcoxon:.2g}); area ratio "
            f"{area.ratio:.3g} ({span(*area.ratio_ci, form='{} to {}')}); reached {threshold:g} first in "
            f"{plural(first_a, 'pair')} against {first_b}")


lines = [verdict(name, a, b) for name in models for (a, b) in comparisons[name]
         if (a, b) in [("eigenbasis", "z"), ("top-k", "z"), ("BasinCMA, eigenbasis", "BasinCMA, z")]]
glue("inversion_verdicts", "\n".join(f"- {line[0].upper() + line[1:]}." for line in lines))

# %% [markdown]
# The comparisons the paper makes, generated from the tables:
#
# {glue:md}`inversion_verdicts:myst`
#
# On the photographs the same methods run from the same starts; there is no true code, and too few
# photographs for a test, so the table only summarises them.

# %%
for name in models:
    if len(targets[name]["labels"]):
        photos = torch.arange(n_generated, len(results[name]["index"]))
        display(viz.markdown_table({"": [f"**{name}**, {plural(len(targets[name]['labels']), 'photograph')} × "
                                         f"{plural(n_starts, 'start')}"]}))
        display(viz.markdown_table(summary_table(results[name], photos), precision=3))

first_runs = results[models[0]]["runs"]
best_of_starts = {m: float(run.loss_best[generated].view(-1, n_starts).min(1).values.median())
                  for m, run in first_runs.items()}
best_method = min(best_of_starts, key=best_of_starts.get)
best_median = best_of_starts[best_method]
glue("best_method", best_method)
glue("best_median", best_median)
inversion_rows = list(methods)
result_table(
    "inversion_final_lpips", "Inversion: median final LPIPS on generated targets, each method tuned",
    rows=inversion_rows,
    columns={f"ours: {name}": [float(results[name]["runs"][m].loss_best[generated].median())
                               if m in results[name]["runs"] else "–" for m in inversion_rows] for name in models},
    paper={"paper: BigGAN, one ImageNet image": [
        {"BasinCMA, z": "basin_cma_lpips_plain", "BasinCMA, eigenbasis": "basin_cma_lpips_hessian"}.get(m)
        for m in inversion_rows]},
    row_header="method",
    note=f"{plural(n_targets, 'target')} × {plural(n_starts, 'start')} per model, {budget} images per run on "
         f"{models[0]}, {other_budget} on the others; the paper's numbers are the final LPIPS of BasinCMA on a real "
         f"image")

# %% [markdown]
# The results-page table lists the paper's only inversion numbers beside ours. They do not compare in
# absolute terms: the paper inverted a real ImageNet image with BigGAN at a higher resolution, with a much
# larger budget.
#
# ## The reconstructions
#
# For every target, the best image each method found over its starts. On the first model the best method,
# {glue:text}`best_method`, reached a median (over generated targets) best LPIPS of
# {glue:text}`best_median:.2g`. Look at the rows of generated targets: are they the same faces and eyes?

# %%
for name in models:
    entry, t = results[name], targets[name]
    columns = {"target": list(torch.cat([t["generated"], t["photos"]]).cpu())}
    for label, run in entry["runs"].items():
        loss = run.loss_best.view(-1, n_starts)
        columns[label] = list(run.images[loss.argmin(1) + torch.arange(len(loss)) * n_starts].cpu())
    grid = torch.stack([torch.stack(images) for images in columns.values()], dim=1)
    display(viz.montage(grid, [f"generated {i}" for i in range(n_targets)] + t["labels"], list(columns),
                        title=f"{name}: targets and the best of {plural(n_starts, 'start')}", label_width=120))

# %% [markdown]
# ## Many codes, one image
#
# A run can end at an image almost identical to a generated target without finding its code. The table
# gives, over the generated targets, the median distance $\lVert z - z_\text{true} \rVert$ at the start and
# at the end of each method, and two ways to look at the error $\delta = z - z_\text{true}$ that remains:
# the share of $\lVert \delta \rVert^2$ that lies in the top-$k$ eigen-subspace (a random direction would put
# a share $k/d$ there), and $\frac12 \delta^\top \bar H \delta$, what the average metric $\bar H$ predicts
# LPIPS to be for such an error.

# %%
error_rows = {"model": [], "method": [], "‖z − z_true‖ at the start": [], "at the end": [],
              f"share in the top {top_k}": [], "½ δᵀHδ": []}
near_pairs = {}
for name in models:
    entry, t = results[name], targets[name]
    avg = loaded[name][1]
    z_true = t["z_true"][entry["index"][generated]].double().cpu()
    start = (entry["z0"][generated].double().cpu() - z_true).norm(dim=1)
    Vk = avg.eigvecs.double()[:, :top_k]
    for label, run in entry["runs"].items():
        err = run.z_best[generated].double().cpu() - z_true
        error_rows["model"].append(name)
        error_rows["method"].append(label)
        error_rows["‖z − z_true‖ at the start"].append(float(start.median()))
        error_rows["at the end"].append(float(err.norm(dim=1).median()))
        error_rows[f"share in the top {top_k}"].append(float((((err @ Vk) ** 2).sum(1) / (err ** 2).sum(1)).median()))
        error_rows["½ δᵀHδ"].append(float((0.5 * ((err @ avg.H_mean.double()) * err).sum(1)).median()))
    # codes whose images all lie within `threshold` of the same target: how far apart are they?
    codes = torch.cat([run.z_best[generated].cpu() for run in entry["runs"].values()])
    close = torch.cat([run.loss_best[generated].cpu() for run in entry["runs"].values()]) <= threshold
    owner = entry["index"][generated].repeat(len(entry["runs"]))
    gaps, gaps_top = [], []
    for target in range(n_targets):
        group = codes[close & (owner == target)].double()
        if len(group) > 1:
            pair = torch.triu_indices(len(group), len(group), 1)
            diff = group[pair[0]] - group[pair[1]]
            gaps.append(diff.norm(dim=1))
            gaps_top.append((diff @ Vk).norm(dim=1))
    if gaps:
        near_pairs[name] = (torch.cat(gaps), torch.cat(gaps_top), math.sqrt(2 * loaded[name][0].latent_dim))
viz.markdown_table(error_rows, precision=3)

# %%
k_share = top_k / loaded[models[0]][0].latent_dim
first_errors = [i for i, m in enumerate(error_rows["model"]) if m == models[0]]
share_median = float(np.median([error_rows[f"share in the top {top_k}"][i] for i in first_errors]))
end_median = float(np.median([error_rows["at the end"][i] for i in first_errors]))
start_median = error_rows["‖z − z_true‖ at the start"][first_errors[0]]
change = end_median / start_median
sentences = [f"On `{models[0]}` the runs (median over methods) end {end_median:.3g} from the true code, against "
             f"{start_median:.3g} at the start: " + ("the codes move away from the true code" if change > 1.05 else
                                                     "the error barely shrinks" if change > 0.7 else
                                                     "the codes move towards the true code")
             + f". A median share of {share_median:.2g} of what is left lies in the top {top_k} eigenvectors, "
             + ("less than" if share_median < 0.8 * k_share else "more than" if share_median > 1.25 * k_share
                else "about as much as") + f" the share of a random direction ({k_share:.2g})."]
for name, (gap, gap_top, random_gap) in near_pairs.items():
    top, random_top = float(gap_top.median()), math.sqrt(2 * top_k)
    sentences.append(f"On `{name}`, {plural(len(gap), 'pair')} of codes whose images are both within {threshold:g} "
                     f"LPIPS of the same target lie a median {float(gap.median()):.3g} apart, where two random codes lie about "
                     f"{random_gap:.3g} apart; along the top {top_k} eigenvectors they are {top:.3g} apart, against "
                     f"about {random_top:.3g} for two random codes" + (
                         ": closer than random codes in the steep directions" if top < 0.7 * random_top
                         else ": even in the steep directions these codes are not much closer than random ones, so an "
                              f"LPIPS of {threshold:g} leaves room for quite different codes") + ".")
glue("latent_verdict", " ".join(sentences))

# %% [markdown]
# {glue:md}`latent_verdict:myst`
#
# The metric says why this can happen: along a flat direction (a small eigenvalue) the image barely
# changes, so nothing pulls the code towards $z_\text{true}$ there, and many codes make nearly the same
# image. An inversion judged by $\lVert z - z_\text{true} \rVert$ can then fail while its image succeeds;
# the numbers above say how much of that happens here. The top-$k$ subspace gives up the flat directions
# altogether: its runs cannot leave the plane through their start, so they keep whatever error the start
# had in the other directions.

# %%
paper_match = round(glued_toy[0], 3) == 0.007 and round(glued_toy[1], 3) == 7.155
parts = [("The toy quadratic agrees: with the authors' setting we get their numbers to the digits they print; "
          if paper_match else "With the authors' toy setting we do not get their numbers; ")
         + "the sweep adds that the gain depends on the start, the learning rate and the number of steps."]
for name in models:
    if ("eigenbasis", "z") in comparisons[name]:
        r = comparisons[name][("eigenbasis", "z")][0]
        parts.append(f"On `{name}`, Adam in the full eigenbasis " + {
            "lower": "ends lower than in $z$, as the paper says",
            "higher": "ends higher than in $z$, against the paper's claim",
            "undecided": "cannot be told from Adam in $z$ at this sample size",
            "too few": "is compared with Adam in $z$ on too few targets to judge"}[judge(r)]
            + f" (final LPIPS ratio {r.ratio:.3g}, {span(*r.ratio_ci, form=CI_MATH)}).")
if ("BasinCMA, eigenbasis", "BasinCMA, z") in comparisons[models[0]]:
    r = comparisons[models[0]][("BasinCMA, eigenbasis", "BasinCMA, z")][0]
    parts.append(f"On `{models[0]}`, BasinCMA with the basis " + {
        "lower": "ends lower than without it, as in the paper's BigGAN example",
        "higher": "ends higher than without it, unlike the paper's BigGAN example",
        "undecided": "cannot be told from BasinCMA without it, where the paper's one BigGAN image showed a clear gap",
        "too few": "is compared with BasinCMA without it on too few targets to judge"}[judge(r)]
        + f" (ratio {r.ratio:.3g}, {span(*r.ratio_ci, form=CI_MATH)}).")
if ("top-k", "z") in comparisons[models[0]]:
    r = comparisons[models[0]][("top-k", "z")][0]
    parts.append("Adam confined to the top-$k$ subspace " + {
        "lower": "ends lower than Adam in $z$", "higher": "ends higher than Adam in $z$",
        "undecided": "cannot be told from Adam in $z$", "too few": "is compared with Adam in $z$ on too few targets"
    }[judge(r)] + f" (ratio {r.ratio:.3g}); the paper's inversion used the full basis.")
parts.append(f"The paper inverted with BigGAN, a much larger generator, with several hundred Adam steps a run; these "
             f"runs test the claim on small generators with {budget} and {other_budget} images a run.")
glue("agreement", " ".join(parts))
full = PROFILES["full"]
cost_ratio = (max(seconds_per_image[name] for name in models[1:]) / seconds_per_image[models[0]] if len(models) > 1
              else 1.0)
widths = [high / low for name in models for final, _, _ in comparisons[name].values()
          for low, high in [final.ratio_ci] if math.isfinite(low) and math.isfinite(high)]
glue("scope",
     f"This run has {plural(n_targets * n_starts, 'pair')} per model and comparison ({plural(n_targets, 'target')} × "
     f"{plural(n_starts, 'start')}), with intervals that resample the {plural(n_targets, 'target')}. "
     + (f"Its $95\\%$ intervals of a final-LPIPS ratio are a median factor of {float(np.median(widths)):.3g} wide "
        f"(upper end ÷ lower end): a difference between methods well inside that factor cannot be decided, one well "
        f"outside it can" if widths and n_targets >= 5 else
        "That is too few targets to decide anything: this run only shows that every step works")
     + f", and its budgets ({budget} and {other_budget} images a run) are short where the paper ran hundreds of "
     f"steps. " + (f"The other models get only {phrase_list(other_methods)}, since an image of theirs cost "
                   f"{cost_ratio:.2g} times one of `{models[0]}` in this run (CPU time per image through the "
                   f"generator). " if set(other_methods) < set(methods) and len(models) > 1 else "")
     + f"The full profile (`--profile full`) runs {full['n_targets']} targets × {full['n_starts']} starts, every "
     f"method on every model with {full['budget']} images a run, learning rates tuned over "
     f"{len(full['lrs'])} values × {len(full['schedules'])} schedules.")
print(f"chapter ran in {time.time() - started:.0f} s wall, {time.process_time() - cpu_started:.0f} s of CPU")
viz.markdown_table({"section": list(clock), "wall s": [w for w, _ in clock.values()],
                    "CPU s": [c for _, c in clock.values()]}, precision=1)

# %% [markdown]
# ## Where this agrees with the paper, and where not
#
# {glue:md}`agreement:myst`
#
# ## What the default run can and cannot decide
#
# {glue:md}`scope:myst`

# %% [markdown]
# ## Try it
#
# - `-p n_targets 50 -p n_starts 5` (or `--profile full`): the paper's sample size; the intervals narrow,
#   and small differences between bases become decidable.
# - `-p budget 300 -p schedules "['constant', 'cosine', 'step']"`: the longer runs the paper used; with more
#   steps, does the eigenbasis pull ahead or do the methods converge to the same LPIPS?
# - `-p other_methods "['z', 'eigenbasis', 'top-k', 'BasinCMA, z', 'BasinCMA, eigenbasis']"`: every method
#   on the eyes model too.
# - `-p top_k 5` or `-p top_k 50`: a smaller subspace is faster early and worse late; where is the balance?
