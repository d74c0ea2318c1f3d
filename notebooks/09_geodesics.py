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

run_times = glue("run_times", run_times("09_geodesics"))

# %% [markdown]
# # Beyond the paper: geodesics, lengths and curvature
#
# **What this chapter tests.** The paper builds a Riemannian metric on latent space and uses only its
# eigenvectors at a point. This page follows the metric along paths: it finds the shortest paths
# (geodesics) between codes under LPIPS on every model, measures how much shorter they are than the
# straight line and slerp, and so tests the claim of Shao, Kumar and Fletcher (2018) that the latent
# spaces of deep generators are nearly flat. It then maps how the metric's volume changes over a slice of
# latent space, and how the top eigenspace turns along a geodesic. Its table is also on the
# [results page](results.md).
#
# **Rerun it** ({eval}`run_times`):
#
# ```bash
# python -m helpers.book run --only 09 -p n_pairs 10 -p path_steps 16
# ```

# %% [markdown]
# The metric $H(z)$ of the earlier chapters measures a small step: moving the code by $\delta z$ changes
# the image by $d \approx \tfrac12 \delta z^\top H \delta z$. A path $z(t)$ from $z_a$ to $z_b$, with
# $t$ from $0$ to $1$, then has a perceptual length $L = \int \sqrt{\dot z^\top H \dot z}\, dt$: the sum of
# the image changes along the way. The straight line between two codes, the usual interpolation, is the
# shortest path only if the metric is the same everywhere (a flat space). A **geodesic** is the shortest
# path under the metric itself.
#
# `helpers.geodesic` finds it without ever forming $H$: it cuts the path into $n$ steps, measures each
# step by the distance $d_i$ between consecutive images, and moves the interior codes to minimise the
# path's energy $n \sum_i 2 d_i$, whose minimiser is also the shortest path and moves at an even
# perceptual speed. The discrete length $\sum_i \sqrt{2 d_i}$ is in the units of $H$ and converges to the
# integral above as $n$ grows (the package's tests check both on a sphere, whose geodesics are great
# circles, and on a flat map).
#
# Shao, Kumar and Fletcher {cite}`shao2018riemannian` computed such geodesics for generators under the
# pixel distance and found them close to straight lines: the latent space looked nearly flat. Nobody has
# asked the same question under a perceptual distance. The answer matters in practice: if the straight
# line is nearly a geodesic, interpolating codes linearly is already the perceptually shortest
# transition.

# %% tags=["parameters"]
from helpers.generators import EMBEDDED

models = list(EMBEDDED)  # generators studied (names in generators.MODELS)
distance = "lpips-alex"
n_pairs = 3  # pairs of random codes per model
path_steps = 6  # steps of every path (path_steps - 1 interior codes)
seed = 0
max_iter = 30  # L-BFGS iterations of the geodesics, at most
flat_ratio = 0.9  # a geodesic at least this times the straight line's length: flat
slice_grid = 5  # points along each side of the slice
slice_radius = 3.0  # half-width of the slice along each eigenvector (latent units)
turn_k = 3  # size of the top eigenspace followed along the geodesic
steady = 1.5  # the eigenspace's path at most this times the ends' distance: steady
eye_class = "brown"
device = "cpu"

# %% tags=["hide-input"]
import os

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # idle threads sleep (before torch)

from IPython.display import display

from helpers import geodesic_study as study
from helpers import viz
from helpers.report import glue, result_table

n_pairs = glue("n_pairs", n_pairs)
path_steps = glue("path_steps", path_steps)
max_iter = glue("max_iter", max_iter)
seed = glue("seed", seed)
lpips, G = study.load(models, distance, eye_class=eye_class, device=device)

# %% [markdown]
# ## Geodesics between pairs of codes
#
# For each model, {eval}`n_pairs` pairs of random codes (seed {eval}`seed`) are joined three ways, each in
# {eval}`path_steps` steps: the straight line, slerp (the spherical interpolation that keeps the code's norm
# near the typical one) and the geodesic, found from the straight line by preconditioned L-BFGS on all
# pairs at once. The table says what the geodesics cost.

# %%
found = {name: study.pairs(name, g, lpips, n_pairs, path_steps, seed, max_iter=max_iter)
         for name, g in G.items()}
viz.markdown_table(study.cost_table(found), precision=3)

# %% [markdown]
# The images along the three paths of the first pair of each model, from $z_a$ (left) to $z_b$ (right):

# %%
for name, pairs in found.items():
    display(viz.montage(study.path_images(G[name], pairs), list(study.KINDS),
                        study.step_labels(pairs), title=f"{name}: three paths"))

# %% [markdown]
# How fast the image changes along each path, for the same pairs: a step's perceptual length times the
# number of steps, so that a path of constant speed is a flat line at its length. Each step is measured
# in four sub-steps: at the energy's minimum the geodesic's consecutive codes are equally far apart, but
# within a step the image can change faster or slower. The figure shows how far each path is from an even
# speed, and where the straight line and slerp speed up and slow down.

# %%
viz.line_panels({name: study.speed_curves(pairs) for name, pairs in found.items()},
                xlabel="t", ylabel="perceptual speed", title="speed along the paths")

# %% [markdown]
# ## Is the latent space flat under LPIPS?
#
# If the space were flat, the geodesic would be the straight line, and their lengths would be equal. The
# table gives, per model, the geodesic's length over the straight line's (the geometric mean over pairs,
# with its bootstrap interval over pairs), the same against slerp, and how far the geodesic strays from
# the chord in latent space: the largest distance of its codes from the straight line through its ends,
# over the chord's length. It also gives how uneven each path's speed is, the largest step over the
# smallest. The lengths are discrete, all at the same number of steps.

# %%
flat_ratio = glue("flat_ratio", flat_ratio)
flat = {name: study.flatness(pairs, flat_ratio) for name, pairs in found.items()}
result_table("geodesic_flatness", "Geodesics against straight lines and slerp, LPIPS",
             rows=study.ROWS, columns=study.flatness_columns(flat),
             row_header="measure", note=study.flatness_note(n_pairs, path_steps, seed))

# %% tags=["hide-input"]
flat_verdict = glue("flat_verdict", study.flatness_verdict(flat, flat_ratio))
recorded = study.recorded_verdicts(flat, flat_ratio)
shao = glue("shao", study.shao_comparison(flat, flat_ratio, recorded=recorded))
speed = glue("speed", study.speed_verdict(flat))
flat_recorded = glue("flat_recorded", study.recorded_flatness(flat, flat_ratio))

# %% [markdown]
# {eval}`flat_verdict`
#
# {eval}`flat_recorded`
#
# Shao, Kumar and Fletcher found the geodesics of their generators close to straight lines under the
# pixel distance. {eval}`shao`
#
# {eval}`speed` An even speed is what an interpolation for people to watch wants.

# %% [markdown]
# ## The volume element over a slice
#
# Curvature shows where the metric changes from place to place. A direct picture of that change is the
# volume element: how much image change a unit area of latent space carries. The full $\det H$ is useless
# here: most of the spectrum sits many decades below the top (chapter 02), at the floor of what float32
# resolves, so its determinant measures roundoff. On a two-dimensional slice through a code $z_0$, spanned
# by the top two eigenvectors $u_1, u_2$ of $H(z_0)$, the slice's own area element
# $\sqrt{\det(P^\top H P)}$ with $P = [u_1, u_2]$ is exact and cheap (two Jacobian-vector products per
# point). The map shows its $\log_{10}$ relative to the centre over a grid of {eval}`slice_grid` by
# {eval}`slice_grid` codes, {eval}`f"{slice_radius:.3g}"` latent units to each side; the centre is the
# first code of the first pair. In a flat space with a constant metric the map would be uniform.

# %%
slice_grid = glue("slice_grid", slice_grid)
slice_radius = glue("slice_radius", slice_radius)
centres = {name: pairs.paths["geodesic"][0, 0] for name, pairs in found.items()}
slices = {name: study.area_slice(G[name], lpips, centre, slice_grid, slice_radius)
          for name, centre in centres.items()}
viz.heatmap(**study.slice_heatmap(slices), colorscale="RdBu_r",
            xlabel="offset along the first eigenvector", ylabel="along the second",
            colorbar_title="decades", title="log10 area element relative to the centre")

# %% [markdown]
# The images at the corners, the edge midpoints and the centre of each slice:

# %%
for name, piece in slices.items():
    display(viz.montage(*study.slice_images(G[name], piece),
                        title=f"{name}: images over the slice"))

# %% tags=["hide-input"]
slice_verdict = glue("slice_verdict", study.slice_verdict(slices))

# %% [markdown]
# {eval}`slice_verdict`. A slice along the top eigenvectors moves the image fastest. How much its area
# element changes over a few latent units says how far from constant the metric's scale is: the other
# half of chapter 03's question, which asked whether the metric's directions stay the same.

# %% [markdown]
# ## How the top eigenspace turns along a geodesic
#
# Chapter 03 found the eigenvectors of the metric much alike at different codes. Along the geodesic of
# the first pair of each model, the top {eval}`turn_k` eigenvectors are computed at every point (the
# certified subspace solver, each point warm-started from its neighbour's basis), and neighbouring
# eigenspaces are compared by their principal angles. The eigenspace's path, the sum over steps of the
# distance between neighbours (the norm of the principal angles), is at least the distance between the
# two ends' eigenspaces; it equals it when the space turns steadily from one to the other. The last column
# is the range along the path of the top eigenspace's own volume element, $\tfrac12 \log_{10}$ of the
# product of its eigenvalues.

# %%
turn_k = glue("turn_k", turn_k)
turns = {name: study.turning(G[name], lpips, pairs.paths["geodesic"][0], turn_k)
         for name, pairs in found.items()}
display(viz.markdown_table(study.turning_table(turns), precision=3))
viz.line_panels(study.turning_curves(turns), xlabel="step", ylabel="degrees",
                title="largest principal angle between neighbouring points")

# %% tags=["hide-input"]
steady = glue("steady", steady)
turn_verdict = glue("turn_verdict", study.turning_verdict(turns, steady))
scope = glue("scope", study.scope(n_pairs, flat_ratio))

# %% [markdown]
# {eval}`turn_verdict`
#
# ## What this run can and cannot decide
#
# {eval}`scope` The lengths are discrete, over {eval}`path_steps` steps, for the straight line, slerp and
# the geodesic alike, so their ratios compare like with like; finer paths (more steps) bring all three
# closer to the lengths of the smooth curves. A geodesic whose search stopped at its limit of
# {eval}`f"{max_iter:d}"` iterations before it converged (the first table counts them) is longer than
# the true one, so its ratio to the straight
# line can only fall with a longer search. The turning of the eigenspace follows one pair per model, and
# with few steps a step is long enough for the top eigenspace to change a lot within it.

# %% [markdown]
# ## Try it
#
# - `--profile full`: thirty pairs per model, paths of sixteen steps and longer searches, as in the
#   recorded run whose answer is given above.
# - `-p path_steps 16`: finer paths; do the ratios move, or were the coarse paths already converged?
# - `-p flat_ratio 0.95`: a stricter meaning of flat; which models still pass?
# - `-p slice_radius 6.0`: a wider slice reaches codes far from typical ones; how fast does the area
#   element grow or shrink there?
# - `-p turn_k 10`: does a larger eigenspace turn more slowly, or does its bottom edge wander?
