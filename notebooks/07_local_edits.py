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

run_times = glue("run_times", run_times("07_local_edits"))

# %% [markdown]
# # Local edits: the metric of an image region
#
# **What this chapter tests.** Beyond the paper: whether the metric, restricted to one region of the image
# (the eyes, the mouth), gives latent directions that change that region and leave the rest of the image
# alone, how much more local they are than the global eigenvectors of chapter 04, how they compare with
# LowRankGAN's pixel-Jacobian recipe, and what each costs. Its table of how much more local the local
# directions are is also on the [results page](results.md).
#
# **Rerun it** ({eval}`run_times`):
#
# ```bash
# python -m helpers.book run --only 07 -p n_codes 8 -p target 0.05
# ```

# %% [markdown]
# The paper's metric $H(z_0)$ measures how much the whole image changes. Users of latent-direction tools
# usually want something narrower: a direction that changes the eyes, not the background. LowRankGAN
# (Zhu et al. 2021) and ReSeFa (Zhu et al. 2022) find such directions from the Jacobian of the
# generator's pixels, computed in reverse mode one pixel at a time, which is expensive. This page does the
# same with the metric engine of this book, for a perceptual distance, from one forward-mode pass.
#
# **The region metric.** LPIPS compares two images through features at every position of every layer of
# a network. For a mask $M$ (values in $[0, 1]$ over the image), the region's distance weights each
# layer's per-position terms by $M$ resized to that layer's grid (by area averaging) and divides by the
# mask's area $a$, so that it is the average LPIPS over the region; the rest of the image gets $1 - M$.
# Both are squared distances between weighted features, so each has a metric, $H_{\mathrm{region}}$ and
# $H_{\mathrm{rest}}$, and both come from the same Jacobian $J$: only the weights differ. The area resize
# keeps the mask's area at every layer, so the two add up to the metric of the whole image:
# $a H_{\mathrm{region}} + (1 - a) H_{\mathrm{rest}} = H$.
#
# **Local directions.** A direction $v$ that changes the region much and the rest little has a large
# ratio $v^\top H_{\mathrm{region}} v / v^\top H_{\mathrm{rest}} v$. The best ones solve the generalised
# eigenproblem $H_{\mathrm{region}} v = \lambda (H_{\mathrm{rest}} + \delta I) v$ (the closed form ReSeFa
# uses), with $\delta$ a small multiple of the trace of $H_{\mathrm{rest}}$ so the right side is never
# singular. LowRankGAN's recipe instead takes the principal subspace of the region's matrix (after Robust
# PCA) and projects it onto the null space of the rest's.

# %% tags=["parameters"]
seed = 0
faces_model = ""  # "" means generators.EMBEDDED[0], the book's first model
eye_class = "brown"
# codes per model; a code's global local axes come from the other codes' metrics
n_codes = 4
face_regions = ["eyes", "mouth", "hair", "background"]
eye_regions = ["iris", "upper lid", "lower lid"]
n_mean = 64  # samples averaged to place the boxes
n_directions = 3  # directions per method measured at each code
# the in-region LPIPS change (average over the region) that every walk is matched to
target = 0.02
# a walk's in-region change is matched to target within this relative tolerance
match_rtol = 0.03
# LPIPS working resolution in px (the 64 px faces are upsampled to it; None: native)
lpips_size = 128
tau = 1e-3  # delta is tau times trace(H_rest): the default of ReSeFa
n_lowrankgan = 1  # codes per model at which the Robust PCA methods run (0: skip them)
lowrank_regions = ["eyes", "iris"]  # regions where they run (Robust PCA is slow)
# working resolution of the pixel Jacobian (their image_size; nearest-neighbour resize)
lowrankgan_size = 32
rpca_max_iter = 10000  # Robust PCA iterations at most (LowRankGAN's default)
n_bootstrap = 2000
device = "cpu"

# %% tags=["hide-input"]
import time
import warnings

import numpy as np
from IPython.display import display

from helpers import analysis, distances, generators, local, metric, regions, report, viz
from helpers.report import glue, record, result_table

# lpips' deprecated `pretrained=`
warnings.filterwarnings("ignore", module="torchvision.models._utils")

faces_name = faces_model or generators.EMBEDDED[0]
models = {"faces": generators.load(faces_name, device=device),
          "eyes": generators.load("cdcgan-eyes128", eye_class=eye_class, device=device)}
lpips = distances.lpips("alex", resize=lpips_size, device=device)

# %% tags=["hide-input"]
faces_name = glue("faces_name", faces_name)
eyes_name = glue("eyes_name", models["eyes"].name)
lpips_where = glue("lpips_where", f"at {lpips_size} px" if lpips_size
                   else "at each model's own size")
glue("n_codes", n_codes)
glue("target", target)
glue("match_rtol", match_rtol)
glue("tau", tau)
glue("lowrankgan_size", lowrankgan_size)
glue("rpca_max_iter", rpca_max_iter)
k = glue("k", n_directions)

# %% [markdown]
# ## The regions
#
# The faces come from {eval}`faces_name` and the eyes from {eval}`eyes_name`; LPIPS-AlexNet works
# {eval}`lpips_where`. Both models make aligned images: faces cropped around the eyes and mouth, and close-ups of one eye. The
# boxes follow that geometry. On the average of many samples, the eyes are the darkest row of the upper
# face and the mouth the darkest row of the lower face; the eye model's iris is the darkest spot of its
# average image, and the lids lie above and below it. Boxes are fractions of the image, so the same mask
# serves LPIPS's layers at every resolution. The figure draws them on the average image (first column) and
# on samples; on individual images they are only approximately in place, as the alignment is.
#
# `regions.find` places the boxes on a model's mean image (`regions.mean_image`); for a generator of your
# own, draw boxes with `distances.box` (rows and columns as fractions) or pass any mask.

# %%
means = {key: regions.mean_image(G, n_mean, seed=seed + 1000)
         for key, G in models.items()}
wanted = {"faces": face_regions, "eyes": eye_regions}
boxes = {key: regions.find(means[key], key, wanted[key]) for key in models}
masks = {key: regions.masks(boxes[key], means[key].shape[-1]) for key in models}
areas = {key: {name: regions.area(mask) for name, mask in masks[key].items()}
         for key in models}
record("local_boxes", boxes)
viz.nested_table({key: {name: {
    "rows (top, bottom)": f"{rows[0]:.2f} to {rows[1]:.2f}",
    "columns (left, right)": f"{cols[0]:.2f} to {cols[1]:.2f}",
    "area": areas[key][name]}
    for name, (rows, cols) in boxes[key].items()} for key in models}, precision=3)

# %%
for key, G in models.items():
    images = local.with_samples(G, means[key], 4, seed=seed)
    columns = ["average"] + [f"sample {i}" for i in range(1, 5)]
    display(viz.outlined_rows([images] * len(masks[key]), list(masks[key].values()),
                              list(masks[key]), columns,
                              title=f"{G.name}: the regions"))

# %% [markdown]
# ## The metrics of each region, from one pass
#
# At each of {eval}`f"{n_codes:d}"` codes per model, one forward-mode Jacobian pass gives the metrics of
# every region and of its complement (`metric.region_metrics`): the pass runs the generator and LPIPS once
# per latent direction, and each mask only reweights the same features. The whole-image metric follows
# from any one pair. As a check, it is compared here with the metric computed on its own at the first
# code.

# %%
codes, pairs, whole, seconds_region = {}, {}, {}, {}
for key, G in models.items():
    codes[key] = G.sample(n_codes, seed=seed)
    start = time.perf_counter()
    pairs[key] = metric.region_metrics(G, codes[key], lpips, masks[key], progress=False)
    seconds_region[key] = (time.perf_counter() - start) / n_codes
    name, (region, rest) = next(iter(pairs[key].items()))
    a = areas[key][name]
    whole[key] = a * region.H + (1 - a) * rest.H  # a H_region + (1 − a) H_rest

reference = metric.metric(models["faces"], codes["faces"][:1], lpips)
gap = (whole["faces"][:1] - reference.H).norm() / reference.H.norm()
identity_gap = glue("identity_gap", float(gap))
seconds_region = record("local_seconds_region_metrics_per_code", seconds_region)

# %% [markdown]
# The relative difference is {eval}`f"{identity_gap:.1e}"`, float32 roundoff: the region and its rest
# split the metric exactly.
#
# How much of the metric lives in each region? The share of a region is
# $a \operatorname{tr} H_{\mathrm{region}} / \operatorname{tr} H$: the part of the image's total sensitivity
# (summed over all latent directions) that falls in the region. A share above the area means the generator
# concentrates its changes there.

# %%
shares = record("local_trace_share", {
    key: {name: local.trace_share(region, whole[key], areas[key][name])
          for name, (region, _) in pairs[key].items()} for key in models})
viz.nested_table({key: {name: {
    "area": areas[key][name],
    "share of the metric (mean over codes)": shares[key][name]}
    for name in masks[key]} for key in models}, precision=3)

# %% [markdown]
# ## Local directions at each code
#
# At every code and region, five kinds of directions, up to {eval}`f"{k:d}"` of each:
#
# - **generalised**: the top solutions of
#   $H_{\mathrm{region}} v = \lambda (H_{\mathrm{rest}} + \delta I) v$, with
#   $\delta = \tau \operatorname{tr} H_{\mathrm{rest}}$ and $\tau$ = {eval}`tau`;
# - **global local axes**: the same for the *average* pair of metrics over the other codes (leave one out),
#   so they are tested at a code they were not fitted to;
# - **global top**: the top eigenvectors of the whole-image metric $H$ (the paper's axes, chapter 04);
# - **low-rank (ours)**: LowRankGAN's recipe (Robust PCA, principal subspace projected onto the rest's null
#   space) applied to our two LPIPS metrics;
# - **LowRankGAN**: their whole method, reimplemented from their code: the reverse-mode Jacobian of the
#   image's pixels (RGB averaged, at {eval}`f"{lowrankgan_size:d}"` px), masked $J^\top J$ of the region
#   and of the rest, Robust PCA, null-space projection.

# %%
found = {key: local.directions_by_method(
    G, codes[key], pairs[key], masks[key], whole[key], k, tau=tau,
    lowrank_codes=n_lowrankgan, lowrank_regions=lowrank_regions,
    pixel_size=lowrankgan_size, max_iter=rpca_max_iter) for key, G in models.items()}

# %% tags=["hide-input"]
lowrank_info = record("local_lowrank_info",
                      {key: found[key].lowrank_info for key in models})
lowrank_where = glue("lowrank_where", f"{report.plural(n_lowrankgan, 'code')} per "
                     f"model; regions: {', '.join(lowrank_regions) or 'none'}")
iterations = [n for key in models for runs in lowrank_info[key].values()
              for info in runs.values() for n in info["iterations"]]
low, high = (min(iterations), max(iterations)) if iterations else (None, None)
rpca_iterations = glue("rpca_iterations", "none (not run)" if not iterations
                       else str(high) if low == high else f"{low} to {high}")

# %% [markdown]
# Robust PCA, as LowRankGAN runs it, iterates until its residual is negligible, up to
# {eval}`f"{rpca_max_iter:,d}"` times per matrix, so the last two run on fewer codes and regions
# ({eval}`lowrank_where`). In this run it took {eval}`rpca_iterations`
# iterations per matrix (the table below).
#
# Robust PCA decides how many directions LowRankGAN's recipe returns (the rank of the low-rank part); at
# most {eval}`f"{k:d}"` of them are used.

# %%
if iterations:
    display(viz.nested_table({models[key].name: {where: {method: {
        "rank: region / rest": f"{info['rank_region']} / {info['rank_rest']}",
        "Robust PCA iterations: region, rest": ", ".join(map(str, info["iterations"]))}
        for method, info in runs.items()} for where, runs in lowrank_info[key].items()}
        for key in models}, ("model", "region, code", "method")))

# %% [markdown]
# ## How local is each direction?
#
# A direction's locality is measured on walks, not on the quadratic approximation: from the code, walk
# each way along the direction until the region has changed by the same amount, an LPIPS of
# {eval}`target` averaged over the region (the step is bracketed, then refined by false position,
# separately for each direction and sign, to within a relative {eval}`match_rtol`), and measure how
# much the rest of the image changed on the same walk (LPIPS averaged over the rest). The **in/out ratio**
# is the change inside over the change outside, summed over both ends; higher is more local. The same walks
# are also scored in pixels (mean squared difference inside over outside), a measure that no method here
# optimised and whose locality is exact (LPIPS features see a neighbourhood of each position).
#
# `local.walk_ratios` runs the walks of every direction found at one code in one batch. The tables give, for
# each method and region, the geometric mean of the ratios over codes and directions, with a bootstrap
# interval over codes (a code's directions are not independent, so codes are resampled whole).

# %%
quality = record("local_quality", {key: {name: [
    local.walk_ratios(G, codes[key][i], at_code, pairs[key][name][0].H[i],
                      masks[key][name], lpips, target, rtol=match_rtol)
    for i, at_code in enumerate(found[key].directions[name])]
    for name in masks[key]} for key, G in models.items()})
unreached = glue("unreached", sum(
    not reached for key in quality for per_code in quality[key].values()
    for q in per_code for m in q.values() for reached in m["reached"]))

# %%
boot = dict(n_boot=n_bootstrap, seed=seed)
for measure, title in (("lpips", "LPIPS"), ("pixels", "pixels")):
    for key in models:
        display(viz.markdown_table({"": [
            f"**{models[key].name}**: in/out ratio in {title}, geometric mean over "
            f"codes and directions [95% bootstrap interval over codes]"]}))
        display(viz.markdown_table({"method": list(local.METHODS), **{
            name: [local.estimate_text(local.method_summary(
                quality[key][name], method, measure, **boot))
                for method in local.METHODS] for name in masks[key]}}))

# %% [markdown]
# How many times more local than the paper's global axes? The fold change compares the generalised
# directions with the global top eigenvectors at the same codes (geometric means, bootstrap intervals
# over codes), per model, over all its regions together.

# %%
folds = record("local_fold_vs_global_top", {key: {
    m: local.fold_over_regions(quality[key], measure=m, k=k, **boot)
    for m in ("lpips", "pixels")} for key in models})

# %% tags=["hide-input"]
fold_faces_lpips = glue("fold_faces_lpips", folds["faces"]["lpips"][0])
fold_faces_lpips_low = glue("fold_faces_lpips_low", folds["faces"]["lpips"][1])
fold_faces_lpips_high = glue("fold_faces_lpips_high", folds["faces"]["lpips"][2])
fold_faces_pixels = glue("fold_faces_pixels", folds["faces"]["pixels"][0])
fold_faces_pixels_low = glue("fold_faces_pixels_low", folds["faces"]["pixels"][1])
fold_faces_pixels_high = glue("fold_faces_pixels_high", folds["faces"]["pixels"][2])
fold_eyes_lpips = glue("fold_eyes_lpips", folds["eyes"]["lpips"][0])
fold_eyes_lpips_low = glue("fold_eyes_lpips_low", folds["eyes"]["lpips"][1])
fold_eyes_lpips_high = glue("fold_eyes_lpips_high", folds["eyes"]["lpips"][2])
fold_eyes_pixels = glue("fold_eyes_pixels", folds["eyes"]["pixels"][0])
fold_eyes_pixels_low = glue("fold_eyes_pixels_low", folds["eyes"]["pixels"][1])
fold_eyes_pixels_high = glue("fold_eyes_pixels_high", folds["eyes"]["pixels"][2])

verdict_faces = glue("verdict_faces",
                     local.locality_verdict(folds["faces"]["lpips"][1]))
verdict_eyes = glue("verdict_eyes", local.locality_verdict(folds["eyes"]["lpips"][1]))
fold_full = glue("fold_full", report.full_run_check(
    "local_edits_fold", "LPIPS in/out, fold", report.Threshold(local.SEVERAL),
    {models[key].name: folds[key]["lpips"][1] for key in models}, part="low",
    what="LPIPS folds whose intervals start at"))
note = (f"{report.plural(n_codes, 'code')} per model, {k} directions per method, "
        "regions " + "; ".join(f"{models[key].name}: {', '.join(masks[key])}"
                               for key in models)
        + f"; walks matched to an in-region LPIPS of {target}; 95% bootstrap intervals "
        f"over codes")

# %%
result_table(
    "local_edits_fold",
    "Local edits: in/out ratio of the generalised directions over the global top "
    "eigenvectors",
    rows=["LPIPS in/out, fold", "pixel in/out, fold"],
    columns={f"ours: {models[key].name}": [local.estimate_text(folds[key][m])
                                           for m in ("lpips", "pixels")]
             for key in models},
    row_header="measure", note=note)

# %% [markdown]
# On the faces the generalised directions are {eval}`verdict_faces`: their in/out ratio in LPIPS is
# {eval}`f"{fold_faces_lpips:.3g}"` times that of the global top eigenvectors (bootstrap interval
# {eval}`f"{fold_faces_lpips_low:.3g}"` to {eval}`f"{fold_faces_lpips_high:.3g}"`), and
# {eval}`f"{fold_faces_pixels:.3g}"` times in pixels ({eval}`f"{fold_faces_pixels_low:.3g}"` to
# {eval}`f"{fold_faces_pixels_high:.3g}"`). On the eyes they are {eval}`verdict_eyes`, with folds of
# {eval}`f"{fold_eyes_lpips:.3g}"` in LPIPS ({eval}`f"{fold_eyes_lpips_low:.3g}"` to
# {eval}`f"{fold_eyes_lpips_high:.3g}"`) and {eval}`f"{fold_eyes_pixels:.3g}"` in pixels
# ({eval}`f"{fold_eyes_pixels_low:.3g}"` to {eval}`f"{fold_eyes_pixels_high:.3g}"`). The number of walks
# that never reached the target change inside the region before the step limit (the code's norm) is
# {eval}`f"{unreached:d}"`.
# {eval}`fold_full`

# %% [markdown]
# ## What the directions do
#
# Each row walks from the first code along one direction, to twice the matched step each way (the middle
# column is the code itself; the columns at one step are where the in/out ratio was measured). The box is
# drawn on every image. For each region: the top generalised direction, LowRankGAN's first direction (if
# it ran), and the top global eigenvector.

# %%
for key, G in models.items():
    walks = local.walk_examples(
        G, codes[key][0], {name: d[0] for name, d in found[key].directions.items()},
        {name: q[0] for name, q in quality[key].items()})
    display(viz.outlined_rows(
        [images for _, _, images in walks], [masks[key][name] for name, _, _ in walks],
        [f"{name}: {method}" for name, method, _ in walks],
        ["−2 steps", "−1 step", "code", "+1 step", "+2 steps"],
        title=f"{G.name}: walks matched to the same change inside the box"))

# %% [markdown]
# To walk such directions yourself, the explorer (`make explore`, or `explore()` from `helpers.explore` in a
# notebook) has a region menu: for a box of any generator it computes the region's and the rest's metrics at
# the chosen code in one pass, walks the generalised directions, and reports the change inside over the
# change outside at the ends of the walk. `explore(regions={"eyes": ((0.3, 0.55), (0.2, 0.8))})` adds boxes
# of your own, as fractions of the image.

# %% [markdown]
# ## Are local directions homogeneous across codes?
#
# Chapter 03 asked whether the metric has the same structure everywhere in the latent space: whether one
# code's eigenvectors rank the same way under another code's metric. The same question, asked of a region:
# does code $i$'s $k$-th generalised eigenvector score, under code $j$'s pair of metrics, in the order of
# code $j$'s own generalised eigenvalues? The table gives the mean, over ordered pairs of codes, of the
# correlation (across the top ranks, in log scale) of the one with the other, next to the paper's
# homogeneity of the whole-image metric at the same codes. It also gives how well the global local axes
# (fitted to the other codes) do at a held-out code: the generalised Rayleigh quotient of the first axis
# there, as a fraction of that code's own top generalised eigenvalue.

# %%
homogeneity, transfer = {}, {}
for key, G in models.items():
    if n_codes < 2:  # one code: nothing to compare it with, and no held-out axes
        homogeneity[key] = dict.fromkeys(["whole image", *masks[key]], float("nan"))
        transfer[key] = dict.fromkeys(masks[key], float("nan"))
        continue
    homogeneity[key] = {
        "whole image": analysis.offdiag_summary(analysis.homogeneity(whole[key])).mean}
    transfer[key] = {}
    for name, (region, rest) in pairs[key].items():
        # all ranks, as for the whole image
        h = local.region_homogeneity(region, rest, k=G.latent_dim, tau=tau)
        homogeneity[key][name] = analysis.offdiag_summary(h).mean
        held_out = [at_code["global local axes"]
                    for at_code in found[key].directions[name]]
        transfer[key][name] = local.held_out_transfer(region.H, rest.H, held_out,
                                                      tau=tau)

# %% tags=["hide-input"]
record("local_homogeneity", homogeneity)
record("local_transfer", transfer)
region_h = [homogeneity[key][name] for key in models for name in masks[key]]
whole_h = [homogeneity[key]["whole image"] for key in models for _ in masks[key]]
homogeneity_lower = glue("homogeneity_lower",
                         sum(r < w for r, w in zip(region_h, whole_h)))
n_regions = glue("n_regions", len(region_h))
transfer_mean = glue("transfer_mean", float(np.nanmean(
    [transfer[key][name] for key in models for name in masks[key]])))
whole_note = glue("whole_note", local.homogeneity_note(
    models["faces"].name, homogeneity["faces"]["whole image"], n_codes, lpips_size,
    means["faces"].shape[-1], chapter_model=generators.EMBEDDED[0], seed=seed))

# %%
viz.nested_table({key: {name: {
    "homogeneity of the region (mean)": homogeneity[key][name],
    "homogeneity of the whole image (mean)": homogeneity[key]["whole image"],
    "global local axis 1 at a held-out code, fraction of its best": transfer[key][name]}
    for name in masks[key]} for key in models}, precision=3)

# %% [markdown]
# In {eval}`f"{homogeneity_lower:d}"` of the {eval}`f"{n_regions:d}"` regions the local directions are less
# homogeneous than the whole-image metric at the same codes. On average the first global local axis reaches
# {eval}`f"{transfer_mean:.1%}"` of the best generalised Rayleigh quotient at a code it was not fitted to.
# {eval}`whole_note`

# %% [markdown]
# ## What it costs
#
# Times measured in this run, per code, on whatever machine ran it (rough: `benchmarks/region.py` records
# the comparison on an idle machine). Our region metrics for every region of a model come from one pass;
# LowRankGAN's pixel Jacobian needs one backward pass per pixel of its working resolution, and its Robust
# PCA runs per region.

# %%
cost = record("local_cost_seconds", {key: {
    "region metrics, all regions (ours)": seconds_region[key],
    f"pixel Jacobian at {lowrankgan_size} px (LowRankGAN)": found[key].seconds_pixel,
    "Robust PCA + projection, per region": found[key].seconds_rpca} for key in models})
speedup = glue("cost_ratio_faces",
               found["faces"].seconds_pixel / seconds_region["faces"]
               if n_lowrankgan else float("nan"))
cost_sentence = glue("cost_sentence", (
    f"the pixel Jacobian alone took {speedup:.3g} times as long as all of our region "
    f"metrics" if speedup == speedup
    else "LowRankGAN's method did not run (`n_lowrankgan` = 0)"))
viz.markdown_table({"step": list(cost["faces"]),
                    **{f"{models[key].name}: s per code": list(cost[key].values())
                       for key in models}}, precision=2)

# %% [markdown]
# On the faces, in this run, {eval}`cost_sentence`.

# %% [markdown]
# ## Try it
#
# - `-p target 0.05`: larger matched changes; walks leave the quadratic regime and locality usually drops.
# - `-p lpips_size None`: LPIPS at each model's own resolution. For the faces its deepest layers then have a
#   three-by-three grid, so a region blurs into its neighbours: see whether the in/out ratios fall.
# - `-p n_codes 10 -p n_lowrankgan 3`: more codes for tighter intervals, and LowRankGAN at more of them.
# - `-p tau 1e-5`: a smaller $\delta$ trusts the rest's metric more, down to its smallest eigenvalues.
# - `-p faces_model dcgan-faces64`: the synthetic DigiFace faces; the boxes follow its own average face.
