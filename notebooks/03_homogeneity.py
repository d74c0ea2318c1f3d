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
# # Homogeneity: is the metric the same everywhere?
#
# **What this chapter tests.** The paper's second finding: the directions that matter are much the same at
# every code, whatever the distance between the codes, and every layer of the generator stretches the same
# directions. This page runs the paper's tests and two controls on one model in detail, then the
# homogeneity and layer tests on every embedded model, in one table next to the paper's numbers (also on
# the [results page](results.md)).
#
# **Rerun it** ({glue:text}`run_times`):
#
# ```bash
# python -m helpers.book run --only 03 -p n_points 30 -p model fcgan-cats64
# ```

# %% [markdown]
# The previous chapter found the metric strongly anisotropic at every code: a few directions change the
# image a lot, most barely at all. Wang and Ponce measure whether these directions are the same at every
# code with a rank-matched test. At two codes $z_i$ and $z_j$, take the eigenvectors $u_k$ of $H_i$ and ask
# how much $H_j$ stretches them, $\alpha_k = u_k^\top H_j u_k$. If the two metrics share their eigenframe,
# $\alpha_k$ equals the $k$-th eigenvalue $\lambda_k(H_j)$; so correlate $\log_{10}\alpha_k$ with
# $\log_{10}\lambda_k(H_j)$ across ranks $k$. A correlation near one means that the directions that matter at
# $z_i$ matter, in the same order, at $z_j$.
#
# For their DCGAN on FashionGen and thirty codes the paper reports a mean of {paper}`0.952` (median
# {paper}`0.954`) over all ordered pairs $i \ne j$ on the log scale, and {paper}`0.739` (median
# {paper}`0.777`) when the values themselves are correlated; the correlation does not depend on how far
# apart the two codes are (r = {paper}`0.09`). It backs this up with two controls: the same generator with
# its weights shuffled, and the metrics of the generator's own layers, which turn out to amplify the same
# directions layer after layer (a mean correlation of {paper}`0.993` on the log scale and {paper}`0.915` on
# the linear scale over its thirteen layers).
#
# The detailed sections below run every one of these tests on `model` ({glue:text}`model`, by default the
# book's first model), at {glue:text}`n_points:d` codes from seed {glue:text}`seed:d`, and add one: the same
# analysis with the pixel distance (MSE) and LPIPS-VGG in place of LPIPS-AlexNet. The last section repeats
# the homogeneity and layer tests on every model. The metrics at the codes come from the store that
# chapter 02 wrote under `runs/metrics/` (computed here if it is missing).

# %% tags=["parameters"]
from helpers.generators import EMBEDDED

models = list(EMBEDDED)  # generators compared in the last section (names in generators.MODELS)
model = EMBEDDED[0]  # the generator of the detailed sections
online_models = []  # e.g. ["biggan-deep-128"]: joins the table if its published weights download (internet)
distance = "lpips-alex"
compare_distances = ["mse", "lpips-vgg"]  # distances whose metrics are compared with `distance`'s
n_points = 8  # random codes per model
seed = 0
n_grid = 5  # positions in the scatter grid
top_k = 10  # eigenvectors compared between distances, and the subspace size of the energy table
shuffle_seed = 0
eye_class = "brown"
device = "cpu"

# %%
import warnings

import numpy as np
import torch
from IPython.display import display

from helpers import analysis as A
from helpers import distances, generators, viz
from helpers.batch import metric_many
from helpers.catalogue import many_models, model_metrics
from helpers.report import glue, phrase_list, record, result_table, run_times

glue("run_times", run_times("03_homogeneity"))
glue("model", model)
glue("n_points", n_points)
glue("seed", seed)
warnings.filterwarnings("ignore", module="torchvision.models._utils")  # lpips's deprecated `pretrained=`
if n_points < 3:
    raise ValueError(f"this chapter compares pairs of codes and their distances: n_points must be ≥ 3, "
                     f"got {n_points}")
d = distances.load(distance, device=device)
options = {"cdcgan-eyes128": {"eye_class": eye_class}, **{name: {"weights": "pretrained"} for name in online_models}}
detail = model_metrics(model, distance, n_points, seed, loaded=d, device=device, **options.get(model, {}))
G, m = detail.G, detail.metric
z = m.z
print(f"{G.name}: {G.latent_dim}-d latent; {distance} metric at {n_points} codes from seed {seed}")

# %% [markdown]
# ## The homogeneity matrix
#
# Entry $(i, j)$ is the log-scale correlation described above, with the eigenvectors taken from code $i$
# (row) and tested on the metric at code $j$ (column). The matrix need not be symmetric; its diagonal is one
# by construction.

# %%
homog_log = A.homogeneity(m, scale="log")
homog_linear = A.homogeneity(m, scale="linear")
vec_corr = A.vec_correlation(m)
codes = [f"z{i}" for i in range(n_points)]
viz.heatmap(homog_log, codes, codes, colorscale="Viridis", colorbar_title="corr",
            title=f"log-scale homogeneity, {G.name}, {n_points} codes",
            xlabel="metric of code j", ylabel="eigenvectors of code i")

# %% [markdown]
# The same numbers as a distribution over the ordered pairs $i \ne j$, next to the two other measures: the
# linear-scale correlation of $\alpha_k$ with $\lambda_k(H_j)$, and the plain correlation of the two
# matrices entry by entry, $\operatorname{vec}(H_i)$ with $\operatorname{vec}(H_j)$.

# %%
offdiag = ~torch.eye(n_points, dtype=torch.bool, device=homog_log.device)
viz.histogram_overlay({"log scale": homog_log[offdiag], "linear scale": homog_linear[offdiag],
                       "vec(H) correlation": vec_corr[offdiag]}, title="homogeneity over pairs of codes",
                      xlabel="correlation")

# %%
measures = {"log scale": homog_log, "linear scale": homog_linear, "vec(H) correlation": vec_corr}
summary = {name: A.offdiag_summary(matrix) for name, matrix in measures.items()}
record("homogeneity", {name: {"mean": s.mean, "median": s.median} for name, s in summary.items()})
viz.markdown_table({"measure": list(summary), "mean": [s.mean for s in summary.values()],
                    "median": [s.median for s in summary.values()],
                    "paper, DCGAN-FashionGen (mean / median)": ["0.952 / 0.954", "0.739 / 0.777", "–"]},
                   precision=3)

# %% [markdown]
# ## Pair by pair
#
# Each panel of the grid below is one ordered pair of the first few codes: every dot is one rank $k$, at
# $x = \log_{10}\lambda_k(H_j)$ and $y = \log_{10}\alpha_k$ (eigenvectors of code $i$, row, measured by the
# metric of code $j$, column). On the diagonal $\alpha_k = \lambda_k$ and the dots lie on the identity
# line; off the diagonal, homogeneity means they stay close to it. The panel title gives the correlation
# from the matrix above.

# %%
grid = list(range(min(n_grid, n_points)))
alpha = A.pair_amplification(m, grid, grid)  # (n, n, d)
lam_target = m.eigvals[grid][None].expand_as(alpha)  # λ_k(H_j) for column j
floor = A.FLOOR * m.eigvals[grid, :1][None]  # the clipping used by `homogeneity`
log_lam, log_alpha = torch.log10(lam_target.clamp_min(floor)), torch.log10(alpha.clamp_min(floor))
viz.scatter_grid(log_lam, log_alpha, r=homog_log[grid][:, grid], labels=([f"z{i}" for i in grid],
                                                                         [f"z{j}" for j in grid]),
                 title="log10 α_k (eigenvectors of row code, metric of column code) vs log10 λ_k",
                 xlabel="log10 λ_k(H_j)", ylabel="log10 α_k")

# %% [markdown]
# Correlation ignores the slope of the relation. The least-squares slope of $\log_{10}\alpha_k$ against
# $\log_{10}\lambda_k(H_j)$ over all off-diagonal pairs of the grid says whether the transplanted
# eigenvectors keep the full spread of the spectrum (slope one) or a compressed one (slope below one: the bottom
# ranks are stretched more than their own eigenvalue at the other code, the top ones less).

# %%
pair_mask = ~torch.eye(len(grid), dtype=torch.bool)
x_fit, y_fit = log_lam[pair_mask].flatten(), log_alpha[pair_mask].flatten()
slope = record("pair_slope", float(torch.cov(torch.stack([x_fit, y_fit]))[0, 1] / x_fit.var()))
print(f"slope of log10 α on log10 λ over {int(pair_mask.sum())} ordered pairs: {slope:.3f}")

# %% [markdown]
# ## Does homogeneity fall off with distance?
#
# If the metric only changed slowly, nearby codes would share their eigenframe and far-apart codes would
# not. Each dot below is one ordered pair, at its code distance $\lVert z_i - z_j \rVert$ and its log-scale
# homogeneity.

# %%
r_distance = record("homogeneity_vs_distance_r", A.homogeneity_vs_distance(z, homog_log))
pairs = offdiag.nonzero().tolist()
distances_ij = torch.cdist(z.double(), z.double())[offdiag]
viz.scatter_fit(distances_ij, homog_log[offdiag], r=r_distance, hover=[f"z{i} → z{j}" for i, j in pairs],
                xlabel="code distance ‖z_i − z_j‖", ylabel="log-scale homogeneity",
                title="homogeneity against code distance")

# %% [markdown]
# ## The average metric: one frame for the whole space
#
# If every code shares roughly the same eigenframe, the average of the metrics over codes has that frame
# too, and its eigenvectors are a global basis for the latent space (the next chapters walk along them and
# optimize in them). Its spectrum, next to the spectra of the individual metrics (both normalized by the
# top eigenvalue):

# %%
average = A.average_metric(m)
viz.spectrum_chart({"individual metrics (mean, 5–95 %)": A.spectrum_summary(m),
                    "average metric": A.spectrum_summary(average.eigvals[None])},
                   title="spectrum of the average metric", log_y=True)

# %% [markdown]
# How much of each code's metric does this global frame capture? For the top-$n$ eigenvectors of the
# average metric, the fraction of $\operatorname{tr}(H_i)$ that lies in their span, against $n$. Two
# references: the code's own top-$n$ eigenvectors hold the most any $n$-dimensional subspace can (the
# cumulative eigenvalue fraction), and a random $n$-dimensional subspace holds $n/d$ on average.

# %%
ranks = np.arange(1, G.latent_dim + 1)
global_frame = A.subspace_energy(m, average.eigvecs)
own_frame = m.eigvals.clamp_min(0).cumsum(-1) / m.eigvals.clamp_min(0).sum(-1, keepdim=True)
band = {name: (ranks, e.mean(0), e.quantile(0.05, dim=0), e.quantile(0.95, dim=0))
        for name, e in {"average-metric frame": global_frame, "own eigenvectors": own_frame}.items()}
band["random subspace"] = (ranks, ranks / G.latent_dim, ranks / G.latent_dim, ranks / G.latent_dim)
viz.band_chart(band, title="fraction of each code's metric in a top-n subspace", xlabel="subspace dimension n",
               ylabel="fraction of tr(H)")

# %%
energy = {n: (global_frame[:, n - 1].mean().item(), own_frame[:, n - 1].mean().item()) for n in (1, 5, top_k, 20)}
record("average_frame_energy", {str(n): {"average_frame": a, "own_frame": o} for n, (a, o) in energy.items()})
viz.markdown_table({"n": list(energy), "average-metric frame": [a for a, _ in energy.values()],
                    "own eigenvectors": [o for _, o in energy.values()],
                    "random subspace": [n / G.latent_dim for n in energy]}, precision=3)

# %% [markdown]
# ## Control: the same network with its weights shuffled
#
# Is homogeneity a property of the learned weights, or would any network of this shape show it? The
# control permutes the entries of every weight tensor at random, which keeps each layer's distribution of
# weights and the architecture but destroys what was learned, and repeats the analysis at the same codes.

# %%
shuffled = generators.Generator(A.shuffle_weights(G.net, seed=shuffle_seed), G.latent_dim,
                                name=f"{G.name}-shuffled{shuffle_seed}").to(device)
with torch.no_grad():
    display(viz.image_grid(shuffled(z[:8]), nrow=8, title="shuffled weights, same codes"))
m_shuffled = metric_many(shuffled, z, d, progress=False,
                         store=f"runs/metrics/{shuffled.name}-{distance}-{n_points}-{seed}")

# %%
control = {"log scale": A.homogeneity(m_shuffled, scale="log"),
           "linear scale": A.homogeneity(m_shuffled, scale="linear"),
           "vec(H) correlation": A.vec_correlation(m_shuffled)}
viz.heatmap({"trained": homog_log, "shuffled weights": control["log scale"]}, codes, codes, colorscale="Viridis",
            colorbar_title="corr", title="log-scale homogeneity: trained vs shuffled weights",
            xlabel="metric of code j", ylabel="eigenvectors of code i")

# %%
control_summary = {name: A.offdiag_summary(matrix) for name, matrix in control.items()}
record("homogeneity_shuffled", {name: {"mean": s.mean, "median": s.median} for name, s in control_summary.items()})
shuffled_decades = A.decades(m_shuffled).mean().item()
trained_decades = A.decades(m).mean().item()
viz.markdown_table({"measure": [*summary, "spectrum span (decades, mean)"],
                    "trained (mean / median)": [*(f"{s.mean:.3f} / {s.median:.3f}" for s in summary.values()),
                                                f"{trained_decades:.2f}"],
                    "shuffled weights (mean / median)": [*(f"{s.mean:.3f} / {s.median:.3f}"
                                                           for s in control_summary.values()),
                                                         f"{shuffled_decades:.2f}"]})

# %%
viz.spectrum_chart({"trained": A.spectrum_summary(m), "shuffled weights": A.spectrum_summary(m_shuffled)},
                   title="spectra: trained vs shuffled weights")

# %% [markdown]
# ## Layer by layer
#
# The metric of the image is built up through the generator. For each block of the network (every
# nonlinearity, the last one the image; `generators.layers` names them for each model) we hook its output
# $f_l$ and compute the exact metric of $d_l(z) = \lVert f_l(z) - f_l(z_0) \rVert^2$, then ask how each layer
# stretches the eigenvectors of the others. Two summaries:
#
# - the authors' layer matrix: entry $(l, m)$ correlates $\alpha_k = u_k^\top H_m u_k$, with $u_k$ the
#   eigenvectors of layer $l$, with layer $l$'s own eigenvalues $\lambda_k(H_l)$, across ranks (log or
#   linear scale), averaged over codes;
# - the amplification of the image's eigenvectors (the last layer) by every layer,
#   $\alpha_{l,k} = u_k^\top H_l u_k$, and how these curves correlate between layers.

# %%
def layer_analysis(G_, z_):
    """The authors' layer matrices (log, linear; mean over codes) and the image-eigenvector alignment."""
    names_ = generators.layers(G_)
    layer_H_ = A.layer_metrics(G_, z_, list(names_.values()))
    return (list(names_), A.layer_homogeneity(layer_H_, scale="log").mean(0),
            A.layer_homogeneity(layer_H_, scale="linear").mean(0), A.layer_alignment(layer_H_))


labels, layer_log, layer_linear, alignment = layer_analysis(G, z)
viz.heatmap({"log scale": layer_log, "linear scale": layer_linear}, labels, labels, colorscale="Viridis",
            colorbar_title="corr", title=f"layer homogeneity, mean over {n_points} codes",
            xlabel="metric of layer m", ylabel="eigenvectors of layer l")

# %%
layer_summary = {"authors' matrix, log": A.offdiag_summary(layer_log),
                 "authors' matrix, linear": A.offdiag_summary(layer_linear),
                 "image-eigenvector amplification, log": A.offdiag_summary(alignment.corr_log.mean(0)),
                 "image-eigenvector amplification, linear": A.offdiag_summary(alignment.corr_linear.mean(0))}
record("layer_alignment", {name: {"mean": s.mean, "median": s.median} for name, s in layer_summary.items()})
viz.markdown_table({"measure": list(layer_summary), "mean": [s.mean for s in layer_summary.values()],
                    "median": [s.median for s in layer_summary.values()],
                    "paper, DCGAN-FashionGen (mean)": ["0.993", "0.915", "–", "–"]}, precision=3)

# %% [markdown]
# The amplification curves at the first code: for each layer, $\alpha_{l,k}$ against the rank $k$ of the
# image's eigenvector, each divided by its largest value so that layers of very different scale share one
# axis. Parallel curves mean every layer ranks the directions the same way; the slope column gives the
# fitted $\log_{10}\alpha_{l,k} \approx \text{slope} \cdot \log_{10}\lambda_k(\text{image}) + c$ (mean over
# codes).

# %%
curves = alignment.alpha[0] / alignment.alpha[0].amax(-1, keepdim=True)
viz.line_chart(ranks, dict(zip(labels, curves.clamp_min(A.FLOOR))), log_y=True,
               xlabel="rank k of the image's eigenvector",
               ylabel="α(l, k) / max over k", title="amplification of the image's eigenvectors by each layer (code 0)")

# %%
layer_slopes = alignment.slope.mean(0)
viz.markdown_table({"layer": labels, "slope": layer_slopes.tolist(),
                    "corr with image (log)": alignment.corr_log.mean(0)[:, -1].tolist()}, precision=3)

# %% [markdown]
# ## LPIPS against other distances
#
# Is the geometry a property of the generator, or of the distance we pull back? The same codes, with the
# mean squared pixel difference and with LPIPS on a VGG16 backbone in place of LPIPS-AlexNet. For each code:
# the correlation of the two matrices entry by entry, the correlation of their log spectra, the |cosine|
# between rank-matched top eigenvectors, and the overlap of the two top-k subspaces (one: the same subspace; a
# random pair would give $k/d$).

# %%
comparisons = {}
for other in compare_distances:
    m_other = model_metrics(model, other, n_points, seed, device=device, **options.get(model, {})).metric
    comparisons[other] = A.compare_metrics(m, m_other, k=top_k)
comparison_measures = {"corr vec(H)": lambda c: c.vec_corr, "corr log spectrum": lambda c: c.log_spectrum_corr,
                       "cosine of the top eigenvectors (abs.)": lambda c: c.cosine[:, 0],
                       f"top-{top_k} subspace overlap": lambda c: c.overlap}
compared = {other: {name: f(c).mean().item() for name, f in comparison_measures.items()}
            for other, c in comparisons.items()}
record("distance_comparison", compared)
viz.markdown_table({"measure (mean over codes)": list(comparison_measures),
                    **{f"{distance} vs {other}": list(values.values()) for other, values in compared.items()},
                    "random": ["–", "–", f"≈{(2 / (np.pi * G.latent_dim)) ** 0.5:.3f}",
                               f"{top_k / G.latent_dim:.3f}"]},
                   precision=3)

# %%
viz.band_chart({f"{distance} vs {other}": (np.arange(1, top_k + 1), c.cosine.mean(0), c.cosine.quantile(0.05, dim=0),
                                           c.cosine.quantile(0.95, dim=0)) for other, c in comparisons.items()},
               title="rank-matched eigenvectors of the two metrics", xlabel="rank", ylabel="|cos|")

# %% [markdown]
# ## Across models, next to the paper
#
# The homogeneity and layer tests on every model of this run, at the same codes as above; the detailed
# model's column repeats the numbers above. Rows: the log- and linear-scale homogeneity (mean and median over
# ordered pairs), the correlation of $\operatorname{vec}(H_i)$ with $\operatorname{vec}(H_j)$, the
# correlation r of the log-scale homogeneity with the code distance, the fraction of each code's trace in
# the average metric's top-$k$ eigenvectors ($k$ = {glue:text}`top_k:d`), the authors' layer matrix (log
# and linear, mean of the off-diagonal entries) over each model's blocks, and the shuffled-weights control
# (detailed model only).

# %%
glue("top_k", top_k)
results, notes = many_models(models, distance, n_points, seed, online=online_models, loaded=d, device=device,
                             options=options)
for note in notes:
    print(note)
ROWS = ["log scale, mean", "log scale, median", "linear scale, mean", "linear scale, median",
        "vec(H) correlation, mean", "r with the code distance", "r: 95% bootstrap interval over codes",
        f"average frame, top-{top_k} energy",
        "layers (block outputs)", "layer matrix, log, mean", "layer matrix, linear, mean",
        "shuffled weights, log scale, mean"]
cross, interval = {}, {}


def bracket(low_high):
    """'[low, high]', or '' when there is no interval (nan: too few codes to resample)."""
    low, high = low_high
    return f"[{low:.2f}, {high:.2f}]" if low == low else ""


for name, r in results.items():
    if name == model:
        log_s, lin_s, vec_s, r_dist = summary["log scale"], summary["linear scale"], summary["vec(H) correlation"], \
            r_distance
        layer_log_s, layer_lin_s, n_layers = layer_summary["authors' matrix, log"], \
            layer_summary["authors' matrix, linear"], len(labels)
    else:
        h_log = A.homogeneity(r.metric, scale="log")
        log_s, lin_s = A.offdiag_summary(h_log), A.offdiag_summary(A.homogeneity(r.metric, scale="linear"))
        vec_s, r_dist = A.offdiag_summary(A.vec_correlation(r.metric)), A.homogeneity_vs_distance(r.metric.z, h_log)
        layer_names, l_log, l_lin, _ = layer_analysis(r.G, r.metric.z)
        layer_log_s, layer_lin_s, n_layers = A.offdiag_summary(l_log), A.offdiag_summary(l_lin), len(layer_names)
    frame = A.subspace_energy(r.metric, A.average_metric(r.metric).eigvecs)[:, min(top_k, r.G.latent_dim) - 1]
    interval[name] = A.homogeneity_vs_distance_interval(r.metric.z, A.homogeneity(r.metric, scale="log"), seed=seed)
    cross[name] = dict(zip(ROWS, [log_s.mean, log_s.median, lin_s.mean, lin_s.median, vec_s.mean, r_dist,
                                  bracket(interval[name]) or "–", frame.mean().item(), n_layers,
                                  layer_log_s.mean, layer_lin_s.mean,
                                  control_summary["log scale"].mean if name == model else "–"]))
result_table("homogeneity_across_models", "Homogeneity and layer alignment across models", ROWS,
             {f"ours: {name}": list(values.values()) for name, values in cross.items()},
             paper={"paper: DCGAN-fashion (120-d)": [
                 "homogeneity_log_mean", "homogeneity_log_median", "homogeneity_lin_mean", "homogeneity_lin_median",
                 None, "homogeneity_vs_distance_r", None, None, None, "layer_alignment_log_mean",
                 "layer_alignment_lin_mean", None]},
             row_header="quantity",
             note=f"{n_points} codes per model ({n_points * (n_points - 1)} ordered pairs), seed {seed}, {distance}")

# %% [markdown]
# ## What the numbers show
#
# {glue:md}`claim_homogeneity:myst`
#
# {glue:md}`claim_linear:myst`
#
# {glue:md}`claim_distance:myst`
#
# {glue:md}`claim_layers:myst`
#
# {glue:md}`claim_detail:myst`

# %%
names = list(cross)


def values(row, fmt=".3f"):
    return phrase_list(f"{cross[n][row]:{fmt}} on `{n}`" for n in names)


def where(selected):
    return ("every model of this run" if len(selected) == len(names) else
            phrase_list(f"`{n}`" for n in selected) if selected else "no model of this run")


high = [n for n in names if cross[n]["log scale, mean"] >= 0.9]
close = [n for n in names if abs(cross[n]["log scale, mean"] - 0.952) <= 0.05]
glue("claim_homogeneity",
     f"**Homogeneity.** The log-scale homogeneity, mean over ordered pairs, is {values('log scale, mean')}, "
     f"against the paper's {{paper}}`0.952`; it is within 0.05 of it on {where(close)}. Taking a mean of at "
     f"least 0.9 as the same eigenframe everywhere, the claim holds on {where(high)}.")
above = [n for n in names if cross[n]["linear scale, mean"] > 0.739]
lower_vec = [n for n in names if cross[n]["vec(H) correlation, mean"] < cross[n]["log scale, mean"]]
glue("claim_linear",
     f"On the linear scale, which weighs the top few ranks, the mean is {values('linear scale, mean')} (the "
     f"paper: {{paper}}`0.739`), above the paper's value on {where(above)}. The plain correlation of the "
     f"matrices entry by entry is {values('vec(H) correlation, mean', '.2f')}, lower than the rank-matched "
     f"log-scale test on {where(lower_vec)}: there the eigenframes agree in rank order more than entry by entry.")
undetected = [n for n in names if interval[n][0] <= 0 <= interval[n][1]]
no_interval = [n for n in names if interval[n][0] != interval[n][0]]  # nan: too few codes to resample
detected = [n for n in names if n not in undetected and n not in no_interval]
distance_text = "**Distance.** Homogeneity and code distance correlate with r = " + phrase_list(
    f"{cross[n]['r with the code distance']:.2f} {bracket(interval[n])}".rstrip() + f" on `{n}`" for n in names)
if len(no_interval) < len(names):
    distance_text += " (in brackets, the 95% bootstrap interval over codes)"
distance_text += "; the paper reports r = {paper}`0.09`."
if undetected:
    distance_text += f" No dependence on the distance is detected (the interval includes zero) on {where(undetected)}."
if detected:
    distance_text += f" A dependence is detected (the interval excludes zero) on {where(detected)}."
if no_interval:
    distance_text += (f" With {n_points} codes there are too few to resample for an interval on {where(no_interval)}, "
                      "so nothing is concluded there.")
distance_text += (" Random codes in $d$ dimensions are all about $\\sqrt{2d}$ apart, so this test spans a narrow range "
                  "of distances, in the paper as here.")
glue("claim_distance", distance_text)
aligned = [n for n in names if cross[n]["layer matrix, log, mean"] >= 0.9]
glue("claim_layers",
     f"**Layers.** The authors' layer matrix has a log-scale mean of {values('layer matrix, log, mean')} (the "
     f"paper: {{paper}}`0.993`, over the thirteen layers of its DCGAN; we use each model's block outputs) and a "
     f"linear-scale mean of {values('layer matrix, linear, mean')} (the paper: {{paper}}`0.915`). That every "
     f"layer stretches the same directions in the same order (a log-scale mean of at least 0.9) holds on "
     f"{where(aligned)}.")

shuffle_drop = summary["log scale"].mean - control_summary["log scale"].mean
detail_text = (f"**The detailed model, `{model}`.** Transplanted eigenvectors keep a slope of {slope:.2f} of "
               f"$\\log_{{10}}\\alpha_k$ on $\\log_{{10}}\\lambda_k$ over the grid's pairs ("
               + ("a compressed spread: the bottom ranks are stretched more than their own eigenvalue at the "
                  "other code, the top ones less" if slope < 0.95 else "about the full spread") + "). "
               f"With its weights shuffled, the log-scale homogeneity drops from {summary['log scale'].mean:.3f} "
               f"to {control_summary['log scale'].mean:.3f} and the spectrum spans {shuffled_decades:.1f} decades "
               f"instead of {trained_decades:.1f}: "
               + ("the homogeneity is learned, not a property of the architecture alone."
                  if shuffle_drop > 0.3 else "the architecture alone gives much of it."))
if compared:
    detail_text += " Against the other distances: " + "; ".join(
        f"`{other}` correlates with `{distance}` at {v['corr vec(H)']:.2f} entry by entry and "
        f"{v['corr log spectrum']:.3f} in log spectrum, the top eigenvectors have |cos| "
        f"{v['cosine of the top eigenvectors (abs.)']:.2f}, and the top-{top_k} subspaces overlap by "
        f"{v[f'top-{top_k} subspace overlap']:.2f} (random subspaces: {top_k / G.latent_dim:.2f})"
        for other, v in compared.items()) + "."
detail_sentence = glue("claim_detail", detail_text)

# %% [markdown]
# ## Try it
#
# - `-p n_points 30`: as many codes as the paper, and many more pairs for the distance test.
# - `-p model fcgan-cats64`: the detailed sections on the fully connected model (or any other embedded one).
# - `-p shuffle_seed 1`: another shuffled control; the trained model's numbers do not change.
# - `-p compare_distances '["mse"]'`: skip LPIPS-VGG to save time.
# - `-p online_models '["biggan-deep-128"]'` (internet; best with `-p device cuda`): BigGAN-deep in the table.
