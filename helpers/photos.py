"""Real photographs as inversion targets, from scikit-image's bundled sample data (nothing is downloaded): the
astronaut's face and eyes, and the faces of its Labeled Faces in the Wild subset.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F


# Crops of skimage.data.astronaut() (512x512, Eileen Collins): (rows, cols). Located by eye on the image: eye
# centres near (100, 200) and (100, 246); each eye crop is 28 px, an eye with its brow, framed as the eyes
# model frames its eyes.
_CROPS = {"face": (slice(40, 200), slice(140, 300)), "eye": (slice(86, 114), slice(186, 214)),
          "eye-right": (slice(86, 114), slice(232, 260))}


def sample_target_images(kind: str = "face", size: int = 64) -> torch.Tensor:
    """A real photograph as a target: (1, 3, size, size) in [-1, 1], from scikit-image's bundled astronaut.

    kind : 'face' (160x160 crop of the face), 'eye' (28x28 crop of her right eye, on the left of the image,
    with its brow) or 'eye-right' (the other eye). Resized with bilinear, antialiased interpolation. No
    download: the image ships in the wheel.
    """
    if kind not in _CROPS:
        raise ValueError(f"kind must be one of {', '.join(_CROPS)}, got {kind!r}")
    from skimage import data

    rows, cols = _CROPS[kind]
    return _to_target(data.astronaut()[rows, cols], size)


def photo_targets(kind: str, n: int, size: int) -> tuple[torch.Tensor, list[str]]:
    """n real photographs as targets, (n, 3, size, size) in [-1, 1], and their labels; all ship in scikit-image.

    kind 'face': the astronaut's face, then the faces of scikit-image's LFW subset (Labeled Faces in the Wild:
    100 grayscale faces of 25x25 px, repeated on the three channels), in order: up to 101.
    kind 'eye': the astronaut's two eyes: up to 2.
    """
    from skimage import data

    if kind == "face":
        if not 1 <= n <= 101:
            raise ValueError(f"there are 101 face photographs (the astronaut and 100 LFW faces), asked for {n}")
        lfw = data.lfw_subset()[:n - 1]  # the first 100 of its 200 images are faces
        lfw = [np.asarray(f) if np.asarray(f).dtype == np.uint8 else (np.asarray(f) * 255).round().astype(np.uint8)
               for f in lfw]  # scikit-image documents uint8 and returns floats in [0, 1]
        grey = [np.repeat(face[:, :, None], 3, axis=2) for face in lfw]
        images = [sample_target_images("face", size)] + [_to_target(g, size) for g in grey]
        return torch.cat(images), ["astronaut"] + [f"LFW face {i}" for i in range(n - 1)]
    if kind == "eye":
        if not 1 <= n <= 2:
            raise ValueError(f"there are 2 eye photographs (the astronaut's eyes), asked for {n}")
        kinds = ["eye", "eye-right"][:n]
        return torch.cat([sample_target_images(k, size) for k in kinds]), [f"astronaut, {k}" for k in kinds]
    raise ValueError(f"kind must be 'face' or 'eye', got {kind!r}")


def _to_target(rgb: np.ndarray, size: int) -> torch.Tensor:
    """(H, W, 3) uint8 -> (1, 3, size, size) in [-1, 1], bilinear with antialiasing."""
    crop = torch.from_numpy(np.ascontiguousarray(rgb))
    x = crop.permute(2, 0, 1)[None].float() / 127.5 - 1
    x = F.interpolate(x, size=(size, size), mode="bilinear", antialias=True, align_corners=False)
    return x.clamp(-1, 1)
