"""Regions of aligned images, found on a model's mean image: boxes ((top, bottom), (left, right)) in fractions of
the image for the parts of a face (eyes, mouth, hair, background) and of an eye close-up (iris, lids).

Aligned generators put each part at about the same place in every image, so the darkest rows and spots of the
average of many samples locate them (`mean_image`, `face_boxes`, `eye_boxes`); `find` picks the ones asked for
and `masks` draws them at an image's resolution (`distances.box`).
"""
from __future__ import annotations

from typing import Callable

import torch
import torch.nn.functional as F

from .distances import box


def mean_image(G: Callable, n: int = 64, *, seed: int = 1000, batch: int = 64) -> torch.Tensor:
    """The average (3, H, W) of n samples of G (`G.sample(n, seed)`), rendered `batch` at a time without grad."""
    codes = G.sample(n, seed=seed)
    with torch.no_grad():
        return torch.cat([G(codes[s:s + batch]) for s in range(0, n, batch)]).mean(0)


def darkest(profile: torch.Tensor, start: float, stop: float) -> float:
    """The fraction (centre of the darkest cell) of a 1-D luminance profile between fractions start and stop."""
    n = len(profile)
    lo, hi = int(start * n), int(stop * n)
    return (lo + int(torch.argmin(profile[lo:hi])) + 0.5) / n


def _clip(a, b):
    return max(0.0, a), min(1.0, b)


def face_boxes(mean: torch.Tensor) -> dict:
    """Eyes, mouth, hair and background of aligned faces, from their mean image (3, H, W).

    The eyes are the darkest row of the upper face and the mouth the darkest row of the lower face (rows
    averaged over the central columns); hair lies above the eyes and background at the upper left.
    """
    luminance = mean.mean(0)  # (H, W)
    w = luminance.shape[1]
    centre = luminance[:, int(0.3 * w):int(0.7 * w)].mean(1)  # rows, over the central columns
    eyes, mouth = darkest(centre, 0.3, 0.62), darkest(centre, 0.62, 0.9)
    return {"eyes": (_clip(eyes - 0.08, eyes + 0.08), (0.2, 0.8)),
            "mouth": (_clip(mouth - 0.07, mouth + 0.07), (0.3, 0.7)),
            "hair": ((0.02, max(0.1, eyes - 0.2)), (0.2, 0.8)),
            "background": ((0.0, 0.6), (0.0, 0.14))}


def eye_boxes(mean: torch.Tensor) -> dict:
    """Iris, upper lid and lower lid of eye close-ups, from their mean image (3, H, W): the iris is the darkest
    spot of the blurred luminance, the lids the bands above and below it."""
    luminance = F.avg_pool2d(mean.mean(0)[None, None], 15, 1, 7)[0, 0]  # blurred
    r = darkest(luminance.min(1).values, 0.2, 0.8)
    c = darkest(luminance.min(0).values, 0.2, 0.8)
    return {"iris": (_clip(r - 0.2, r + 0.2), _clip(c - 0.2, c + 0.2)),
            "upper lid": (_clip(r - 0.38, r - 0.2), _clip(c - 0.35, c + 0.35)),
            "lower lid": (_clip(r + 0.2, r + 0.38), _clip(c - 0.35, c + 0.35))}


FINDERS = {"faces": face_boxes, "eyes": eye_boxes}  # the kinds of aligned image that `find` knows


def find(mean: torch.Tensor, kind: str, wanted) -> dict:
    """The boxes named in `wanted` (in that order) on the mean image (3, H, W) of a `kind` of image (`FINDERS`)."""
    if kind not in FINDERS:
        raise ValueError(f"kind must be one of {list(FINDERS)}, got {kind!r}")
    boxes = FINDERS[kind](mean)
    unknown = set(wanted) - set(boxes)
    if unknown or not wanted:
        raise ValueError(f"{kind}: regions must be a non-empty subset of {list(boxes)}, got {wanted}")
    return {name: boxes[name] for name in wanted}


def masks(boxes: dict, side) -> dict[str, torch.Tensor]:
    """{name: the box's mask (`distances.box`) at an image side (or (H, W))} for boxes {name: (rows, cols)}."""
    return {name: box(side, *b) for name, b in boxes.items()}


def area(mask: torch.Tensor) -> float:
    """The fraction of the image a mask covers (its mean, in float64)."""
    return float(mask.double().mean())
