"""The batched optimisers of helpers.inversion on a toy generator where the answer is known.

The toy is linear, G(z) = A z shaped as a 3×4×4 image, with A = U diag(s) Rᵀ: under the mean squared pixel
distance its metric is H = 2 AᵀA / N everywhere, with eigenvectors the columns of a random rotation R and a
condition number of 1e4, so the eigenbasis is exactly the coordinate system in which the problem separates.
"""

import math

import numpy as np
import pytest
import torch

from helpers import distances, inversion, stats
from helpers.generators import Generator

D, SIDE = 16, 4
LRS = (0.03, 0.1, 0.3, 1.0, 3.0)


@pytest.fixture(scope="module")
def toy():
    gen = torch.Generator().manual_seed(0)
    N = 3 * SIDE * SIDE
    U = torch.linalg.qr(torch.randn(N, D, generator=gen, dtype=torch.float64))[0]
    R = torch.linalg.qr(torch.randn(D, D, generator=gen, dtype=torch.float64))[0]
    s = torch.logspace(0, -2, D, dtype=torch.float64) * 10  # singular values 10 ... 0.1: H's condition 1e4
    A = (U * s) @ R.T
    net = lambda z: (z @ A.T.to(z)).view(-1, 3, SIDE, SIDE)  # noqa: E731
    G = Generator(net, D, name="linear-toy")
    H = 2 * A.T @ A / N
    eigvals, eigvecs = torch.linalg.eigh(H)
    return G, eigvals.flip(0), eigvecs.flip(1).float(), A


@pytest.fixture(scope="module")
def mse():
    return distances.mse()


def test_toy_metric_is_what_the_optimisers_are_told(toy):
    G, eigvals, V, A = toy
    assert eigvals[0] / eigvals[-1] == pytest.approx(1e4, rel=1e-6)
    # the eigenvectors are rotated away from the axes: no coordinate is close to an eigenvector
    assert V.abs().max() < 0.9


def test_per_row_adam_update_is_torch_adam():
    gen = torch.Generator().manual_seed(1)
    p0 = torch.randn(2, 5, generator=gen, dtype=torch.float64)
    grads = [torch.randn(2, 5, generator=gen, dtype=torch.float64) for _ in range(20)]
    lrs = torch.tensor([0.03, 0.3], dtype=torch.float64)
    p, m, v = p0.clone(), torch.zeros_like(p0), torch.zeros_like(p0)
    for t, g in enumerate(grads, start=1):
        inversion.adam_update(p, g, m, v, t, lrs)
    for row in range(2):
        q = p0[row].clone().requires_grad_(True)
        opt = torch.optim.Adam([q], lr=float(lrs[row]))
        for g in grads:
            q.grad = g[row].clone()
            opt.step()
        torch.testing.assert_close(p[row], q.detach(), rtol=1e-12, atol=1e-12)


def test_schedules():
    f = inversion.schedule_factors(["constant", "cosine", "step"], 6)
    assert f[0].tolist() == [1.0] * 6
    torch.testing.assert_close(f[1], 0.5 * (1 + torch.cos(math.pi * torch.arange(6.0, dtype=torch.float64) / 6)))
    assert f[2].tolist() == [1.0, 1.0, 0.5, 0.5, 0.25, 0.25]  # halved every ceil(6 / 3) = 2 steps
    with pytest.raises(ValueError, match="schedule must be one of"):
        inversion.schedule_factors(["linear"], 3)


def test_adam_rows_are_independent_and_chunks_change_nothing(toy, mse):
    G, _, V, _ = toy
    targets = G(G.sample(3, seed=5))
    z0 = torch.cat([G.sample(1, seed=s) for s in (10, 11, 12, 13)])
    kwargs = dict(target_index=[0, 1, 2, 0], steps=15, lr=[0.01, 0.05, 0.1, 0.2], schedule="cosine", progress=False,
                  basis=[None, V, V[:, :4], None])
    batched = inversion.adam(G, targets, mse, z0, chunk_size=64, **kwargs)
    chunked = inversion.adam(G, targets, mse, z0, chunk_size=1, **kwargs)
    torch.testing.assert_close(batched.history, chunked.history, rtol=1e-5, atol=1e-7)
    alone = inversion.adam(G, targets[1:2], mse, z0[1:2], steps=15, lr=0.05, basis=V, progress=False)
    torch.testing.assert_close(batched.history[1], alone.history[0], rtol=1e-5, atol=1e-7)
    # every row starts exactly at its own z0, whatever its basis
    with torch.no_grad():
        start = mse(targets[[0, 1, 2, 0]], G(z0))
    torch.testing.assert_close(batched.history[:, 0], start)
    # history is the lowest distance so far; z_best and images are the code and image that reached it
    assert torch.all(batched.history[:, 1:] <= batched.history[:, :-1])
    assert torch.equal(batched.loss_best, batched.history[:, -1])
    with torch.no_grad():
        torch.testing.assert_close(mse(targets[[0, 1, 2, 0]], G(batched.z_best)), batched.loss_best)
        torch.testing.assert_close(batched.images, G(batched.z_best))
    assert batched.lr == (0.01, 0.05, 0.1, 0.2) and batched.target_index == (0, 1, 2, 0)


def test_top_k_subspace_reaches_its_analytic_floor(toy, mse):
    G, _, V, A = toy
    z_true, z0 = G.sample(1, seed=7), G.sample(1, seed=8)
    k = 6
    run = inversion.adam(G, G(z_true), mse, z0, basis=V[:, :k], steps=400, lr=0.05, progress=False)
    # AV_k and AV_rest have orthogonal columns: the best code in z0 + span(V_k) leaves exactly the error along
    # the bottom eigenvectors, min = Σ_{i>k} λ_i/2 · ((z0 − z_true)·v_i)²
    offset = (z0 - z_true)[0].double()
    H = 2 * A.T @ A / A.shape[0]
    rest = V[:, k:].double()
    floor = float(0.5 * offset @ rest @ (rest.T @ H @ rest) @ rest.T @ offset)
    assert run.loss_best[0] >= floor * (1 - 1e-4)
    assert run.loss_best[0] < floor * 1.05
    moved = (run.z_best - z0)[0].double()
    torch.testing.assert_close(moved, V[:, :k].double() @ (V[:, :k].double().T @ moved), atol=1e-5, rtol=0)


@pytest.fixture(scope="module")
def comparison(toy, mse):
    """Tune z-space and eigenbasis Adam on 3 held-out targets, then run both on 6 test targets × 2 starts."""
    G, _, V, _ = toy
    methods = {"z": inversion.Method("z"), "eigen": inversion.Method("eigen", basis=V)}
    tune_targets = G(G.sample(3, seed=100))
    test_targets = G(G.sample(6, seed=200))
    tune_z0 = inversion.start_codes(G, [300, 301, 302])
    test_z0 = inversion.start_codes(G, range(400, 412))
    index = torch.arange(6).repeat_interleave(2)
    tuned, runs = {}, {}
    for name, method in methods.items():
        tuned[name] = inversion.tune(G, tune_targets, mse, method, tune_z0, lrs=LRS,
                                     schedules=("constant", "cosine"), budget=100, progress=False)
        runs[name] = inversion.run_method(G, test_targets, mse, method, test_z0, target_index=index, budget=100,
                                          lr=tuned[name].lr, schedule=tuned[name].schedule, progress=False)
    return tuned, runs, index


def test_tuning_picks_the_best_candidate(comparison):
    tuned, _, _ = comparison
    for t in tuned.values():
        assert len(t.candidates) == 10 and t.scores.shape == (10,)
        assert (t.lr, t.schedule) == t.candidates[int(t.scores.argmin())]
        assert min(LRS) < t.lr < max(LRS)  # the grid brackets each method's best (measured: z 1.0, eigen 0.3)
        # the score is the mean log10 final loss of that candidate's rows (3 tuning targets each)
        best = t.candidates.index((t.lr, t.schedule))
        rows = t.runs.loss_best.view(10, 3)[best].double()
        assert float(t.scores[best]) == pytest.approx(float(rows.log10().mean()), rel=1e-9)


def test_tuned_eigenbasis_beats_tuned_z_space_where_it_must(comparison):
    """Each method at its own best learning rate and schedule; the eigenbasis wins every pair, by a lot."""
    _, runs, index = comparison
    z, eigen = runs["z"].loss_best, runs["eigen"].loss_best
    result = stats.paired(eigen, z, groups=index, log=True, n_boot=1000)
    assert result.wins == 12
    assert result.ratio_ci[1] < 0.1  # measured: the eigenbasis ends about 1/60 as high (1e-4 against 4e-3)
    reach_eigen = stats.evaluations_to_reach(runs["eigen"].history, 1e-3)  # measured 57-87 evaluations
    reach_z = stats.evaluations_to_reach(runs["z"].history, 1e-3)  # never within 100
    assert np.isfinite(reach_eigen).all() and np.all(reach_eigen <= reach_z)
    assert np.all(stats.log_auc(runs["eigen"].history) < stats.log_auc(runs["z"].history))


def test_basin_cma_with_the_basis_beats_basin_cma_without(toy, mse, comparison):
    G, _, V, _ = toy
    tuned, _, index = comparison
    targets = G(G.sample(6, seed=200))
    z0 = inversion.start_codes(G, range(400, 412))
    options = dict(generations=2, popsize=4, inner_steps=5, sigma0=0.5)
    runs = {}
    for name, basis in (("z", None), ("eigen", V)):
        runs[name] = inversion.basin_cma(G, targets, mse, z0, basis=basis, target_index=index, budget=100,
                                         lr=tuned[name].lr, schedule=tuned[name].schedule, progress=False, **options)
    for run in runs.values():
        assert run.history.shape == (12, 100)
        assert torch.all(run.history[:, 1:] <= run.history[:, :-1])
        assert torch.equal(run.loss_best, run.history[:, -1])
        with torch.no_grad():
            torch.testing.assert_close(mse(targets[index], G(run.z_best)), run.loss_best, rtol=1e-5, atol=1e-8)
    result = stats.paired(runs["eigen"].loss_best, runs["z"].loss_best, log=True, groups=index, n_boot=1000)
    assert result.wins == 12 and result.ratio_ci[1] < 0.1  # measured: 3e-4 against 1.4e-2 (geometric means)


def test_basin_cma_budget_and_errors(toy, mse):
    G, _, V, _ = toy
    target = G(G.sample(1, seed=1))
    counted = []

    def counting(x0, x):
        if (x0 == target).flatten(1).all():  # the search's calls, not the input probe's (its own image pairs)
            counted.append(len(x))
        return mse(x0, x)

    run = inversion.basin_cma(G, target, counting, G.sample(2, seed=3), budget=30, generations=2, popsize=3,
                              inner_steps=2, lr=0.05, progress=False)
    assert sum(counted) == 2 * 30  # two searches, 30 evaluations each: 2·3·2 in the CMA phase, 18 final steps
    assert run.history.shape == (2, 30) and run.seeds == (0, 1)
    with pytest.raises(ValueError, match="must exceed"):
        inversion.basin_cma(G, target, mse, G.sample(1), budget=12, generations=2, popsize=3, inner_steps=2,
                            progress=False)


def test_adam_bad_inputs(toy, mse):
    G, _, V, _ = toy
    targets = G(G.sample(2, seed=1))
    z0 = G.sample(3)
    with pytest.raises(ValueError, match="target_index"):
        inversion.adam(G, targets, mse, z0, steps=1, progress=False)
    with pytest.raises(ValueError, match=r"target_index must be 3 indices in \[0, 2\)"):
        inversion.adam(G, targets, mse, z0, target_index=[0, 1, 2], steps=1, progress=False)
    with pytest.raises(ValueError, match="lr must be positive"):
        inversion.adam(G, targets[:1], mse, z0, lr=[0.1, -0.1, 0.1], steps=1, progress=False)
    with pytest.raises(ValueError, match=r"lr must be one value or one per row \(3\)"):
        inversion.adam(G, targets[:1], mse, z0, lr=[0.1, 0.1], steps=1, progress=False)
    with pytest.raises(ValueError, match=r"starting codes must be \(n, 16\)"):
        inversion.adam(G, targets[:1], mse, torch.zeros(3, 5), steps=1, progress=False)
    with pytest.raises(ValueError, match="non-finite"):
        inversion.adam(G, targets[:1], mse, torch.full((1, D), math.nan), steps=1, progress=False)
    with pytest.raises(ValueError, match="pixel must be one of"):
        inversion.adam(G, targets[:1], mse, z0, pixel="l2", steps=1, progress=False)
    with pytest.raises(ValueError, match="one entry per row"):
        inversion.adam(G, targets[:1], mse, z0, basis=[V, V], steps=1, progress=False)
    with pytest.raises(ValueError, match="Method kind"):
        inversion.Method("x", kind="sgd")


def test_pixel_term_steers_but_history_reports_the_distance(toy, mse):
    G, _, _, _ = toy
    target = G(G.sample(1, seed=1))
    z0 = G.sample(1, seed=2)
    with_pixels = inversion.adam(G, target, mse, z0, steps=3, pixel_weight=1.0, pixel="l1", progress=False)
    without = inversion.adam(G, target, mse, z0, steps=3, progress=False)
    assert with_pixels.history[0, 0] == without.history[0, 0]  # the distance alone at the start
    assert with_pixels.history[0, -1] != without.history[0, -1]  # the L1 term changed the path
