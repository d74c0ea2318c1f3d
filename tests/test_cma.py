"""helpers.cma: CMA-ES searches that find a quadratic's minimum within an exact budget, give the same result alone or
beside others and leave numpy's global random state alone; the Hessian-aware step sizes."""
import numpy as np
import pytest
import torch

from helpers import cma


def test_hessian_cma_stds():
    eigvals = torch.tensor([10.0, 1.0, 0.1, 0.01])
    stds = cma.hessian_cma_stds(eigvals)
    assert torch.all(stds[1:] > stds[:-1])  # larger eigenvalue, smaller step
    assert stds.mean().item() == pytest.approx(1.0)
    torch.testing.assert_close(stds[0] / stds[1], torch.tensor(10.0 ** -0.4, dtype=torch.float64))
    assert torch.isfinite(cma.hessian_cma_stds(torch.tensor([1.0, 0.0, -1e-9]))).all()
    with pytest.raises(ValueError):
        cma.hessian_cma_stds(torch.tensor([0.0, -1.0]))


def test_cma_search_finds_the_minimum_of_a_quadratic():
    center = torch.tensor([1.0, -2.0, 0.5, 3.0], dtype=torch.float64)
    calls = []

    def objective(X):
        calls.append(len(X))
        return ((X - center) ** 2 * torch.tensor([1.0, 10.0, 1.0, 10.0], dtype=torch.float64)).sum(1)

    state = np.random.get_state()[1].copy()
    result = cma.cma_search(objective, torch.zeros(4), sigma0=1.0, budget=500, seed=0)
    assert np.array_equal(np.random.get_state()[1], state)  # numpy's global random state is left alone
    torch.testing.assert_close(result.best_x, center, atol=1e-2, rtol=0)
    assert result.best_f < 1e-4
    assert sum(calls) == result.evaluations == len(result.history) <= 500
    assert torch.all(result.history[1:] <= result.history[:-1]) and result.history[-1] == result.best_f
    again = cma.cma_search(objective, torch.zeros(4), sigma0=1.0, budget=500, seed=0)
    assert torch.equal(again.history, result.history)  # seed 0 is a fixed seed, not the clock


def test_cma_many_searches_are_independent_and_exact_in_budget():
    center = torch.tensor([1.0, -2.0, 0.5], dtype=torch.float64)
    weights = torch.tensor([[1.0, 10.0, 100.0], [100.0, 10.0, 1.0]], dtype=torch.float64)
    calls = []

    def objective(X, owner):
        calls.append(len(X))
        return ((X - center) ** 2 * weights[owner]).sum(1)

    state = np.random.get_state()[1].copy()
    both = cma.cma_many(objective, torch.zeros(2, 3), sigma0=1.0, budget=403, seeds=[5, 6])
    assert np.array_equal(np.random.get_state()[1], state)
    assert sum(calls) == 2 * 403 and [r.evaluations for r in both] == [403, 403]
    alone = cma.cma_many(lambda X, owner: objective(X, owner + 1), torch.zeros(1, 3), sigma0=1.0, budget=403,
                               seeds=[6])[0]
    assert torch.equal(alone.history, both[1].history)  # the same search, alone or beside another
    for r in both:
        assert r.best_f < r.history[0] / 1000 and torch.all(r.history[1:] <= r.history[:-1])
    single = cma.cma_search(lambda X: objective(X, torch.zeros(len(X), dtype=torch.long)), torch.zeros(3),
                                  sigma0=1.0, budget=403, seed=5)
    assert torch.equal(single.history, both[0].history)
