"""helpers.activation: AlexNet unit activations checked against a direct torchvision AlexNet call, and the
CMA-ES maximisation on the faces model (budget, bookkeeping, the subspace of the Hessian-aware search), and chapter 08's
comparison of the two searches, layer by layer, on searches made up with a known gain."""

from types import SimpleNamespace

import pytest
import torch
import torchvision
import torchvision.transforms.v2.functional as TF

from helpers import activation


@pytest.fixture(scope="module")
def features(lpips_alex):
    return activation.alexnet_features(lpips_alex)


@pytest.fixture(scope="module")
def direct_alexnet(features):
    """torchvision's own AlexNet (no weights downloaded) carrying the LPIPS-alex trunk's weights."""
    net = torchvision.models.alexnet(weights=None).eval()
    state = {f"{i}.{name}": value for i, module in enumerate(features)
             for name, value in module.state_dict().items()}
    missing = net.features.load_state_dict(state, strict=False)
    assert not missing.unexpected_keys and not missing.missing_keys
    return net


def test_trunk_is_alexnet_features(features):
    assert [type(m).__name__ for m in features] == ["Conv2d", "ReLU", "MaxPool2d", "Conv2d", "ReLU", "MaxPool2d",
                                                    "Conv2d", "ReLU", "Conv2d", "ReLU", "Conv2d", "ReLU"]
    assert [features[i].out_channels for i in activation.LAYERS.values()] == list(activation.CHANNELS.values())


def test_imagenet_normalisation_is_the_lpips_scaling_layer(lpips_alex):
    units = activation.Units([("conv1", 0)], activation.alexnet_features(lpips_alex), size=64)
    x = torch.rand(2, 3, 64, 64) * 2 - 1
    torch.testing.assert_close(units.prepare(x), lpips_alex.model.scaling_layer(x), atol=2e-6, rtol=0)


@pytest.mark.parametrize("size", [64, 128])
def test_units_match_a_direct_alexnet_call(features, direct_alexnet, faces, size):
    chosen = [("conv1", 3), ("conv2", 100), ("conv3", 7), ("conv4", 255), ("conv5", 42), ("conv1", 63)]
    units = activation.Units(chosen, features)
    with torch.no_grad():
        images = faces(faces.sample(3, seed=9))
        if size != 64:
            images = torch.nn.functional.interpolate(images, size=size, mode="nearest")
        # the reference: torchvision's transforms and model, step by step
        x = TF.resize((images + 1) / 2, [224, 224], antialias=True)
        x = TF.normalize(x, list(activation.IMAGENET_MEAN), list(activation.IMAGENET_STD))
        expected = []
        for layer, channel in chosen:
            out = direct_alexnet.features[:activation.LAYERS[layer] + 1](x.clone())  # ends at the conv: pre-ReLU
            expected.append(out[:, channel, out.shape[2] // 2, out.shape[3] // 2])
        expected = torch.stack(expected, 1)
        torch.testing.assert_close(units(images), expected, atol=1e-4, rtol=1e-4)
        # one unit per row, stopping early for shallow units: the same numbers
        which = torch.tensor([4, 0, 2])
        torch.testing.assert_close(units(images, which), expected[torch.arange(3), which], atol=1e-4, rtol=1e-4)
    assert expected.abs().max() > 0.1  # not a trivially zero comparison


def test_receptive_field_crops_change_nothing(features):
    chosen = [(layer, 5) for layer in activation.LAYERS]
    cropped, whole = activation.Units(chosen, features), activation.Units(chosen, features, crop=False)
    # the crops, worked out by hand from the layers' kernels, strides and paddings: conv5's centre unit sees
    # input rows 30-192, and its crop starts at 16, the largest multiple of its stride (16) below 30
    assert cropped.windows == {"conv1": (104, 117, 1), "conv2": (80, 137, 3), "conv3": (48, 161, 3),
                               "conv4": (32, 177, 4), "conv5": (16, 193, 5)}
    x = torch.rand(3, 3, 64, 64, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad():
        torch.testing.assert_close(cropped(x), whole(x), atol=1e-5, rtol=1e-5)


def test_units_reject_bad_input(features):
    with pytest.raises(ValueError, match="unknown layer"):
        activation.Units([("fc6", 0)], features)
    with pytest.raises(ValueError, match="channels 0-63"):
        activation.Units([("conv1", 64)], features)
    units = activation.Units([("conv1", 0)], features)
    with pytest.raises(ValueError, match="unit indices"):
        units(torch.zeros(2, 3, 64, 64), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="expected images"):
        units(torch.zeros(2, 64, 64))


def test_pick_units():
    picked = activation.pick_units(["conv1", "conv5"], 3, seed=1)
    assert len(picked) == 6 and len(set(picked)) == 6
    assert [layer for layer, _ in picked] == ["conv1"] * 3 + ["conv5"] * 3
    assert activation.pick_units(["conv1", "conv5"], 3, seed=1) == picked
    others = activation.pick_units(["conv1", "conv5"], 3, seed=1, exclude=picked)
    assert not set(others) & set(picked)


def test_maximize_bookkeeping_and_subspace(faces, features):
    units = activation.Units([("conv2", 10), ("conv4", 20)], features)
    budget = 20
    iso = activation.maximize(faces, units, [0, 1], [3, 4], budget=budget, sigma0=0.5, popsize=6, progress=False)
    m = torch.linalg.qr(torch.randn(100, 5, generator=torch.Generator().manual_seed(0)))[0]
    hess = activation.maximize(faces, units, [0, 1], [3, 4], basis=m, eigvals=torch.tensor([9.0, 5, 3, 2, 1]),
                               budget=budget, sigma0=0.5, popsize=6, progress=False)
    for run in (iso, hess):
        assert run.history.shape == (2, budget) and torch.all(run.history[:, 1:] >= run.history[:, :-1])
        assert torch.equal(run.best, run.history[:, -1])
        with torch.no_grad():
            torch.testing.assert_close(units(faces(run.z_best), torch.tensor([0, 1])).double(), run.best,
                                       atol=1e-4, rtol=1e-4)
            torch.testing.assert_close(run.images, faces(run.z_best))
    z0 = torch.cat([faces.sample(1, seed=s) for s in (3, 4)])
    moved = (hess.z_best - z0).double()
    torch.testing.assert_close(moved @ m.double() @ m.double().T, moved, atol=1e-5, rtol=0)
    assert hess.name == "Hessian-aware, top 5" and iso.name == "isotropic, z"
    with pytest.raises(ValueError, match="need a basis"):
        activation.maximize(faces, units, [0], [0], eigvals=torch.ones(5), budget=5, progress=False)


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
    h_iso, h_hess = activation.normalised(iso, hess)
    for u in range(6):  # each unit's final activations, both searches, have mean size 1
        rows = torch.tensor(iso.unit) == u
        assert float(torch.cat([h_iso[rows, -1], h_hess[rows, -1]]).abs().mean()) == pytest.approx(1)
    comparison = activation.compare_layers(iso, hess, units, ["conv1", "conv3", "conv5"])
    assert comparison.table["layer"] == ["conv1", "conv3", "conv5", "all layers"]
    assert comparison.table["pairs"] == [6, 6, 6, 18] and comparison.paired["all layers"].n_groups == 6
    assert comparison.paired["conv1"].n_groups == 6  # within a layer every pair is its own group
    assert list(comparison.table)[-1] == "mean gain after 2 images"  # a quarter of the budget
    assert comparison.table["mean gain [95 % CI]"][-1].startswith("+")
    assert list(comparison.curves) == ["conv1", "conv5"]
    assert list(comparison.curves["conv1"][1]) == ["isotropic, z", "Hessian-aware, top 2"]
    layers = {"prior": comparison}
    said = activation.verdict(layers)
    assert said.startswith(f"With `prior` as the prior, the Hessian-aware search ended higher in "
                           f"{comparison.paired['all layers'].wins} of 18 pairs")
    assert "units resampled" in said and said.endswith(".")
    assert "ends higher than the isotropic one, as the paper found" in activation.agreement(layers)
    columns = activation.result_columns(layers)
    assert list(columns) == ["ours, prior: mean gain [95 % CI]", "ours, prior: higher / pairs"]
    assert columns["ours, prior: higher / pairs"][-1] == f"{comparison.paired['all layers'].wins}/18"
    best = activation.best_images(iso, hess, 6)
    assert best.shape == (6, 2, 3, 2, 2)
    top = int(torch.tensor(iso.unit).eq(0).nonzero().flatten()[iso.best[:3].argmax()])
    torch.testing.assert_close(best[0, 0], iso.images[top])


def test_one_unit_gives_no_interval_and_the_scope_says_so():
    iso, hess = searches(gain=0.0, n_units=1, repeats=1)
    comparison = activation.compare_layers(iso, hess, SimpleNamespace(units=[("conv1", 0)]), ["conv1"])
    assert comparison.table["mean gain [95 % CI]"][-1].endswith("no interval: one unit")
    assert "too few units to judge" in activation.agreement({"p": comparison})
    scope = activation.scope(["dcgan-celeba64"], 1, 1, 1, 8, 100)
    assert "only 1 unit to resample" in scope and "It does not test `cdcgan-eyes128` as a prior" in scope
    assert "about 1 CMA-ES generation where" in scope
