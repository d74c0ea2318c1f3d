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
# # What the eigenvectors do to the image
#
# **What this chapter tests.** Whether walking along the metric's top eigenvectors changes the image in ways
# a person can name and along the bottom ones barely, whether the average metric's eigenvectors act as
# global axes at other codes, and how well the axes of GANSpace and SeFa align with the metric's. Its
# tables, beside the paper's numbers, are also on the [results page](results.md).
#
# **Rerun it** ({glue:text}`run_times`):
#
# ```bash
# python -m helpers.book run --only 04 -p seed 1 -p mode spherical
# ```

# %% [markdown]
# The metric H(z0) says how fast the image changes as the code moves away from z0: along a unit
# direction v, the LPIPS distance grows like ½ t² vᵀHv. Its eigenvectors are therefore the directions
# of fastest and slowest change, ordered by rank (rank 1 has the largest eigenvalue). The paper makes
# three claims about them:
#
# - Walking along a top eigenvector changes the image a lot, and the change is often something a person
#   can name (pose, lighting, an accessory); walking along a bottom eigenvector barely changes it.
# - The eigenvectors of the *average* metric, taken over many codes, act as global axes: the same axis
#   does the same thing to every image.
# - Earlier ways of finding interpretable axes, GANSpace (principal components of the activations of an
#   early layer) and SeFa (the top eigenvectors of WᵀW for the first layer's weights W), find directions
#   that lie mostly in the top eigenspace of the metric.
#
# This page checks the three claims on both of the book's generators: the DCGAN of faces and the
# conditional DCGAN of eyes (its noise space, with the eye colour held fixed).
#
# A walk from z0 along eigenvector v_k is either linear, z0 + t·v_k, or spherical, along the great
# circle through z0 on the sphere of radius ‖z0‖ (for Gaussian codes in 100 dimensions, nearly every
# code lies close to the sphere of radius 10). As in the paper, the step along rank k is multiplied by
# (λ_k / λ_1)^(−1/3), so that lower-ranked rows, whose eigenvalues are smaller, still show a visible
# change. The metric is pulled back from LPIPS (AlexNet) and computed exactly, by forward-mode Jacobians.

# %% tags=["parameters"]
seed = 0
n_average = 8  # codes whose metrics are averaged for the global axes; the first is also the reference code
n_reference = 4  # other codes that the global axes are applied to
ranks = [1, 2, 4, 8, 16, 32]  # 1-based ranks of the eigenvectors shown
n_steps = 7
max_step = 1.5  # largest step along rank 1, in latent units; rank k's steps are × (λ_k/λ_1)^(−power)
mode = "linear"
power = 1 / 3
global_ranks = [1, 2, 3, 4]  # global axes shown on the reference codes
n_axes = 10  # axes per earlier method, and the size k of the top metric subspace they are compared with
n_pca_samples = 2000  # samples for GANSpace's PCA
eye_class = "brown"
device = "cpu"

# %%
import warnings

import numpy as np
import torch

from helpers import analysis, axes, distances, generators, viz
from helpers import metric as M
from helpers.book import glue, record, run_times

glue("run_times", run_times("04_interpretability"))

warnings.filterwarnings("ignore", module="torchvision.models._utils")  # lpips' deprecated `pretrained=`

models = {"faces": generators.load("dcgan-faces64", device=device),
          "eyes": generators.load("cdcgan-eyes128", eye_class=eye_class, device=device)}
lpips = distances.load("lpips-alex", device=device)
steps = np.linspace(-max_step, max_step, n_steps)
print(", ".join(f"{key}: {G.name}" for key, G in models.items()), f"; steps {np.round(steps, 2).tolist()}")

# %% [markdown]
# ## The metric at the reference codes
#
# For each model we draw `n_average` codes from the seed and compute the exact metric at each of them.
# The first code is the reference code of the walks below; all of them together give the average metric
# used for the global axes. The table lists the eigenvalues at the ranks shown, relative to the top one,
# and the step multiplier (λ_k/λ_1)^(−1/3) that each row of the montages uses.

# %%
metrics = {key: M.metric(G, G.sample(n_average, seed=seed), lpips, progress=False) for key, G in models.items()}
averages = {key: analysis.average_metric(m) for key, m in metrics.items()}
relative = {key: (m.eigvals[0] / m.eigvals[0, 0])[[r - 1 for r in ranks]] for key, m in metrics.items()}
record("eigval_ratio_at_ranks", {key: dict(zip(map(str, ranks), r.tolist())) for key, r in relative.items()})
viz.markdown_table({"rank": ranks, **{f"{key}: λ_k/λ_1": r.tolist() for key, r in relative.items()},
                    **{f"{key}: step ×": axes.step_scales(m.eigvals[0], power)[[r - 1 for r in ranks]].tolist()
                       for key, m in metrics.items()}})

# %% [markdown]
# ## Walking along the eigenvectors of one code
#
# Each row walks from the reference code (the middle column) along one eigenvector, in both directions;
# the column label is the step along rank 1, and the row label the multiplier of that step for its rank.

# %%
def walk_labels(metric_, ranks_):
    scales = axes.step_scales(metric_.eigvals[0], power)
    return [f"rank {r} (×{scales[r - 1]:.1f})" for r in ranks_], [f"{t:+.2f}" for t in steps]


faces, eyes = models["faces"], models["eyes"]
z_face = metrics["faces"].z[0]
face_walks = axes.explore(z_face, metrics["faces"].eigvecs[0], metrics["faces"].eigvals[0], ranks, steps,
                          mode=mode, power=power)
viz.montage(axes.render(faces, face_walks), *walk_labels(metrics["faces"], ranks),
            title=f"{faces.name}: {mode} walks along the eigenvectors of the reference code")

# %% [markdown]
# What the rows show, for the default run (seed 0); the reference face has reddish hair, eyes half
# closed and an open mouth. Signs of eigenvectors are arbitrary, so "left" and "right" ends could swap
# in another run.
#
# - **Rank 1** turns and moves the head: at one end the face is turned to the side and shifted in the
#   frame, at the other it faces the camera more, with darker lighting.
# - **Rank 2** also turns the head, in the other direction, towards a three-quarter profile, and changes
#   the background.
# - **Rank 4** is mostly lighting and image quality: one end is dark and covered in grid-like artifacts,
#   the other brighter and warmer, with a smile.
# - **Rank 8**, **rank 16** and **rank 32** add or remove accessories of the synthetic DigiFace faces the
#   model was trained on: a purple face mask (clearest on rank 16), glasses with a mask (rank 32), a red
#   tint over hair and face (rank 8). At their far ends these rows show more artifacts than the top ones.
#
# Now the spherical walk on the same eigenvectors. The steps are arc lengths on the sphere of radius ‖z0‖,
# so the codes move as far as in the linear walk.

# %%
other = "spherical" if mode == "linear" else "linear"
face_other = axes.explore(z_face, metrics["faces"].eigvecs[0], metrics["faces"].eigvals[0], ranks, steps,
                          mode=other, power=power)
viz.montage(axes.render(faces, face_other), *walk_labels(metrics["faces"], ranks),
            title=f"{faces.name}: {other} walks along the same eigenvectors")

# %% [markdown]
# How different are the two kinds of walk? The table gives, per rank, the LPIPS between the linear and
# the spherical image at the far ends of the walk, next to the LPIPS from the reference image to the
# linear end. The step multiplier grows with the rank, so the lower rows go furthest from the sphere.

# %%
with torch.no_grad():
    ends = [0, n_steps - 1]
    linear_vs_other = lpips(axes.render(faces, face_walks[:, ends]).flatten(0, 1),
                            axes.render(faces, face_other[:, ends]).flatten(0, 1)).reshape(len(ranks), 2)
from_reference = axes.distance_curves(faces, lpips, z_face, face_walks[:, ends])
record("faces_linear_vs_spherical_lpips_at_ends", linear_vs_other.max(1).values)
viz.markdown_table({"rank": ranks, f"max LPIPS, {mode} vs {other} end": linear_vs_other.max(1).values.tolist(),
                    "mean LPIPS, reference to ends": from_reference.mean(1).tolist()})

# %% [markdown]
# The eyes model, with the same ranks and steps.

# %%
z_eye = metrics["eyes"].z[0]
eye_walks = axes.explore(z_eye, metrics["eyes"].eigvecs[0], metrics["eyes"].eigvals[0], ranks, steps,
                         mode=mode, power=power)
viz.montage(axes.render(eyes, eye_walks), *walk_labels(metrics["eyes"], ranks),
            title=f"{eyes.name}: {mode} walks along the eigenvectors of the reference code")

# %% [markdown]
# For the default run (a dark brown eye with a bright catchlight, seen close up):
#
# - **Rank 1** is focus and contrast: one end is a sharp, high-contrast eye with dark lashes, the other a
#   blurred, washed-out one.
# - **Rank 2** changes the size and darkness of the eye: one end is a large dark eye filling the frame,
#   the other a smaller eye on lighter skin.
# - **Rank 4** moves the catchlight and changes how open the eye is; hard to name in one word.
# - **Rank 8** grows the catchlight into a large white patch at one end.
# - **Rank 16** and **rank 32** change small details of the iris and lashes, and at their far ends add
#   noisy, broken texture; hard to name.
#
# ## How much the image changes along each axis
#
# The montages scale the steps so that every row changes visibly. Without the scaling, the same step
# along different eigenvectors changes the image by very different amounts. The left panel walks the
# same steps along each rank, the bottom rank (the last eigenvector) included; the right panel walks the
# scaled steps of the montages. Each curve is the LPIPS from the reference image along one walk.

# %%
def lpips_curves(G, metric_):
    lam, V, z0 = metric_.eigvals[0], metric_.eigvecs[0], metric_.z[0]
    bottom = sorted(set(ranks) | {G.latent_dim})
    same = axes.distance_curves(G, lpips, z0, axes.explore(z0, V, lam, bottom, steps, mode=mode, power=0))
    scaled = axes.distance_curves(G, lpips, z0, axes.explore(z0, V, lam, ranks, steps, mode=mode, power=power))
    return ({"same step": (steps, {f"rank {r}": c for r, c in zip(bottom, same)}),
             f"step × (λ_k/λ_1)^(−{power:.2g})": (steps, {f"rank {r}": c for r, c in zip(ranks, scaled)})})


curves = {key: lpips_curves(G, metrics[key]) for key, G in models.items()}
viz.line_panels(curves["faces"], title=f"{faces.name}: LPIPS from the reference image along each eigenvector",
                xlabel="step along rank 1", ylabel="LPIPS")

# %%
viz.line_panels(curves["eyes"], title=f"{eyes.name}: LPIPS from the reference image along each eigenvector",
                xlabel="step along rank 1", ylabel="LPIPS")

# %%
end_lpips = {key: {panel: {name: float(max(y[0], y[-1])) for name, y in series.items()}
                   for panel, (_, series) in c.items()} for key, c in curves.items()}
record("lpips_at_walk_end", end_lpips)
names = list(end_lpips["faces"]["same step"])
viz.markdown_table({"eigenvector": names,
                    **{f"{key}, same step": [v["same step"][n] for n in names] for key, v in end_lpips.items()}})

# %% [markdown]
# ## Global axes: one direction for every image
#
# The average of the metrics at the `n_average` codes has its own eigenvectors. If the metric's geometry
# is much the same everywhere, these are axes that do the same thing from any starting code. We apply
# each of the top global axes to `n_reference` codes that were not among the averaged ones: one montage
# per axis, one row per reference code, the steps scaled by the average metric's eigenvalues.

# %%
references = {key: G.sample(n_reference, seed=seed + 1) for key, G in models.items()}


def global_walks(key, rank):
    avg = averages[key]
    return torch.cat([axes.explore(z, avg.eigvecs, avg.eigvals, [rank], steps, mode=mode, power=power)
                      for z in references[key]])


reference_labels = [f"code {i}" for i in range(n_reference)]
for rank in global_ranks:
    viz.montage(axes.render(faces, global_walks("faces", rank)), reference_labels, [f"{t:+.2f}" for t in steps],
                title=f"{faces.name}: global axis {rank} on {n_reference} codes").show()

# %% [markdown]
# On the faces, in the default run, each global axis does recognisably the same thing to all four
# faces, more cleanly than the eigenvectors of a single code:
#
# - **Axis 1** turns the head and reshapes the hair: towards one end the face turns to the side, towards
#   the other it looks at the camera, with fuller hair around it.
# - **Axis 2** turns the head towards a profile and changes hair and headwear: grey hair on one face, a
#   red cap or a cap's brim on others.
# - **Axis 3** darkens and thickens the hair: a dark fringe appears at one end on every face.
# - **Axis 4** puts a cap on the head: blue, red or patterned depending on the face, but a cap every time.
#
# Now the eyes.

# %%
for rank in global_ranks:
    viz.montage(axes.render(eyes, global_walks("eyes", rank)), reference_labels, [f"{t:+.2f}" for t in steps],
                title=f"{eyes.name}: global axis {rank} on {n_reference} codes").show()

# %% [markdown]
# On the eyes (in the default run the first reference code is an almost black, failed sample; the axes
# change it too, mostly by adding texture, and axis 4 draws the outline of an open eye into it):
#
# - **Axis 1** is sharpness and contrast, as rank 1 of the single code was: one end blurred and soft,
#   the other crisp, dark and high-contrast, on every eye.
# - **Axis 2** breaks up the iris and its catchlight at one end; hard to name.
# - **Axis 3** darkens the eye and the skin around it and softens the lid line.
# - **Axis 4** opens the eye: at one end a round iris with white showing around it, at the other a
#   squinting, blurred eye.
#
# "The same thing everywhere" also shows in the size of the change: the LPIPS from each reference image
# to the ends of its walk is similar across codes. The table gives, per axis, the mean over the two ends
# for each reference code.

# %%
def end_change(key, rank):
    """Mean LPIPS from each reference image to the two ends of its walk along one global axis: (n_reference,)."""
    walks = global_walks(key, rank)[:, [0, -1]]
    return torch.stack([axes.distance_curves(models[key], lpips, z, w).mean() for z, w in zip(references[key], walks)])


global_lpips = {key: torch.stack([end_change(key, rank) for rank in global_ranks]) for key in models}
record("global_axis_lpips_at_ends", {key: v.tolist() for key, v in global_lpips.items()})
viz.markdown_table({"model, axis": [f"{key}, axis {r}" for key in models for r in global_ranks],
                    **{label: torch.cat([global_lpips[key][:, i] for key in models]).tolist()
                       for i, label in enumerate(reference_labels)}}, precision=3)

# %% [markdown]
# ## GANSpace and SeFa find the same axes
#
# Two earlier methods find interpretable directions without any image distance:
#
# - **GANSpace** (Härkönen et al. 2020) samples many codes, takes the principal components of an early
#   layer's activations, and maps each component back to a latent direction by regression. We take the
#   output of the first layer (a transposed convolution) and the output after its BatchNorm and ReLU.
# - **SeFa** (Shen & Zhou 2021) takes the first layer y = Az and its top right singular vectors: the unit
#   codes that A stretches most, the eigenvectors of AᵀA.
#
# For each method's top `n_axes` directions we compute |cos| with every eigenvector of the average
# metric, and the fraction of each direction's squared norm that lies in the span of the top `n_axes`
# eigenvectors. A random direction puts k/d of its energy there on average (0.1 for k = 10, d = 100);
# the spread of 1,000 random directions gives the baseline.

# %%
layers = {"faces": "net.main", "eyes": "net.net.main"}  # the DCGAN stacks inside the two wrappers


def earlier_axes(key, G):
    pca = {label: axes.pca_directions(G, f"{layers[key]}.{i}", n_pca_samples, n_axes, seed)
           for label, i in (("GANSpace, layer 1", 0), ("GANSpace, after ReLU", 2))}
    return {**pca, "SeFa": axes.sefa_directions(axes.first_layer_weight(G), n_axes)}


directions = {key: earlier_axes(key, G) for key, G in models.items()}
alignments = {key: {name: axes.alignment(B, averages[key].eigvecs, n_axes, seed=seed) for name, B in d.items()}
              for key, d in directions.items()}
methods = list(directions["faces"])
n_cols = 2 * n_axes
viz.heatmap({name: a.cosine[:, :n_cols] for name, a in alignments["faces"].items()}, range(1, n_cols + 1),
            range(1, n_axes + 1), title=f"{faces.name}: |cos| of each method's axes with the metric's",
            xlabel="eigenvector of the average metric", ylabel="method axis",
            colorbar_title="|cos|")

# %%
viz.heatmap({name: a.cosine[:, :n_cols] for name, a in alignments["eyes"].items()}, range(1, n_cols + 1),
            range(1, n_axes + 1), title=f"{eyes.name}: |cos| of each method's axes with the metric's",
            xlabel="eigenvector of the average metric", ylabel="method axis",
            colorbar_title="|cos|")

# %%
energy = {key: [float(a[name].energy.mean()) for name in methods] for key, a in alignments.items()}
random_energy = {key: next(iter(a.values())).random_energy for key, a in alignments.items()}
baseline = next(iter(alignments["faces"].values())).random_baseline
record("alignment_energy_top_k", {key: dict(zip(methods, v)) for key, v in energy.items()})
record("alignment_energy_per_axis", {key: {name: a[name].energy for name in methods} for key, a in alignments.items()})
record("alignment_random_baseline", {"k/d": baseline, **{key: {"mean": float(r.mean()),
                                     "p95": float(r.quantile(0.95))} for key, r in random_energy.items()}})
viz.grouped_bar_chart(energy, methods, hlines={f"random direction (k/d = {baseline:.2f})": baseline},
                      title=f"mean fraction of each method's axis in the top-{n_axes} metric subspace",
                      ylabel="energy in top-k eigenspace")

# %%
rows = [(key, name, alignments[key][name]) for key in models for name in methods]
viz.markdown_table({"model": [r[0] for r in rows], "method": [r[1] for r in rows],
                    f"mean energy in top-{n_axes}": [float(a.energy.mean()) for *_, a in rows],
                    "energy of axis 1": [float(a.energy[0]) for *_, a in rows],
                    "lowest axis energy": [float(a.energy.min()) for *_, a in rows],
                    "cosine, axis 1 · eigvec 1 (abs.)": [float(a.cosine[0, 0]) for *_, a in rows],
                    "random: mean": [float(random_energy[k].mean()) for k, *_ in rows],
                    "random: 95th pct": [float(random_energy[k].quantile(0.95)) for k, *_ in rows]}, precision=3)

# %% [markdown]
# GANSpace on the first layer's output and SeFa should find the same directions (see below for why).
# The |cos| between their axes of equal rank:

# %%
pca_vs_sefa = {key: (d["GANSpace, layer 1"].T @ d["SeFa"]).abs().diagonal() for key, d in directions.items()}
record("cos_ganspace_layer1_vs_sefa", pca_vs_sefa)
viz.markdown_table({"axis": list(range(1, n_axes + 1)), **{key: v.tolist() for key, v in pca_vs_sefa.items()}},
                   precision=3)

# %% [markdown]
# ## Moving along the axes yourself
#
# The slider below steps every face axis of the first code at once: each frame shows the images of all
# ranks at one step, so sliding from the left end to the right end plays every row of the first montage
# together. It works in the static book, with no kernel.

# %%
viz.image_slider(axes.render(faces, face_walks), [f"{t:+.2f}" for t in steps], prefix="step along rank 1: ",
                 title="faces: ranks " + ", ".join(map(str, ranks)) + " (top to bottom)")

# %% [markdown]
# In Jupyter, the explorer below does the same for any model, eye colour, seed, rank and step, and draws
# the distance curve as you move. It needs a running kernel, so the static book shows no output here; open
# this notebook in Jupyter (see *Running the book*) to use it.

# %% tags=["remove-output"]
from helpers.explore import explore

explore(distance=lpips, device=device)

# %% [markdown]
# ## What the numbers show
#
# Along the eigenvectors of one code, the top ranks change the image the most, and with the paper's
# λ^(−1/3) scaling every rank from 1 to 32 produces a visible change of similar size. Without the
# scaling the same step changes the image by amounts that fall steeply with rank (not strictly: on the
# faces rank 4 changes more than rank 2), and along the bottom eigenvector the image barely changes at
# all (LPIPS near 1e-4 on the faces and 1e-3 on the eyes, against 0.2 to 0.5 along rank 1). Spherical
# and linear walks give nearly the same images at these step sizes; the difference grows for the lowest
# ranks, whose scaled steps are the longest.
#
# Some of the axes are easy to name and some are not. On the faces, the top eigenvectors of a single
# code turn the head and change the lighting, and lower ones add accessories (masks, glasses); on the
# eyes, the top axis is focus and contrast. The global axes of the average metric are cleaner: on four
# new faces, axis 4 puts a cap on every head and axis 3 darkens the hair on every one; on the eyes,
# axis 1 sharpens every eye and axis 4 opens it. The LPIPS from each code to the ends of a global-axis
# walk is of the same size across codes, within a factor of about two on the faces and closer still on
# the eyes.
#
# GANSpace and SeFa recover the top of the metric's eigenspace. In the default run their top axes put
# most of their energy, between about two thirds and four fifths on average, into the top-10 metric
# eigenspace, against 0.1 for a random direction (whose 95th percentile is below 0.2). Their first axis
# is nearly the metric's first eigenvector (|cos| above 0.9 for every method and model), and the heatmaps
# show the next few axes near the diagonal, with neighbouring ranks mixing. PCA of the first layer's
# output is SeFa in disguise: for Gaussian codes the covariance of Az is AAᵀ, whose principal directions
# map back to the eigenvectors of AᵀA. The two agree up to sampling noise, which mixes axes whose
# singular values are close (the table above). PCA after BatchNorm and ReLU aligns about as well, so the
# nonlinearity does not move the dominant directions much. Lower-ranked axes of all three methods align
# less; on the eyes the weakest axis of each method lies within the spread of random directions (below
# their 95th percentile). The methods agree with the metric on its top few directions, not on the whole
# top-10 subspace.

# %% [markdown]
# ## Try it
#
# - `-p mode spherical`: walks on the sphere of the code's norm instead of straight lines.
# - `-p power 0.5`: scale the steps of lower ranks up more; rows should change by similar amounts.
# - `-p ranks "[1, 2, 3, 4]"`: look closely at the top axes.
# - `-p n_average 30`: global axes from more codes; do the global walks change?
# - `-p eye_class green`: the eyes model's axes for another class.
