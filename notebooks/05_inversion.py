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
# # Inversion: does the metric's eigenbasis help the optimizer?
#
# **What this chapter tests.** Whether an optimizer inverts the generator better in the eigenbasis of the
# average metric than in the code itself: Adam and CMA-ES, over several targets and starting seeds, with
# paired tests. Its tables, beside the paper's numbers, are also on the [results page](results.md).
#
# **Rerun it** ({glue:text}`run_times`):
#
# ```bash
# python -m helpers.book run --only 05 -p n_targets 5 -p n_seeds 3
# ```

# %% [markdown]
# To invert a generator is to find the code z whose image G(z) matches a target image, by minimising the
# LPIPS distance d(target, G(z)). The earlier chapters found the metric of the generator strongly
# anisotropic, and much the same at every code. Wang and Ponce draw a practical consequence from this: an
# optimizer that treats every coordinate alike should work better in the coordinates of the average
# metric's eigenvectors than in z itself. They write z = V c, with V the eigenvectors of the average
# metric, and run Adam on c instead of z, with the same learning rate and number of steps.
#
# Why should a rotation matter? Plain gradient descent is indifferent to it: rotate the coordinates and its
# path rotates with them. Adam is not. It divides each coordinate's step by a running estimate of that
# coordinate's gradient size, so it adapts to curvature that lies along the axes. When the steep and flat
# directions are tilted against the axes, every coordinate sees a mixture of both, and Adam cannot give the
# flat directions the larger steps they need. In the eigenbasis the steep and flat directions are the axes.
#
# The paper reports two results: on a toy quadratic, Adam ends at f = 0.007 in the eigenbasis against
# 7.155 in the original basis; and on BigGAN, inverting one ImageNet image with BasinCMA (CMA-ES for the
# code, then Adam), the final LPIPS is 0.14–0.16 with the Hessian basis against 0.23–0.30 without. A
# black-box variant uses CMA-ES whose initial step sizes follow the metric (∝ λ^(−1/2.5)) in the top-k
# eigen-subspace.
#
# This chapter repeats both on the faces DCGAN, over several targets and starting seeds: Adam on z, on the
# full eigenbasis and on the top-k eigen-subspace; then CMA-ES, isotropic on z against Hessian-aware in the
# top-k subspace. Targets are images the generator made from held-out codes, where the true code is known,
# and a real photograph.

# %% tags=["parameters"]
model = "dcgan-faces64"
distance = "lpips-alex"
seed = 0
n_targets = 3  # generated targets, from codes held out of the average metric
n_seeds = 2  # starting codes per target
steps = 100  # Adam steps (the same for every basis)
lr = 0.1  # Adam learning rate (the same for every basis)
top_k = 20  # size of the truncated eigenbasis
n_average = 8  # codes the average metric is computed at
cma_budget = 400  # images evaluated by each CMA-ES run
cma_sigma = 0.5  # CMA-ES initial step size, in z units
device = "cpu"
cpu_threads = 1  # torch threads on the CPU (None: torch's default, every core)

# %%
import warnings

import numpy as np
import torch
from scipy.stats import ttest_rel, wilcoxon

from helpers import analysis as A
from helpers import distances, generators, viz
from helpers import inversion as I
from helpers.batch import metric_many
from helpers.book import glue, record, run_times

glue("run_times", run_times("05_inversion"))

warnings.filterwarnings("ignore", module="torchvision.models._utils")  # lpips's deprecated `pretrained=`
if cpu_threads:  # batches of a few 64×64 images gain little from threads, and lose much on a busy machine
    torch.set_num_threads(cpu_threads)
G = generators.load(model, device=device)
d = distances.load(distance, device=device)
start_seeds = tuple(range(seed + 1000, seed + 1000 + n_seeds))  # disjoint from the metric's and targets' seeds

# %% [markdown]
# ## The toy quadratic
#
# f(x) = ½ xᵀHx in two dimensions, with eigenvalues 1 and 10 and eigenvectors rotated 45° from the axes.
# Adam starts at (0, 5), 45° from both eigenvectors, and takes 100 steps at learning rate 0.1, once in x and
# once in the eigen-coordinates c = Rᵀx. The paper does not give its start, learning rate or number of
# steps, so only the order of magnitude of the gap can be compared.

# %%
toy = I.toy_quadratic()
record("toy_quadratic", {"f_original": toy.f_original, "f_eigenbasis": toy.f_eigenbasis})
print(f"final f: original basis {toy.f_original:.4g}, eigenbasis {toy.f_eigenbasis:.3g}")
viz.line_chart(range(len(toy.history_original)), {"original basis": toy.history_original,
                                                  "eigenbasis": toy.history_eigenbasis},
               log_y=True, title="Adam on a rotated quadratic", xlabel="step", ylabel="f(x)")

# %% [markdown]
# ## The average metric and its eigenbasis
#
# The metric of LPIPS (AlexNet) at n_average codes, averaged, and its eigendecomposition. The full basis is
# all its eigenvectors (100 for the faces model), a rotation of z; the truncated basis keeps the top k, so Adam there searches only a
# k-dimensional plane through the starting code. The table shows how much of the average metric's trace
# those k directions carry.

# %%
m = metric_many(G, G.sample(n_average, seed=seed), d, progress=False,
                store=f"runs/metrics/{G.name}-{distance}-{n_average}-{seed}")
avg = A.average_metric(m)
bases = {"z": None, "eigenbasis (all)": avg.eigvecs, f"eigenbasis (top {top_k})": avg.eigvecs[:, :top_k]}
trace_top = float(avg.eigvals[:top_k].sum() / avg.eigvals.sum())
record("average_metric_trace_in_top_k", trace_top)
viz.markdown_table({"codes averaged": [n_average], f"λ1 / λ{G.latent_dim}": [float(avg.eigvals[0] / avg.eigvals[-1])],
                    f"trace in top {top_k}": [trace_top]}, precision=3)

# %% [markdown]
# ## The targets
#
# The generated targets come from codes drawn with another seed than the average metric's codes, so the
# basis was not fitted to them; their true codes are known. The real target is a 64×64 crop of the face in
# scikit-image's astronaut photograph, which the faces model (trained on synthetic faces) can only
# approximate.

# %%
z_true = G.sample(n_targets, seed=seed + 1)
with torch.no_grad():
    generated = G(z_true)
photo = I.sample_target_images("face", size=generated.shape[-1])[0].to(generated)
viz.image_grid(torch.cat([generated, photo[None]]), nrow=n_targets + 1,
               title="the targets")

# %% [markdown]
# ## Adam on z and in the eigenbasis
#
# Every basis gets the same Adam: learning rate lr, the given number of steps, and the same starting codes
# (n_seeds per target). In the eigenbases, c starts at Vᵀz0, so the full basis starts from exactly the same
# code as z-space.

# %%
adam = {name: [I.invert(G, t, d, basis=V, steps=steps, lr=lr, seeds=start_seeds, progress=False)
               for t in [*generated, photo]] for name, V in bases.items()}

# %% [markdown]
# The convergence curves show the loss at each step: the line is the mean over targets and starting seeds,
# the band runs from the best to the worst run.

# %%
def curves(runs):
    """{name: (x, mean, min, max)} of the histories (n_runs, steps) of every run in `runs` {name: [Inversion]}."""
    series = {}
    for name, results in runs.items():
        rows = [h for r in results for h in r.history.cpu()]  # a CMA run that stopped early is shorter:
        n = max(len(h) for h in rows)                          # its last (best-so-far) value carries on
        h = torch.stack([torch.cat([h, h[-1:].expand(n - len(h))]) for h in rows])
        series[name] = (np.arange(1, h.shape[1] + 1), h.mean(0), h.min(0).values, h.max(0).values)
    return series


viz.band_chart(curves({name: runs[:n_targets] for name, runs in adam.items()}), log_y=True, band="min–max",
               title=f"Adam, {n_targets} generated targets × {n_seeds} seeds", xlabel="step", ylabel="LPIPS")

# %%
viz.band_chart(curves({name: runs[n_targets:] for name, runs in adam.items()}), log_y=True, band="min–max",
               title=f"Adam, the photograph × {n_seeds} seeds", xlabel="step", ylabel="LPIPS")

# %% [markdown]
# ## Final losses and a paired test
#
# Each run's best LPIPS over its steps: the mean, best and worst over runs. For the generated targets, two
# more means: the distance ‖z − z_true‖ from the code found to the true code (the starting distance is
# printed for reference), and the norm ‖z‖ of the code found (a standard normal code in 100 dimensions has
# a norm close to 10). Runs are paired: each basis starts from the same code for the same target. "wins"
# counts the pairs where a basis ended lower than z, and the test compares the two over these pairs: a
# Wilcoxon signed-rank test when there are at least 6 pairs, a paired t-test when there are fewer. With 6
# pairs the smallest p-value Wilcoxon can give is 2/2⁶ ≈ 0.03, reached only when every pair goes the same
# way.

# %%
def paired_test(a, b):
    """(test name, two-sided p-value) for paired samples a, b: Wilcoxon with >= 6 pairs, else a paired t-test."""
    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(a) < 2:
        return "none (fewer than 2 pairs)", float("nan")
    return ("Wilcoxon", float(wilcoxon(a, b).pvalue)) if len(a) >= 6 else ("paired t", float(ttest_rel(a, b).pvalue))


final = {name: torch.stack([r.loss_best for r in runs]).cpu() for name, runs in adam.items()}  # (targets, seeds)
z_start = torch.cat([G.sample(1, seed=s) for s in start_seeds])
latent_error = {name: torch.stack([(r.z_best - zt).norm(dim=1) for r, zt in zip(runs, z_true)]).cpu()
                for name, runs in adam.items()}
start_error = float(torch.cdist(z_true, z_start).mean())

# %%
def final_table(final, reference="z", rows=slice(None)):
    """Mean final loss per method, the pairs where it beats `reference` ("wins"), and the paired test."""
    ref = final[reference][rows].flatten()
    out = {"method": [], "mean": [], "min": [], "max": [], "wins": [], "test": [], "p": []}
    for name, values in final.items():
        v = values[rows].flatten()
        test, p = paired_test(v, ref) if name != reference else ("", "")
        for key, value in zip(out, [name, float(v.mean()), float(v.min()), float(v.max()),
                                    f"{int((v < ref).sum())}/{len(v)}" if name != reference else "", test, p]):
            out[key].append(value)
    return out


table_generated = final_table(final, rows=slice(0, n_targets))
table_generated["‖z − z_true‖"] = [float(latent_error[name].mean()) for name in final]
table_generated["‖z‖"] = [float(torch.cat([r.z_best for r in adam[name][:n_targets]]).norm(dim=1).mean())
                          for name in final]
record("adam_generated", table_generated)
print(f"generated targets: {n_targets} × {n_seeds} = {n_targets * n_seeds} pairs; at the start, mean "
      f"‖z0 − z_true‖ = {start_error:.2f} and mean ‖z0‖ = {float(z_start.norm(dim=1).mean()):.2f}")
viz.markdown_table(table_generated, precision=3)

# %%
table_photo = final_table(final, rows=slice(n_targets, None))
record("adam_photo", table_photo)
print(f"the photograph: {n_seeds} pairs")
viz.markdown_table(table_photo, precision=3)

# %% [markdown]
# ## CMA-ES: isotropic on z against Hessian-aware in the top-k subspace
#
# The black-box version never uses a gradient. CMA-ES samples a population of codes around its mean, keeps
# the best and adapts its mean and covariance. Isotropic CMA-ES starts with the same step size (σ = cma_sigma)
# in every direction of z. The Hessian-aware variant searches the top-k eigen-subspace through the starting
# code, with an initial step size along eigenvector i proportional to λᵢ^(−1/2.5), scaled to mean σ: small
# steps where the image changes fast, large ones where it changes slowly. A third run, isotropic CMA-ES in
# the same subspace, separates the effect of the step sizes from that of the subspace. All three see the
# same number of images and start from the same codes.

# %%
top_V, top_eigvals = avg.eigvecs[:, :top_k], avg.eigvals[:top_k]
variants = {"isotropic, z": {}, f"isotropic, top {top_k}": {"basis": top_V},
            f"Hessian-aware, top {top_k}": {"basis": top_V, "eigvals": top_eigvals}}
cma = {name: [I.invert_cma(G, t, d, budget=cma_budget, seed=s, sigma0=cma_sigma, progress=False, **kw)
              for t in [*generated, photo] for s in start_seeds] for name, kw in variants.items()}

# %% [markdown]
# The curves are the best loss found so far against the number of images evaluated (mean over targets and
# seeds, band from best to worst run), for the generated targets and the photograph together.

# %%
viz.band_chart(curves(cma), log_y=True, band="min–max", xlabel="images evaluated", ylabel="best LPIPS so far",
               title=f"CMA-ES, all targets × {n_seeds} seeds")

# %% [markdown]
# The table compares the final best LPIPS of each run with isotropic CMA-ES on z from the same start (wins
# and test as above), and gives the mean best loss after a quarter of the budget as well (last column).

# %%
cma_final = {name: torch.cat([r.loss_best for r in runs]).view(n_targets + 1, n_seeds).cpu()
             for name, runs in cma.items()}
table_cma = final_table(cma_final, reference="isotropic, z")
early = max(1, cma_budget // 4)
table_cma[f"after {early}"] = [float(torch.cat([r.history[:, early - 1] for r in runs]).mean())
                                           for runs in cma.values()]
record("cma_all_targets", table_cma)
print(f"{(n_targets + 1) * n_seeds} pairs (generated targets and the photograph)")
viz.markdown_table(table_cma, precision=3)

# %% [markdown]
# ## The reconstructions
#
# For each target, the best image each method found over its starting seeds. Rows: the generated targets,
# then the photograph. Columns, left to right: the target; Adam on z, in the full eigenbasis and in the
# top-k subspace; Hessian-aware CMA-ES.

# %%
def best_image(results):
    """The image of the lowest loss among a list of Inversions (each holding one or more seeds)."""
    losses, images = torch.cat([r.loss_best for r in results]), torch.cat([r.images for r in results])
    return images[losses.argmin()].cpu()


hessian_cma = cma[f"Hessian-aware, top {top_k}"]
columns = {"target": list(torch.cat([generated, photo[None]]).cpu()),
           **{f"Adam, {short}": [best_image([r]) for r in adam[name]]
              for short, name in zip(["z", "all", f"top {top_k}"], bases)},
           "CMA, Hessian": [best_image(hessian_cma[i * n_seeds:(i + 1) * n_seeds]) for i in range(n_targets + 1)]}
grid = torch.stack([torch.stack(images) for images in columns.values()], dim=1)
viz.montage(grid, [f"generated {i}" for i in range(n_targets)] + ["photograph"], list(columns),
            title="targets and best reconstructions", label_width=90)

# %% [markdown]
# ## What the numbers show
#
# The toy quadratic behaves as the paper says. With our choice of start, learning rate and steps, Adam ends
# at f = 1.15 in the original basis and at f = 4e-4 in the eigenbasis, a gap of more than three orders of
# magnitude, like the paper's 7.155 against 0.007. In two dimensions with exactly known curvature, the
# argument holds: Adam's per-coordinate step sizes can only fit curvature that lies along the axes.
#
# On the faces DCGAN the eigenbasis did not give the same gain. In the default run (3 generated targets × 2
# starting seeds, 100 Adam steps at lr 0.1), Adam in the full eigenbasis ended at a mean best LPIPS of
# 0.075, against 0.066 for Adam on z. It beat z in only 1 of the 6 pairs, and the Wilcoxon test gives
# p = 0.22, so this sample shows no difference either way. The mean curves stay close, with z slightly lower
# from the fifth step on. The truncated basis did worse: in the top-20 subspace Adam ended at 0.133 and lost
# in all 6 pairs (p = 0.031, the smallest p-value Wilcoxon can give with 6 pairs). This is expected. Those
# 20 directions carry 84% of the average metric's trace, but they span only a plane through the starting
# code, and the target's code is not on it.
#
# No method found the true code. In the default run each run reached a low LPIPS with a different code,
# about as far from the true code as the start was (mean ‖z − z_true‖ 14.5 for z-space, against 14.6 at the
# start). In the full eigenbasis the codes drifted further, to 17.6 from the true code, and their norm grew
# to 15.2 against 12.2 for z-space and about 10 for a typical code. This fits the argument of the toy
# quadratic turned around. Adam gives a coordinate whose gradient is small but steady a full-size step. In
# the eigenbasis that means the flat directions, where moving the code barely changes the image, so the code
# wanders along them.
#
# The photograph goes the other way. In the default run the full eigenbasis ended at 0.096 against 0.122 for
# z, better for both starting seeds, while the top-20 subspace was worse (0.180). With two pairs the paired
# t-test (p = 0.14) cannot tell this apart from chance: one photograph and two seeds are too few to
# conclude. That is also the size of the paper's own evidence, one ImageNet image, where BasinCMA reached an
# LPIPS of 0.14–0.16 with the Hessian basis and 0.23–0.30 without. That experiment used a different
# generator (BigGAN at 256×256) and a different optimizer (CMA-ES followed by Adam), so its LPIPS values do
# not compare with ours in absolute terms.
#
# CMA-ES did not reproduce the paper's gain either. In the default run, after 400 images, Hessian-aware
# CMA-ES in the top-20 subspace ended at a mean of 0.135, against 0.132 for isotropic CMA-ES on z. It beat
# it in 2 of 8 pairs (p = 0.25). Isotropic CMA-ES in the same subspace did about as well (0.140, also 2 of
# 8), so the metric's step sizes added little beyond the choice of subspace. The subspace did help early.
# After 100 images both subspace variants were ahead of isotropic CMA-ES on z (see the last column). With
# the full budget, the search over all 100 dimensions caught up and passed them: as with Adam, a plane
# through the start limits how good a code can be found.
#
# So on this small generator, the anisotropy the metric measures is real (the top eigenvalue is about 1900
# times the smallest), but in these runs a rotation into its eigenbasis does not make inversion faster or
# better. These are a few targets and seeds at one learning rate. The parameters at the top of the page
# (n_targets, n_seeds, lr, top_k) are the place to test whether the picture changes.

# %% [markdown]
# ## Try it
#
# - `-p n_targets 10 -p n_seeds 3`: more pairs make the paired test decisive either way.
# - `-p steps 300`: longer runs; does the gap between bases close?
# - `-p lr 0.05`: another learning rate (the same for every basis, so the comparison stays fair).
# - `-p top_k 40`: a larger eigen-subspace for the truncated basis and CMA-ES.
# - `-p cma_budget 1000`: a larger CMA-ES budget.
