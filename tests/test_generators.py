"""Generators: the embedded models, the common protocol, wrapping user models, BigGAN's architecture."""

import pytest
import torch
import torch.nn.functional as F
from torch import nn

from helpers import assets, generators
from helpers.generators import EYE_CLASSES, Generator

# fixture name -> (latent dim, image side)
EMBEDDED = {"faces": (100, 64), "eyes": (100, 128), "celeba": (100, 64), "cats": (100, 64)}
# Per-channel mean and std of a batch of 64 images from G.sample(64, seed=0), measured once on CPU with the
# pinned weights: a regression check that the right weights load the right way (file, key mapping, batch-norm
# running statistics, output scaling). Eval-mode batch norm and the fixed seed make them deterministic.
BATCH_STATISTICS = {
    "faces": ([-0.1762, -0.3389, -0.4409], [0.4432, 0.4149, 0.4082]),
    "eyes": ([-0.0820, -0.3065, -0.4495], [0.3794, 0.3160, 0.2635]),
    "celeba": ([-0.0417, -0.2136, -0.2969], [0.6139, 0.5608, 0.5525]),
    "cats": ([-0.2205, -0.2205, -0.2205], [0.5330, 0.5330, 0.5330]),
}


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


def test_batch_statistics_per_channel(model):
    key, G = model
    x = images(G, 64, seed=0)
    mean, std = BATCH_STATISTICS[key]
    torch.testing.assert_close(x.mean((0, 2, 3)), torch.tensor(mean), rtol=0, atol=2e-3)
    torch.testing.assert_close(x.std((0, 2, 3)), torch.tensor(std), rtol=0, atol=2e-3)


def test_embedded_names_in_book_order():
    assert generators.EMBEDDED == ("dcgan-celeba64", "dcgan-faces64", "cdcgan-eyes128", "fcgan-cats64")
    assert set(generators.EMBEDDED) <= set(generators.MODELS)
    assert all(name in assets.ASSETS for name in generators.EMBEDDED)  # every one offline, from a pinned file


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
    for name in ["dcgan-faces64", "cdcgan-eyes128", "dcgan-celeba64", "fcgan-cats64", "biggan-deep-128",
                 "biggan-deep-256", "biggan-deep-512"]:
        assert name in str(info.value)
    assert "Generator(net, latent_dim)" in str(info.value)


# --------------------------------------------------------------------- the generateme models, faithfully

class _PackageDCGAN(nn.Module):
    """generateme 0.1.2's DCGan.Generator, as its source defines it (the package is never imported)."""

    def __init__(self):
        super().__init__()
        self.convTr1 = nn.ConvTranspose2d(100, 64 * 8, 4, 1, 0, bias=False)
        self.batchNorm1 = nn.BatchNorm2d(64 * 8)
        self.convTr2 = nn.ConvTranspose2d(64 * 8, 64 * 4, 4, 2, 1, bias=False)
        self.batchNorm2 = nn.BatchNorm2d(64 * 4)
        self.convTr3 = nn.ConvTranspose2d(64 * 4, 64 * 2, 4, 2, 1, bias=False)
        self.batchNorm3 = nn.BatchNorm2d(64 * 2)
        self.convTr4 = nn.ConvTranspose2d(64 * 2, 64, 4, 2, 1, bias=False)
        self.batchNorm4 = nn.BatchNorm2d(64)
        self.convTr5 = nn.ConvTranspose2d(64, 3, 4, 2, 1, bias=False)

    def forward(self, x):
        x = F.relu_(self.batchNorm1(self.convTr1(x)))
        x = F.relu_(self.batchNorm2(self.convTr2(x)))
        x = F.relu_(self.batchNorm3(self.convTr3(x)))
        x = F.relu_(self.batchNorm4(self.convTr4(x)))
        return torch.tanh(self.convTr5(x))


class _PackageLinear(nn.Module):
    """generateme 0.1.2's LinearGan.Generator, as its source defines it."""

    def __init__(self):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(100, 256), nn.Linear(256, 512)
        self.fc3, self.fc4 = nn.Linear(512, 1024), nn.Linear(1024, 64 * 64)

    def forward(self, x):
        x = F.leaky_relu(self.fc1(x), 0.2)
        x = F.leaky_relu(self.fc2(x), 0.2)
        x = F.leaky_relu(self.fc3(x), 0.2)
        return torch.tanh(self.fc4(x))


def _package_model(cls, name):
    net = cls()
    state = torch.load(assets.fetch(name), map_location="cpu", weights_only=True)
    net.load_state_dict(state)  # strict: the file has exactly these keys
    return net.eval(), state


def test_celeba_matches_the_package_architecture(celeba):
    reference, state = _package_model(_PackageDCGAN, "dcgan-celeba64")
    assert assets.sha256_of(assets.fetch("dcgan-celeba64")) == assets.ASSETS["dcgan-celeba64"].sha256
    # trained batch norm: running statistics are in the file (and match N(0, 1) codes at the first layer:
    # var of a 100-term sum with weights of std 0.028 is 100 · 0.028² ≈ 0.08)
    assert int(state["batchNorm1.num_batches_tracked"]) > 1000
    torch.testing.assert_close(state["batchNorm1.running_var"].mean(),
                               100 * state["convTr1.weight"].pow(2).mean(), rtol=0.05, atol=0)
    z = celeba.sample(8, seed=3)
    with torch.no_grad():
        torch.testing.assert_close(celeba(z), reference(z[:, :, None, None]), rtol=0, atol=1e-6)
    assert sum(p.numel() for p in celeba.parameters()) == sum(p.numel() for p in reference.parameters()) == 3_576_704


def test_cats_match_the_package_architecture_as_three_equal_channels(cats):
    reference, _ = _package_model(_PackageLinear, "fcgan-cats64")
    z = cats.sample(8, seed=3)
    with torch.no_grad():
        x = cats(z)
        grey = reference(z).view(-1, 64, 64)  # the package reads the 4096 outputs row by row
    assert x.shape == (8, 3, 64, 64)
    for c in range(3):
        assert torch.equal(x[:, c], x[:, 0])  # R = G = B
    torch.testing.assert_close(x[:, 0], grey, rtol=0, atol=1e-6)
    assert not any(isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)) for m in cats.modules())


def test_tutorial_state_dict_with_unknown_keys_is_refused():
    with pytest.raises(ValueError, match=r"unexpected key 'fc1\.weight' in a tutorial DCGAN state dict"):
        generators._tutorial_state({"fc1.weight": torch.zeros(1)})
    mapped = generators._tutorial_state({"convTr2.weight": torch.zeros(1), "batchNorm4.running_mean": torch.ones(1)})
    assert set(mapped) == {"3.weight", "10.running_mean"}


# ------------------------------------------------------------------------------------- layers per model

def test_layers_of_the_embedded_models(faces, celeba, cats, eyes):
    for G in (faces, celeba):
        assert list(generators.layers(G)) == ["1: ReLU", "2: ReLU", "3: ReLU", "4: ReLU", "5: Tanh"]
        assert list(generators.layers(G).values()) == [f"net.main.{i}" for i in (2, 5, 8, 11, 13)]
    assert list(generators.layers(cats)) == ["1: LeakyReLU", "2: LeakyReLU", "3: LeakyReLU", "4: Tanh"]
    assert list(generators.layers(eyes).values())[-1] == "net.net.main.17"  # Tanh, after the Dropout
    assert len(generators.layers(eyes)) == 6
    for G in (faces, celeba, cats, eyes):  # the last layer is the image
        out = []
        module = G.get_submodule(list(generators.layers(G).values())[-1])
        handle = module.register_forward_hook(lambda m, i, o: out.append(o))
        with torch.no_grad():
            image = G(G.sample(1))
        handle.remove()
        assert torch.equal(out[0].reshape(-1), image[:, :1].reshape(-1) if G is cats else image.reshape(-1))


def test_layers_of_biggan_and_of_a_net_without_activations(biggan128):
    names = generators.layers(biggan128)
    assert list(names)[0] == "1: GenBlock" and list(names)[-1] == f"{len(names)}: Tanh"
    assert "9: SelfAttn" in names  # the attention layer sits before block 9 of the 128-px config
    with pytest.raises(ValueError, match="no ReLU, LeakyReLU or Tanh"):
        generators.layers(Generator(nn.Linear(3, 3), 3, name="plain"))


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
    assert "RANDOM" in repr(G) and "biggan-deep-128" in repr(G) and G.pretrained is False
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
