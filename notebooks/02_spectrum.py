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

run_times = glue("run_times", run_times("02_spectrum"))

# %% [markdown]
# # The spectrum: a few directions matter
#
# **What this chapter tests.** The paper's first finding: the metric is strongly anisotropic, its
# eigenvalues falling by many decades, so that a few directions carry almost all of the change in the
# image. This page measures the spectrum of every embedded generator at random codes, against random
# directions and against the paper's numbers, and ends with one table across models (also on the
# [results page](results.md), with the other chapters' tables).
#
# **Rerun it** ({eval}`run_times`):
#
# ```bash
# python -m helpers.book run --only 02 -p n_points 30
# ```

# %% tags=["parameters"]
from helpers.generators import EMBEDDED

models = list(EMBEDDED)  # generators to analyse (names in generators.MODELS)
online_models = []  # e.g. ["biggan-deep-128"]: joins if its published weights download
n_points = 8  # random codes per model
seed = 0
distance = "lpips-alex"
eye_class = "brown"
n_directions = 1000  # random unit directions for the null model
device = "cpu"

# %% tags=["hide-input"]
from IPython.display import Markdown, display

from helpers import analysis, catalogue, report, viz
from helpers.report import glue, on_each, phrase_list, record, result_table, which

glue("n_points", n_points)
glue("seed", seed)
fractions = glue("fractions", phrase_list(f"{100 * f:g}%" for f in analysis.FRACTIONS))
run = catalogue.load_models(models, distance, n_points, seed, online=online_models,
                            eye_class=eye_class, device=device)
results = run.results
label = {name: f"{name} ({r.G.latent_dim}-d)" for name, r in results.items()}
joined = [name for name in online_models if name in results]
online = ("BigGAN-deep is not in this run; add it with "
          "`-p online_models '[\"biggan-deep-128\"]'` (its published weights download "
          "from the web, so it needs the internet)." if not online_models else
          (f"With its published weights, {phrase_list(joined)} joins these tables. "
           if joined else "") + " ".join(f"{note}." for note in run.notes))
online_note = online_sentence = glue("online_note", online)

# %% [markdown]
# The metric $H(z)$ says how fast the image changes as the code moves away from $z$: along a unit
# direction $v$ the LPIPS distance grows as $\tfrac12 t^2\, v^\top H v$. Its eigenvalues
# $\lambda_1 \ge \lambda_2 \ge \dots$ are those rates along its own axes. If every direction mattered
# alike, the eigenvalues would be equal; the first finding of Wang and Ponce is that they are not at all. In
# every GAN they studied the spectrum falls steeply: for their DCGAN trained on FashionGen (120-d latent) the
# paper reports that it spans {paper}`5 to 6` decades and that on a linear scale it is
# {paper}`near zero beyond rank ~20`. For BigGAN they also split the 256-d code into its noise and
# class-embedding halves; the paper reports noise eigenvalues {paper}`30×` smaller than the class ones.
#
# Here the measurement runs on every embedded generator: two convolutional DCGANs of faces (CelebA-like
# photographs and synthetic DigiFace faces), the conditional DCGAN of eyes (its noise space, eye colour
# fixed) and a fully connected GAN of cat faces, the one model without convolutions. Each gets
# {eval}`f"{n_points:d}"` random codes from seed {eval}`f"{seed:d}"`. For each model we plot the
# eigenvalues against rank, count how many eigen-dimensions hold {eval}`fractions` of the eigenvalue
# sum, and compare the spectrum with what random directions would give. The metrics are stored under
# `runs/metrics/` and shared with the next two chapters, which read them instead of computing them again.

# %% [markdown]
# {eval}`online_note`
#
# ## Eigenvalues against rank
#
# Each spectrum divided by its own top eigenvalue, on a log scale: the mean over codes (line) and the 5th to
# 95th percentile at each rank (band).

# %%
spectra = {label[name]: r.metric.eigvals for name, r in results.items()}
normalized = {name: analysis.spectrum_summary(lam) for name, lam in spectra.items()}
viz.spectrum_chart(normalized, log_y=True, title="normalized spectra, log scale")

# %% [markdown]
# The same on a linear scale, which is how the paper shows that most of the spectrum is near zero:

# %%
viz.spectrum_chart(normalized, log_y=False, title="normalized spectra, linear scale")

# %% [markdown]
# And the raw eigenvalues, not normalized, so that models can be compared in absolute terms: the units are
# LPIPS per squared unit of code.

# %%
raw = {name: analysis.spectrum_summary(lam, normalize=False)
       for name, lam in spectra.items()}
viz.spectrum_chart(raw, log_y=True, title="raw spectra, log scale")

# %% [markdown]
# ## How many dimensions hold the change?
#
# For each code, the smallest number of top eigen-dimensions whose eigenvalues add up to a given fraction
# of the sum (the trace), averaged over codes; the range over codes is in brackets. The span column is
# the mean number of decades from the top eigenvalue to the smallest one, and the last column the mean
# normalized eigenvalue at rank 20.

# %%
dims = {name: analysis.dims_for_fraction(lam) for name, lam in spectra.items()}
decades = {name: analysis.decades(lam).mean().item() for name, lam in spectra.items()}
rank20 = {name: s.mean[19].item() if len(s.mean) >= 20 else None
          for name, s in normalized.items()}
record("dims_for_fraction", {name: dict(zip(dm.labels, dm.mean.tolist()))
                             for name, dm in dims.items()})
record("spectrum_decades", decades)
record("normalized_eigenvalue_rank20", rank20)
viz.dims_table(dims, decades, rank20)

# %% [markdown]
# ## Class against noise
#
# The paper compares BigGAN's class and noise subspaces through the spectrum of the average metric over
# codes: in class space it reports eigenvalues of {paper}`5.4e3, 3.7e3, 2.3e3, 1.3e3, 17` at
# ranks 2, 3, 5, 8 and 17, and the noise-space eigenvalues about {paper}`30×` smaller. Among the embedded models, the eyes DCGAN has the same kind of split: its full 108-d input is a
# 100-d noise block and an 8-d one-hot class code. Its metric is computed once in that full space; the
# noise-space metric used everywhere else in this book is its restriction to the noise block. Restricting
# the metric to a block (moving only those coordinates) gives the metric of that subspace. The sampled codes
# put a one at the chosen colour and zeros elsewhere, so the class metric measures how the image changes as
# the code moves off that corner towards a mixture of colours.

# %%
splits = {name: analysis.class_noise(r) for name, r in results.items()}
blocked = {name: split for name, split in splits.items() if split is not None}
block_spectra = {f"{name}, {part}": lam for name, split in blocked.items()
                 for part, lam in split.spectra.items()}
display(viz.dims_table(
    {name: analysis.dims_for_fraction(lam) for name, lam in block_spectra.items()},
    {name: analysis.decades(lam).mean().item() for name, lam in block_spectra.items()},
    header="model / subspace") if blocked else Markdown(
    "*No model of this run has a class block (the eyes DCGAN and BigGAN-deep have "
    "one).*"))

# %% [markdown]
# The top eigenvalues of the average metric of each block, and their ratio rank by rank:

# %%
record("average_metric_class_over_noise",
       {name: split.ratio.tolist() for name, split in blocked.items()})
for name, split in blocked.items():
    display(viz.markdown_table({
        "rank": list(range(1, len(split.ratio) + 1)),
        "class": split.class_eigvals.tolist(), "noise": split.noise_eigvals.tolist(),
        "class / noise": split.ratio.tolist()}, precision=4))

# %% [markdown]
# ## Against random directions
#
# What would the spectrum look like if the metric had no preferred directions? The rate along a random unit
# direction $v$ is $v^\top H v$. Over random directions its mean is $\operatorname{tr}(H)/d$, the mean
# eigenvalue, and in $d = 100$ dimensions it concentrates around that mean. Below, for each model, the
# distribution of the eigenvalues next to the distribution of $v^\top H v$ over random directions, both
# divided by the top eigenvalue at each code and pooled over codes (boxes: quartiles; whiskers: 5th and 95th
# percentiles).

# %%
null = {label[name]: analysis.random_directions(r.metric, n_directions, seed=seed)
        for name, r in results.items()}
groups = {name: {"eigenvalues": c.eigenvalues, "random directions vᵀHv": c.random}
          for name, c in null.items()}
viz.quantile_boxes(groups, log_y=True, ylabel="value / top eigenvalue",
                   title="eigenvalues vs random directions")

# %% [markdown]
# Drawn against rank, the random directions are a flat band (their 5th to 95th percentile range over
# directions and codes), and the spectrum crosses it.

# %%
viz.spectrum_against_random(normalized, {name: c.random for name, c in null.items()},
                            title="spectrum against the random-direction band")

# %% [markdown]
# The same comparison in numbers: the spread of each distribution in decades (5th to 95th percentile),
# and the number of ranks at which the mean spectrum lies above the median of the random-direction values.

# %%
null_table = record("random_direction_null", {
    name: {"eigenvalue spread (decades)": c.eigenvalue_spread,
           "random-direction spread (decades)": c.random_spread,
           "ranks above the random median": c.ranks_above} for name, c in null.items()})
viz.rows_table(null_table, precision=2)

# %% [markdown]
# ## Across models, next to the paper
#
# One column per model of this run, and the paper's reference columns (a dash: the paper gives no number
# there). Dimension counts are means over codes; decades and the value at rank 20 are as above; the last row is
# the largest class/noise ratio of the average metrics' eigenvalues over ranks, for models with a class
# block.

# %%
labels = next(iter(dims.values())).labels
rows = ["latent dimension", *(f"eigen-dimensions for {f} of the sum" for f in labels),
        "decades from the top eigenvalue to the smallest",
        "mean normalized eigenvalue at rank 20",
        "ranks above the random-direction median",
        "class / noise, largest ratio (average metric)"]
cross = {name: [r.G.latent_dim, *dims[label[name]].mean.tolist(), decades[label[name]],
                rank20[label[name]], null[label[name]].ranks_above,
                blocked[name].ratio.max().item() if name in blocked else "–"]
         for name, r in results.items()}
result_table("spectrum_across_models", "The spectrum across models", rows,
             {f"ours: {name}": values for name, values in cross.items()},
             paper={"paper: DCGAN-fashion (120-d)": [None] * 4 + [
                 "spectrum_decades_dcgan", "spectrum_rank_near_zero_dcgan", None, None],
                    "paper: BigGAN (256-d)": [None] * 7 + ["biggan_noise_vs_class"]},
             row_header="quantity",
             note=f"{n_points} codes per model, seed {seed}, {distance}")

# %% tags=["hide-input"]
top = {n: dims[label[n]].mean for n in results}
low, _, high = (f"{100 * f:g}%" for f in analysis.FRACTIONS)
glue("low", low)
glue("high", high)
latent_dims = glue(
    "latent_dims", phrase_list(sorted({r.G.latent_dim for r in results.values()})))
dims_low = glue("dims_low", on_each({n: t[0] for n, t in top.items()}, ".0f"))
dims_more = glue(
    "dims_more", on_each({n: t[2] - t[0] for n, t in top.items()}, ".0f", " more"))

span = {n: decades[label[n]] for n in results}
spans = glue("spans", on_each(span, ".1f", " decades"))
relation = {n: "fewer" if v < 5 else "more" if v > 6 else "as many"
            for n, v in span.items()}
decades_relation = glue("decades_relation", "; ".join(
    f"{rel} on {phrase_list(f'`{n}`' for n in relation if relation[n] == rel)}"
    for rel in ("fewer", "as many", "more") if rel in relation.values()))
flatter = [f"`{n}`" for n, rel in relation.items() if rel == "fewer"]
concentration = glue(
    "concentration", f"So on {phrase_list(flatter)} the spectrum is less "
    "concentrated than the paper's: it falls by fewer decades, and the top dimensions "
    "hold less of the sum." if flatter else "")
five = report.Threshold(5, spec=".0f")
decades_row = "decades from the top eigenvalue to the smallest"
decades_full = glue("decades_full", report.full_run_check(
    "spectrum_across_models", decades_row, five, span, spec=".1f", unit=" decades")
    .replace("the threshold", "the paper's five"))

at20 = {n: v for n, v in ((n, rank20[label[n]]) for n in results) if v is not None}
cut = glue("cut", 0.05)
small = report.Threshold(cut, above=False, spec=".2f")
near_zero = {n: small.holds(v) for n, v in at20.items()}
near_zero_on = glue("near_zero_on", which(near_zero))
at_rank_20 = glue("at_rank_20", on_each(at20, ".3f"))
rank_20_row = "mean normalized eigenvalue at rank 20"
near_zero_full = glue("near_zero_full", report.full_run_check(
    "spectrum_across_models", rank_20_row, small, at20, spec=".3f"))

random_spread = glue("random_spread", max(c.random_spread for c in null.values()))
eigen_spread = glue("eigen_spread", min(c.eigenvalue_spread for c in null.values()))
wider = {n: null[label[n]].eigenvalue_spread > null[label[n]].random_spread + 1
         for n in results}
null_verdict = glue(
    "null_verdict", f"on {which(wider)} the spectrum is more than one decade wider "
    "than a metric without preferred directions would give")

class_text = glue("class_text", "; ".join(
    f"on `{name}` the class/noise ratio of the average metrics' eigenvalues stays "
    f"between {split.ratio.min():.2f} and {split.ratio.max():.2f} over the first "
    f"{len(split.ratio)} ranks, " + (
        "as large as the paper's BigGAN split" if split.ratio.max() >= 10 else
        "far from the paper's {paper}`30×`: the class directions do not dominate")
    for name, split in blocked.items()) or "no model with a class block ran here, so "
    "this claim is not tested")

# %% [markdown]
# ## What the numbers show
#
# **Dimensions.** Out of {eval}`latent_dims` latent dimensions, {eval}`low` of the eigenvalue
# sum lies in the top {eval}`dims_low`; going on to {eval}`high` adds {eval}`dims_more`.
#
# **Decades.** From the top eigenvalue to the smallest the spectra span {eval}`spans`. The paper
# reports {paper}`5 to 6` decades for its DCGAN: {eval}`decades_relation`. {eval}`concentration`
# {eval}`decades_full`
#
# **Near zero beyond rank 20.** The paper's finding for its DCGAN ({paper}`near zero beyond rank ~20` on
# a linear scale) holds on {eval}`near_zero_on` if a mean normalized eigenvalue at rank 20 of at most
# {eval}`f"{cut:.2f}"` counts as near zero: it is {eval}`at_rank_20`. That cut-off is lenient: a
# direction at a twentieth of the top eigenvalue still changes the image, and the eighty or so directions
# below rank 20 together hold a good part of the sum, as the dimension counts above say.
# {eval}`near_zero_full`
#
# **Against random directions.** Random unit directions spread over at most
# {eval}`f"{random_spread:.2f}"` decades (5th to 95th percentile), the eigenvalues over at least
# {eval}`f"{eigen_spread:.2f}"`; {eval}`null_verdict`.
#
# **Class against noise.** Taking a ratio of ten or more as a split as large as the paper's:
# {eval}`class_text`. (The eyes model's class input is a one-hot vector fed to the first layer,
# not BigGAN's dense learned embedding, so this is an analogue of the paper's test rather than a
# replication.)

# %% [markdown]
# ## Try it
#
# - `-p n_points 30`: as many codes as the paper; the ranges in brackets tighten, the means barely move.
# - `-p models '["fcgan-cats64"]'`: one model alone; compare the fully connected net's spectrum with the
#   convolutional ones above.
# - `-p distance mse`: the pixel distance instead of LPIPS; does the spectrum keep its shape?
# - `-p eye_class blue`: another eye colour for the class-against-noise test.
# - `-p online_models '["biggan-deep-128"]'` (internet, and best with a GPU: `-p device cuda`): the paper's
#   BigGAN split, with its published weights.
