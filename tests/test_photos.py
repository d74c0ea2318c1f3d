"""helpers.photos: real photographs as targets, from scikit-image's bundled images."""
import pytest
import torch

from helpers import photos


def test_photo_targets():
    faces, labels = photos.photo_targets("face", 3, 64)
    assert faces.shape == (3, 3, 64, 64) and labels == ["astronaut", "LFW face 0", "LFW face 1"]
    torch.testing.assert_close(faces[0], photos.sample_target_images("face", 64)[0])
    assert torch.equal(faces[1, 0], faces[1, 1]) and faces[1].std() > 0.1  # grayscale on three channels
    eyes, labels = photos.photo_targets("eye", 2, 128)
    assert eyes.shape == (2, 3, 128, 128) and len(labels) == 2
    assert eyes.min() >= -1 and eyes.max() <= 1
    with pytest.raises(ValueError, match="2 eye photographs"):
        photos.photo_targets("eye", 3, 128)
    with pytest.raises(ValueError, match="101 face photographs"):
        photos.photo_targets("face", 102, 64)


@pytest.mark.parametrize("kind", ["face", "eye", "eye-right"])
def test_sample_target_images(kind):
    x = photos.sample_target_images(kind, size=48)
    assert x.shape == (1, 3, 48, 48) and x.dtype == torch.float32
    assert x.min() >= -1 and x.max() <= 1 and x.std() > 0.1
    center = x[0, :, 20:28, 20:28].mean((1, 2))
    if kind == "face":  # skin: red above green above blue
        assert center[0] > center[1] > center[2]
    with pytest.raises(ValueError, match="kind"):
        photos.sample_target_images("hand")
