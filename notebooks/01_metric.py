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

run_times = glue("run_times", run_times("01_metric"))

# %% [markdown]
# # The metric of a generator
#
# **What this chapter tests.** That the metric $H(z_0)$, the Hessian of LPIPS pulled back through the
# generator, predicts the distance for small steps, and that four ways of computing it (our exact
# forward-mode Jacobian and the paper's BP, BackwardIter and ForwardIter) agree; also two pitfalls of the
# authors' iterative operators. Its accuracy table, beside the paper's numbers, is also on the
# [results page](results.md).
#
# **Rerun it** ({eval}`run_times`):
#
# ```bash
# python -m helpers.book run --only 01 -p seed 1 -p n_compare 3
# ```

# %% [markdown]
# A generator $G$ maps a latent code $z$ to an image $G(z)$. An image distance $d$, LPIPS here, says how
# different two images are. Pulling $d$ back through $G$ gives a way to measure how much the image changes
# when the code moves: near a code $z_0$,
#
# $$ d\big(G(z_0), G(z_0 + \delta)\big) \approx \tfrac12\, \delta^\top H(z_0)\, \delta,
# \qquad H(z_0) = \frac{\partial^2}{\partial z^2}\, d\big(G(z_0), G(z)\big)\Big|_{z=z_0}. $$
#
# This is the second-order Taylor expansion of $d$ around $z_0$. The zeroth-order term is
# $d(G(z_0), G(z_0)) = 0$, and the first-order term vanishes too: $d$ is never negative and is zero at
# $z_0$, so $z_0$ is a minimum and the gradient there is zero. What is left is the quadratic form of the
# Hessian $H$, a positive semi-definite $n \times n$ matrix ($n$ the latent dimension): a Riemannian
# metric on latent space.
#
# LPIPS is itself a squared Euclidean distance between feature vectors: it normalizes each layer's
# activations over channels, weights each channel by a learned non-negative weight and averages over
# positions, so $d(x_0, x) = \lVert f(x_0) - f(x) \rVert^2$ with $f$ the weighted, normalized features.
# Writing $J$ for the Jacobian of $f(G(z))$ in $z$, the chain rule then gives exactly
#
# $$ H(z_0) = 2\, J^\top J, $$
#
# because the term with second derivatives of $f \circ G$ is multiplied by $f(G(z_0)) - f(G(z_0)) = 0$.
# (With LPIPS's weights $W$ written separately this is the $2 J^\top W J$ of the introduction.)
#
# This page checks that formula numerically and compares four ways of computing $H$:
#
# - **jacobian** (ours, exact): $n$ forward-mode Jacobian-vector products, one per latent direction,
#   computed together with `torch.func.jvp` under `vmap`, then $H = 2J^\top J$ accumulated in `float64`.
# - **backprop** (the paper's BP, exact): the gradient of $d$ with `create_graph`, then one more backward
#   pass per latent dimension.
# - **lanczos** (the paper's BackwardIter, top-$k$): ARPACK Lanczos on exact Hessian-vector products.
# - **finite-difference** (the paper's ForwardIter, top-$k$): Lanczos on central differences of the
#   gradient, with a step $\varepsilon \lVert z_0 \rVert$.
#
# One difference from the authors' code: their generator wrappers hand LPIPS images in $[0, 1]$, while
# LPIPS expects $[-1, 1]$. Every distance here takes images in $[-1, 1]$, as LPIPS was trained.

# %% tags=["parameters"]
model = "dcgan-faces64"
distance = "lpips-alex"
resolution = None  # the distance's working size (None: the generator's; paper: 256)
methods = ["jacobian", "backprop", "lanczos", "finite-difference"]
top_k = 20
seed = 0
n_compare = 1  # codes at which the four methods are compared
eps_grid = [1e-6, 1e-5, 1e-4, 1e-3, 1e-2, 1e-1]
subspace_tol = 1e-4  # certificate of the top-k solver: every residual ≤ subspace_tol·λ1
n_warm = 4  # other codes whose average metric warm-starts the top-k solver
device = "cpu"

# %% tags=["hide-input"]
import inspect

import numpy as np
import torch
from IPython.display import display

from helpers import analysis, distances, generators, metric, report, viz
from helpers.report import glue, phrase_list, record, result_table

glue("model", model)
glue("distance", distance)
codes = glue("codes", report.plural(n_compare, "code"))
glue("seed", seed)
options = {"resize": resolution} if resolution else {}
G = generators.load(model, device=device)
d = distances.load(distance, device=device, **options)
z = G.sample(n_compare, seed=seed)

# %% [markdown]
# ## The quadratic form predicts the distance
#
# First the exact metric at the first code, then a check that it does what the expansion says: for a unit
# direction $v$ and a step $t$, the measured LPIPS between $G(z_0)$ and $G(z_0 \pm t v)$ should be close
# to $\tfrac12 t^2 v^\top H v$ when $t$ is small. We average the two sides, $+t$ and $-t$: that cancels the
# cubic term of the expansion, which is odd in $t$ (and would otherwise make the check depend on the
# arbitrary sign of an eigenvector). We try the top eigenvector, eigenvectors further down the spectrum,
# and a random direction, and plot the ratio of measured to predicted distance. The model is
# {eval}`model` with the distance {eval}`distance`, at {eval}`codes` from seed {eval}`f"{seed:d}"`.

# %%
exact = metric.metric(G, z, d, "jacobian")
H0, V0 = exact.H[0], exact.eigvecs[0]
norm = float(z[0].norm())
steps = np.logspace(-5, 0.5, 23) * norm
noise = torch.Generator().manual_seed(seed)
unit_random = torch.randn(G.latent_dim, generator=noise, dtype=torch.float64).to(H0)
directions = {"eigenvector 1": V0[:, 0], "eigenvector 10": V0[:, 9],
              "eigenvector 50": V0[:, 49], "random": unit_random / unit_random.norm()}
ratios, measured = {}, {}
with torch.no_grad():
    x0 = G(z[:1])
    for name, v in directions.items():
        predicted = 0.5 * steps ** 2 * float(v @ H0 @ v)
        offsets = torch.as_tensor(steps).to(z)[:, None] * v.to(z.dtype)
        both_sides = d(x0, G(z[:1] + offsets)) + d(x0, G(z[:1] - offsets))
        measured[name] = both_sides.double().cpu().numpy() / 2
        ratios[name] = measured[name] / predicted
viz.line_chart(steps / norm, ratios, log_x=True, xlabel="step t / ‖z0‖", ylabel="ratio",
               title="measured LPIPS (mean of ±t) / ½ t² vᵀHv")

# %% [markdown]
# Is the float32 metric itself accurate enough for this check? The same metric computed entirely in
# `float64` (generator, distance and code) answers that:

# %%
G64 = generators.load(model, device=device).double()
d64 = distances.load(distance, device=device, **options).double()
exact64 = metric.metric(G64, z[:1].double(), d64)
gap = float((exact.H[0] - exact64.H[0]).norm() / exact64.H[0].norm())
float64_gap = glue("float64_gap", record("float32_vs_float64_rel_error", gap))

# %% [markdown]
# They differ by {eval}`f"{float64_gap:.1e}"` relative. The ratios of measured to predicted distance
# at three steps:

# %%
at = {f"{t:.0e}": int(np.argmin(np.abs(steps / norm - t))) for t in (1e-5, 1e-3, 1e-1)}
table = record("quadratic_ratio", {name: {t: float(r[i]) for t, i in at.items()}
                                   for name, r in ratios.items()})
viz.markdown_table({"direction": list(table), **{
    f"ratio at t = {t}·‖z0‖": [row[t] for row in table.values()] for t in at}})

# %% [markdown]
# The summary at the end of the page, "What the numbers show", is generated from this table.

# %% tags=["hide-input"]
top, lower = "eigenvector 1", [name for name in table if name != "eigenvector 1"]
small_step_deviation = glue(
    "small_step_deviation", max(abs(row["1e-05"] - 1) for row in table.values()))
smallest_distance = glue(
    "smallest_distance", float(min(m[at["1e-05"]] for m in measured.values())))
mid_step_lower_deviation = glue(
    "mid_step_lower_deviation", max(abs(table[name]["1e-03"] - 1) for name in lower))
mid_top = table[top]["1e-03"] - 1
mid_step_top = glue(
    "mid_step_top", f"{abs(mid_top):.0%} {'below' if mid_top < 0 else 'above'}")
large_step_top_ratio = glue("large_step_top_ratio", table[top]["1e-01"])
large_step_low_ratio = glue("large_step_low_ratio", table["eigenvector 50"]["1e-01"])

# %% [markdown]
# ## Four methods, one metric
#
# Now every method at the same codes. The exact methods are compared entry by entry with backprop (the
# paper's reference method); the top-$k$ methods on their top eigenvalues and by the correlation of their
# rank-$k$ reconstruction with the full matrix, the accuracy measure the paper used.

# %%
results = {m: metric.metric(G, z, d, m, k=top_k) for m in methods}
reference = results.get("backprop", exact)
rows = {m: analysis.method_agreement(r, reference, top_k) for m, r in results.items()}
record("method_agreement", {m: v._asdict() for m, v in rows.items()})
error, eig_error, corr = zip(*rows.values())
viz.markdown_table({"method": list(rows), "relative Frobenius error vs backprop": error,
                    f"max rel. error, top-{top_k} eigenvalues": eig_error,
                    "corr(vec H, vec H_backprop)": corr}, precision=6)

# %% [markdown]
# What one Hessian costs, beside the paper's timings for its 120-d DCGAN on the authors' GPU, BP,
# BackwardIter and ForwardIter: {paper}`12.5 / 13.4 / 6.9` seconds. Ours run on a CPU, at the times of
# this run (a shared machine; `benchmarks/README.md` has controlled measurements). The top-$k$ methods
# find {eval}`f"{top_k:d}"` eigenpairs.

# %%
glue("top_k", top_k)
seconds = {m: r.seconds_per_point for m, r in results.items()}
paper_ids = {"backprop": "seconds_bp_dcgan", "lanczos": "seconds_backward_iter_dcgan",
             "finite-difference": "seconds_forward_iter_dcgan"}
result_table(
    "metric_seconds", "Seconds per Hessian", rows=list(seconds),
    columns={f"ours: {model}, CPU, this run": list(seconds.values())},
    paper={"paper: DCGAN-fashion (120-d), GPU": [paper_ids.get(m) for m in seconds]},
    row_header="method", note=f"{codes} of {G.latent_dim} dimensions; top "
                              f"{top_k} eigenpairs for lanczos and finite-difference")

# %% tags=["hide-input"]
if "jacobian" in rows and "backprop" in results:
    speedup = seconds["backprop"] / seconds["jacobian"]
    exact_methods = ("The two exact methods agree to float32 rounding: the relative "
                     "Frobenius difference of jacobian and backprop is "
                     f"{rows['jacobian'][0]:.1e}")
    faster = "faster" if speedup > 1 else "slower"
    speed = (f"the forward-mode Jacobian was {max(speedup, 1 / speedup):.2g}× {faster} "
             "per Hessian than backprop in this run (one run on a shared machine; "
             "`benchmarks/README.md` has controlled measurements)")
else:
    exact_methods = ("This run compared fewer methods (`methods` parameter), so the "
                     "exact ones are not compared")
    speed = "no timing comparison was made"
glue("exact_methods", exact_methods)
glue("speed", speed)
fastest = min(seconds, key=seconds.get)
took = phrase_list(f"{seconds[m]:.3g} s ({m})" for m in seconds)
as_paper = ", as in the paper" if fastest == "finite-difference" else ""
cost_sentence = glue(
    "cost_sentence", f"On this run's CPU the methods took {took} per Hessian of a "
                     f"{G.latent_dim}-d code; {fastest} was the fastest{as_paper}.")
lanczos = glue("lanczos", (
    f"Lanczos recovers the top {top_k} eigenvalues of the exact metric to "
    f"{rows['lanczos'][1]:.1e} relative, and its rank-{top_k} matrix correlates with "
    f"the full one at {rows['lanczos'][2]:.4f}") if "lanczos" in rows else
    "Lanczos was not run (`methods` parameter)")

# %% [markdown]
# For the top-$k$ methods the relative Frobenius error is large by construction: a rank-$k$ matrix cannot
# carry the remaining $n - k$ directions. Their eigenvalues and their correlation with the full matrix are
# the fair comparison.
#
# ## Finite differences: the step size matters
#
# The finite-difference method trades exactness for needing only gradients. Its step $\varepsilon$
# (relative to $\lVert z_0 \rVert$) must be small enough that the gradient is close to linear over the
# step, and large enough that float32 rounding does not swamp the difference of two nearly equal
# gradients. The paper reports this trade-off as the correlation of the finite-difference metric with BP
# over a range of steps.

# %%
eps_corr = {}
for eps in eps_grid:
    fd = metric.metric(G, z[:1], d, "finite-difference", k=top_k, eps=eps)
    flat = fd.H[0].flatten().cpu(), reference.H[0].flatten().cpu()
    eps_corr[eps] = float(np.corrcoef(*flat)[0, 1])
record("finite_difference_corr_by_eps", {str(k): v for k, v in eps_corr.items()})
display(viz.line_chart(
    list(eps_corr), {"corr(vec H_fd, vec H_exact)": eps_corr.values()}, log_x=True,
    title="finite-difference accuracy vs step", xlabel="ε (step / ‖z0‖)",
    ylabel="correlation"))

# %% [markdown]
# The same comparison beside the paper's numbers (also on the results page), with the correlation of
# the Lanczos rank-{eval}`f"{top_k:d}"` matrix with the full one. The last column is not the paper's: it
# is printed by the authors' tutorial notebook, for BigGAN, and marked so.

# %%
pggan = {eps: f"forward_iter_corr_pggan_{eps:.0e}".replace("e-0", "e-")
         for eps in (1e-5, 1e-3, 1e-2, 1e-1)}
ran = "lanczos" in rows
lanczos_row = {"BackwardIter (lanczos, top-k)": rows["lanczos"][2]} if ran else {}
fd_rows = {f"ForwardIter (finite differences), step {eps:.0e}": c
           for eps, c in eps_corr.items()}
ours = [*lanczos_row.values(), *fd_rows.values()]
first, rest = [None] * len(lanczos_row), [None] * len(eps_corr)  # lanczos; the rest
result_table(
    "metric_methods",
    "Accuracy of the iterative methods: correlation of vec(H) with BP",
    rows=[*lanczos_row, *fd_rows], columns={f"ours: {model}": ours},
    paper={"paper: PGGAN": first + [pggan.get(eps) for eps in eps_corr],
           "paper: DCGAN-fashion": first + [
               "forward_iter_corr_dcgan" if eps <= 1e-4 else None for eps in eps_corr],
           "paper: their GANs": ["backward_iter_corr"] * ran + rest,
           "authors' code: BigGAN, rank 20": ["lanczos_rank20_corr_biggan"] * ran
                                             + rest},
    row_header="method", note=f"{codes} from seed {seed}; top {top_k} "
                              "eigenpairs for the top-k methods")

# %% tags=["hide-input"]
good = [f"{eps:.0e}" for eps, c in eps_corr.items() if c >= 0.99]
worse = ", ".join(f"{c:.3f} at {eps:.0e}" for eps, c in eps_corr.items() if c < 0.99)
fd_verdict = glue(
    "fd_verdict", ("correlate with the exact metric at 0.99 or more (the threshold we "
                   f"take for agreement) at steps of {phrase_list(good)}" if good
                   else "never reach a correlation of 0.99 with the exact metric")
    + (f", and less at the others ({worse})" if worse and good
       else f" ({worse})" if worse else ""))
full = {eps: report.recorded_row("metric_methods", row).get(model)
        for eps, row in zip(eps_corr, fd_rows)}
differ = [f"{c:.4f} at {eps:.0e}" for eps, c in full.items()
          if c is not None and (c >= 0.99) != (eps_corr[eps] >= 0.99)]
fd_full = glue("fd_full", "" if not any(full.values()) else (
    "The recorded full-profile run, over more codes, puts the same steps above 0.99"
    if not differ else "The recorded full-profile run, over more codes, falls on the "
    f"other side of 0.99 at some steps: {', '.join(differ)}")
    + " (see the results page).")
fd_default_eps = glue(
    "fd_default_eps", inspect.signature(metric.metric).parameters["eps"].default)

# %% [markdown]
# ## Two pitfalls of the published code
#
# The paper's ForwardIter operator differentiates the *mean* of the distances to the two perturbed images
# $G(z_0 \pm h v)$, so each gradient, and the Hessian-vector product, comes out halved. The same central
# difference written both ways, here, on the top eigenvector $v_1$ with eigenvalue $\lambda_1$:

# %%
v1, lambda1 = V0[:, 0].to(z.dtype), float(exact.eigvals[0, 0])
h = 1e-4 * norm
points = torch.cat([z[:1] + h * v1, z[:1] - h * v1]).requires_grad_(True)
hv = {}
for reduction in ("sum", "mean"):  # sum: our operator; mean: the published one
    (g,) = torch.autograd.grad(getattr(d(x0, G(points)), reduction)(), points)
    hv[reduction] = float(((g[0] - g[1]) / (2 * h)) @ v1) / lambda1
record("forward_iter_rayleigh_over_lambda", hv)
hv_sum = glue("hv_sum", hv["sum"])
hv_mean = glue("hv_mean", hv["mean"])

# %% [markdown]
# With the sum, $v_1^\top (H v_1) / \lambda_1 =$ {eval}`f"{hv_sum:.4f}"`; with the mean of the published
# operator, {eval}`f"{hv_mean:.4f}"`.

# %% [markdown]
# Their BackwardIter evaluates the Hessian-vector products at $z_0 + 10^{-4}\,\xi$, with $\xi$ standard
# normal noise, instead of at $z_0$. How much does the exact metric change one such step away?

# %%
noise = torch.randn(z[:1].shape, generator=torch.Generator().manual_seed(seed)).to(z)
off_point = metric.metric(G, z[:1] + 1e-4 * noise, d)
change = float((off_point.H[0] - H0).norm() / H0.norm())
jitter_shift = glue("jitter_shift", record("metric_change_at_1e-4_jitter", change))

# %% [markdown]
# It differs from the metric at $z_0$ by {eval}`f"{jitter_shift:.2%}"` (relative Frobenius norm).

# %% [markdown]
# ## The top of the spectrum in a fraction of the passes
#
# The exact metric costs one forward-mode pass per latent direction, $n$ of them; most uses need only the
# top of the spectrum. Since $H = 2 J^\top J$, a block of vectors $V$ is multiplied by $H$ with one batch of
# forward-mode products $J V$ and one batch of reverse-mode products $J^\top (J V)$, and no second-order
# graph: the Gauss–Newton product. The `subspace` method grows a basis by a block of such products per
# iteration (block Krylov), takes the best eigenpairs the basis holds (Rayleigh–Ritz, in `float64`) and
# stops when every returned pair has a residual
# $\lVert H v - \lambda v \rVert \le \mathrm{tol} \cdot \lambda_1$.
# The residuals come with the result, and they are a certificate: each returned $\lambda$ lies
# within its residual of an eigenvalue of $H$, and $(\lambda, v)$ is an exact eigenpair of a symmetric
# matrix that differs from $H$ by no more than the residual.
#
# Below, the top-$k$ pairs at $z_0$ from a random start; from a warm start, the top $2k$ eigenvectors of the
# average exact metric of other codes; and from the basis found at a nearby code (the previous point of a
# walk, say). A warm basis wider than the solver's block is not taken whole: the first block is a few random
# mixtures of its columns, a start inside its span from which the Krylov space grows as fast as from a
# random one. Each is checked against the exact metric of the first section: its eigenvalues, and its
# residuals recomputed against $H(z_0)$ itself.

# %%
glue("subspace_tol", subspace_tol)
glue("n_warm", n_warm)
glue("latent_dim", G.latent_dim)
others = metric.metric(G, G.sample(n_warm, seed=seed + 1), d, progress=False)
# the top 2k eigenvectors of the average: the solver mixes them into its first block
average_basis = metric.eigh_descending(others.H.mean(0))[1][:, :2 * top_k]
step = torch.randn(z[:1].shape, generator=torch.Generator().manual_seed(seed + 2)).to(z)
nearby = z[:1] + 0.01 * norm * step / step.norm()
previous = metric.metric(G, nearby, d, "subspace", k=top_k, tol=subspace_tol)


def top_k_solver(basis=None):
    return metric.metric(G, z[:1], d, "subspace", k=top_k, tol=subspace_tol,
                         basis=basis)


solvers = {"exact (jacobian)": exact[:1],
           "subspace, random start": top_k_solver(),
           f"subspace, warm: average of {n_warm} codes": top_k_solver(average_basis),
           "subspace, warm: a code 1% away": top_k_solver(previous.eigvecs[0])}
exact_top = exact.eigvals[0, :top_k]
lambda_1 = float(exact_top[0])
solver_rows = {}
for name, result in solvers.items():
    vals, vecs = result.eigvals[0, :top_k], result.eigvecs[0, :, :top_k]
    residuals = result.residuals
    solver_rows[name] = {
        "jvp": int(result.passes[0, 0]), "vjp": int(result.passes[0, 1]),
        "seconds": result.seconds_per_point,
        "eig_error": float(((vals - exact_top).abs() / exact_top).max()),
        "reported": None if residuals is None else float(residuals[0].max()) / lambda_1,
        "true": float((H0 @ vecs - vecs * vals).norm(dim=0).max()) / lambda_1}
record("subspace_solvers", solver_rows)
solved = solver_rows.values()
viz.markdown_table({
    "method": list(solver_rows),
    "Jacobian columns (JVP + VJP)": [f"{r['jvp']} + {r['vjp']}" for r in solved],
    "seconds (this run)": [r["seconds"] for r in solved],
    f"max rel. error, top-{top_k} eigenvalues": [r["eig_error"] for r in solved],
    "largest residual / λ1, reported": [
        "exact" if r["reported"] is None else r["reported"] for r in solved],
    "largest residual / λ1, against H": [r["true"] for r in solved],
    "use it when": ["n is small, or the whole spectrum is needed",
                    "the top k of a large latent space",
                    "the average predicts the point's top eigenspace well",
                    "points come in small steps (walks, optimisation)"]}, precision=3)

# %% [markdown]
# The sentences below are generated from this table:

# %% tags=["hide-input"]
subspace_results = [r for name, r in solver_rows.items() if name.startswith("subspace")]
cold, *warm = subspace_results
worst_true = max(r["true"] for r in subspace_results)
slack = max(abs(r["true"] - r["reported"]) for r in subspace_results)
held = worst_true <= subspace_tol * (1 + 1e-3) + 1e-6
lam = "·$\\lambda_1$"
subspace_certificate = glue("subspace_certificate", (
    "every certificate held: recomputed against $H(z_0)$, the largest residual of any "
    f"returned pair is {worst_true:.1e}{lam}, within the tolerance" if held else
    f"a recomputed residual, {worst_true:.1e}{lam}, exceeds the tolerance: the "
    "certificate did not hold") + " (reported and recomputed residuals differ by at "
    f"most {slack:.1e}{lam}, the float32 rounding of the products)")
glue("subspace_cold_columns", cold["jvp"])
subspace_cold_error = glue("subspace_cold_error", cold["eig_error"])
subspace_warm_average_columns = glue("subspace_warm_average_columns", warm[0]["jvp"])
subspace_warm_near_columns = glue("subspace_warm_near_columns", warm[1]["jvp"])
cost_ratio = 2 * cold["jvp"] / G.latent_dim
subspace_verdict = glue("subspace_verdict", (
    f"A random start needed {cold['jvp']} columns of each kind, {cost_ratio:.2g} times "
    "the work of the exact metric if a reverse-mode product costs about as much as a "
    "forward-mode one" + (": on a latent space this small the exact metric is the "
                         "better choice" if cost_ratio >= 1 else "")))
own_top = exact.eigvecs[0, :, :top_k]
overlap = float((average_basis[:, :top_k].T.to(own_top) @ own_top).pow(2).sum() / top_k)
subspace_average_overlap = glue("subspace_average_overlap", overlap)


def against_cold(columns):
    """How a warm start's Jacobian columns compare with the random start's."""
    if columns == cold["jvp"]:
        return "as many as the random start"
    more = "fewer" if columns < cold["jvp"] else "more"
    return f"{abs(cold['jvp'] - columns)} {more} than the random start"


subspace_warm_average_verdict = glue(
    "subspace_warm_average_verdict", against_cold(warm[0]["jvp"]))
subspace_warm_near_verdict = glue(
    "subspace_warm_near_verdict", against_cold(warm[1]["jvp"]))

# %% [markdown]
# {eval}`subspace_verdict`. The eigenvalues of the random start agree with the exact ones to
# {eval}`f"{subspace_cold_error:.1e}"` relative, and {eval}`subspace_certificate`. A warm start from
# the average metric of {eval}`f"{n_warm:d}"` other codes took {eval}`f"{subspace_warm_average_columns:d}"`
# columns, {eval}`subspace_warm_average_verdict`: the average's top eigenspace overlaps this code's by
# {eval}`f"{subspace_average_overlap:.2f}"` (mean squared cosine; one would be the same subspace). A warm
# start from a code one percent of $\lVert z_0 \rVert$ away took {eval}`f"{subspace_warm_near_columns:d}"`,
# {eval}`subspace_warm_near_verdict`. The cost of a column is what decides between the methods: the exact
# metric spends $n$ forward-mode products, the solver a forward-mode and a reverse-mode product per column,
# so it wins where it needs far fewer columns than $n$, as on large latent spaces and along paths.
# `benchmarks/README.md` measures where it does, and the certificate tells in every case how far to trust
# what it returns.

# %% [markdown]
# ## What the numbers show
#
# The quadratic form of $H$ predicts LPIPS for small steps. At the smallest step,
# $t = 10^{-5} \lVert z_0 \rVert$, every ratio is within {eval}`f"{small_step_deviation:.1%}"` of one; the
# scatter left there is float32 rounding of distances as small as {eval}`f"{smallest_distance:.1e}"`. At
# $t = 10^{-3} \lVert z_0 \rVert$ the random and lower-ranked directions are within
# {eval}`f"{mid_step_lower_deviation:.1%}"`, while along the top eigenvector the measured distance is
# {eval}`mid_step_top` the prediction. $H$ itself is accurate there: the `float64` metric differs from
# the `float32` one by {eval}`f"{float64_gap:.1e}"` relative. The top direction is the one along which the
# image changes fastest, and the ReLUs and max-pools of the generator and of AlexNet switch close to $z_0$
# along it, so the distance is only piecewise smooth and its quadratic approximation holds over a shorter
# range. At $t = 10^{-1} \lVert z_0 \rVert$ the ratio of measured to predicted distance is
# {eval}`f"{large_step_top_ratio:.3g}"` along the top eigenvector (the image saturates) and
# {eval}`f"{large_step_low_ratio:.3g}"` along eigenvector 50.
#
# {eval}`exact_methods`, and {eval}`lanczos` (the authors' notebook gives {authors}`0.9974` for a
# Lanczos matrix of rank 20 for BigGAN); {eval}`speed`. Finite differences {eval}`fd_verdict`.
# {eval}`fd_full` The paper saw the same trade-off on PGGAN, with correlations of {paper}`0.989`,
# {paper}`0.901` and {paper}`0.398` at steps of $10^{-3}$, $10^{-2}$ and $10^{-1}$, and {paper}`0.978` for
# its DCGAN at small steps; the default step here is {eval}`f"{fd_default_eps:.0e}"`.
#
# As for cost, the paper timed its 120-d DCGAN on a GPU: {paper}`12.5 / 13.4 / 6.9` seconds per Hessian
# for BP, BackwardIter and ForwardIter, the finite differences fastest. {eval}`cost_sentence` The two
# are not a like comparison: another device, another generator, and LPIPS at the paper's working
# resolution of $256 \times 256$ pixels against the generator's own $64 \times 64$ here, which makes
# each product much cheaper.
#
# The two pitfalls are real. With the mean, the published ForwardIter returns
# $v_1^\top (H v_1) / \lambda_1 =$ {eval}`f"{hv_mean:.3f}"` instead of {eval}`f"{hv_sum:.3f}"`: half the
# Hessian, so its eigenvalues are half the true ones. And evaluating at a point $10^{-4}$ noise away
# changes the metric by {eval}`f"{jitter_shift:.1%}"` relative, against {eval}`f"{float64_gap:.1e}"`
# between the `float32` and `float64` metrics at the same point.

# %% [markdown]
# ## Try it
#
# - `-p seed 1` or `-p n_compare 3`: other codes; the agreement of the methods should not depend on them.
# - `-p resolution 256`: LPIPS at the paper's working resolution (images upsampled first); slower.
# - `-p eps_grid "[1e-7, 1e-6, 1e-4, 1e-2]"`: where the finite-difference step starts to hurt, on both
#   sides.
# - `-p distance lpips-vgg` or `-p model cdcgan-eyes128`: another distance or generator; look at how far
#   the top eigenvector's ratio leaves one, and at what step.
# - `-p subspace_tol 1e-6` or `-p top_k 5`: a stricter certificate or fewer pairs; watch the Jacobian
#   columns the top-$k$ solver spends against the $n$ of the exact metric.
