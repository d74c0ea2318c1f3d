"""helpers.activation: AlexNet unit activations checked against a direct torchvision AlexNet call, and the
CMA-ES maximisation on the faces model (budget, bookkeeping, the subspace of the Hessian-aware search)."""

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
