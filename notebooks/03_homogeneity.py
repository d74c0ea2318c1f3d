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
# # Homogeneity: is the metric the same everywhere?
#
# **What this chapter tests.** Whether the metric is the same at every code (homogeneity): the rank-matched
# correlation of one code's eigenvectors under another code's metric, against a shuffled-weights control,
# layer by layer, and for other distances. Its tables, beside the paper's numbers, are also on the [results
# page](results.md).
#
# **Rerun it** ({glue:text}`run_times`):
#
# ```bash
# python -m helpers.book run --only 03 -p n_points 30 -p seed 1
# ```

# %% [markdown]
# The previous chapter found the metric strongly anisotropic at every code: a few directions change the
# image a lot, most barely at all. Wang and Ponce's second finding is that these directions are much the
# same at every code. They measure it with a rank-matched test. At two codes z_i and z_j, take the
# eigenvectors u_k of H_i and ask how much H_j stretches them, α_k = u_kᵀ H_j u_k. If the two metrics share
# their eigenframe, α_k equals the k-th eigenvalue λ_k(H_j); so correlate log10 α_k with log10 λ_k(H_j)
# across ranks k. A correlation near 1 means that the directions that matter at z_i matter, in the same
# order, at z_j.
#
# For DCGAN-fashion and 30 codes the paper reports a mean of 0.952 (median 0.954) over all ordered pairs
# i ≠ j on the log scale, and 0.739 (median 0.777) when the values themselves are correlated; the
# correlation does not depend on how far apart the two codes are (r = 0.09). It backs this up with two
# controls: the same generator with its weights shuffled, and the metrics of the generator's own layers,
# which turn out to amplify the same directions layer after layer.
#
# This chapter runs every one of these tests on the faces DCGAN, and adds one: the same analysis with the
# pixel distance (MSE) in place of LPIPS.

# %% tags=["parameters"]
model = "dcgan-faces64"
distance = "lpips-alex"
compare_distances = ["mse", "lpips-vgg"]  # distances whose metrics are compared with `distance`'s
n_points = 10
seed = 0
n_grid = 5  # positions in the scatter grid
top_k = 10  # eigenvectors compared between distances, and the subspace size of the energy table
shuffle_seed = 0
device = "cpu"

# %%
import warnings

import numpy as np
import torch
from IPython.display import display
from torch import nn

from helpers import analysis as A
from helpers import distances, generators, viz
from helpers.batch import metric_many
from helpers.book import glue, record, run_times

glue("run_times", run_times("03_homogeneity"))

warnings.filterwarnings("ignore", module="torchvision.models._utils")  # lpips's deprecated `pretrained=`
if n_points < 3:
    raise ValueError(f"this chapter compares pairs of codes and their distances: n_points must be ≥ 3, "
                     f"got {n_points}")
G = generators.load(model, device=device)
d = distances.load(distance, device=device)
z = G.sample(n_points, seed=seed)
m = metric_many(G, z, d, progress=False, store=f"runs/metrics/{G.name}-{distance}-{n_points}-{seed}")
print(f"{G.name}: {G.latent_dim}-d latent; {distance} metric at {n_points} codes from seed {seed}")

# %% [markdown]
# ## The homogeneity matrix
#
# Entry (i, j) is the log-scale correlation described above, with the eigenvectors taken from code i (row)
# and tested on the metric at code j (column). The matrix need not be symmetric; its diagonal is 1 by
# construction.

# %%
homog_log = A.homogeneity(m, scale="log")
homog_linear = A.homogeneity(m, scale="linear")
vec_corr = A.vec_correlation(m)
codes = [f"z{i}" for i in range(n_points)]
viz.heatmap(homog_log, codes, codes, colorscale="Viridis", colorbar_title="corr",
            title=f"log-scale homogeneity, {G.name}, {n_points} codes",
            xlabel="metric of code j", ylabel="eigenvectors of code i")

# %% [markdown]
# The same numbers as a distribution over the ordered pairs i ≠ j, next to the two other measures: the
# linear-scale correlation of α_k with λ_k(H_j), and the plain correlation of the two matrices entry by
# entry, vec(H_i) with vec(H_j).

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
                    "paper, DCGAN-fashion (mean / median)": ["0.952 / 0.954", "0.739 / 0.777", "–"]}, precision=3)

# %% [markdown]
# ## Pair by pair
#
# Each panel of the grid below is one ordered pair of the first few codes: every dot is one rank k, at
# x = log10 λ_k(H_j) and y = log10 α_k (eigenvectors of code i, row, measured by the metric of code j,
# column). On the diagonal α_k = λ_k and the dots lie on the identity line; off the diagonal, homogeneity
# means they stay close to it. The panel title gives the correlation from the matrix above.

# %%
grid = list(range(min(n_grid, n_points)))
alpha = A.pair_amplification(m, grid, grid)  # (n, n, d)
lam_target = m.eigvals[grid][None].expand_as(alpha)  # λ_k(H_j) for column j
floor = A.FLOOR * m.eigvals[grid, :1][None]  # the clipping used by `homogeneity`
viz.scatter_grid(torch.log10(lam_target.clamp_min(floor)), torch.log10(alpha.clamp_min(floor)),
                 r=homog_log[grid][:, grid], labels=([f"z{i}" for i in grid], [f"z{j}" for j in grid]),
                 title="log10 α_k (eigenvectors of row code, metric of column code) vs log10 λ_k",
                 xlabel="log10 λ_k(H_j)", ylabel="log10 α_k")

# %% [markdown]
# ## Does homogeneity fall off with distance?
#
# If the metric only changed slowly, nearby codes would share their eigenframe and far-apart codes would
# not. Each dot below is one ordered pair, at its code distance ‖z_i − z_j‖ and its log-scale homogeneity.

# %%
r_distance = record("homogeneity_vs_distance_r", A.homogeneity_vs_distance(z, homog_log))
pairs = offdiag.nonzero().tolist()
viz.scatter_fit(torch.cdist(z.double(), z.double())[offdiag], homog_log[offdiag], r=r_distance,
                hover=[f"z{i} → z{j}" for i, j in pairs], xlabel="code distance ‖z_i − z_j‖",
                ylabel="log-scale homogeneity", title="homogeneity against code distance")

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
# How much of each code's metric does this global frame capture? For the top-n eigenvectors of the average
# metric, the fraction of tr(H_i) that lies in their span, against n. Two references: the code's own top-n
# eigenvectors hold the most any n-dimensional subspace can (the cumulative eigenvalue fraction), and a
# random n-dimensional subspace holds n/d on average.

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
viz.markdown_table({"measure": list(summary), "trained (mean / median)": [f"{s.mean:.3f} / {s.median:.3f}"
                                                                          for s in summary.values()],
                    "shuffled weights (mean / median)": [f"{s.mean:.3f} / {s.median:.3f}"
                                                         for s in control_summary.values()]})

# %%
viz.spectrum_chart({"trained": A.spectrum_summary(m), "shuffled weights": A.spectrum_summary(m_shuffled)},
                   title="spectra: trained vs shuffled weights")

# %% [markdown]
# ## Layer by layer
#
# The metric of the image is built up through the generator. For each block of the network (every ReLU
# and the final Tanh) we hook its output f_l and compute the exact metric of d_l(z) = ‖f_l(z) − f_l(z0)‖²,
# then ask how each layer stretches the eigenvectors of the others. Two summaries:
#
# - the authors' layer matrix: entry (l, m) correlates α_k = u_kᵀ H_m u_k, with u_k the eigenvectors of
#   layer l, with layer l's own eigenvalues λ_k(H_l), across ranks (log or linear scale), averaged over codes;
# - the amplification of the image's eigenvectors (the last layer) by every layer, α_{l,k} = u_kᵀ H_l u_k,
#   and how these curves correlate between layers.

# %%
blocks = [name for name, module in G.named_modules() if isinstance(module, (nn.ReLU, nn.Tanh))]
layer_H = A.layer_metrics(G, z, blocks)
labels = [f"{type(G.get_submodule(name)).__name__} {name.split('.')[-1]}" for name in blocks]
layer_log = A.layer_homogeneity(layer_H, scale="log").mean(0)
layer_linear = A.layer_homogeneity(layer_H, scale="linear").mean(0)
viz.heatmap({"log scale": layer_log, "linear scale": layer_linear}, labels, labels, colorscale="Viridis",
            colorbar_title="corr", title=f"layer homogeneity, mean over {n_points} codes",
            xlabel="metric of layer m", ylabel="eigenvectors of layer l")

# %%
alignment = A.layer_alignment(layer_H)
layer_summary = {"authors' matrix, log": A.offdiag_summary(layer_log),
                 "authors' matrix, linear": A.offdiag_summary(layer_linear),
                 "image-eigenvector amplification, log": A.offdiag_summary(alignment.corr_log.mean(0)),
                 "image-eigenvector amplification, linear": A.offdiag_summary(alignment.corr_linear.mean(0))}
record("layer_alignment", {name: {"mean": s.mean, "median": s.median} for name, s in layer_summary.items()})
viz.markdown_table({"measure": list(layer_summary), "mean": [s.mean for s in layer_summary.values()],
                    "median": [s.median for s in layer_summary.values()],
                    "paper, DCGAN-fashion (mean)": ["0.993", "0.915", "–", "–"]}, precision=3)

# %% [markdown]
# The amplification curves at the first code: for each layer, α_{l,k} against the rank k of the image's
# eigenvector, each divided by its largest value so that layers of very different scale share one axis.
# Parallel curves mean every layer ranks the directions the same way; the slope column gives the fitted
# log10 α_{l,k} ≈ slope · log10 λ_k(image) + c (mean over codes).

# %%
curves = alignment.alpha[0] / alignment.alpha[0].amax(-1, keepdim=True)
viz.line_chart(ranks, dict(zip(labels, curves.clamp_min(A.FLOOR))), log_y=True,
               xlabel="rank k of the image's eigenvector",
               ylabel="α(l, k) / max over k", title="amplification of the image's eigenvectors by each layer (code 0)")

# %%
viz.markdown_table({"layer": labels, "slope": alignment.slope.mean(0).tolist(),
                    "corr with image (log)": alignment.corr_log.mean(0)[:, -1].tolist()}, precision=3)

# %% [markdown]
# ## LPIPS against other distances
#
# Is the geometry a property of the generator, or of the distance we pull back? The same codes, with the
# mean squared pixel difference and with LPIPS on a VGG16 backbone in place of LPIPS-AlexNet. For each code:
# the correlation of the two matrices entry by entry, the correlation of their log spectra, the |cosine|
# between rank-matched top eigenvectors, and the overlap of the two top-k subspaces (1: the same subspace; a
# random pair would give k/d).

# %%
comparisons = {}
for other in compare_distances:
    m_other = metric_many(G, z, distances.load(other, device=device), progress=False,
                          store=f"runs/metrics/{G.name}-{other}-{n_points}-{seed}")
    comparisons[other] = A.compare_metrics(m, m_other, k=top_k)
measures = {"corr vec(H)": lambda c: c.vec_corr, "corr log spectrum": lambda c: c.log_spectrum_corr,
            "cosine of the top eigenvectors (abs.)": lambda c: c.cosine[:, 0],
            f"top-{top_k} subspace overlap": lambda c: c.overlap}
record("distance_comparison", {other: {name: f(c).mean().item() for name, f in measures.items()}
                               for other, c in comparisons.items()})
viz.markdown_table({"measure (mean over codes)": list(measures),
                    **{f"{distance} vs {other}": [f(c).mean().item() for f in measures.values()]
                       for other, c in comparisons.items()},
                    "random": ["–", "–", f"≈{(2 / (np.pi * G.latent_dim)) ** 0.5:.3f}", f"{top_k / G.latent_dim:.3f}"]},
                   precision=3)

# %%
viz.band_chart({f"{distance} vs {other}": (np.arange(1, top_k + 1), c.cosine.mean(0), c.cosine.quantile(0.05, dim=0),
                                           c.cosine.quantile(0.95, dim=0)) for other, c in comparisons.items()},
               title="rank-matched eigenvectors of the two metrics", xlabel="rank", ylabel="|cos|")

# %% [markdown]
# ## What the numbers show
#
# The faces DCGAN is nearly as homogeneous as the paper's DCGAN-fashion. In the default run (10 codes, seed
# 0) the log-scale homogeneity has mean 0.937 (median 0.939), and on 30 codes 0.932 (median 0.939), against
# the paper's 0.952 (0.954). The pair-by-pair scatter shows why it is not higher: the eigenvectors of one
# code keep their order at another, but the bottom ranks are stretched more than their own eigenvalue
# (the dots lie above the identity line at the low end), so the log-scale relation is a straight line of
# slope below 1 rather than the identity. The linear-scale correlation, which weighs the top few ranks,
# is 0.76 here and 0.79 on 30 codes (paper 0.739, median 0.777): slightly higher than the paper's. The plain
# correlation of the two matrices entry by entry is much lower, about 0.45: the eigenframes agree in rank
# order, but not entry by entry.
#
# Homogeneity does not depend on how far apart the codes are: r = 0.06 in the default run and −0.03 on 30
# codes, against the paper's 0.09. Random codes in 100 dimensions are all about the same distance apart
# (√200 ≈ 14), so this test only spans a narrow range of distances, in the paper as here.
#
# The average metric gives a usable global frame, though not a perfect one. Its top 10 eigenvectors hold
# about two thirds of each code's metric (0.68 in the default run, 0.65 on 30 codes), against 0.85 for the
# code's own top 10 and 0.10 for a random 10-dimensional subspace; its top 20 hold 0.81 to 0.84.
#
# The shuffled control shows that the homogeneity is learned. With each weight tensor permuted, the
# generator draws textured noise, its spectrum spans about two decades instead of four, and the log-scale
# homogeneity drops to 0.06 (0.09 on 30 codes): the eigenframe at one code says almost nothing about the
# eigenframe at another.
#
# Layer by layer, the alignment is as strong as the paper's. The authors' layer matrix has mean 0.994
# on the log scale and 0.947 on the linear scale in the default run (0.993 and 0.929 on 30 codes), against
# 0.993 and 0.915 for DCGAN-fashion's 13 layers; we use the 5 block outputs (4 ReLUs and the Tanh).
# Every layer ranks the image's eigenvectors in the same order, and the fitted slopes grow from the first
# block to the image: each layer widens the spread of the spectrum a little more.
#
# Finally the distance. In the default run the pixel-MSE metric at the same codes has almost the same
# spectrum shape as the LPIPS-AlexNet metric (correlation of the log spectra 0.998), and the two correlate at
# 0.83 entry by entry; LPIPS on a VGG16 backbone agrees about as closely (0.999 and 0.86). The top eigenvectors
# agree well but not exactly: the top eigenvector has |cos| 0.82 with MSE's and 0.85 with VGG's, and the top-10
# subspaces overlap by 0.74 and 0.70 (0.1 for random subspaces). Much of the geometry is the generator's own;
# the distance reorders the leading directions somewhat.

# %% [markdown]
# ## Try it
#
# - `-p n_points 30`: the paper's sample size; the mean and median homogeneity settle.
# - `-p shuffle_seed 1`: another shuffled-weights control; it should stay far below the trained model.
# - `-p compare_distances "['mse']"`: compare with pixel MSE only (faster).
# - `-p top_k 20`: a larger subspace for the energy and overlap tables.
