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
import math

import numpy as np

from helpers import analysis, axes, catalogue, report, viz
from helpers.report import glue, on_each, record, result_table, run_times, which

glue("run_times", run_times("03_homogeneity"))
glue("model", model)
glue("n_points", n_points)
glue("seed", seed)
if n_points < 3:
    raise ValueError(f"this chapter compares pairs of codes and their distances: n_points must be ≥ 3, "
                     f"got {n_points}")
run = catalogue.load_models([*models, model], distance, n_points, seed, online=online_models,
                            eye_class=eye_class, device=device)
G, m = run.results[model].G, run.results[model].metric
print(f"{G.name}: {G.latent_dim}-d latent; {distance} metric at {n_points} codes from seed {seed}")

# %% [markdown]
# ## The homogeneity matrix
#
# Entry $(i, j)$ is the log-scale correlation described above, with the eigenvectors taken from code $i$
# (row) and tested on the metric at code $j$ (column). The matrix need not be symmetric; its diagonal is one
# by construction.

# %%
tests = analysis.homogeneity_tests(m)
codes = [f"z{i}" for i in range(n_points)]
viz.heatmap(tests.log, codes, codes, colorscale="Viridis", colorbar_title="corr",
            title=f"log-scale homogeneity, {G.name}, {n_points} codes",
            xlabel="metric of code j", ylabel="eigenvectors of code i")

# %% [markdown]
# The same numbers as a distribution over the ordered pairs $i \ne j$, next to the two other measures: the
# linear-scale correlation of $\alpha_k$ with $\lambda_k(H_j)$, and the plain correlation of the two
# matrices entry by entry, $\operatorname{vec}(H_i)$ with $\operatorname{vec}(H_j)$.

# %%
viz.histogram_overlay({name: analysis.off_diagonal(matrix) for name, matrix in tests.matrices.items()},
                      title="homogeneity over pairs of codes", xlabel="correlation")

# %% [markdown]
# The mean and median of each measure over the ordered pairs, beside the paper's values for its DCGAN:

# %%
record("homogeneity", {name: vars(s) for name, s in tests.summary.items()})
viz.mean_median_table(tests.summary, paper={"paper, DCGAN-FashionGen (mean / median)": ["0.952 / 0.954",
                                                                                       "0.739 / 0.777", "–"]})

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
pairs = analysis.pair_scatter(m, grid)
viz.scatter_grid(pairs.log_lambda, pairs.log_alpha, r=tests.log[grid][:, grid], labels=(codes[:len(grid)],) * 2,
                 title="log10 α_k (eigenvectors of row code, metric of column code) vs log10 λ_k",
                 xlabel="log10 λ_k(H_j)", ylabel="log10 α_k")

# %% [markdown]
# Correlation ignores the slope of the relation. The least-squares slope of $\log_{10}\alpha_k$ against
# $\log_{10}\lambda_k(H_j)$ over all off-diagonal pairs of the grid says whether the transplanted
# eigenvectors keep the full spread of the spectrum (slope one) or a compressed one (slope below one: the bottom
# ranks are stretched more than their own eigenvalue at the other code, the top ones less).

# %%
slope = record("pair_slope", pairs.slope)
print(f"slope of log10 α on log10 λ over {pairs.n_pairs} ordered pairs: {slope:.3f}")

# %% [markdown]
# ## Does homogeneity fall off with distance?
#
# If the metric only changed slowly, nearby codes would share their eigenframe and far-apart codes would
# not. Each dot below is one ordered pair, at its code distance $\lVert z_i - z_j \rVert$ and its log-scale
# homogeneity.

# %%
r_distance = record("homogeneity_vs_distance_r", analysis.homogeneity_vs_distance(m.z, tests.log))
viz.scatter_fit(analysis.pair_distances(m.z), analysis.off_diagonal(tests.log), r=r_distance,
                hover=[f"{a} → {b}" for a in codes for b in codes if a != b],
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
average = analysis.average_metric(m)
viz.spectrum_chart({"individual metrics (mean, 5–95 %)": analysis.spectrum_summary(m),
                    "average metric": analysis.spectrum_summary(average.eigvals[None])},
                   title="spectrum of the average metric", log_y=True)

# %% [markdown]
# How much of each code's metric does this global frame capture? For the top-$n$ eigenvectors of the
# average metric, the fraction of $\operatorname{tr}(H_i)$ that lies in their span, against $n$. Two
# references: the code's own top-$n$ eigenvectors hold the most any $n$-dimensional subspace can (the
# cumulative eigenvalue fraction), and a random $n$-dimensional subspace holds $n/d$ on average.

# %%
ranks = np.arange(1, G.latent_dim + 1)
energy = analysis.frame_energy(m)
viz.band_chart({"average-metric frame": viz.band(ranks, energy.average),
                "own eigenvectors": viz.band(ranks, energy.own),
                "random subspace": (ranks, *[ranks / G.latent_dim] * 3)},
               title="fraction of each code's metric in a top-n subspace", xlabel="subspace dimension n",
               ylabel="fraction of tr(H)")

# %%
energy_at = {n: energy.mean_at(n) for n in (1, 5, top_k, 20)}
record("average_frame_energy", {str(n): {"average_frame": a, "own_frame": o} for n, (a, o) in energy_at.items()})
viz.rows_table({n: {"average-metric frame": a, "own eigenvectors": o, "random subspace": n / G.latent_dim}
                for n, (a, o) in energy_at.items()}, header="n", precision=3)

# %% [markdown]
# ## Control: the same network with its weights shuffled
#
# Is homogeneity a property of the learned weights, or would any network of this shape show it? The
# control permutes the entries of every weight tensor at random, which keeps each layer's distribution of
# weights and the architecture but destroys what was learned, and repeats the analysis at the same codes.

# %%
shuffled = analysis.shuffled_generator(G, seed=shuffle_seed)
viz.image_grid(axes.render(shuffled, m.z[:8]), nrow=8, title="shuffled weights, same codes")

# %%
m_shuffled = run.metrics_of(shuffled, m.z)
control = analysis.homogeneity_tests(m_shuffled)
viz.heatmap({"trained": tests.log, "shuffled weights": control.log}, codes, codes, colorscale="Viridis",
            colorbar_title="corr", title="log-scale homogeneity: trained vs shuffled weights",
            xlabel="metric of code j", ylabel="eigenvectors of code i")

# %% [markdown]
# The summaries of the two networks side by side, with the span of each spectrum in decades; the chart after
# the table overlays the two spectra.

# %%
record("homogeneity_shuffled", {name: vars(s) for name, s in control.summary.items()})
span = {"trained": analysis.decades(m).mean().item(), "shuffled weights": analysis.decades(m_shuffled).mean().item()}
viz.markdown_table({"measure": [*tests.summary, "spectrum span (decades, mean)"],
                    **{f"{name} (mean / median)": [*(f"{s.mean:.3f} / {s.median:.3f}" for s in t.summary.values()),
                                                   f"{span[name]:.2f}"]
                       for name, t in (("trained", tests), ("shuffled weights", control))}})

# %%
viz.spectrum_chart({"trained": analysis.spectrum_summary(m), "shuffled weights": analysis.spectrum_summary(m_shuffled)},
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
layers = analysis.layer_tests(G, m.z)
viz.heatmap({"log scale": layers.log, "linear scale": layers.linear}, layers.labels, layers.labels,
            colorscale="Viridis", colorbar_title="corr", title=f"layer homogeneity, mean over {n_points} codes",
            xlabel="metric of layer m", ylabel="eigenvectors of layer l")

# %% [markdown]
# The mean and median of the off-diagonal entries of the two layer matrices, and of the correlations
# between the amplification curves of the layers, beside the paper's values for its DCGAN:

# %%
record("layer_alignment", {name: vars(s) for name, s in layers.summary.items()})
viz.mean_median_table(layers.summary, paper={"paper, DCGAN-FashionGen (mean)": ["0.993", "0.915", "–", "–"]})

# %% [markdown]
# The amplification curves at the first code: for each layer, $\alpha_{l,k}$ against the rank $k$ of the
# image's eigenvector, each divided by its largest value so that layers of very different scale share one
# axis. Parallel curves mean every layer ranks the directions the same way; the slope column gives the
# fitted $\log_{10}\alpha_{l,k} \approx \text{slope} \cdot \log_{10}\lambda_k(\text{image}) + c$ (mean over
# codes).

# %%
curves = layers.alignment.alpha[0] / layers.alignment.alpha[0].amax(-1, keepdim=True)
viz.line_chart(ranks, dict(zip(layers.labels, curves.clamp_min(analysis.FLOOR))), log_y=True,
               xlabel="rank k of the image's eigenvector", ylabel="α(l, k) / max over k",
               title="amplification of the image's eigenvectors by each layer (code 0)")

# %%
viz.markdown_table({"layer": layers.labels, "slope": layers.alignment.slope.mean(0).tolist(),
                    "corr with image (log)": layers.alignment.corr_log.mean(0)[:, -1].tolist()}, precision=3)

# %% [markdown]
# ## LPIPS against other distances
#
# Is the geometry a property of the generator, or of the distance we pull back? The same codes, with the
# mean squared pixel difference and with LPIPS on a VGG16 backbone in place of LPIPS-AlexNet. For each code:
# the correlation of the two matrices entry by entry, the correlation of their log spectra, the |cosine|
# between rank-matched top eigenvectors, and the overlap of the two top-k subspaces (one: the same subspace; a
# random pair would give $k/d$).

# %%
comparisons = {other: analysis.compare_metrics(m, run.metrics_with(model, other), k=top_k)
               for other in compare_distances}
compared = record("distance_comparison", {other: analysis.comparison_means(c) for other, c in comparisons.items()})
viz.markdown_table({"measure (mean over codes)": list(analysis.comparison_means(next(iter(comparisons.values())))),
                    **{f"{distance} vs {other}": list(values.values()) for other, values in compared.items()},
                    "random": ["–", "–", f"≈{(2 / (np.pi * G.latent_dim)) ** 0.5:.3f}",
                               f"{top_k / G.latent_dim:.3f}"]},
                   precision=3)

# %% [markdown]
# Rank by rank, the |cosine| between the eigenvectors of equal rank of the two metrics (mean over codes, and
# the 5th to 95th percentile): a high value says that the two distances agree on the direction itself, not
# only on the subspace.

# %%
viz.band_chart({f"{distance} vs {other}": viz.band(np.arange(1, top_k + 1), c.cosine)
                for other, c in comparisons.items()},
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
studies = {name: (tests, layers) if name == model else
           (analysis.homogeneity_tests(r.metric), analysis.layer_tests(r.G, r.metric.z))
           for name, r in run.results.items()}
cross, interval = {}, {}
for name, r in run.results.items():
    t, lt = studies[name]
    interval[name] = analysis.homogeneity_vs_distance_interval(r.metric.z, t.log, seed=seed)
    log, linear, vec = (t.summary[measure] for measure in ("log scale", "linear scale", "vec(H) correlation"))
    cross[name] = {"log scale, mean": log.mean, "log scale, median": log.median, "linear scale, mean": linear.mean,
                   "linear scale, median": linear.median, "vec(H) correlation, mean": vec.mean,
                   "r with the code distance": analysis.homogeneity_vs_distance(r.metric.z, t.log),
                   "r: 95% bootstrap interval over codes":  # a dash: too few codes to resample
                       report.interval(*interval[name], ".2f") if math.isfinite(interval[name][0]) else "–",
                   f"average frame, top-{top_k} energy": analysis.frame_energy(r.metric).mean_at(
                       min(top_k, r.G.latent_dim))[0],
                   "layers (block outputs)": len(lt.labels),
                   "layer matrix, log, mean": lt.summary["authors' matrix, log"].mean,
                   "layer matrix, linear, mean": lt.summary["authors' matrix, linear"].mean,
                   "shuffled weights, log scale, mean": control.summary["log scale"].mean if name == model else "–"}
result_table("homogeneity_across_models", "Homogeneity and layer alignment across models", list(cross[model]),
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
row = {quantity: {name: values[quantity] for name, values in cross.items()} for quantity in cross[model]}
log_mean, vec_mean, layer_log = row["log scale, mean"], row["vec(H) correlation, mean"], row["layer matrix, log, mean"]
glue("claim_homogeneity",
     f"**Homogeneity.** The log-scale homogeneity, mean over ordered pairs, is {on_each(log_mean, '.3f')}, against "
     f"the paper's {{paper}}`0.952`; it is within 0.05 of it on "
     f"{which({n: abs(v - 0.952) <= 0.05 for n, v in log_mean.items()})}. Taking a mean of at least 0.9 as the same "
     f"eigenframe everywhere, the claim holds on {which({n: v >= 0.9 for n, v in log_mean.items()})}.")
glue("claim_linear",
     f"On the linear scale, which weighs the top few ranks, the mean is {on_each(row['linear scale, mean'], '.3f')} "
     f"(the paper: {{paper}}`0.739`), above the paper's value on "
     f"{which({n: v > 0.739 for n, v in row['linear scale, mean'].items()})}. The plain correlation of the matrices "
     f"entry by entry is {on_each(vec_mean, '.2f')}, lower than the rank-matched log-scale test on "
     f"{which({n: v < log_mean[n] for n, v in vec_mean.items()})}: there the eigenframes agree in rank order more "
     "than entry by entry.")

found = {n: "too few" if math.isnan(low) else "no" if low <= 0 <= high else "yes"
         for n, (low, high) in interval.items()}
r_with_ci = {n: f"{r:.2f}" + ("" if found[n] == "too few" else f" {row['r: 95% bootstrap interval over codes'][n]}")
             for n, r in row["r with the code distance"].items()}
verdicts = {"no": " No dependence on the distance is detected (the interval includes zero) on {}.",
            "yes": " A dependence is detected (the interval excludes zero) on {}.",
            "too few": f" With {n_points} codes there are too few to resample for an interval on {{}}, so nothing is "
                       "concluded there."}
glue("claim_distance",
     f"**Distance.** Homogeneity and code distance correlate with r = {on_each(r_with_ci)}"
     + (" (in brackets, the 95% bootstrap interval over codes)" if set(found.values()) != {"too few"} else "")
     + "; the paper reports r = {paper}`0.09`."
     + "".join(text.format(which({n: f == kind for n, f in found.items()}))
               for kind, text in verdicts.items() if kind in found.values())
     + " Random codes in $d$ dimensions are all about $\\sqrt{2d}$ apart, so this test spans a narrow range of "
       "distances, in the paper as here.")
glue("claim_layers",
     f"**Layers.** The authors' layer matrix has a log-scale mean of {on_each(layer_log, '.3f')} (the paper: "
     f"{{paper}}`0.993`, over the thirteen layers of its DCGAN; we use each model's block outputs) and a linear-scale "
     f"mean of {on_each(row['layer matrix, linear, mean'], '.3f')} (the paper: {{paper}}`0.915`). That every layer "
     f"stretches the same directions in the same order (a log-scale mean of at least 0.9) holds on "
     f"{which({n: v >= 0.9 for n, v in layer_log.items()})}.")

trained, shuffled = tests.summary["log scale"].mean, control.summary["log scale"].mean
detail_text = (f"**The detailed model, `{model}`.** Transplanted eigenvectors keep a slope of {slope:.2f} of "
               f"$\\log_{{10}}\\alpha_k$ on $\\log_{{10}}\\lambda_k$ over the grid's pairs ("
               + ("a compressed spread: the bottom ranks are stretched more than their own eigenvalue at the "
                  "other code, the top ones less" if slope < 0.95 else "about the full spread") + "). "
               f"With its weights shuffled, the log-scale homogeneity drops from {trained:.3f} to {shuffled:.3f} and "
               f"the spectrum spans {span['shuffled weights']:.1f} decades instead of {span['trained']:.1f}: "
               + ("the homogeneity is learned, not a property of the architecture alone."
                  if trained - shuffled > 0.3 else "the architecture alone gives much of it."))
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
