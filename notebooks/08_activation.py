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

run_times = glue("run_times", run_times("08_activation"))

# %% [markdown]
# # Activation maximisation with Hessian-aware CMA-ES
#
# **What this chapter tests.** The paper's second use of the metric in optimization (its figure 5, right):
# searching, without gradients, for the code whose image drives a unit of a CNN as high as possible. If the
# metric is strongly anisotropic and much the same at every code, a CMA-ES search that starts with its steps
# shaped by the average metric (the Hessian-aware search) should climb faster than an isotropic one. This
# page runs both searches on units of AlexNet from the same starts with the same budget, and compares them
# pair by pair, layer by layer, with a control: a search without the metric in a random subspace of the
# same size. Chapter 05 asks the same question of inversion. The table is also on the
# [results page](results.md).
#
# **Rerun it** ({eval}`run_times`):
#
# ```bash
# python -m helpers.book run --only 08 -p seed 1 -p am_budget 300
# ```

# %% tags=["parameters"]
# image priors (None: the book's first model; the full profile adds the eyes model)
am_models = None
# the distance of the metric (AlexNet itself is always LPIPS-alex's verified trunk)
distance = "lpips-alex"
seed = 0
# codes of the average metric (read back from chapter 02's metric store if there)
n_points = 8
top_k = 20  # size of the eigen-subspace of the Hessian-aware search
am_layers = ["conv1", "conv2", "conv3", "conv4", "conv5"]
am_units = 3  # units per layer
# starts per unit (the paper's 5 repetitions); each start runs both searches
am_repeats = 5
control_repeats = 2  # starts per unit (the first ones) of the random-subspace control
am_budget = 100  # images per search
am_sigma = 0.5  # initial CMA-ES step size (z units)
device = "cpu"
cpu_threads = None  # torch threads on the CPU (None: torch's default, every core)
# progress bars for the long loops (in Jupyter; the book runner shows its own)
progress = False

# %% tags=["hide-input"]
import os

# idle threads sleep instead of spinning: set before torch loads
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

from IPython.display import display

from helpers import activation, activation_study, generators, optimisers, viz
from helpers.report import glue, plural, result_table

am_models = [generators.EMBEDDED[0]] if am_models is None else list(am_models)
bench = optimisers.setup(am_models, distance, n_points, seed, device=device,
                         cpu_threads=cpu_threads)

# %% [markdown]
# ## The units, the priors and their average metrics
#
# The objective is the activation of one unit of AlexNet (trained on ImageNet; the trunk of LPIPS-alex, with
# its verified weights): one channel of conv1 to conv5 at the centre of its map, before the ReLU, for the
# generated image resized to the 224×224 pixels AlexNet expects and normalised as it expects. AlexNet here
# has no fully connected layers, so the paper's fc6 to fc8 units are out of reach.
#
# The generator is the image prior: the search moves its code, never the pixels. For each prior the average
# metric comes from the codes chapter 02 computed its metric at (read back from the store the chapters
# share under `runs/metrics`, or computed if absent); for the eyes model it is the noise block of the full
# metric. The Hessian-aware search lives in its top-$k$ eigen-subspace, with $k$ = {eval}`f"{top_k:d}"`.

# %%
top_k = glue("top_k", top_k)
viz.markdown_table(optimisers.metric_table(bench.models, top_k), precision=3)

# %% [markdown]
# ## Two searches from the same start
#
# Two searches start from the same code with the same budget of {eval}`f"{am_budget:d}"` images: isotropic
# CMA-ES on all of $z$, and the paper's Hessian-aware CMA-ES on the top-$k$ eigen-subspace, with initial
# steps along eigenvector $i$ proportional to $\lambda_i^{-2/5}$ (scaled so that a first step is as long
# on average as an isotropic one). Each of {eval}`f"{am_units:d}"` units per layer is searched from
# {eval}`f"{am_repeats:d}"` starts. Activations are divided by the mean size of the unit's final
# activations over all its searches, so units of different scales pool within a layer; a pair is one unit
# and one start, and the gain is the Hessian-aware search's normalised activation minus the isotropic one's.

# %% tags=["hide-input"]
am_budget = glue("am_budget", am_budget)
am_units = glue("am_units", am_units)
am_repeats = glue("am_repeats", am_repeats)
bench.clock.lap("models")
lpips_alex = bench.distance if getattr(bench.distance, "net", None) == "alex" else None
units = activation.Units(activation.pick_units(am_layers, am_units, seed=seed),
                         activation.alexnet_features(lpips_alex))
search = dict(seed=seed, top_k=top_k, budget=am_budget, sigma0=am_sigma,
              progress=progress)

# %%
searches = {}
for name, model in bench.models.items():
    searches[name] = activation_study.both_searches(model.G, model.average, units,
                                                    am_repeats, **search)
    bench.clock.lap(f"searches, {name}")

# %% [markdown]
# Per layer, the table counts the pairs in which the Hessian-aware search ended higher and gives the mean
# gain with its $95\%$ interval, at the end and after a quarter of the budget, with the Wilcoxon p-value
# (which, like the intervals within a layer, treats the pairs as independent). The curves follow the median
# normalised activation, over the pairs of the first and the last layer, as the searches spend their budget.

# %%
layers = {name: activation_study.compare_layers(iso, hess, units, am_layers)
          for name, (iso, hess) in searches.items()}
for name, comparison in layers.items():
    display(viz.markdown_table(
        {"": [f"**{name}** as the prior: final activations, normalised per unit"]}))
    display(viz.markdown_table(comparison.table, precision=3))
viz.line_panels({f"{name}, {layer}": curves for name, c in layers.items()
                 for layer, curves in c.curves.items()},
                xlabel="images", ylabel="normalised activation",
                title="median best activation so far")

# %% [markdown]
# ## The control: a random subspace of the same size
#
# The Hessian-aware search differs from the isotropic one in two ways: it searches
# {eval}`f"{top_k:d}"` dimensions instead of all of them, and it chooses them, and its step sizes, from the
# metric. Is the gain the metric's, or would any smaller search space do? The control searches a random
# subspace of the same size through the same start, isotropic in it, with steps of the same expected length
# and the same budget: the Hessian-aware search without the Hessian. It runs from the first
# {eval}`f"{control_repeats:d}"` starts of every unit (each start its own random subspace), and the
# table compares it with both searches on those pairs, pooled over layers, with intervals that resample
# whole units.

# %%
control_repeats = glue("control_repeats", control_repeats)
controls = {}
for name, model in bench.models.items():
    random_search = activation_study.control_search(model.G, units, am_repeats,
                                                    control_repeats, **search)
    controls[name] = activation_study.compare_control(*searches[name], random_search)
    bench.clock.lap(f"random-subspace control, {name}")
result_table(
    "activation_control", "The random-subspace control: the three searches "
    "against each other on the same pairs, AlexNet units",
    rows=list(activation_study.CONTROL_ROWS),
    columns=activation_study.result_columns(controls, higher="first higher"),
    row_header="comparison", note=f"{plural(len(units.units), 'unit')} × "
    f"{plural(control_repeats, 'start')} (each unit's first); gain: the first search "
    f"minus the second, normalised per unit; intervals resample whole units")

# %% tags=["hide-input"]
control_verdict = glue("control_verdict", " ".join(
    activation_study.control_verdict(c, name) for name, c in controls.items()))

# %% [markdown]
# Taking a gain as decided when the whole $95\%$ interval of the mean gain lies on one side of zero:
# {eval}`control_verdict`
#
# ## What the searches found
#
# For every unit, the image of the search (over its starts) that drove it highest, for each kind of search.

# %%
for name, (iso, hess) in searches.items():
    display(viz.montage(activation_study.best_images(iso, hess, len(units.units)),
                        [f"{layer}, channel {c}" for layer, c in units.units],
                        ["isotropic", "Hessian-aware"],
                        title=f"{name}: the image of the best search per unit"))

# %% tags=["hide-input"]
am_verdict = glue("am_verdict", activation_study.verdict(layers))
am_full = glue("am_full", activation_study.full_run_check(layers, am_layers))
note = (f"{plural(am_units, 'unit')} per layer × {plural(am_repeats, 'start')}, "
        f"{am_budget} images per search, top {top_k} eigenvectors of the average "
        f"metric at {n_points} codes; gain: Hessian-aware minus isotropic, activations "
        f"divided by the unit's mean final activation; intervals over pairs within a "
        f"layer, over units pooled")

# %%
result_table(
    "optimization_activation",
    "Activation maximisation: Hessian-aware (top-k) against isotropic CMA-ES, "
    "AlexNet units",
    rows=list(am_layers) + ["all layers"],
    columns=activation_study.result_columns(layers),
    paper={"paper: BigGAN, AlexNet conv1–fc8": [None] * (len(am_layers) + 1)},
    row_header="layer", note=note)

# %% tags=["hide-input"]
agreement = glue("agreement", activation_study.agreement(layers))
scope = glue("scope", activation_study.scope(
    am_models, len(units.units), am_units, am_repeats, am_budget,
    bench.models[am_models[0]].G.latent_dim))
run_note = glue("run_note", bench.clock.sentence())

# %% [markdown]
# {eval}`am_verdict` {eval}`am_full`
#
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
# - `--profile full`: both priors and the longer searches of `-p am_budget 300`; the units and
#   starts stay as in the default run, and the control runs from every start.
# - `-p am_units 6 -p control_repeats 5`: more units per layer, and the control from every start; the
#   intervals narrow, and a layer's result speaks for more of its channels.
# - `-p top_k 5` or `-p top_k 50`: a smaller subspace is faster early and worse late; does the random
#   subspace of the same size follow the Hessian-aware one?
# - `-p am_sigma 0.2`: the paper's initial step size for BigGAN; does the gap between the searches change?
