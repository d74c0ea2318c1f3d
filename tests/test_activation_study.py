"""helpers.activation_study: chapter 08's comparison of the isotropic and the Hessian-aware search, layer by layer, on
searches made up with a known gain."""
import json
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
    assert said.startswith("A layer counts as a gain when the whole $95\\%$ interval of its mean gain lies above "
                           "zero. With `prior` as the prior, the Hessian-aware search ended higher in "
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


def control_of(iso, repeats: int, control_repeats: int, shift: float, seed: int = 1):
    """A control Maximisation on the first `control_repeats` starts of every unit of `iso` (seeds as in
    `control_search`), its activations those of `iso` plus `shift` times the unit's size."""
    gen = torch.Generator().manual_seed(seed)
    rows = [u * repeats + r for r in range(control_repeats) for u in range(len(set(iso.unit)))]
    scale = 1 + torch.tensor([iso.unit[i] for i in rows], dtype=torch.float64)[:, None]
    history = iso.history[rows] + shift * scale + 0.01 * torch.rand(len(rows), iso.history.shape[1], generator=gen,
                                                                     dtype=torch.float64)
    return activation.Maximisation(history[:, -1], history, torch.zeros(len(rows), 2), iso.images[rows],
                                   tuple(iso.unit[i] for i in rows), tuple(iso.seeds[i] for i in rows), "random")


def test_random_basis_is_an_orthonormal_seeded_subspace():
    V = activation_study.random_basis(100, 20, seed=4)
    assert V.shape == (100, 20) and V.dtype == torch.float64
    torch.testing.assert_close(V.T @ V, torch.eye(20, dtype=torch.float64))
    assert torch.equal(V, activation_study.random_basis(100, 20, seed=4))
    assert not torch.allclose(V, activation_study.random_basis(100, 20, seed=5))


def test_the_control_is_compared_on_the_pairs_it_ran_and_says_where_the_gain_comes_from():
    iso, hess = searches(gain=0.5, n_units=6, repeats=3)
    # a random subspace as good as the Hessian-aware search: the gain is the smaller space's
    control = control_of(iso, 3, 2, shift=float(hess.best.mean() - iso.best.mean()) / 3.5)
    result = activation_study.compare_control(iso, hess, control)
    assert result.table["comparison"] == list(activation_study.CONTROL_ROWS) and result.n_units == 6
    assert result.table["pairs"] == [12, 12, 12]
    assert all(p.n_groups == 6 for p in result.paired.values())  # whole units resampled
    # on the same pairs, the third row is the Hessian-aware search against the isotropic one
    assert result.table["first higher"][2] == sum(int(hess.best[i] > iso.best[i]) for i in
                                                 [u * 3 + r for r in range(2) for u in range(6)])
    assert result.table["mean gain [95 % CI]"][1].startswith("+")  # random subspace above isotropic
    columns = activation_study.result_columns({"prior": result}, higher="first higher")
    assert columns["ours, prior: mean gain [95 % CI]"] == result.table["mean gain [95 % CI]"]
    assert columns["ours, prior: higher / pairs"] == [f"{w}/12" for w in result.table["first higher"]]
    said = activation_study.control_verdict(result, "prior")
    assert said.startswith("With `prior` as the prior, a random subspace of the same size already climbs higher "
                           "than the isotropic search")
    no_gain = activation_study.compare_control(iso, hess, control_of(iso, 3, 2, shift=0.0))
    assert "the Hessian-aware search climbs higher than the random subspace, so the metric's directions add" \
        in activation_study.control_verdict(no_gain, "prior")
    one = activation_study.compare_control(*searches(gain=0.5, n_units=1, repeats=2),
                                           control_of(searches(gain=0.5, n_units=1, repeats=2)[0], 2, 1, 0.0))
    assert "too few to resample" in activation_study.control_verdict(one, "p")


def test_control_search_runs_the_first_starts_of_every_unit_each_in_its_own_random_subspace(faces, lpips_alex):
    units = activation.Units([("conv2", 10), ("conv4", 20)], activation.alexnet_features(lpips_alex))
    control = activation_study.control_search(faces, units, 3, 2, seed=0, top_k=4, budget=6, sigma0=0.5)
    assert control.unit == (0, 1, 0, 1) and control.seeds == (3000, 3003, 3001, 3004)
    assert control.history.shape == (4, 6) and control.name == "random subspace, 4 dimensions"
    z0 = torch.cat([faces.sample(1, seed=s) for s in control.seeds]).double()
    for rows, r in (([0, 1], 0), ([2, 3], 1)):  # start r moves only within its own subspace
        V = activation_study.random_basis(100, 4, seed=4000 + r)
        moved = control.z_best[rows].double() - z0[rows]
        torch.testing.assert_close(moved @ V @ V.T, moved, atol=1e-5, rtol=0)
    with pytest.raises(ValueError, match="control_repeats"):
        activation_study.control_search(faces, units, 3, 4, seed=0, top_k=4, budget=6, sigma0=0.5)


def test_the_verdict_is_checked_against_the_recorded_full_run(tmp_path):
    iso, hess = searches(gain=0.5)
    units = SimpleNamespace(units=[("conv1", 0), ("conv1", 1), ("conv3", 0), ("conv3", 1), ("conv5", 0), ("conv5", 1)])
    layers = {"prior": activation_study.compare_layers(iso, hess, units, ["conv1", "conv3", "conv5"])}
    path = tmp_path / "recorded.json"
    assert activation_study.full_run_check(layers, ["conv1", "conv3", "conv5"], path=path) == ""
    path.write_text(json.dumps({"full": {"08_activation": {"tables": {"results/optimization_activation": {
        "rows": ["conv1", "conv3", "conv5", "all layers"],
        "note": "3 units per layer × 5 starts, 300 images per search; gain: ...",
        "columns": {"ours, prior: mean gain [95 % CI]": ["+0.3 [+0.1, +0.5]", "+0.07 [-0.08, +0.2]",
                                                         "+0.05 [-0.1, +0.2]", "+0.2 [+0.1, +0.3]"],
                    "ours, other: mean gain [95 % CI]": ["+0.6 [+0.3, +1]", "+0.4 [+0.2, +0.6]",
                                                         "+0.5 [+0.2, +0.8]", "+0.5 [+0.4, +0.6]"],
                    "ours, prior: higher / pairs": ["15/15", "9/15", "9/15", "33/45"]}}}}}}))
    ours = {layer: -layers["prior"].paired[layer].ci[1] > 0 for layer in ("conv1", "conv3", "conv5")}
    assert all(ours.values()), "the made-up gain is decided in every layer of this run"
    text = activation_study.full_run_check(layers, ["conv1", "conv3", "conv5"], path=path)
    assert text == ("The recorded full-profile run (3 units per layer × 5 starts, 300 images per search), judged by "
                    "the same threshold: with `prior` as the prior, the interval of the gain lies above zero in conv1 "
                    "and includes zero or lies below it in conv3 and conv5, unlike this run in conv3 and conv5; with "
                    "`other` as the prior, which this run does not search with, the interval of the gain lies above "
                    "zero in every layer.")


def test_generated_sentences_name_no_layer_every_layer_or_some():
    """No "lies above zero in none": the sentences read for every count of layers (issue 24)."""
    layers = ["conv1", "conv3", "conv5"]
    assert activation_study.where([], layers) == "in no layer"
    assert activation_study.where(layers, layers) == "in every layer"
    assert activation_study.where(["conv1", "conv5"], layers) == "in conv1 and conv5"
    assert activation_study.where(["conv1"], ["conv1"]) == "in conv1"
    iso, hess = searches(gain=0.0, seed=1)
    units = SimpleNamespace(units=[("conv1", 0), ("conv1", 1), ("conv3", 0), ("conv3", 1), ("conv5", 0), ("conv5", 1)])
    said = activation_study.verdict({"prior": activation_study.compare_layers(iso, hess, units, layers)})
    assert " none" not in said and "lies above zero in " in said
