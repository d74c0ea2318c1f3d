# ---
# jupyter:
#   jupytext:
#     cell_metadata_filter: tags,-user_expressions
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

# %% tags=["remove-cell"]
from helpers.report import glue, run_times

run_times = glue("run_times", run_times("05_inversion"))

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
# **Rerun it** ({eval}`run_times`):
#
# ```bash
# python -m helpers.book run --only 05 -p n_targets 20 -p n_starts 5 -p seed 1
# ```

# %% tags=["parameters"]
# None: the book's first model (generators.EMBEDDED[0]) and the eyes model
inversion_models = None
distance = "lpips-alex"
seed = 0
# codes of the average metric (read back from chapter 02's metric store if there)
n_points = 8
top_k = 20  # size of the eigen-subspace (top-k Adam)
# inversion
# for the first model
methods = ["z", "eigenbasis", "top-k", "BasinCMA, z", "BasinCMA, eigenbasis"]
other_methods = ["z", "eigenbasis"]  # for the other models
# images through G per run (Adam steps, or BasinCMA's evaluations), on the first model
budget = 50
# the same for the other models (the eyes model costs five times as much per image)
other_budget = 30
n_targets = 10  # generated test targets per model
n_starts = 3  # starts per target: the pairs of the comparison are targets × starts
n_tune = 2  # generated tuning targets per model (held out of the test set), one start
# real photographs per model (faces: the astronaut, then LFW faces; eyes: its eyes)
n_photos = 1
# learning rates each method is tuned over (0.1 never won at the default profile)
lrs = [0.2, 0.4, 0.8]
# learning-rate schedules each method is tuned over: constant, cosine, step
schedules = ["cosine"]
# weight of the mean absolute pixel difference added to LPIPS (the paper's LPIPS + L1)
pixel_weight = 1.0
basin_generations = 2  # BasinCMA: CMA-ES generations before the final Adam run
basin_popsize = 5  # BasinCMA: codes CMA-ES proposes per generation
basin_inner_steps = 3  # BasinCMA: Adam steps from each proposal
basin_sigma = 0.5  # BasinCMA: CMA-ES step size in z
threshold = 0.1  # the LPIPS a run must reach for "evaluations to threshold"
# finished runs are kept here, so a killed run resumes where it stopped (None: no store)
inversion_store = "runs/inversion"
# runs per stored unit (a multiple of 32, the rows per pass through the generator)
unit_rows = 64
# the toy quadratic
toy_angles = 7  # start angles from the flat eigenvector, evenly from 0 to 90 degrees
toy_lrs = [0.01, 0.03, 0.1, 0.3, 1.0]
toy_steps = 300
device = "cpu"
cpu_threads = None  # torch threads on the CPU (None: torch's default, every core)
# progress bars for the long loops (in Jupyter; the book runner shows its own)
progress = False

# %% tags=["hide-input"]
import os

# idle threads sleep instead of spinning: set before torch loads
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import math

import torch
from IPython.display import display

from helpers import generators, inversion_study, optimisers, stats, toy, viz
from helpers.report import glue, phrase_list, plural, result_table

models = ([generators.EMBEDDED[0], "cdcgan-eyes128"] if inversion_models is None
          else list(inversion_models))
glue("first_model", models[0])
glue("models_text", " and ".join(f"`{m}`" for m in models))
glue("pixel_weight", pixel_weight)
glue("basin_popsize", basin_popsize)
glue("basin_inner_steps", basin_inner_steps)
glue("basin_generations", basin_generations)
glue("budget", budget)
glue("other_budget", other_budget)
glue("n_tune", n_tune)
other_methods_text = glue("other_methods_text",
                          phrase_list(other_methods) if len(models) > 1 else "(none)")
bench = optimisers.setup(models, distance, n_points, seed, device=device,
                         cpu_threads=cpu_threads)
# the parameters that decide the comparison
plan = inversion_study.Plan.from_parameters(globals(), models=models)
toy_eigen, toy_original = toy.authors_toy()
toy_paper_setting = glue("toy_paper_setting", toy.AUTHORS_SETTING)
toy_paper_eigen = glue("toy_paper_eigen", toy_eigen)
toy_paper_original = glue("toy_paper_original", toy_original)

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
# ({eval}`toy_paper_setting`), Adam ends at $f$ = {eval}`f"{toy_paper_eigen:.2e}"` in the eigenbasis
# and {eval}`f"{toy_paper_original:.4g}"` in the original coordinates: the paper's {paper}`0.007` and
# {paper}`7.155`.
#
# One setting can mislead: near the minimum Adam's steps oscillate, so $f$ jumps up and down by orders of
# magnitude, and where a run stops decides how large the gap looks. The sweep below runs Adam from starts
# on a circle, at angles from the flat eigenvector to the steep one, with several learning rates, in both
# coordinate systems, and measures where each run has got to by the mean of $\log_{10} f$ over the last
# quarter of its steps, which does not depend on the step it stops at. The heat map shows the ratio of the
# two after all the steps; the line chart, how it changes with the number of steps.

# %%
sweep = toy.toy_sweep(torch.linspace(0, math.pi / 2, toy_angles), toy_lrs,
                      steps=toy_steps)
viz.gap_heatmap(sweep.gap(), sweep.lrs, sweep.start_angles,
                title=f"log10 (f in x ÷ f in the eigenbasis) after {toy_steps} steps")

# %%
toy_verdict = glue("toy_verdict", toy.verdict(sweep))
steps, curves = sweep.gap_curves()
viz.line_chart(steps, curves, title="median over starts off the eigenvectors",
               xlabel="Adam steps", ylabel="log10 (f in x ÷ f in the eigenbasis)")

# %% [markdown]
# {eval}`toy_verdict`
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
# top-$k$ subspace keeps the first $k$ of them, with $k$ = {eval}`f"{top_k:d}"`.
#
# The targets are of two kinds. Generated targets are images the model made from codes drawn with another
# seed: their true codes $z_\text{true}$ are known, and the model can reproduce them exactly. Real
# photographs ship with scikit-image: the astronaut's face (Eileen Collins) and faces of its subset of
# Labeled Faces in the Wild (grey, a low resolution) for the face models; the astronaut's eyes for the eyes
# model. Learning rates are tuned on separate generated targets, never on the test targets.

# %%
glue("top_k", top_k)
viz.markdown_table(optimisers.metric_table(bench.models, top_k), precision=3)

# %%
targets = {name: inversion_study.targets(plan, name, model.G)
           for name, model in bench.models.items()}
for name, t in targets.items():
    display(viz.image_grid(t.test.cpu(), nrow=min(len(t.test), 12),
                           title=f"{name}: the test targets"))
bench.clock.lap("models and targets")

# %% [markdown]
# ## Every method, tuned, with the same budget
#
# Five methods, all with the paper's loss, LPIPS plus {eval}`f"{pixel_weight:.3g}"` times the mean absolute
# pixel difference (the runs report LPIPS alone):
#
# - **z**: Adam on the code itself;
# - **eigenbasis**: Adam on the coordinates $c = V^\top z$ in the full eigenbasis $V$, a rotation of $z$ that
#   starts from the same code;
# - **top-k**: Adam on $c$ in the top-$k$ subspace, $z = z_0 + V_k c$: only the steepest directions move;
# - **BasinCMA, z** and **BasinCMA, eigenbasis**: the paper's inversion of BigGAN. CMA-ES proposes
#   {eval}`f"{basin_popsize:d}"` codes per generation around the start; each gets
#   {eval}`f"{basin_inner_steps:d}"` Adam steps; CMA-ES learns from the distances they reach; after
#   {eval}`f"{basin_generations:d}"` generations Adam refines the best code for the rest of the budget. The
#   basis is that of the Adam steps.
#
# The budget is the number of images a run puts through the generator: every Adam step is one, every code
# BasinCMA tries costs its inner steps. Each method gets {eval}`f"{budget:d}"` images per run on the first
# model and {eval}`f"{other_budget:d}"` on the others, whose images cost more. On the first model all five
# methods run; on the others {eval}`other_methods_text`.
#
# Each method's learning rate (and its schedule, when more than one is tried) is tuned
# separately, as the paper tuned Adam per basis: every candidate runs the full budget on
# {eval}`f"{n_tune:d}"` held-out generated targets, and the one with the lowest mean log LPIPS is used on the
# test targets. All candidates of a method run in one batch, as do all test runs. The table gives the
# learning rate and schedule each method was tuned to, its tuning score (mean $\log_{10}$ LPIPS over the
# tuning targets, lower is better) at every learning rate of the grid, the chosen one in bold, and whether
# the choice lies at an edge of the grid, where a wider grid might have found a better one.

# %%
results = {}
for name, model in bench.models.items():
    results[name] = inversion_study.run(plan, name, model, bench.distance,
                                        targets[name], progress=progress)
    bench.clock.lap(f"inversion, {name}")
tuning_note = glue("tuning_note", inversion_study.tuning_note(results, lrs, schedules))
viz.markdown_table(inversion_study.tuning_table(results, lrs))

# %% [markdown]
# {eval}`tuning_note`
#
# What the runs cost: the CPU time per image through each generator (from the runs' own times, also when
# they were read back from the store), and what the full profile's comparison would take at that rate.

# %%
cost = inversion_study.cost(plan, results, bench.clock.sections)
full_estimate = glue("full_estimate", cost.estimate(inversion_store))
viz.markdown_table(cost.table(), precision=3)

# %% [markdown]
# Summed over the models: {eval}`full_estimate`.

# %% [markdown]
# ## How fast each method converges
#
# The curves show, for the generated targets, the lowest LPIPS a run has reached after each image: the
# median over targets and starts, and the band from the 25th to the 75th percentile.

# %%
pairs_text = f"{plural(n_targets, 'generated target')} × {plural(n_starts, 'start')}"
for name, entry in results.items():
    display(viz.band_chart({label: stats.quartile_band(run.history[entry.generated])
                            for label, run in entry.runs.items()},
                           log_y=True, band="25–75 %",
                           xlabel="images through the generator",
                           ylabel="lowest LPIPS so far", title=f"{name}: {pairs_text}"))

# %% [markdown]
# ## Final LPIPS, images to a threshold, area under the curve
#
# Three measures per run: the final (lowest) LPIPS; the number of images it took to reach an LPIPS of
# {eval}`f"{threshold:.3g}"`; and the area under its curve, reported as the geometric mean of the lowest
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
comparisons = inversion_study.comparisons(results, threshold)
inversion_verdicts = glue("inversion_verdicts", inversion_study.verdicts(
    comparisons, threshold, results, lrs))
for name, entry in results.items():
    display(viz.markdown_table({"": [f"**{name}**, {pairs_text}"]}))
    display(viz.markdown_table(optimisers.summary_table(
        entry.runs, entry.generated, threshold, n_starts), precision=3))
    display(viz.markdown_table(optimisers.comparison_table(comparisons[name]),
                               precision=3))

# %% [markdown]
# The comparisons the paper makes, generated from the tables; a method counts as ending lower (or
# higher) than another when the whole $95\%$ interval of their final-LPIPS ratio lies below (or above)
# one:
#
# {eval}`inversion_verdicts`
#
# On the photographs the same methods run from the same starts; there is no true code, and too few
# photographs for a test, so the table only summarises them.

# %%
for name, entry in results.items():
    if len(entry.targets.labels):
        photos = plural(len(entry.targets.labels), "photograph")
        starts = plural(n_starts, "start")
        display(viz.markdown_table({"": [f"**{name}**, {photos} × {starts}"]}))
        display(viz.markdown_table(optimisers.summary_table(
            entry.runs, entry.photographs, threshold, n_starts), precision=3))

# %% tags=["hide-input"]
best_method, best_median = inversion_study.best_method(results[models[0]])
best_method = glue("best_method", best_method)
best_median = glue("best_median", best_median)
paper_ids = {"BasinCMA, z": "basin_cma_lpips_plain",
             "BasinCMA, eigenbasis": "basin_cma_lpips_hessian"}
note = (f"{plural(n_targets, 'target')} × {plural(n_starts, 'start')} per model, "
        f"{budget} images per run on {models[0]}, {other_budget} on the others; the "
        f"paper's numbers are the final LPIPS of BasinCMA on a real image")

# %%
result_table(
    "inversion_final_lpips",
    "Inversion: median final LPIPS, each method tuned",
    rows=list(methods), columns=inversion_study.final_lpips(results, methods),
    paper={"paper: BigGAN, one ImageNet image": [paper_ids.get(m) for m in methods]},
    row_header="method", note=note)

# %% [markdown]
# The table above, also on the results page, lists the paper's only inversion numbers beside ours, on
# generated targets and on photographs. The photographs are the closer comparison, as the paper inverted a
# real image, but still not a like one: the paper inverted an ImageNet image with BigGAN at a higher
# resolution, with a much larger budget.
#
# ## The reconstructions
#
# For every target, the best image each method found over its starts. On the first model the best method,
# {eval}`best_method`, reached a median (over generated targets) best LPIPS of
# {eval}`f"{best_median:.2g}"`. Look at the rows of generated targets: are they the same faces and eyes?

# %%
for name, entry in results.items():
    grid, rows, columns = inversion_study.best_images(entry)
    best_of = plural(n_starts, "start")
    display(viz.montage(grid, rows, columns,
                        title=f"{name}: targets and the best of {best_of}"))

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
errors = inversion_study.code_errors(results, bench.models, top_k, threshold)
latent_verdict = glue("latent_verdict", inversion_study.code_verdict(
    errors, models[0], bench.models[models[0]].G.latent_dim, top_k, threshold))
viz.markdown_table(errors.table, precision=3)

# %% [markdown]
# {eval}`latent_verdict`
#
# The metric says why this can happen: along a flat direction (a small eigenvalue) the image barely
# changes, so nothing pulls the code towards $z_\text{true}$ there, and many codes make nearly the same
# image. An inversion judged by $\lVert z - z_\text{true} \rVert$ can then fail while its image succeeds;
# the numbers above say how much of that happens here. The top-$k$ subspace gives up the flat directions
# altogether: its runs cannot leave the plane through their start, so they keep whatever error the start
# had in the other directions.

# %% tags=["hide-input"]
toy_matches = toy.matches_paper(toy_eigen, toy_original)
agreement = glue("agreement", inversion_study.agreement(plan, comparisons, toy_matches))
scope = glue("scope", inversion_study.scope(plan, comparisons, cost))
units = [u for entry in results.values() for u in entry.units]
run_note = glue("run_note", bench.clock.sentence(
    read=sum(u.read for u in units), units=len(units), store=inversion_store))

# %% [markdown]
# ## Where this agrees with the paper, and where not
#
# {eval}`agreement`
#
# ## What this run can and cannot decide
#
# {eval}`scope`
#
# {eval}`run_note` Where the time went:

# %%
viz.markdown_table(bench.clock.table(), precision=1)

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
