# ---
# jupyter:
#   jupytext:
#     formats: ipynb,py:percent
#     text_representation:
#       extension: .py
#       format_name: percent
#   kernelspec:
#     display_name: Python 3 (ipykernel)
#     language: python
#     name: python3
# ---

# %% [markdown]
# # Optimization in the eigenbasis: inversion and activation maximisation
#
# DRAFT

# %% tags=["parameters"]
models = ["dcgan-faces64", "cdcgan-eyes128"]  # the first gets every method; the others `other_methods`
distance = "lpips-alex"
seed = 0
n_points = 8  # codes of the average metric (chapter 02's metric store, read back)
top_k = 20  # size of the eigen-subspace (top-k Adam, Hessian-aware CMA-ES)
# inversion
methods = ["z", "eigenbasis", "top-k", "BasinCMA, z", "BasinCMA, eigenbasis"]
other_methods = ["z", "eigenbasis"]
budget = 60  # images through G per run (Adam steps, or BasinCMA's evaluations), every method of the first model
other_budget = 30  # the same for the other models (the eyes model costs five times as much per image)
n_targets = 10  # generated test targets per model
n_starts = 3  # starts per target: the pairs of the comparison are targets × starts
n_tune = 2  # generated tuning targets per model (held out of the test set), one start each
n_photos = 2  # real photographs per model (faces: the astronaut, then LFW faces; eyes: the astronaut's eyes)
lrs = [0.1, 0.2, 0.4]  # learning rates each method is tuned over
schedules = ["cosine"]  # learning-rate schedules each method is tuned over: constant, cosine, step
pixel_weight = 1.0  # weight of the mean absolute pixel difference added to LPIPS (the paper's LPIPS + L1)
basin_generations = 2
basin_popsize = 5
basin_inner_steps = 3
basin_sigma = 0.5
threshold = 0.1  # LPIPS a run must reach for "evaluations to threshold"
# activation maximisation
am_layers = ["conv1", "conv2", "conv3", "conv4", "conv5"]
am_units = 2  # units per layer
am_repeats = 3  # starts per unit; each start runs both searches
am_budget = 100  # images per search
am_sigma = 0.5  # initial CMA step size (z units)
am_models = None  # generators used as image priors (None: the first model)
# the toy quadratic
toy_angles = 7  # start angles from 0° to 90°
toy_lrs = [0.01, 0.03, 0.1, 0.3, 1.0]
toy_steps = 300
device = "cpu"
cpu_threads = None  # torch threads on the CPU (None: torch's default, every core)
progress = False  # progress bars for the long loops (for Jupyter; the book runner shows its own)

# %%
import math
import os
import time
import warnings

# Threads that wait for work sleep instead of spinning: on a busy machine spinning threads multiply the run
# time several times over (measured on 2 shared cores: 76 against 199 ms per image); idle, it costs nothing.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import numpy as np
import torch
from IPython.display import display

from helpers import activation as AM
from helpers import analysis as A
from helpers import distances, generators, stats, viz
from helpers import inversion as I
from helpers.batch import metric_many
from helpers.book import glue, record

warnings.filterwarnings("ignore", module="torchvision.models._utils")  # lpips's deprecated `pretrained=`
if cpu_threads:
    torch.set_num_threads(cpu_threads)
d = distances.load(distance, device=device)
started = time.time()

# %% [markdown]
# ## The toy quadratic

# %%
paper_toy = I.toy_quadratic(angle=-math.pi / 3, start=(3.0, 9.0), steps=150, lr=0.1)
# the authors' f is xᵀHx, twice ours, printed at the last step evaluated
glue("toy_paper_eigen", 2 * paper_toy.history_eigenbasis[149].item())
glue("toy_paper_original", 2 * paper_toy.history_original[149].item())

angles = torch.linspace(0, math.pi / 2, toy_angles)
sweep = I.toy_sweep(angles, toy_lrs, steps=toy_steps)
ratio = (sweep.best_so_far("original") / sweep.best_so_far("eigenbasis")).log10()  # (angles, lrs, steps + 1)
degrees = [f"{a:.0f}°" for a in torch.rad2deg(angles).tolist()]
viz.heatmap(ratio[:, :, -1], [str(lr) for lr in toy_lrs], degrees, colorscale="RdBu", zmin=-float(ratio[:, :, -1].abs().max()),
            zmax=float(ratio[:, :, -1].abs().max()), xlabel="learning rate", ylabel="start angle from the flat eigenvector",
            colorbar_title="log10 ratio", title=f"log10 (lowest f in x / lowest f in the eigenbasis) after {toy_steps} steps")

# %%
checkpoints = sorted({s for s in (10, 25, 50, 100, 200, 300, toy_steps) if s <= toy_steps})
off_axis = (angles > 0.01) & (angles < math.pi / 2 - 0.01)
viz.line_chart(checkpoints, {f"lr {lr}": [float(ratio[off_axis, j, s].median()) for s in checkpoints]
                             for j, lr in enumerate(toy_lrs)},
               title="median over off-axis starts of log10 (f in x / f in the eigenbasis)", xlabel="steps",
               ylabel="log10 ratio of the lowest f so far")

# %%
cells = ratio[off_axis][:, :, -1]
glue("toy_share_10x", float((cells > 1).float().mean()))
on_axis = ratio[~off_axis][:, :, -1]
glue("toy_on_axis_max", float(on_axis.abs().max()))

# %% [markdown]
# ## The models, their average metrics and the targets

# %%
def load_model(name):
    """(G, average metric) for a model: the metric of `distance` at n_points codes, from chapter 02's store."""
    if name == "cdcgan-eyes128":  # chapter 02 stores the eyes model's full 108-d metric; its noise block is ours
        full = generators.load(name, space="full", device=device)
        m = metric_many(full, full.sample(n_points, seed=seed), d, progress=False,
                        store=f"runs/metrics/{full.name}-brown-{distance}-{n_points}-{seed}")
        H = A.restrict(m, full.blocks["noise"]).H
        return generators.load(name, device=device), A.average_metric(H)
    G = generators.load(name, device=device)
    m = metric_many(G, G.sample(n_points, seed=seed), d, progress=False,
                    store=f"runs/metrics/{G.name}-{distance}-{n_points}-{seed}")
    return G, A.average_metric(m)


am_models = models[:1] if am_models is None else list(am_models)
loaded = {name: load_model(name) for name in dict.fromkeys(models + am_models)}
for name, (G, avg) in loaded.items():
    print(f"{name}: {G.latent_dim}-d, top {top_k} eigenvectors carry "
          f"{float(avg.eigvals[:top_k].sum() / avg.eigvals.sum()):.1%} of the average metric's trace")

# %%
def targets_for(name):
    """Tuning targets, generated test targets (with their true codes) and photographs for a model."""
    G = loaded[name][0]
    z_tune, z_true = G.sample(n_tune, seed=seed + 1), G.sample(n_targets, seed=seed + 2)
    with torch.no_grad():
        tune_images, test_images = G(z_tune), G(z_true)
    kind = "eye" if "eye" in name else "face"
    count = min(n_photos, 2 if kind == "eye" else 101)  # the photographs scikit-image ships
    photos, labels = I.photo_targets(kind, count, test_images.shape[-1]) if count else (test_images[:0], [])
    return dict(tune=tune_images, generated=test_images, z_true=z_true, photos=photos.to(test_images), labels=labels)


targets = {name: targets_for(name) for name in models}
for name, t in targets.items():
    display_images = torch.cat([t["generated"], t["photos"]]).cpu()
    display(viz.image_grid(display_images, nrow=min(len(display_images), 12), title=f"{name}: test targets"))

# %% [markdown]
# ## Tuning and running every method

# %%
def method_specs(name):
    """{label: I.Method} for a model, with its eigenbasis."""
    V = loaded[name][1].eigvecs
    basin = dict(generations=basin_generations, popsize=basin_popsize, inner_steps=basin_inner_steps,
                 sigma0=basin_sigma)
    every = {"z": I.Method("z"), "eigenbasis": I.Method("eigenbasis", basis=V),
             "top-k": I.Method(f"top {top_k}", basis=V[:, :top_k]),
             "BasinCMA, z": I.Method("BasinCMA, z", kind="basin", options=basin),
             "BasinCMA, eigenbasis": I.Method("BasinCMA, eigenbasis", kind="basin", basis=V, options=basin)}
    wanted = methods if name == models[0] else other_methods
    unknown = sorted(set(wanted) - set(every))
    if unknown:
        raise ValueError(f"unknown methods {unknown}; choose from {list(every)}")
    return {label: every[label] for label in wanted}


def start_seeds(n_rows, offset):
    return [seed + offset + i for i in range(n_rows)]


results = {}
for name in models:
    G, t = loaded[name][0], targets[name]
    run_budget = budget if name == models[0] else other_budget
    tune_z0 = I.start_codes(G, start_seeds(n_tune, 2000))
    test_images = torch.cat([t["generated"], t["photos"]])
    index = torch.arange(len(test_images)).repeat_interleave(n_starts)
    test_seeds = start_seeds(len(index), 1000)
    test_z0 = I.start_codes(G, test_seeds)
    entry = results[name] = {"tuning": {}, "runs": {}, "index": index, "budget": run_budget, "seconds": {}}
    for label, method in method_specs(name).items():
        clock = time.time()
        tuned = I.tune(G, t["tune"], d, method, tune_z0, lrs=lrs, schedules=schedules, budget=run_budget,
                       seeds=start_seeds(n_tune, 2000), pixel_weight=pixel_weight, progress=progress)
        run = I.run_method(G, test_images, d, method, test_z0, target_index=index, budget=run_budget, lr=tuned.lr,
                           schedule=tuned.schedule, seeds=test_seeds, pixel_weight=pixel_weight, progress=progress)
        entry["tuning"][label], entry["runs"][label] = tuned, run
        entry["seconds"][label] = time.time() - clock
    print(f"{name}: {len(entry['runs'])} methods × ({len(lrs) * len(schedules)} candidates × {n_tune} tuning runs + "
          f"{len(index)} test runs) × {run_budget} evaluations in {sum(entry['seconds'].values()):.0f} s")

# %%
viz.markdown_table({"model": [n for n in models for _ in results[n]["tuning"]],
                    "method": [m for n in models for m in results[n]["tuning"]],
                    "learning rate": [t.lr for n in models for t in results[n]["tuning"].values()],
                    "schedule": [t.schedule for n in models for t in results[n]["tuning"].values()]}, precision=3)

# %% [markdown]
# ## Convergence

# %%
def band(history):
    """(x, median, 25th, 75th percentile) of histories (n, budget)."""
    h = history.double().cpu().numpy()
    return (np.arange(1, h.shape[1] + 1), np.median(h, 0), np.quantile(h, 0.25, 0), np.quantile(h, 0.75, 0))


for name in models:
    entry, n_generated = results[name], n_targets * n_starts
    display(viz.band_chart({label: band(run.history[:n_generated]) for label, run in entry["runs"].items()}, log_y=True,
                   band="25–75 %", xlabel="evaluations", ylabel="lowest LPIPS so far",
                   title=f"{name}: {n_targets} generated targets × {n_starts} starts"))

# %% [markdown]
# ## Final LPIPS, evaluations to the threshold, area under the curve

# %%
def summary_table(entry, rows):
    out = {"method": [], "median LPIPS": [], "median best of starts": [], f"reached {threshold}": [],
           "median evaluations to it": [], "geometric-mean LPIPS along the run": []}
    for label, run in entry["runs"].items():
        final = run.loss_best[rows].double().cpu()
        per_target = final.view(-1, n_starts).min(1).values
        reach = stats.evaluations_to_reach(run.history[rows], threshold)
        out["method"].append(label)
        out["median LPIPS"].append(float(final.median()))
        out["median best of starts"].append(float(per_target.median()))
        out[f"reached {threshold}"].append(f"{int(np.isfinite(reach).sum())}/{len(reach)}")
        out["median evaluations to it"].append(float(np.median(reach)) if np.isfinite(np.median(reach)) else "not reached")
        out["geometric-mean LPIPS along the run"].append(float(10 ** stats.log_auc(run.history[rows]).mean()))
    return out


def comparison_table(entry, rows, pairs):
    out = {"comparison": [], "pairs": [], "wins": [], "final LPIPS ratio [95% CI]": [], "p (Wilcoxon)": [],
           "AUC ratio [95% CI]": [], "reached first": []}
    groups = entry["index"][rows].numpy()
    for a, b in pairs:
        if a not in entry["runs"] or b not in entry["runs"]:
            continue
        ra, rb = entry["runs"][a], entry["runs"][b]
        final = stats.paired(ra.loss_best[rows], rb.loss_best[rows], groups=groups, log=True)
        auc = stats.paired(10 ** stats.log_auc(ra.history[rows]), 10 ** stats.log_auc(rb.history[rows]),
                           groups=groups, log=True)
        reach_a = stats.evaluations_to_reach(ra.history[rows], threshold)
        reach_b = stats.evaluations_to_reach(rb.history[rows], threshold)
        out["comparison"].append(f"{a} vs {b}")
        out["pairs"].append(final.n)
        out["wins"].append(final.wins)
        out["final LPIPS ratio [95% CI]"].append(f"{final.ratio:.3g} [{final.ratio_ci[0]:.3g}, {final.ratio_ci[1]:.3g}]")
        out["p (Wilcoxon)"].append(final.p_wilcoxon)
        out["AUC ratio [95% CI]"].append(f"{auc.ratio:.3g} [{auc.ratio_ci[0]:.3g}, {auc.ratio_ci[1]:.3g}]")
        out["reached first"].append(f"{int((reach_a < reach_b).sum())} vs {int((reach_b < reach_a).sum())}")
    return out


PAIRS = [("eigenbasis", "z"), ("top-k", "z"), ("top-k", "eigenbasis"), ("BasinCMA, z", "z"),
         ("BasinCMA, eigenbasis", "z"), ("BasinCMA, eigenbasis", "BasinCMA, z")]
for name in models:
    entry = results[name]
    generated = torch.arange(n_targets * n_starts)
    print(f"{name}, generated targets")
    display(viz.markdown_table(summary_table(entry, generated), precision=3))
    display(viz.markdown_table(comparison_table(entry, generated, PAIRS), precision=3))
    if n_photos:
        photos = torch.arange(n_targets * n_starts, len(entry["index"]))
        print(f"{name}, photographs")
        display(viz.markdown_table(summary_table(entry, photos), precision=3))

# %% [markdown]
# ## The reconstructions

# %%
for name in models:
    entry, t = results[name], targets[name]
    all_targets = torch.cat([t["generated"], t["photos"]]).cpu()
    columns = {"target": list(all_targets)}
    for label, run in entry["runs"].items():
        loss = run.loss_best.view(-1, n_starts)
        best = loss.argmin(1) + torch.arange(len(loss)) * n_starts
        columns[label] = list(run.images[best].cpu())
    grid = torch.stack([torch.stack(images) for images in columns.values()], dim=1)
    row_labels = [f"generated {i}" for i in range(n_targets)] + t["labels"]
    display(viz.montage(grid, row_labels, list(columns), title=f"{name}: targets and the best of {n_starts} starts",
                label_width=120))

# %% [markdown]
# ## Many codes, one image

# %%
for name in models:
    entry, t = results[name], targets[name]
    G, avg = loaded[name]
    rows = torch.arange(n_targets * n_starts)
    z_true = t["z_true"][entry["index"][rows]]
    V = avg.eigvecs
    out = {"method": [], "‖z − z_true‖ start": [], "‖z − z_true‖ end": [], f"share in top {top_k}": [],
           "metric-weighted": []}
    z0 = I.start_codes(G, start_seeds(len(entry["index"]), 1000))[rows]
    for label, run in entry["runs"].items():
        err = (run.z_best[rows] - z_true).double().cpu()
        share = ((err @ V.double()[:, :top_k]) ** 2).sum(1) / (err ** 2).sum(1)
        weighted = 0.5 * ((err @ avg.H_mean.double()) * err).sum(1)
        out["method"].append(label)
        out["‖z − z_true‖ start"].append(float((z0 - z_true).norm(dim=1).median()))
        out["‖z − z_true‖ end"].append(float(err.norm(dim=1).median()))
        out[f"share in top {top_k}"].append(float(share.median()))
        out["metric-weighted"].append(float(weighted.median()))
    print(name)
    display(viz.markdown_table(out, precision=3))

# %% [markdown]
# ## Activation maximisation

# %%
units = AM.Units(AM.pick_units(am_layers, am_units, seed=seed), AM.alexnet_features(d))
unit_of = torch.arange(len(units.units)).repeat_interleave(am_repeats)
am_seeds = start_seeds(len(unit_of), 3000)
am_results = {}
for name in am_models:
    G, avg = loaded[name]
    clock = time.time()
    iso = AM.maximize(G, units, unit_of, am_seeds, budget=am_budget, sigma0=am_sigma, progress=progress)
    hess = AM.maximize(G, units, unit_of, am_seeds, basis=avg.eigvecs[:, :top_k], eigvals=avg.eigvals[:top_k],
                       budget=am_budget, sigma0=am_sigma, progress=progress)
    am_results[name] = (iso, hess)
    print(f"{name}: {2 * len(unit_of)} searches × {am_budget} images in {time.time() - clock:.0f} s")

# %%
for name, (iso, hess) in am_results.items():
    out = {"layer": [], "pairs": [], "Hessian-aware higher": [], "mean gain [95% CI]": [], "p (Wilcoxon)": []}
    for layer in am_layers:
        rows = torch.tensor([i for i, u in enumerate(unit_of.tolist()) if units.units[u][0] == layer])
        scale = torch.stack([iso.best[rows][unit_of[rows] == u].abs().mean() for u in unit_of[rows]])
        a, b = (iso.best[rows] / scale).numpy(), (hess.best[rows] / scale).numpy()
        result = stats.paired(a, b, groups=unit_of[rows].numpy())
        out["layer"].append(layer)
        out["pairs"].append(result.n)
        out["Hessian-aware higher"].append(result.wins)
        out["mean gain [95% CI]"].append(f"{-result.mean:+.3g} [{-result.ci[1]:+.3g}, {-result.ci[0]:+.3g}]")
        out["p (Wilcoxon)"].append(result.p_wilcoxon)
    print(name)
    display(viz.markdown_table(out, precision=3))

# %%
print(f"chapter ran in {time.time() - started:.0f} s, {time.process_time():.0f} s of CPU")
