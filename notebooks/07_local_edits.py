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
# # Local edits: the metric of an image region
#
# **What this chapter tests.** Beyond the paper: whether the metric, restricted to one region of the image
# (the eyes, the mouth), gives latent directions that change that region and leave the rest of the image
# alone, how much more local they are than the global eigenvectors of chapter 04, how they compare with
# LowRankGAN's pixel-Jacobian recipe, and what each costs. Its table of how much more local the local
# directions are is also on the [results page](results.md).
#
# **Rerun it** ({glue:text}`run_times`):
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
n_codes = 4  # codes per model; each code's global local axes come from the other codes' average metrics
face_regions = ["eyes", "mouth", "hair", "background"]
eye_regions = ["iris", "upper lid", "lower lid"]
n_mean = 64  # samples averaged to place the boxes
n_directions = 3  # directions per method measured at each code
target = 0.02  # the in-region LPIPS change (average over the region) that every walk is matched to
match_rtol = 0.03  # a walk's in-region change is matched to target within this relative tolerance
lpips_size = 128  # LPIPS working resolution in px (the 64 px faces are upsampled to it; None: native)
tau = 1e-3  # delta is tau times trace(H_rest): the default of ReSeFa
n_lowrankgan = 1  # codes per model at which the Robust PCA methods run (0: skip them)
lowrank_regions = ["eyes", "iris"]  # regions where they run (Robust PCA is slow)
lowrankgan_size = 32  # working resolution of the pixel Jacobian (their image_size; nearest-neighbour resize)
rpca_max_iter = 10000  # Robust PCA iterations at most (LowRankGAN's default)
n_bootstrap = 2000
device = "cpu"

# %%
import time
import warnings

import numpy as np
import torch

from helpers import analysis, distances, generators, local, viz
from helpers import metric as M
from helpers.report import glue, record, result_table, run_times

warnings.filterwarnings("ignore", module="torchvision.models._utils")  # lpips' deprecated `pretrained=`
glue("run_times", run_times("07_local_edits"))

faces_name = faces_model or generators.EMBEDDED[0]
models = {"faces": generators.load(faces_name, device=device),
          "eyes": generators.load("cdcgan-eyes128", eye_class=eye_class, device=device)}
lpips = distances.lpips("alex", resize=lpips_size, device=device)
mse = distances.mse()
glue("faces_name", faces_name)
glue("eyes_name", models["eyes"].name)
glue("lpips_size", lpips_size if lpips_size else "native")
glue("n_codes", n_codes)
k = n_directions
glue("k", k)
glue("target", target)
glue("match_rtol", match_rtol)
glue("tau", tau)
print(", ".join(f"{key}: {G.name}" for key, G in models.items()), f"| LPIPS-alex at {lpips_size or 'native'} px")

# %% [markdown]
# ## The regions
#
# Both models make aligned images: faces cropped around the eyes and mouth, and close-ups of one eye. The
# boxes follow that geometry. On the average of many samples, the eyes are the darkest row of the upper
# face and the mouth the darkest row of the lower face; the eye model's iris is the darkest spot of its
# average image, and the lids lie above and below it. Boxes are fractions of the image, so the same mask
# serves LPIPS's layers at every resolution. The figure draws them on the average image (first column) and
# on samples; on individual images they are only approximately in place, as the alignment is.

# %%
def mean_image(G, n=n_mean, batch=64):
    codes = G.sample(n, seed=seed + 1000)
    with torch.no_grad():
        return torch.cat([G(codes[s:s + batch]) for s in range(0, n, batch)]).mean(0)


def darkest(profile, start, stop):
    """The fraction (centre of the darkest cell) of a 1-D luminance profile between fractions start and stop."""
    n = len(profile)
    lo, hi = int(start * n), int(stop * n)
    return (lo + int(torch.argmin(profile[lo:hi])) + 0.5) / n


def clip(a, b):
    return max(0.0, a), min(1.0, b)


def face_boxes(mean):
    luminance = mean.mean(0)  # (H, W)
    w = luminance.shape[1]
    centre = luminance[:, int(0.3 * w):int(0.7 * w)].mean(1)  # rows, over the central columns
    eyes, mouth = darkest(centre, 0.3, 0.62), darkest(centre, 0.62, 0.9)
    return {"eyes": (clip(eyes - 0.08, eyes + 0.08), (0.2, 0.8)),
            "mouth": (clip(mouth - 0.07, mouth + 0.07), (0.3, 0.7)),
            "hair": ((0.02, max(0.1, eyes - 0.2)), (0.2, 0.8)),
            "background": ((0.0, 0.6), (0.0, 0.14))}


def eye_boxes(mean):
    luminance = torch.nn.functional.avg_pool2d(mean.mean(0)[None, None], 15, 1, 7)[0, 0]  # blurred
    r = darkest(luminance.min(1).values, 0.2, 0.8)
    c = darkest(luminance.min(0).values, 0.2, 0.8)
    return {"iris": (clip(r - 0.2, r + 0.2), clip(c - 0.2, c + 0.2)),
            "upper lid": (clip(r - 0.38, r - 0.2), clip(c - 0.35, c + 0.35)),
            "lower lid": (clip(r + 0.2, r + 0.38), clip(c - 0.35, c + 0.35))}


means = {key: mean_image(G) for key, G in models.items()}
boxes = {"faces": face_boxes(means["faces"]), "eyes": eye_boxes(means["eyes"])}
wanted = {"faces": face_regions, "eyes": eye_regions}
for key in models:
    unknown = set(wanted[key]) - set(boxes[key])
    if unknown or not wanted[key]:
        raise ValueError(f"{key}: regions must be a non-empty subset of {list(boxes[key])}, got {wanted[key]}")
    boxes[key] = {name: boxes[key][name] for name in wanted[key]}
masks = {key: {name: distances.box(means[key].shape[-1], *box) for name, box in boxes[key].items()}
         for key in models}
areas = {key: {name: float(m.double().mean()) for name, m in masks[key].items()} for key in models}
record("local_boxes", boxes)
viz.markdown_table({"model": [key for key in models for _ in boxes[key]],
                    "region": [name for key in models for name in boxes[key]],
                    "rows (top, bottom)": [f"{b[0][0]:.2f} to {b[0][1]:.2f}" for key in models for b in boxes[key].values()],
                    "columns (left, right)": [f"{b[1][0]:.2f} to {b[1][1]:.2f}" for key in models for b in boxes[key].values()],
                    "area": [areas[key][name] for key in models for name in boxes[key]]}, precision=3)

# %%
def show_masks(key, n_samples=4):
    G = models[key]
    with torch.no_grad():
        samples = G(G.sample(n_samples, seed=seed))
    images = torch.cat([means[key][None], samples])
    rows = np.stack([viz.outline(images, mask) for mask in masks[key].values()])
    return viz.montage(rows, list(masks[key]), ["average"] + [f"sample {i + 1}" for i in range(n_samples)],
                       title=f"{G.name}: the regions")


show_masks("faces")

# %%
show_masks("eyes")

# %% [markdown]
# ## The metrics of each region, from one pass
#
# At each of {glue:text}`n_codes:d` codes per model, one forward-mode Jacobian pass gives the metrics of
# every region and of its complement (`metric.region_metrics`): the pass runs the generator and LPIPS once
# per latent direction, and each mask only reweights the same features. The whole-image metric follows
# from any one pair. As a check, it is compared here with the metric computed on its own at the first
# code.

# %%
codes, pairs, whole, seconds_region = {}, {}, {}, {}
for key, G in models.items():
    codes[key] = G.sample(n_codes, seed=seed)
    start = time.perf_counter()
    pairs[key] = M.region_metrics(G, codes[key], lpips, masks[key], progress=False)
    seconds_region[key] = (time.perf_counter() - start) / n_codes
    name, (region, rest) = next(iter(pairs[key].items()))
    a = areas[key][name]
    whole[key] = a * region.H + (1 - a) * rest.H

reference = M.metric(models["faces"], codes["faces"][:1], lpips)
identity_gap = float((whole["faces"][:1] - reference.H).norm() / reference.H.norm())
glue("identity_gap", identity_gap)
record("local_seconds_region_metrics_per_code", seconds_region)
print(f"a·H_region + (1 − a)·H_rest vs the whole metric, first face code: relative difference {identity_gap:.1e}")

# %% [markdown]
# The relative difference is {glue:text}`identity_gap:.1e`, float32 roundoff: the region and its rest
# split the metric exactly.
#
# How much of the metric lives in each region? The share of a region is
# $a \operatorname{tr} H_{\mathrm{region}} / \operatorname{tr} H$: the part of the image's total sensitivity
# (summed over all latent directions) that falls in the region. A share above the area means the generator
# concentrates its changes there.

# %%
shares = {key: {name: float((areas[key][name] * torch.diagonal(r.H, dim1=1, dim2=2).sum(1)
                             / torch.diagonal(whole[key], dim1=1, dim2=2).sum(1)).mean())
                for name, (r, _) in pairs[key].items()} for key in models}
record("local_trace_share", shares)
viz.markdown_table({"model": [key for key in models for _ in masks[key]],
                    "region": [name for key in models for name in masks[key]],
                    "area": [areas[key][name] for key in models for name in masks[key]],
                    "share of the metric (mean over codes)": [shares[key][name] for key in models for name in masks[key]]},
                   precision=3)

# %% [markdown]
# ## Local directions at each code
#
# At every code and region, five kinds of directions, up to {glue:text}`k:d` of each:
#
# - **generalised**: the top solutions of
#   $H_{\mathrm{region}} v = \lambda (H_{\mathrm{rest}} + \delta I) v$, with $\delta$ = `tau` times the
#   trace of $H_{\mathrm{rest}}$ (`tau` = {glue:text}`tau`);
# - **global local axes**: the same for the *average* pair of metrics over the other codes (leave one out),
#   so they are tested at a code they were not fitted to;
# - **global top**: the top eigenvectors of the whole-image metric $H$ (the paper's axes, chapter 04);
# - **low-rank (ours)**: LowRankGAN's recipe (Robust PCA, principal subspace projected onto the rest's null
#   space) applied to our two LPIPS metrics;
# - **LowRankGAN**: their whole method, reimplemented from their code: the reverse-mode Jacobian of the
#   image's pixels (RGB averaged, at `lowrankgan_size` px), masked $J^\top J$ of the region and of the rest,
#   Robust PCA, null-space projection.
#
# Robust PCA, as LowRankGAN runs it, iterates until its residual is negligible, up to `rpca_max_iter`
# times per matrix, so the last two run only at the first `n_lowrankgan` codes and in the regions
# `lowrank_regions` ({glue:text}`lowrank_where`). In this run it took {glue:text}`rpca_iterations`
# iterations per matrix (the table below).
#
# Robust PCA decides how many directions LowRankGAN's recipe returns (the rank of the low-rank part); at
# most {glue:text}`k:d` of them are used.

# %%
def leave_one_out(H, i):
    others = [j for j in range(len(H)) if j != i]
    return H[others].mean(0)


directions, lowrank_info, seconds_pixel, seconds_rpca = {}, {}, {}, {}
for key, G in models.items():
    directions[key] = {name: [] for name in masks[key]}
    lowrank_info[key] = {}
    pixel_times, rpca_times = [], []
    for i in range(n_codes):
        jacobian = None
        if i < n_lowrankgan and set(lowrank_regions) & set(masks[key]):
            start = time.perf_counter()
            jacobian = local.pixel_jacobian(G, codes[key][i], size=lowrankgan_size)
            pixel_times.append(time.perf_counter() - start)
        eigvecs = torch.linalg.eigh(whole[key][i])[1].flip(1)
        for name, (region, rest) in pairs[key].items():
            found = {"generalized": local.generalized_directions(region.H[i], rest.H[i], k, tau=tau).vectors,
                     "global top": eigvecs[:, :k]}
            if n_codes > 1:
                found["global local axes"] = local.generalized_directions(
                    leave_one_out(region.H, i), leave_one_out(rest.H, i), k, tau=tau).vectors
            if i < n_lowrankgan and name in lowrank_regions:
                start = time.perf_counter()
                ours = local.lowrank_directions(region.H[i], rest.H[i], max_iter=rpca_max_iter)
                theirs = local.lowrankgan_directions(G, codes[key][i], masks[key][name], size=lowrankgan_size,
                                                     max_iter=rpca_max_iter, jacobian=jacobian)
                rpca_times.append((time.perf_counter() - start) / 2)
                found["low-rank (ours)"], found["LowRankGAN"] = ours.vectors[:, :k], theirs.vectors[:, :k]
                lowrank_info[key][f"{name}, code {i}"] = {"ours": ours.info, "LowRankGAN": theirs.info}
            directions[key][name].append(found)
    seconds_pixel[key] = float(np.mean(pixel_times)) if pixel_times else float("nan")
    seconds_rpca[key] = float(np.mean(rpca_times)) if rpca_times else float("nan")
record("local_lowrank_info", lowrank_info)
glue("lowrank_where", f"{n_lowrankgan} code(s) per model; regions: {', '.join(lowrank_regions) or 'none'}")
rows = [(models[key].name, where, method, v) for key in models for where, entry in lowrank_info[key].items()
        for method, v in entry.items()]
if rows:
    display(viz.markdown_table({"model": [r[0] for r in rows], "region, code": [r[1] for r in rows],
                                "method": [r[2] for r in rows],
                                "rank: region / rest": [f"{r[3]['rank_region']} / {r[3]['rank_rest']}" for r in rows],
                                "Robust PCA iterations: region, rest": [", ".join(map(str, r[3]["iterations"]))
                                                                        for r in rows]}))
iterations = [n for r in rows for n in r[3]["iterations"]]
glue("rpca_iterations", "none (not run)" if not iterations else str(max(iterations)) if min(iterations) == max(iterations)
     else f"{min(iterations)} to {max(iterations)}")

# %% [markdown]
# ## How local is each direction?
#
# A direction's locality is measured on walks, not on the quadratic approximation: from the code, walk
# each way along the direction until the region has changed by the same amount, an LPIPS of
# {glue:text}`target` averaged over the region (the step is found by bisection, separately for each
# direction and sign, to within a relative {glue:text}`match_rtol`), and measure how much the rest of the
# image changed on the same walk (LPIPS averaged over the rest). The **in/out ratio** is the change inside
# over the change outside, summed over both ends; higher is more local. The same walks are also scored in
# pixels (mean squared difference inside over outside), a measure that no method here optimised and whose
# locality is exact (LPIPS features see a neighbourhood of each position).

# %%
def measure(key, name, i, found):
    """In/out ratios (LPIPS and pixels) of every direction in `found` at code i, in one batch of walks."""
    G, z0 = models[key], codes[key][i]
    labels = [(method, j) for method, V in found.items() for j in range(V.shape[1])]
    V = torch.cat(list(found.values()), dim=1)
    V = V / V.norm(dim=0)
    curvature = torch.einsum("dk,de,ek->k", V, pairs[key][name][0].H[i], V)  # vᵀ H_region v
    first = (2 * target / curvature.clamp_min(1e-12)).sqrt()  # the step where ½ t² vᵀH v = target
    walk = local.locality(G, z0, V, distances.Region(lpips, masks[key][name]), target, first_step=first,
                          rtol=match_rtol)
    inside, outside = local.changes(G, z0, V, walk.steps, distances.Region(mse, masks[key][name]))
    pixel_ratio = inside.sum(0) / outside.sum(0)
    out = {}
    for n, (method, j) in enumerate(labels):
        entry = out.setdefault(method, {"lpips": [], "pixels": [], "steps": [], "reached": []})
        entry["lpips"].append(float(walk.ratio[n]))
        entry["pixels"].append(float(pixel_ratio[n]))
        entry["steps"].append(walk.steps[:, n].tolist())
        entry["reached"].append(bool(walk.reached[:, n].all()))
    return out


quality = {key: {name: [measure(key, name, i, found) for i, found in enumerate(directions[key][name])]
                 for name in masks[key]} for key in models}
unreached = sum(not r for key in quality for name in quality[key] for q in quality[key][name]
                for m in q.values() for r in m["reached"])
glue("unreached", unreached)
record("local_quality", quality)

# %%
METHODS = ["generalized", "global local axes", "low-rank (ours)", "LowRankGAN", "global top"]


def ratios(key, name, method, measure_="lpips"):
    """One list of ratios per code where the method ran (LowRankGAN's recipe may return fewer than k)."""
    return [q[method][measure_] for q in quality[key][name] if method in q and q[method][measure_]]


def summary(key, name, method, measure_="lpips"):
    rows = ratios(key, name, method, measure_)
    if not rows:
        return None
    width = min(len(r) for r in rows)
    return local.geometric_mean([r[:width] for r in rows], n_boot=n_bootstrap, seed=seed)


def cell(value):
    return "not run" if value is None else f"{value[0]:.3g} [{value[1]:.3g}, {value[2]:.3g}]"


for measure_, title in (("lpips", "LPIPS"), ("pixels", "pixels")):
    for key in models:
        table = {"method": METHODS}
        for name in masks[key]:
            table[name] = [cell(summary(key, name, method, measure_)) for method in METHODS]
        display(viz.markdown_table(table))
        print(f"{models[key].name}: in/out ratio in {title}, geometric mean over codes and directions "
              f"[95% bootstrap interval over codes]")

# %% [markdown]
# How many times more local than the paper's global axes? The fold change compares the generalised
# directions with the global top eigenvectors at the same codes (geometric means, bootstrap intervals
# over codes), per model, over all its regions together.

# %%
def fold(key, a="generalized", b="global top", measure_="lpips"):
    rows_a, rows_b = [], []
    for name in masks[key]:
        for q in quality[key][name]:
            rows_a.append(q[a][measure_][:k])
            rows_b.append(q[b][measure_][:k])
    return local.fold_change(rows_a, rows_b, n_boot=n_bootstrap, seed=seed)


folds = {key: {m: fold(key, measure_=m) for m in ("lpips", "pixels")} for key in models}
record("local_fold_vs_global_top", folds)
glue("fold_faces_lpips", folds["faces"]["lpips"][0])
glue("fold_faces_lpips_low", folds["faces"]["lpips"][1])
glue("fold_faces_lpips_high", folds["faces"]["lpips"][2])
glue("fold_faces_pixels", folds["faces"]["pixels"][0])
glue("fold_faces_pixels_low", folds["faces"]["pixels"][1])
glue("fold_faces_pixels_high", folds["faces"]["pixels"][2])
glue("fold_eyes_lpips", folds["eyes"]["lpips"][0])
glue("fold_eyes_lpips_low", folds["eyes"]["lpips"][1])
glue("fold_eyes_lpips_high", folds["eyes"]["lpips"][2])
glue("fold_eyes_pixels", folds["eyes"]["pixels"][0])
glue("fold_eyes_pixels_low", folds["eyes"]["pixels"][1])
glue("fold_eyes_pixels_high", folds["eyes"]["pixels"][2])


def verdict(key):
    est, low, high = folds[key]["lpips"]
    if low > 3:
        return "several times more local than the global axes (the whole interval lies above 3)"
    if low > 1:
        return f"more local than the global axes, though not several times (the interval starts at {low:.3g})"
    return f"not clearly more local than the global axes (the interval reaches {low:.3g})"


glue("verdict_faces", verdict("faces"))
glue("verdict_eyes", verdict("eyes"))
result_table("local_edits_fold", "Local edits: in/out ratio of the generalised directions over the global top eigenvectors",
             rows=["LPIPS in/out, fold", "pixel in/out, fold"],
             columns={f"ours: {models[key].name}": [f"{folds[key]['lpips'][0]:.3g} [{folds[key]['lpips'][1]:.3g}, "
                                                    f"{folds[key]['lpips'][2]:.3g}]",
                                                    f"{folds[key]['pixels'][0]:.3g} [{folds[key]['pixels'][1]:.3g}, "
                                                    f"{folds[key]['pixels'][2]:.3g}]"] for key in models},
             row_header="measure",
             note=f"{n_codes} codes per model, {k} directions per method, regions "
                  + "; ".join(f"{models[key].name}: {', '.join(masks[key])}" for key in models)
                  + f"; walks matched to an in-region LPIPS of {target}; 95% bootstrap intervals over codes")

# %% [markdown]
# On the faces the generalised directions are {glue:md}`verdict_faces`: their in/out ratio in LPIPS is
# {glue:text}`fold_faces_lpips:.3g` times that of the global top eigenvectors (bootstrap interval
# {glue:text}`fold_faces_lpips_low:.3g` to {glue:text}`fold_faces_lpips_high:.3g`), and
# {glue:text}`fold_faces_pixels:.3g` times in pixels ({glue:text}`fold_faces_pixels_low:.3g` to
# {glue:text}`fold_faces_pixels_high:.3g`). On the eyes they are {glue:md}`verdict_eyes`, with folds of
# {glue:text}`fold_eyes_lpips:.3g` in LPIPS ({glue:text}`fold_eyes_lpips_low:.3g` to
# {glue:text}`fold_eyes_lpips_high:.3g`) and {glue:text}`fold_eyes_pixels:.3g` in pixels
# ({glue:text}`fold_eyes_pixels_low:.3g` to {glue:text}`fold_eyes_pixels_high:.3g`). Walks that never
# reached the target change inside the region before the step limit (the code's norm): {glue:text}`unreached:d`.

# %% [markdown]
# ## What the directions do
#
# Each row walks from the first code along one direction, to twice the matched step each way (the middle
# column is the code itself; the columns at one step are where the in/out ratio was measured). The box is
# drawn on every image. For each region: the top generalised direction, LowRankGAN's first direction (if
# it ran), and the top global eigenvector.

# %%
def montage(key, i=0):
    G, z0 = models[key], codes[key][i]
    rows, labels = [], []
    for name in masks[key]:
        found, measured = directions[key][name][i], quality[key][name][i]
        for method in ("generalized", "LowRankGAN", "global top"):
            if method not in found or found[method].shape[1] == 0:
                continue
            v = found[method][:, 0]
            minus, plus = measured[method]["steps"][0]
            steps = torch.tensor([2 * minus, minus, 0.0, plus, 2 * plus], dtype=torch.float64)
            codes_ = z0.double() + steps[:, None] * (v / v.norm())[None]
            with torch.no_grad():
                images = G(codes_.to(z0))
            rows.append(viz.outline(images, masks[key][name]))
            labels.append(f"{name}: {method}")
    return viz.montage(np.stack(rows), labels, ["−2 steps", "−1 step", "code", "+1 step", "+2 steps"],
                       title=f"{G.name}: walks matched to the same change inside the box", label_width=190)


montage("faces")

# %%
montage("eyes")

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
    whole_h = analysis.offdiag_summary(analysis.homogeneity(whole[key])).mean if n_codes > 1 else float("nan")
    homogeneity[key] = {"whole image": whole_h}
    transfer[key] = {}
    for name, (region, rest) in pairs[key].items():
        if n_codes > 1:
            h = local.region_homogeneity(region, rest, k=G.latent_dim, tau=tau)  # all ranks, as for the whole image
            homogeneity[key][name] = analysis.offdiag_summary(h).mean
            fractions = []
            for i in range(n_codes):
                axes_ = directions[key][name][i]["global local axes"][:, :1]
                own = local.generalized_directions(region.H[i], rest.H[i], 1, tau=tau).scores[0]
                fractions.append(float(local.quotients(region.H[i], rest.H[i], axes_, tau=tau)[0] / own))
            transfer[key][name] = float(np.mean(fractions))
        else:
            homogeneity[key][name], transfer[key][name] = float("nan"), float("nan")
record("local_homogeneity", homogeneity)
record("local_transfer", transfer)
viz.markdown_table({"model": [key for key in models for _ in masks[key]],
                    "region": [name for key in models for name in masks[key]],
                    "homogeneity of the region (mean)": [homogeneity[key][name] for key in models for name in masks[key]],
                    "homogeneity of the whole image (mean)": [homogeneity[key]["whole image"] for key in models
                                                              for _ in masks[key]],
                    "global local axis 1 at a held-out code, fraction of its best": [transfer[key][name] for key in models
                                                                                     for name in masks[key]]},
                   precision=3)

# %%
region_h = [homogeneity[key][name] for key in models for name in masks[key]]
whole_h = [homogeneity[key]["whole image"] for key in models for _ in masks[key]]
lower = sum(r < w for r, w in zip(region_h, whole_h))
glue("homogeneity_lower", lower)
glue("n_regions", len(region_h))
glue("transfer_mean", float(np.nanmean([transfer[key][name] for key in models for name in masks[key]])))

# %% [markdown]
# In {glue:text}`homogeneity_lower:d` of {glue:text}`n_regions:d` regions the local directions are less
# homogeneous than the whole-image metric at the same codes. On average the first global local axis reaches
# {glue:text}`transfer_mean:.1%` of the best generalised Rayleigh quotient at a code it was not fitted to.

# %% [markdown]
# ## What it costs
#
# Times measured in this run, per code, on whatever machine ran it (rough: `benchmarks/region.py` records
# the comparison on an idle machine). Our region metrics for every region of a model come from one pass;
# LowRankGAN's pixel Jacobian needs one backward pass per pixel of its working resolution, and its Robust
# PCA runs per region.

# %%
cost = {key: {"region metrics, all regions (ours)": seconds_region[key],
              f"pixel Jacobian at {lowrankgan_size} px (LowRankGAN)": seconds_pixel[key],
              "Robust PCA + projection, per region": seconds_rpca[key]} for key in models}
record("local_cost_seconds", cost)
viz.markdown_table({"step": list(cost["faces"]), **{f"{models[key].name}: s per code": list(cost[key].values())
                                                    for key in models}}, precision=2)

# %%
speedup = seconds_pixel["faces"] / seconds_region["faces"] if n_lowrankgan else float("nan")
glue("cost_ratio_faces", speedup)
glue("cost_sentence", (f"the pixel Jacobian alone took {speedup:.3g} times as long as all of our region metrics"
                       if speedup == speedup else "LowRankGAN's method did not run (`n_lowrankgan` = 0)"))

# %% [markdown]
# On the faces, in this run, {glue:md}`cost_sentence`.

# %% [markdown]
# ## Try it
#
# - `-p target 0.05`: larger matched changes; walks leave the quadratic regime and locality usually drops.
# - `-p lpips_size None`: LPIPS at each model's own resolution. For the faces its deepest layers then have a
#   three-by-three grid, so a region blurs into its neighbours: see whether the in/out ratios fall.
# - `-p n_codes 10 -p n_lowrankgan 3`: more codes for tighter intervals, and LowRankGAN at more of them.
# - `-p tau 1e-5`: a smaller $\delta$ trusts the rest's metric more, down to its smallest eigenvalues.
# - `-p faces_model dcgan-faces64`: the synthetic DigiFace faces; the boxes follow its own average face.
