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
# # Activation maximisation with Hessian-aware CMA-ES
#
# **What this chapter tests.** The paper's second use of the metric in optimization (its figure 5, right):
# searching, without gradients, for the code whose image drives a unit of a CNN as high as possible. If the
# metric is strongly anisotropic and much the same at every code, a CMA-ES search that starts with its steps
# shaped by the average metric (the Hessian-aware search) should climb faster than an isotropic one. This
# page runs both searches on units of AlexNet from the same starts with the same budget, and compares them
# pair by pair, layer by layer. Chapter 05 asks the same question of inversion. The table is also on the
# [results page](results.md).
#
# **Rerun it** ({glue:text}`run_times`):
#
# ```bash
# python -m helpers.book run --only 08 -p seed 1 -p am_budget 300
# ```

# %% tags=["parameters"]
am_models = None  # generators used as image priors (None: the book's first model; the full profile adds the eyes model)
distance = "lpips-alex"  # the distance of the metric (AlexNet itself is always LPIPS-alex's verified trunk)
seed = 0
n_points = 8  # codes of the average metric (read back from chapter 02's metric store when it has them)
top_k = 20  # size of the eigen-subspace of the Hessian-aware search
am_layers = ["conv1", "conv2", "conv3", "conv4", "conv5"]
am_units = 3  # units per layer
am_repeats = 5  # starts per unit (the paper's 5 repetitions); each start runs both searches
am_budget = 100  # images per search
am_sigma = 0.5  # initial CMA-ES step size (z units)
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

from helpers import activation, analysis, distances, generators, stats, viz
from helpers.catalogue import model_metrics
from helpers.profiles import PROFILES
from helpers.report import glue, phrase_list, plural, result_table, run_times

warnings.filterwarnings("ignore", module="torchvision.models._utils")  # lpips's deprecated `pretrained=`
if cpu_threads:
    torch.set_num_threads(cpu_threads)
glue("run_times", run_times("08_activation"))
am_models = [generators.EMBEDDED[0]] if am_models is None else list(am_models)
d = distances.load(distance, device=device)
started, cpu_started = time.time(), time.process_time()
clock = {}  # seconds of wall and CPU time per section


def tick(section, since):
    clock[section] = (time.time() - since[0], time.process_time() - since[1])
    return time.time(), time.process_time()


mark = (started, cpu_started)

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
# metric. The Hessian-aware search lives in its top-$k$ eigen-subspace, with $k$ = {glue:text}`top_k:d`.

# %%
glue("top_k", top_k)


def load_model(name):
    """(G, average metric) for a model: its metrics at n_points codes, from the store the chapters share."""
    shared = model_metrics(name, distance, n_points, seed, loaded=d, device=device)
    return shared.G, analysis.average_metric(shared.metric)


loaded = {name: load_model(name) for name in dict.fromkeys(am_models)}
viz.markdown_table({"model": list(loaded), "d": [G.latent_dim for G, _ in loaded.values()],
                    f"trace in the top {top_k}": [float(avg.eigvals[:top_k].sum() / avg.eigvals.sum())
                                                  for _, avg in loaded.values()],
                    "λ1 / λd": [float(avg.eigvals[0] / avg.eigvals[-1].clamp_min(1e-30))
                                for _, avg in loaded.values()]},
                   precision=3)

# %% [markdown]
# ## Two searches from the same start
#
# Two searches start from the same code with the same budget of {glue:text}`am_budget:d` images: isotropic
# CMA-ES on all of $z$, and the paper's Hessian-aware CMA-ES on the top-$k$ eigen-subspace, with initial
# steps along eigenvector $i$ proportional to $\lambda_i^{-2/5}$ (scaled so that a first step is as long
# on average as an isotropic one). Each of {glue:text}`am_units:d` units per layer is searched from
# {glue:text}`am_repeats:d` starts. Activations are divided by the mean size of the unit's final
# activations over all its searches, so units of different scales pool within a layer; a pair is one unit
# and one start, and the gain is the Hessian-aware search's normalised activation minus the isotropic one's.

# %%
glue("am_budget", am_budget)
glue("am_units", am_units)
glue("am_repeats", am_repeats)
mark = tick("models", mark)
features = activation.alexnet_features(d if getattr(d, "net", None) == "alex" else None)
units = activation.Units(activation.pick_units(am_layers, am_units, seed=seed), features)
unit_of = torch.arange(len(units.units)).repeat_interleave(am_repeats)
am_seeds = [seed + 3000 + i for i in range(len(unit_of))]
am_results = {}
for name in am_models:
    G, avg = loaded[name]
    iso = activation.maximize(G, units, unit_of, am_seeds, budget=am_budget, sigma0=am_sigma, progress=progress)
    hess = activation.maximize(G, units, unit_of, am_seeds, basis=avg.eigvecs[:, :top_k], eigvals=avg.eigvals[:top_k],
                       budget=am_budget, sigma0=am_sigma, progress=progress)
    am_results[name] = (iso, hess)
    mark = tick(f"searches, {name}", mark)


def span(low, high, spec=".3g", form="[{}, {}]"):
    """An interval as text, or 'no interval' when there was one unit only, nothing to resample."""
    if not (math.isfinite(low) and math.isfinite(high)):
        return "no interval: one unit"
    return form.format(format(low, spec), format(high, spec))


CI_MATH = "$95\\%$ CI {} to {}"  # an interval in a glued sentence (math: the percent sign)


def normalised(iso, hess):
    """Both searches' histories (R, budget), divided per unit by the mean size of its final activations (all runs
    of both searches), so that units of different scales pool within a layer."""
    finals = torch.cat([iso.best, hess.best]).abs()
    owners = torch.cat([unit_of, unit_of])
    scale = torch.stack([finals[owners == u].mean() for u in unit_of]).clamp_min(1e-6)[:, None]
    return iso.history / scale, hess.history / scale


panels = {}
am_tables, am_paired = {}, {}
quarter = max(1, am_budget // 4) - 1
for name, (iso, hess) in am_results.items():
    h_iso, h_hess = normalised(iso, hess)
    rows = {"layer": [], "pairs": [], "Hessian-aware higher": [], "mean gain [95 % CI]": [], "p (Wilcoxon)": [],
            f"mean gain after {quarter + 1} images": []}
    finals = {}
    for layer in am_layers + ["all layers"]:
        mask = torch.tensor([layer in (units.units[u][0], "all layers") for u in unit_of.tolist()])
        # within a layer the pairs (unit × start) are taken as independent, as the paper's per-unit tests did;
        # pooled over layers, the interval resamples whole units
        groups = unit_of[mask].numpy() if layer == "all layers" else None
        final = stats.paired(h_iso[mask, -1], h_hess[mask, -1], groups=groups)
        early = stats.paired(h_iso[mask, quarter], h_hess[mask, quarter], groups=groups)
        finals[layer] = final
        rows["layer"].append(layer)
        rows["pairs"].append(final.n)
        rows["Hessian-aware higher"].append(final.wins)
        rows["mean gain [95 % CI]"].append(f"{-final.mean:+.3g} {span(-final.ci[1], -final.ci[0], '+.3g')}")
        rows["p (Wilcoxon)"].append(final.p_wilcoxon)
        rows[f"mean gain after {quarter + 1} images"].append(
            f"{-early.mean:+.3g} {span(-early.ci[1], -early.ci[0], '+.3g')}")
        if layer in (am_layers[0], am_layers[-1]):
            x = np.arange(1, am_budget + 1)
            panels[f"{name}, {layer}"] = (x, {"isotropic, z": h_iso[mask].median(0).values,
                                              f"Hessian-aware, top {top_k}": h_hess[mask].median(0).values})
    am_tables[name] = rows
    am_paired[name] = finals
    display(viz.markdown_table({"": [f"**{name}** as the prior: final activations, normalised per unit"]}))
    display(viz.markdown_table(rows, precision=3))
viz.line_panels(panels, xlabel="images", ylabel="normalised activation",
                title="median best activation so far")

# %% [markdown]
# ## What the searches found
#
# For every unit, the image of the search (over its starts) that drove it highest, for each kind of search.

# %%
for name, (iso, hess) in am_results.items():
    best = [[run.images[(unit_of == u).nonzero().flatten()[run.best[unit_of == u].argmax()]].cpu()
             for run in (iso, hess)] for u in range(len(units.units))]
    display(viz.montage(torch.stack([torch.stack(row) for row in best]), [f"{l}, channel {c}" for l, c in units.units],
                        ["isotropic", "Hessian-aware"], title=f"{name}: the image of the best search per unit",
                        label_width=130))

# %%
def judge(result, *, min_groups=5):
    """'lower', 'higher', 'undecided' (the interval holds no change) or 'too few' (fewer than min_groups units to
    resample) for a Paired comparison of isotropic against Hessian-aware activations (differences)."""
    low, high = result.ci
    if result.n_groups < min_groups:
        return "too few"
    return "lower" if high < 0 else "higher" if low > 0 else "undecided"


am_lines, am_paired_pooled = [], {}
for name, finals in am_paired.items():
    pooled = am_paired_pooled[name] = finals.pop("all layers")
    higher = [layer for layer, f in finals.items() if -f.ci[1] > 0]  # the gain's interval is -ci, reversed
    lower = [layer for layer, f in finals.items() if -f.ci[0] < 0]
    am_lines.append(f"with `{name}` as the prior, the Hessian-aware search ended higher in {pooled.wins} of "
                    f"{plural(pooled.n, 'pair')}, by a mean normalised gain of {-pooled.mean:+.3g} ("
                    f"{span(-pooled.ci[1], -pooled.ci[0], '+.3g', CI_MATH + ', units resampled')}); per layer, "
                    f"the interval of the gain lies above zero in " + phrase_list(higher)
                    + (f" and below zero in {phrase_list(lower)}" if lower else ""))
glue("am_verdict", "; ".join(am_lines)[0].upper() + "; ".join(am_lines)[1:] + ".")
result_table(
    "optimization_activation", "Activation maximisation: Hessian-aware (top-k) against isotropic CMA-ES, AlexNet units",
    rows=list(am_layers) + ["all layers"],
    columns={f"ours, {name}: mean gain [95 % CI]": rows["mean gain [95 % CI]"] for name, rows in am_tables.items()}
    | {f"ours, {name}: higher / pairs": [f"{w}/{n}" for w, n in zip(rows["Hessian-aware higher"], rows["pairs"])]
       for name, rows in am_tables.items()},
    paper={"paper: BigGAN, AlexNet conv1–fc8": [None] * (len(am_layers) + 1)}, row_header="layer",
    note=f"{plural(am_units, 'unit')} per layer × {plural(am_repeats, 'start')}, {am_budget} images per search, "
         f"top {top_k} eigenvectors of the average metric at {n_points} codes; gain: Hessian-aware minus isotropic, activations "
         f"divided by the unit's mean final activation; intervals over pairs within a layer, over units pooled")

# %%
parts = []
for name, rows in am_tables.items():
    r = am_paired_pooled[name]  # isotropic minus Hessian-aware: "lower" means the Hessian-aware search is higher
    parts.append(f"With `{name}` as the prior, the Hessian-aware search " + {
        "lower": "ends higher than the isotropic one, as the paper found",
        "higher": "ends lower than the isotropic one, against the paper",
        "undecided": "cannot be told from the isotropic one",
        "too few": "is compared with the isotropic one on too few units to judge"}[judge(r)]
        + f" (mean normalised gain {rows['mean gain [95 % CI]'][-1]}).")
parts.append("The paper searched with BigGAN as the prior, a much larger generator, and units up to fc8.")
glue("agreement", " ".join(parts))
popsize = 4 + int(3 * math.log(loaded[am_models[0]][0].latent_dim))  # cma's default population in z
full = PROFILES["full"]
missing = [f"`{m}`" for m in full["am_models"] if m not in am_models]
n_units = len(units.units)
glue("scope",
     f"This run searches {plural(len(unit_of), 'unit-start')} per prior ({plural(am_units, 'unit')} per layer × "
     f"{plural(am_repeats, 'start')}) with {am_budget} images each, about "
     f"{plural(max(1, round(am_budget / popsize)), 'CMA-ES generation')} where the paper ran a hundred: it shows "
     f"the early race, not the end. "
     + (f"Pooled over layers its interval resamples {plural(n_units, 'unit')}, enough to decide a clear difference; "
        if n_units >= 5 else f"Pooled over layers there are only {plural(n_units, 'unit')} to resample: too few to "
                             f"decide anything, so this run only shows that every step works; ")
     + f"per layer, {plural(am_units * am_repeats, 'pair')} from {plural(am_units, 'unit')}: a layer's interval "
     f"speaks for these units, not for every channel of the layer. "
     + (f"It does not test {phrase_list(missing)} as a prior, whose images cost more; the" if missing else "The")
     + f" full profile (`--profile full`) searches with {phrase_list(f'`{m}`' for m in full['am_models'])} as priors, "
     f"{full['am_units']} units per layer × {full['am_repeats']} starts and {full['am_budget']} images a search.")
print(f"chapter ran in {time.time() - started:.0f} s wall, {time.process_time() - cpu_started:.0f} s of CPU")
viz.markdown_table({"section": list(clock), "wall s": [w for w, _ in clock.values()],
                    "CPU s": [c for _, c in clock.values()]}, precision=1)

# %% [markdown]
# {glue:md}`am_verdict:myst`
#
# ## Where this agrees with the paper, and where not
#
# {glue:md}`agreement:myst`
#
# ## What this run can and cannot decide
#
# {glue:md}`scope:myst`

# %% [markdown]
# ## Try it
#
# - `--profile full`: both priors, more units and starts, and longer searches; the intervals narrow.
# - `-p am_models "['dcgan-celeba64', 'cdcgan-eyes128']" -p am_budget 500`: activation maximisation with
#   both priors and a longer search, closer to the paper's hundred generations.
# - `-p top_k 5` or `-p top_k 50`: a smaller subspace is faster early and worse late; where is the balance?
# - `-p am_sigma 0.2`: the paper's initial step size for BigGAN; does the gap between the searches change?
