"""The explorer widget, driven as a user would: set values, check that the images respond as they should."""
import pytest
import torch

from helpers.explore import explore


@pytest.fixture(scope="module")
def app(faces, lpips_alex):
    return explore({"faces": faces}, distance=lpips_alex, n_steps=5)


@pytest.fixture(scope="module")
def unscaled(faces, lpips_alex):
    """Steps not scaled by the eigenvalue (power 0): every rank moves the same distance in z."""
    return explore({"faces": faces}, distance=lpips_alex, n_steps=5, power=0.0)


def test_strip_is_centred_on_the_reference(app, faces):
    z0, _ = app.reference()
    middle = app.images[app.n_steps // 2]
    assert torch.allclose(middle, faces(z0[None])[0], atol=1e-5)
    assert app.distances[app.n_steps // 2] < 1e-6
    assert app.strip.value[:8] == b"\x89PNG\r\n\x1a\n"


def test_controls_change_the_images(app, unscaled):
    unscaled.rank.value, unscaled.step.value = 1, 1.0
    top = unscaled.images.clone()
    change_top = unscaled.distances.max().item()
    unscaled.rank.value = 80
    assert not torch.equal(unscaled.images, top)
    # the same step in z changes the image far less along a low-ranked axis: the metric is anisotropic
    assert unscaled.distances.max().item() < 0.2 * change_top
    app.step.value = 0.0
    assert (app.distances < 1e-6).all()  # no step: every image is the reference
    png_before = app.strip.value
    app.step.value, app.seed.value = 4.0, 1
    assert app.strip.value != png_before


def test_spherical_walk_keeps_the_norm(app):
    app.mode.value = "spherical"
    z0, _ = app.reference()
    norms = app.codes().norm(dim=1)
    assert torch.allclose(norms.double(), z0.double().norm().expand_as(norms), rtol=1e-6)
    app.mode.value = "linear"


def test_metric_is_computed_once_per_code(app, monkeypatch):
    app.rank.value = 1
    app.seed.value = 2  # computes and caches the metric at this code
    strip = app.strip.value

    def fail(*args, **kwargs):
        raise AssertionError("metric recomputed for a cached code")

    monkeypatch.setattr("helpers.explore.metric_module.metric", fail)
    for rank in (2, 3, 4):
        app.rank.value = rank
        assert app.strip.value != strip
    app.rank.value = 1
    assert app.strip.value == strip  # same code, same axis: the same picture


def test_switching_models_changes_image_size(eyes, faces, lpips_alex):
    both = explore({"faces": faces, "eyes": eyes}, distance=lpips_alex, n_steps=3)
    assert both.images.shape[-1] == 64
    both.model.value = "eyes"
    assert both.images.shape[-1] == 128 and both.rank.max == 100


def test_default_models_are_the_embedded_ones():
    import inspect

    from helpers import generators
    from helpers.explore import Explorer

    assert inspect.signature(explore).parameters["models"].default == generators.EMBEDDED
    assert inspect.signature(Explorer).parameters["models"].default == generators.EMBEDDED


def test_explorer_refuses_a_generator_in_the_wrong_range(faces, lpips_alex):
    """The explorer computes the metric of its first code before it draws anything: the same check as `metric`."""
    from helpers.generators import Generator

    bytes_faces = Generator(lambda z: (faces(z) + 1) * 127.5, 100, name="bytes")
    with pytest.raises(ValueError, match=r"generator output spans \[.*\] but LPIPS expects images in \[-1, 1\]"):
        explore({"bytes": bytes_faces}, distance=lpips_alex, n_steps=3)
