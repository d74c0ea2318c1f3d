"""Region finding on a model's mean image: the darkest rows and spots of synthetic averages place the boxes where
they were drawn; `find` keeps the regions asked for, in that order, and refuses unknown names."""
import pytest
import torch

from cases import HalfGenerator
from helpers import distances, regions
from helpers.generators import Generator


def face_like(side=64, eyes=0.45, mouth=0.8):
    """A grey (3, side, side) image with a dark row at `eyes` and a fainter one at `mouth` (fractions)."""
    image = torch.zeros(3, side, side)
    image[:, int(eyes * side)] = -1.0
    image[:, int(mouth * side)] = -0.5
    return image


def dark_spot(row, col, side=128, width=10.0):
    """A (3, side, side) image darkest at pixel centre (row, col), smoothly (one minimum after any blur)."""
    r, c = torch.meshgrid(torch.arange(side) + 0.5, torch.arange(side) + 0.5, indexing="ij")
    return -torch.exp(-((r - row) ** 2 + (c - col) ** 2) / (2 * width ** 2)).expand(3, side, side)


def test_darkest_returns_the_centre_of_the_darkest_cell_in_the_window():
    profile = torch.tensor([0.0, -5.0, 0.0, 0.0, -1.0, 0.0, 0.0, 0.0, 0.0, 0.0])
    assert regions.darkest(profile, 0.3, 0.8) == pytest.approx(0.45)  # cell 4; cell 1 lies outside the window
    assert regions.darkest(profile, 0.0, 1.0) == pytest.approx(0.15)


def test_face_boxes_follow_the_dark_rows_of_the_mean_image():
    boxes = regions.face_boxes(face_like(eyes=0.45, mouth=0.8))
    assert list(boxes) == ["eyes", "mouth", "hair", "background"]
    eyes_centre = (int(0.45 * 64) + 0.5) / 64
    assert boxes["eyes"][0] == pytest.approx((eyes_centre - 0.08, eyes_centre + 0.08))
    assert sum(boxes["mouth"][0]) / 2 == pytest.approx((int(0.8 * 64) + 0.5) / 64)
    assert boxes["hair"][0] == pytest.approx((0.02, eyes_centre - 0.2))
    assert all(0 <= a < b <= 1 for rows, cols in boxes.values() for a, b in (rows, cols))


def test_eye_boxes_centre_the_iris_on_the_darkest_spot_and_clip_to_the_image():
    boxes = regions.eye_boxes(dark_spot(64.5, 76.5))
    (top, bottom), (left, right) = boxes["iris"]
    assert (top + bottom) / 2 == pytest.approx(64.5 / 128) and (left + right) / 2 == pytest.approx(76.5 / 128)
    assert boxes["upper lid"][0][1] == pytest.approx(top) and boxes["lower lid"][0][0] == pytest.approx(bottom)
    near_top = regions.eye_boxes(dark_spot(30.5, 30.5))  # the upper lid is cut at the image's edge
    assert near_top["upper lid"][0][0] == 0.0 and near_top["iris"][0][0] > 0


def test_find_keeps_the_regions_asked_for_in_order_and_refuses_others():
    mean = face_like()
    assert list(regions.find(mean, "faces", ["mouth", "eyes"])) == ["mouth", "eyes"]
    with pytest.raises(ValueError, match="faces: regions must be a non-empty subset"):
        regions.find(mean, "faces", ["nose"])
    with pytest.raises(ValueError, match="non-empty"):
        regions.find(mean, "faces", [])
    with pytest.raises(ValueError, match="kind must be one of"):
        regions.find(mean, "cats", ["eyes"])


def test_masks_and_areas_of_boxes():
    boxes = {"top": ((0.0, 0.25), (0.0, 1.0)), "corner": ((0.5, 1.0), (0.5, 1.0))}
    masks = regions.masks(boxes, 8)
    assert list(masks) == ["top", "corner"] and torch.equal(masks["top"], distances.box(8, *boxes["top"]))
    assert regions.area(masks["top"]) == 0.25 and regions.area(masks["corner"]) == 0.25


def test_mean_image_is_the_mean_of_the_samples_in_any_batch_size():
    G = Generator(HalfGenerator().float(), 10, name="half")
    expected = G(G.sample(5, seed=3)).mean(0)
    for batch in (2, 5, 64):
        assert torch.allclose(regions.mean_image(G, 5, seed=3, batch=batch), expected, rtol=1e-6, atol=1e-7)
