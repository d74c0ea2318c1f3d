"""Generators: differentiable maps from latent codes z (n, d) to images (n, 3, H, W) in [-1, 1].

One protocol for every model (`Generator`), `load(name)` for the embedded and BigGAN models, and one-line
wrapping of any user module or callable.
"""
from __future__ import annotations

import re
import warnings
from typing import Callable

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from . import assets

EYE_CLASSES = ("amber", "blue", "brown", "gray", "grayscale", "green", "hazel", "red")


class Generator(nn.Module):
    """A frozen, eval-mode image generator with a latent space of dimension `latent_dim`.

    Wrap any module or callable z (n, d) -> images (n, 3, H, W) in [-1, 1] in one line::

        G = Generator(my_net, latent_dim=512)

    Parameters
    ----------
    net : module or callable mapping (n, latent_dim) codes to (n, 3, H, W) images in [-1, 1].
    latent_dim : dimension d of the latent space.
    name : short label for plots and reprs.
    truncation : latent codes are sampled as N(0, 1) clipped to [-truncation, truncation] (None: no clip).
    blocks : named coordinate blocks of the latent space, e.g. {"noise": slice(0, 128), "class": slice(128, 256)}.
    note : shown in the repr (e.g. a warning that weights are random).
    """

    def __init__(self, net: Callable, latent_dim: int, *, name: str = "custom", truncation: float | None = None,
                 blocks: dict[str, slice] | None = None, note: str = ""):
        super().__init__()
        if isinstance(latent_dim, bool) or not isinstance(latent_dim, (int, np.integer)) or latent_dim < 1:
            raise ValueError(f"latent_dim must be a positive integer (the length d of one code), got {latent_dim!r}")
        if not callable(net):
            raise TypeError(f"net must be a module or function mapping codes (n, d) to images, got "
                            f"{type(net).__name__}")
        self.net = net
        self.latent_dim = int(latent_dim)
        self.name = name
        self.truncation = truncation
        self.blocks = dict(blocks or {})
        self.note = note
        if isinstance(net, nn.Module):
            net.requires_grad_(False)
        self.train(False)  # the wrapper itself too, not just `net` (nn.Module starts in training mode)

    def train(self, mode: bool = True):  # a generator here is never trained: stay in eval mode
        return super().train(False)

    @property
    def device(self) -> torch.device:
        for p in self.parameters():
            return p.device
        return torch.device("cpu")

    def sample(self, n: int = 1, seed: int = 0) -> torch.Tensor:
        """Latent codes (n, latent_dim), reproducible for a given seed on any device."""
        if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n < 1:
            raise ValueError(f"n (how many codes) must be a positive integer, got {n!r}")
        if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or not -2 ** 63 <= seed < 2 ** 64:
            raise ValueError(f"seed must be an integer in [-2**63, 2**64) (torch's seeds), got {seed!r}")
        gen = torch.Generator().manual_seed(int(seed))
        z = torch.randn(n, self.latent_dim, generator=gen)
        if self.truncation is not None:
            z = z.clamp(-self.truncation, self.truncation)
        return z.to(self.device)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        if z.dim() == 1:
            return self.forward(z.unsqueeze(0))[0]
        if z.dim() != 2 or z.shape[-1] != self.latent_dim:
            raise ValueError(f"{self.name}: expected latent codes of shape (n, {self.latent_dim}) or "
                             f"({self.latent_dim},), got {tuple(z.shape)}")
        return self.net(z)

    def extra_repr(self) -> str:
        return f"name={self.name!r}, latent_dim={self.latent_dim}" + (f", NOTE: {self.note}" if self.note else "")


def _dcgan(channels: list[int], out_channels: int = 3) -> nn.Sequential:
    """DCGAN generator stack (PyTorch tutorial layout): ConvT-BN-ReLU blocks, then ConvT-Tanh."""
    layers: list[nn.Module] = []
    for i, (c_in, c_out) in enumerate(zip(channels[:-1], channels[1:])):
        layers += [nn.ConvTranspose2d(c_in, c_out, 4, 1 if i == 0 else 2, 0 if i == 0 else 1, bias=False),
                   nn.BatchNorm2d(c_out), nn.ReLU(True)]
    layers += [nn.ConvTranspose2d(channels[-1], out_channels, 4, 2, 1, bias=False), nn.Tanh()]
    return nn.Sequential(*layers)


class _ImageFromVector(nn.Module):
    """Reshape (n, d) codes to (n, d, 1, 1) for a convolutional stack."""

    def __init__(self, main: nn.Sequential):
        super().__init__()
        self.main = main

    def forward(self, z):
        return self.main(z[:, :, None, None])


def dcgan_faces64(*, device="cpu", cache=None) -> Generator:
    """DCGAN trained on DigiFace1M faces: 100-d latent, 64x64 RGB (gan-face-generate 1.1.1)."""
    net = _ImageFromVector(_dcgan([100, 512, 256, 128, 64]))
    state = torch.load(assets.fetch("dcgan-faces64", cache=cache), map_location="cpu", weights_only=True)
    net.load_state_dict(state["netG_state_dict"])
    return Generator(net, 100, name="dcgan-faces64").to(device)


def _tutorial_state(state: dict) -> dict:
    """Rename a PyTorch-tutorial DCGAN state dict (convTr1..5, batchNorm1..4) to `_dcgan`'s indices."""
    renamed = {}
    for key, value in state.items():
        match = re.fullmatch(r"(convTr|batchNorm)([1-9])\.(\w+)", key)
        if match is None:
            raise ValueError(f"unexpected key {key!r} in a tutorial DCGAN state dict (expected convTrN.* or "
                             f"batchNormN.*): wrong file?")
        kind, block, rest = match.groups()
        renamed[f"{3 * (int(block) - 1) + (kind == 'batchNorm')}.{rest}"] = value
    return renamed


def dcgan_celeba64(*, device="cpu", cache=None) -> Generator:
    """The PyTorch-tutorial DCGAN of faces like aligned CelebA photos: 100-d latent, 64x64 RGB (generateme 0.1.2).

    The classic DCGAN (Radford et al. 2016) as the PyTorch tutorial trains it on CelebA: codes N(0, 1) of
    shape (n, 100, 1, 1), five transposed convolutions 512-256-128-64-3, batch norm (its saved running
    statistics are used) and ReLU, tanh output in [-1, 1].
    """
    net = _ImageFromVector(_dcgan([100, 512, 256, 128, 64]))
    state = torch.load(assets.fetch("dcgan-celeba64", cache=cache), map_location="cpu", weights_only=True)
    net.main.load_state_dict(_tutorial_state(state))
    return Generator(net, 100, name="dcgan-celeba64").to(device)


class _GreyToRGB(nn.Module):
    """A fully connected generator of (n, side*side) grey images, returned as (n, 3, side, side) RGB."""

    def __init__(self, main: nn.Sequential, side: int):
        super().__init__()
        self.main = main
        self.side = side

    def forward(self, z):
        grey = self.main(z).reshape(-1, 1, self.side, self.side)
        return grey.repeat(1, 3, 1, 1)  # three equal channels, so RGB distances such as LPIPS take it


def fcgan_cats64(*, device="cpu", cache=None) -> Generator:
    """A fully connected GAN of cat faces: 100-d latent, 64x64 greyscale as 3 equal channels (generateme 0.1.2).

    No convolutions: Linear layers 100-256-512-1024-4096 with LeakyReLU(0.2), tanh output in [-1, 1], read
    row by row as a 64x64 grey image; codes N(0, 1). The grey image is repeated into the three RGB channels
    (R = G = B), so RGB distances such as LPIPS take it unchanged.
    """
    layers: list[nn.Module] = []
    widths = [100, 256, 512, 1024, 64 * 64]
    for c_in, c_out in zip(widths[:-1], widths[1:]):
        layers += [nn.Linear(c_in, c_out), nn.LeakyReLU(0.2)]
    main = nn.Sequential(*layers[:-1], nn.Tanh())
    state = torch.load(assets.fetch("fcgan-cats64", cache=cache), map_location="cpu", weights_only=True)
    renamed = {}
    for key, value in state.items():
        match = re.fullmatch(r"fc([1-4])\.(weight|bias)", key)
        if match is None:
            raise ValueError(f"unexpected key {key!r} in the fcgan-cats64 state dict (expected fc1..fc4): wrong file?")
        renamed[f"{2 * (int(match.group(1)) - 1)}.{match.group(2)}"] = value
    main.load_state_dict(renamed)
    return Generator(_GreyToRGB(main, 64), 100, name="fcgan-cats64").to(device)


class _ConditionalEyes(nn.Module):
    """The omniart eye DCGAN: input is 100-d noise concatenated with an 8-class one-hot."""

    def __init__(self):
        super().__init__()
        stack = _dcgan([108, 1024, 512, 256, 128, 64])
        # The published model has Dropout(0.2) after the first block; inactive in eval mode, kept so the
        # state-dict indices match.
        self.main = nn.Sequential(*stack[:3], nn.Dropout(0.2), *stack[3:])

    def forward(self, full_code):
        return self.main(full_code[:, :, None, None])


class _FixedClass(nn.Module):
    """Noise-only view of a conditional generator: appends a fixed one-hot class to each code."""

    def __init__(self, net: nn.Module, one_hot: torch.Tensor):
        super().__init__()
        self.net = net
        self.register_buffer("one_hot", one_hot)

    def forward(self, noise):
        return self.net(torch.cat([noise, self.one_hot.expand(noise.shape[0], -1)], dim=1))


def eye_class_index(eye_class: str | int) -> int:
    if isinstance(eye_class, str):
        if eye_class not in EYE_CLASSES:
            raise ValueError(f"unknown eye class {eye_class!r}; choose one of {', '.join(EYE_CLASSES)} (or 0-7)")
        return EYE_CLASSES.index(eye_class)
    if not 0 <= int(eye_class) < len(EYE_CLASSES):
        raise ValueError(f"eye class index must be in 0-{len(EYE_CLASSES) - 1}, got {eye_class}")
    return int(eye_class)


class _EyesFull(Generator):
    """Full 108-d input: sampled codes carry noise and the one-hot of a fixed class."""

    def __init__(self, net, one_hot):
        label = EYE_CLASSES[int(one_hot.argmax())]
        super().__init__(net, 108, name=f"cdcgan-eyes128-full[{label}]",
                         blocks={"noise": slice(0, 100), "class": slice(100, 108)})
        self.register_buffer("one_hot", one_hot)

    def sample(self, n=1, seed=0):
        z = super().sample(n, seed)
        z[:, 100:] = self.one_hot
        return z


def cdcgan_eyes128(*, eye_class: str | int = "brown", space: str = "noise", device="cpu", cache=None) -> Generator:
    """Class-conditional DCGAN of eyes, 128x128 (omniart-eye-generator 0.1).

    space='noise': 100-d noise latent, class fixed to `eye_class`.
    space='full': the 108-d input (noise then one-hot class); `sample` puts `eye_class` in the class block.
    """
    net = _ConditionalEyes()
    state = torch.load(assets.fetch("cdcgan-eyes128", cache=cache), map_location="cpu", weights_only=True)
    net.load_state_dict(state)
    one_hot = torch.zeros(len(EYE_CLASSES))
    one_hot[eye_class_index(eye_class)] = 1.0
    if space == "noise":
        label = EYE_CLASSES[eye_class_index(eye_class)]
        return Generator(_FixedClass(net, one_hot[None]), 100, name=f"cdcgan-eyes128[{label}]").to(device)
    if space == "full":
        return _EyesFull(net, one_hot).to(device)
    raise ValueError(f"space must be 'noise' or 'full', got {space!r}")


# Architecture of the public BigGAN-deep configs (pytorch-pretrained-biggan), so the models can be built
# offline. Layers are (upsample?, in-channel multiple, out-channel multiple).
_BIGGAN_LAYERS = {
    128: [(False, 16, 16), (True, 16, 16), (False, 16, 16), (True, 16, 8), (False, 8, 8), (True, 8, 4),
          (False, 4, 4), (True, 4, 2), (False, 2, 2), (True, 2, 1)],
    256: [(False, 16, 16), (True, 16, 16), (False, 16, 16), (True, 16, 8), (False, 8, 8), (True, 8, 8),
          (False, 8, 4), (True, 4, 4), (False, 4, 4), (True, 4, 2), (False, 2, 2), (True, 2, 1)],
    512: [(False, 16, 16), (True, 16, 16), (False, 16, 16), (True, 16, 8), (False, 8, 8), (True, 8, 8),
          (False, 8, 8), (True, 8, 4), (False, 4, 4), (True, 4, 2), (False, 2, 2), (True, 2, 1),
          (False, 1, 1), (True, 1, 1)],
}


class _BigGANFromCode(nn.Module):
    """BigGAN's generator on the 256-d code [noise (128), class embedding (128)], as in the paper."""

    def __init__(self, biggan, truncation: float):
        super().__init__()
        self.biggan = biggan
        self.truncation = truncation

    def forward(self, code):
        return self.biggan.generator(code, self.truncation)


class _BigGANGenerator(Generator):
    def __init__(self, biggan, resolution, truncation, class_index, note):
        super().__init__(_BigGANFromCode(biggan, truncation), 256, name=f"biggan-deep-{resolution}",
                         truncation=2.0, blocks={"noise": slice(0, 128), "class": slice(128, 256)}, note=note)
        self.class_index = class_index
        self.noise_scale = truncation
        self.pretrained = not note  # False: random weights, a control for costs, never a result

    def sample(self, n=1, seed=0):
        noise = super().sample(n, seed)[:, :128] * self.noise_scale  # truncated normal, as BigGAN samples
        embed = self.net.biggan.embeddings.weight[:, self.class_index]
        return torch.cat([noise, embed.detach().expand(n, -1)], dim=1)


def _settle_random_biggan(model: nn.Module) -> None:
    """Make a randomly initialised BigGAN usable in eval mode (pytorch-pretrained-biggan leaves two gaps).

    Its unconditional batch norm allocates weight and bias with ``torch.Tensor(n)`` (uninitialised memory), and
    spectral norm starts from random singular-vector estimates that eval mode never refines, so sigma is
    tiny and activations overflow to inf/NaN. Set the batch norm to the identity and the estimates to the
    top singular vectors.
    """
    from pytorch_pretrained_biggan.model import BigGANBatchNorm

    with torch.no_grad():
        for module in model.modules():
            if isinstance(module, BigGANBatchNorm) and not module.conditional:
                module.weight.fill_(1.0)
                module.bias.zero_()
            if hasattr(module, "weight_orig") and hasattr(module, "weight_u"):
                matrix, u = module.weight_orig.flatten(1), module.weight_u
                for _ in range(30):  # power iteration, as training would have done
                    v = F.normalize(matrix.T @ u, dim=0)
                    u = F.normalize(matrix @ v, dim=0)
                module.weight_u.copy_(u)
                module.weight_v.copy_(v)


def biggan_deep(resolution: int = 256, *, weights: str = "auto", class_index: int = 1, truncation: float = 0.7,
                device="cpu") -> Generator:
    """BigGAN-deep (128/256/512 px) on the 256-d noise+class-embedding code.

    weights='pretrained' downloads the published weights (needs the internet); 'random' builds the same
    architecture with random weights (for tests and cost benchmarks); 'auto' tries the first and falls back
    to the second with a warning.
    """
    from pytorch_pretrained_biggan import BigGAN, BigGANConfig

    if resolution not in _BIGGAN_LAYERS:
        raise ValueError(f"BigGAN-deep resolution must be one of {sorted(_BIGGAN_LAYERS)}, got {resolution}")
    if weights not in ("auto", "pretrained", "random"):
        raise ValueError(f"weights must be 'auto', 'pretrained' or 'random', got {weights!r}")
    note = ""
    model = None
    if weights in ("auto", "pretrained"):
        try:
            model = BigGAN.from_pretrained(f"biggan-deep-{resolution}")
        except Exception as err:  # offline: requests/boto raise many kinds of errors
            if weights == "pretrained":
                raise assets.AssetError(f"could not download BigGAN-deep-{resolution} weights ({err}); they come "
                                        f"from the web. Use weights='random' for the architecture alone.") from err
            warnings.warn(f"BigGAN-deep-{resolution}: pretrained weights unavailable ({type(err).__name__}); "
                          f"using RANDOM weights", stacklevel=2)
    if model is None:
        config = BigGANConfig(output_dim=resolution, layers=_BIGGAN_LAYERS[resolution], attention_layer_position=8)
        with torch.random.fork_rng(devices=[]):  # random weights, the same every time; global RNG untouched
            torch.manual_seed(0)
            model = BigGAN(config)
        _settle_random_biggan(model)
        note = "RANDOM WEIGHTS (architecture only: images are noise, costs are real)"
    return _BigGANGenerator(model, resolution, truncation, class_index, note).to(device)


MODELS = {
    "dcgan-celeba64": dcgan_celeba64,
    "dcgan-faces64": dcgan_faces64,
    "fcgan-cats64": fcgan_cats64,
    "cdcgan-eyes128": cdcgan_eyes128,
    "biggan-deep-128": lambda **kw: biggan_deep(128, **kw),
    "biggan-deep-256": lambda **kw: biggan_deep(256, **kw),
    "biggan-deep-512": lambda **kw: biggan_deep(512, **kw),
}

# The embedded models (weights from pinned registry files, offline), in the book's order. The first is the
# book's first model: the classic DCGAN on CelebA-like photographs, whose eigen-axes change attributes a
# reader names at once (masculine or feminine presentation, lighting, expression).
EMBEDDED = ("dcgan-celeba64", "dcgan-faces64", "cdcgan-eyes128", "fcgan-cats64")

# Models whose default latent space is one block of a fuller input: load options for the full space. The
# metric of the block is the full metric restricted to it, so one computation serves both.
FULL_SPACE = {"cdcgan-eyes128": {"space": "full"}}

ACTIVATIONS = (nn.ReLU, nn.LeakyReLU, nn.Tanh)


def layers(G: Generator) -> dict[str, str]:
    """G's block outputs for layer-wise analyses, in forward order: {label: name of the submodule of G}.

    Plain stacks (the embedded models, or any net built of modules each called once): every ReLU, LeakyReLU
    and Tanh, the last one the image. BigGAN: each generator block (and the attention layer), then the
    final Tanh. Labels are "<position>: <module type>", e.g. "1: ReLU".
    """
    if isinstance(G, _BigGANGenerator):
        root = "net.biggan.generator"
        names = [f"{root}.layers.{i}" for i in range(len(G.net.biggan.generator.layers))] + [f"{root}.tanh"]
    else:
        names = [name for name, module in G.named_modules() if isinstance(module, ACTIVATIONS)]
        if not names:
            raise ValueError(f"{G.name}: no ReLU, LeakyReLU or Tanh module to take layer outputs from")
        if len(names) != len({id(G.get_submodule(n)) for n in names}):
            raise ValueError(f"{G.name}: an activation module is registered twice; name its layers by hand")
    return {f"{i + 1}: {type(G.get_submodule(name)).__name__}": name for i, name in enumerate(names)}


def load(name: str, *, device="cpu", **options) -> Generator:
    """Load a named generator: one of `MODELS`. Options go to the model's builder (e.g. eye_class)."""
    if name not in MODELS:
        raise ValueError(f"unknown generator {name!r}; known: {', '.join(MODELS)}. "
                         f"Wrap your own model with Generator(net, latent_dim).")
    return MODELS[name](device=device, **options)
