"""Generators: the embedded models, the common protocol, wrapping user models, BigGAN's architecture."""

import pytest
import torch
from torch import nn

from helpers import generators
from helpers.generators import EYE_CLASSES, Generator

# fixture name -> (latent dim, image side)
EMBEDDED = {"faces": (100, 64), "eyes": (100, 128)}


@pytest.fixture(params=sorted(EMBEDDED))
def model(request):
    return request.param, request.getfixturevalue(request.param)


@pytest.fixture(scope="module")
def eyes_full():
    return generators.load("cdcgan-eyes128", space="full")


def images(G, n=3, seed=0):
    with torch.no_grad():
        return G(G.sample(n, seed=seed))


# ------------------------------------------------------------------------------------ embedded models

def test_latent_dim_and_image_shape(model):
    key, G = model
    d, side = EMBEDDED[key]
    assert G.latent_dim == d
    z = G.sample(3, seed=0)
    assert z.shape == (3, d) and z.dtype == torch.float32
    x = images(G, 3)
    assert x.shape == (3, 3, side, side) and x.dtype == torch.float32


def test_images_in_range_and_not_constant(model):
    _, G = model
    x = images(G, 4, seed=0)
    assert torch.isfinite(x).all()
    assert x.min() >= -1 and x.max() <= 1
    assert x.std() > 0.1
    for img in x:  # every image has structure, not just the batch
        assert img.std() > 0.05
    assert (x[0] - x[1]).abs().mean() > 0.05  # different codes, different images
    assert (images(G, 1, seed=0) - images(G, 1, seed=1)).abs().mean() > 0.05


def test_per_seed_determinism(model):
    _, G = model
    assert torch.equal(G.sample(2, seed=7), G.sample(2, seed=7))
    assert not torch.equal(G.sample(2, seed=7), G.sample(2, seed=8))
    assert torch.equal(images(G, 2, seed=7), images(G, 2, seed=7))
    # the seed fixes the codes regardless of the global RNG state
    torch.manual_seed(123)
    a = G.sample(2, seed=7)
    torch.manual_seed(456)
    assert torch.equal(a, G.sample(2, seed=7))


def test_stays_in_eval_mode(model):
    _, G = model
    before = images(G, 2, seed=3)
    G.train()
    assert not G.training
    assert not any(m.training for m in G.modules())
    assert torch.equal(images(G, 2, seed=3), before)  # batch norm still uses running statistics
    G.train(True)
    assert not G.training


def test_parameters_frozen_but_differentiable_in_z(model):
    _, G = model
    params = list(G.parameters())
    assert len(params) > 0
    assert not any(p.requires_grad for p in params)
    z = G.sample(2, seed=1).requires_grad_(True)
    (grad,) = torch.autograd.grad(G(z).sum(), z)
    assert grad.shape == z.shape
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0
    assert all(p.grad is None for p in params)


def test_single_code_gives_single_image(model):
    key, G = model
    d, side = EMBEDDED[key]
    z = G.sample(2, seed=4)
    with torch.no_grad():
        one = G(z[0])
        assert one.shape == (3, side, side)
        torch.testing.assert_close(one, G(z)[0], rtol=1e-5, atol=1e-5)


def test_wrong_latent_shape(model):
    _, G = model
    d = G.latent_dim
    with pytest.raises(ValueError, match=rf"expected latent codes of shape \(n, {d}\) or \({d},\), got \(2, {d + 1}\)"):
        G(torch.zeros(2, d + 1))
    with pytest.raises(ValueError, match=rf"\(n, {d}\)"):
        G(torch.zeros(1, 1, d))
    with pytest.raises(ValueError, match=rf"\(n, {d}\)"):
        G(torch.zeros(d - 1))


def test_unknown_model_name():
    with pytest.raises(ValueError, match="unknown generator 'bogus'") as info:
        generators.load("bogus")
    for name in ["dcgan-faces64", "cdcgan-eyes128", "biggan-deep-128", "biggan-deep-256", "biggan-deep-512"]:
        assert name in str(info.value)
    assert "Generator(net, latent_dim)" in str(info.value)


# ----------------------------------------------------------------------------------------- eye classes

def test_eye_spaces(eyes, eyes_full):
    assert eyes.latent_dim == 100 and "brown" in eyes.name
    assert eyes_full.latent_dim == 108
    assert eyes_full.blocks == {"noise": slice(0, 100), "class": slice(100, 108)}
    z = eyes_full.sample(3, seed=2)
    expected = torch.zeros(3, 8)
    expected[:, EYE_CLASSES.index("brown")] = 1
    assert torch.equal(z[:, 100:108], expected)
    assert z[:, :100].std() > 0.5  # the noise block is still noise
    blue = generators.load("cdcgan-eyes128", space="full", eye_class="blue").sample(1)
    assert blue[0, 100:].tolist() == [0, 1, 0, 0, 0, 0, 0, 0]


def test_noise_space_equals_full_space_with_its_one_hot(eyes, eyes_full):
    noise = eyes.sample(3, seed=5)
    one_hot = torch.zeros(3, 8)
    one_hot[:, EYE_CLASSES.index("brown")] = 1
    with torch.no_grad():
        torch.testing.assert_close(eyes(noise), eyes_full(torch.cat([noise, one_hot], dim=1)), rtol=0, atol=1e-6)
        other = one_hot.roll(1, dims=1)  # a different class really changes the image
        assert (eyes(noise) - eyes_full(torch.cat([noise, other], dim=1))).abs().mean() > 0.01


def test_eye_class_by_name_and_index_agree():
    by_name = generators.load("cdcgan-eyes128", eye_class="blue")
    by_index = generators.load("cdcgan-eyes128", eye_class=EYE_CLASSES.index("blue"))
    brown = generators.load("cdcgan-eyes128", eye_class="brown")
    z = by_name.sample(2, seed=0)
    with torch.no_grad():
        assert torch.equal(by_name(z), by_index(z))
        assert (by_name(z) - brown(z)).abs().mean() > 0.01
    assert generators.eye_class_index("hazel") == 6 and generators.eye_class_index(7) == 7


@pytest.mark.parametrize("bad", ["purple", "Brown", 8, -1])
def test_bad_eye_class(bad):
    with pytest.raises(ValueError) as info:
        generators.eye_class_index(bad)
    if isinstance(bad, str):
        assert f"unknown eye class {bad!r}" in str(info.value)
        for name in EYE_CLASSES:
            assert name in str(info.value)
    else:
        assert "0-7" in str(info.value)


def test_bad_eye_class_through_load():
    with pytest.raises(ValueError, match="amber, blue, brown, gray, grayscale, green, hazel, red"):
        generators.load("cdcgan-eyes128", eye_class="purple")


def test_bad_eye_space():
    with pytest.raises(ValueError, match="space must be 'noise' or 'full', got 'class'"):
        generators.load("cdcgan-eyes128", space="class")


# --------------------------------------------------------------------------------------- user models

def test_wrap_a_module_in_one_line():
    torch.manual_seed(0)
    G = Generator(nn.Sequential(nn.Linear(4, 3 * 8 * 8), nn.Tanh(), nn.Unflatten(1, (3, 8, 8))), latent_dim=4)
    z = G.sample(5, seed=1)
    assert z.shape == (5, 4)
    x = G(z)
    assert x.shape == (5, 3, 8, 8) and x.abs().max() <= 1 and x.std() > 0.05
    assert not any(p.requires_grad for p in G.parameters()) and not G.training
    assert G.device == torch.device("cpu")
    assert "name='custom', latent_dim=4" in repr(G)
    (grad,) = torch.autograd.grad(G(z.requires_grad_(True)).sum(), z)
    assert grad.abs().sum() > 0
    with pytest.raises(ValueError, match=r"\(n, 4\)"):
        G(torch.zeros(5, 3))


def test_wrap_a_plain_callable():
    G = Generator(lambda z: torch.tanh(z[:, :3, None, None]).expand(-1, 3, 2, 2), latent_dim=3, name="toy")
    assert list(G.parameters()) == [] and G.device == torch.device("cpu")
    z = G.sample(4, seed=0)
    x = G(z)
    assert x.shape == (4, 3, 2, 2)
    torch.testing.assert_close(x[:, :, 0, 0], torch.tanh(z))
    assert G(z[0]).shape == (3, 2, 2)
    assert "name='toy', latent_dim=3" in repr(G)


def test_truncation_clips_sampled_codes():
    G = Generator(lambda z: z, latent_dim=50, truncation=0.5)
    z = G.sample(200, seed=0)
    assert z.abs().max() <= 0.5
    assert (z.abs() == 0.5).any()  # really clipped, not just small


# ------------------------------------------------------------------------------------------------ BigGAN

@pytest.fixture(scope="module")
def biggan128():
    return generators.load("biggan-deep-128", weights="random")


def test_biggan_random_architecture(biggan128):
    G = biggan128
    assert "RANDOM" in repr(G) and "biggan-deep-128" in repr(G)
    assert G.latent_dim == 256
    assert G.blocks == {"noise": slice(0, 128), "class": slice(128, 256)}
    assert not G.training and not any(p.requires_grad for p in G.parameters())
    z = G.sample(2, seed=0)
    assert z.shape == (2, 256)
    embedding = G.net.biggan.embeddings.weight[:, G.class_index]
    assert torch.equal(z[0, 128:], embedding) and torch.equal(z[1, 128:], embedding)
    assert z[:, :128].abs().max() <= 2.0 * 0.7 + 1e-6  # truncated normal scaled by the truncation
    assert not torch.equal(z[0, :128], z[1, :128])


def test_biggan_random_forward(biggan128):
    G = biggan128
    with torch.no_grad():
        x = G(G.sample(1, seed=0))
    assert x.shape == (1, 3, 128, 128)
    assert torch.isfinite(x).all()  # random weights must still give numbers (regression: they gave NaN)
    assert x.min() >= -1 and x.max() <= 1
    assert x.std() > 0.01  # not constant


def test_biggan_random_weights_are_the_same_every_time(biggan128):
    G = biggan128
    torch.manual_seed(1234)
    expected = torch.rand(3)
    torch.manual_seed(1234)
    again = generators.biggan_deep(128, weights="random")
    assert torch.equal(torch.rand(3), expected)  # building it leaves the caller's random stream alone
    for (name, a), (_, b) in zip(G.state_dict().items(), again.state_dict().items()):
        assert torch.equal(a, b), name


def test_biggan_bad_arguments():
    with pytest.raises(ValueError, match="weights must be 'auto', 'pretrained' or 'random', got 'bogus'"):
        generators.load("biggan-deep-128", weights="bogus")
    with pytest.raises(ValueError, match=r"resolution must be one of \[128, 256, 512\], got 64"):
        generators.biggan_deep(64, weights="random")
