"""helpers.activation_study: chapter 08's comparison of the isotropic and the Hessian-aware search, layer by layer, on
searches made up with a known gain."""
from types import SimpleNamespace

import pytest
import torch

from helpers import activation, activation_study


def searches(gain: float, n_units: int = 6, repeats: int = 3, budget: int = 8, seed: int = 0):
    """Two Maximisations of the same units and starts, the second higher by `gain` (normalised) on average."""
    gen = torch.Generator().manual_seed(seed)
    unit = torch.arange(n_units).repeat_interleave(repeats)
    scale = (1 + unit.double())[:, None]  # units of different sizes
    iso = torch.cumsum(torch.rand(len(unit), budget, generator=gen, dtype=torch.float64), 1) / budget
    hess = iso + gain * torch.linspace(0, 1, budget, dtype=torch.float64) + 0.05 * torch.rand(
        len(unit), budget, generator=gen, dtype=torch.float64)
    make = lambda h, name: activation.Maximisation(  # noqa: E731
        (h * scale)[:, -1], h * scale, torch.zeros(len(unit), 2), torch.rand(len(unit), 3, 2, 2, generator=gen),
        tuple(unit.tolist()), tuple(range(len(unit))), name)
    return make(iso, "isotropic, z"), make(hess, "Hessian-aware, top 2")


def test_layer_comparison_normalises_per_unit_and_pools_whole_units():
    iso, hess = searches(gain=0.5)
    units = SimpleNamespace(units=[("conv1", 0), ("conv1", 1), ("conv3", 0), ("conv3", 1), ("conv5", 0), ("conv5", 1)])
    h_iso, h_hess = activation_study.normalised(iso, hess)
    for u in range(6):  # each unit's final activations, both searches, have mean size 1
        rows = torch.tensor(iso.unit) == u
        assert float(torch.cat([h_iso[rows, -1], h_hess[rows, -1]]).abs().mean()) == pytest.approx(1)
    comparison = activation_study.compare_layers(iso, hess, units, ["conv1", "conv3", "conv5"])
    assert comparison.table["layer"] == ["conv1", "conv3", "conv5", "all layers"]
    assert comparison.table["pairs"] == [6, 6, 6, 18] and comparison.paired["all layers"].n_groups == 6
    assert comparison.paired["conv1"].n_groups == 6  # within a layer every pair is its own group
    assert list(comparison.table)[-1] == "mean gain after 2 images"  # a quarter of the budget
    assert comparison.table["mean gain [95 % CI]"][-1].startswith("+")
    assert list(comparison.curves) == ["conv1", "conv5"]
    assert list(comparison.curves["conv1"][1]) == ["isotropic, z", "Hessian-aware, top 2"]
    layers = {"prior": comparison}
    said = activation_study.verdict(layers)
    assert said.startswith(f"With `prior` as the prior, the Hessian-aware search ended higher in "
                           f"{comparison.paired['all layers'].wins} of 18 pairs")
    assert "units resampled" in said and said.endswith(".")
    assert "ends higher than the isotropic one, as the paper found" in activation_study.agreement(layers)
    columns = activation_study.result_columns(layers)
    assert list(columns) == ["ours, prior: mean gain [95 % CI]", "ours, prior: higher / pairs"]
    assert columns["ours, prior: higher / pairs"][-1] == f"{comparison.paired['all layers'].wins}/18"
    best = activation_study.best_images(iso, hess, 6)
    assert best.shape == (6, 2, 3, 2, 2)
    top = int(torch.tensor(iso.unit).eq(0).nonzero().flatten()[iso.best[:3].argmax()])
    torch.testing.assert_close(best[0, 0], iso.images[top])


def test_one_unit_gives_no_interval_and_the_scope_says_so():
    iso, hess = searches(gain=0.0, n_units=1, repeats=1)
    comparison = activation_study.compare_layers(iso, hess, SimpleNamespace(units=[("conv1", 0)]), ["conv1"])
    assert comparison.table["mean gain [95 % CI]"][-1].endswith("no interval: one unit")
    assert "too few units to judge" in activation_study.agreement({"p": comparison})
    scope = activation_study.scope(["dcgan-celeba64"], 1, 1, 1, 8, 100)
    assert "only 1 unit to resample" in scope and "It does not test `cdcgan-eyes128` as a prior" in scope
    assert "about 1 CMA-ES generation where" in scope
