"""The explorer widget, driven as a user would: set values, check that the images respond as they should."""
import xml.etree.ElementTree as ET

import pytest
import torch

from helpers import axes
from helpers.explore import effective_step, explore

JPEG = b"\xff\xd8\xff"


@pytest.fixture(scope="module")
def app(faces, lpips_alex):
    return explore({"faces": faces}, distance=lpips_alex, n_steps=5)


@pytest.fixture(scope="module")
def unscaled(faces, lpips_alex):
    """Steps not scaled by the eigenvalue (power 0): every rank moves the same distance in z."""
    return explore({"faces": faces}, distance=lpips_alex, n_steps=5, power=0.0)


def _curve(app):
    svg = ET.fromstring(app.curve.value)
    ns = {"s": "http://www.w3.org/2000/svg"}
    points = svg.find("s:polyline[@class='gg-measured']", ns).get("points").split()
    return svg, [tuple(map(float, p.split(","))) for p in points]


def test_strip_is_centred_on_the_reference(app, faces):
    z0 = app.reference().z0
    middle = app.images[app.n_steps // 2]
    assert torch.allclose(middle, faces(z0[None])[0], atol=1e-5)
    assert app.distances[app.n_steps // 2] == 0
    assert app.strip.value[:3] == JPEG


def test_curve_is_the_distance_along_the_walk(app, faces, lpips_alex):
    """The cached reference features give the same distances as the distance itself (two images per pair)."""
    app.rank.value, app.step.value = 3, 2.0
    z0 = app.reference().z0
    direct = axes.distance_curves(faces, lpips_alex, z0, app.codes())
    assert torch.allclose(app.distances, direct, rtol=1e-4, atol=1e-6)
    rendered = axes.render(faces, app.codes())
    outer = [0, 1, 3, 4]
    assert torch.allclose(app.images[outer], rendered[outer], atol=1e-5)


def test_curve_svg_draws_the_distances(app):
    app.mode.value, app.rank.value, app.step.value = "linear", 2, 1.0
    svg, points = _curve(app)
    assert svg.get("data-render") == str(app.renders)
    assert len(points) == app.n_steps
    xs, ys = zip(*points)
    assert list(xs) == sorted(xs)  # steps from −t to +t, left to right
    values = app.distances.tolist()
    # SVG y grows downwards: the largest distance is the highest point, the reference (0) the lowest
    assert ys.index(min(ys)) == values.index(max(values))
    assert ys[app.n_steps // 2] == max(ys)
    before = app.curve.value
    app.rank.value = 5
    assert app.curve.value != before and _curve(app)[0].get("data-render") == str(app.renders)


def test_small_steps_follow_the_metric(app):
    """Near z0 the distance is the metric's quadratic form: d(z0 + t v_1) ≈ ½ λ_1 t² along the top eigenvector
    (within 3 % at t = 0.003 on the faces DCGAN; at t = 0.1 already 35 % below: LPIPS curves away fast)."""
    app.mode.value, app.rank.value, app.step.value = "linear", 1, 0.003
    lam = float(app.reference().eigvals[0])
    t = app.steps()
    predicted = 0.5 * lam * t ** 2
    ends = [0, app.n_steps - 1]
    assert torch.allclose(app.distances[ends].double(), predicted[ends], rtol=0.05)


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
    jpeg_before = app.strip.value
    app.step.value, app.seed.value = 4.0, 1
    assert app.strip.value != jpeg_before


def test_step_is_bounded_for_every_rank(app):
    """Rank k's step is multiplied by (λ_k/λ_1)^(−1/3) but never goes past max_fraction·‖z0‖."""
    app.mode.value, app.step.value = "linear", 1.5
    ref = app.reference()
    norm = float(ref.z0.norm())
    scales = axes.step_scales(ref.eigvals, app.power)
    assert scales[-1] * 1.5 > 0.5 * norm  # without the bound, the last rank would walk past it
    for rank in (1, 10, 40, 100):
        app.rank.value = rank
        t, scale = app.step_bound()
        assert scale == pytest.approx(float(scales[rank - 1]))
        assert t == pytest.approx(min(1.5 * float(scales[rank - 1]), 0.5 * norm))
        assert (app.codes().double() - ref.z0.double()).norm(dim=1).max() <= 0.5 * norm * (1 + 1e-6)
    assert "capped at 0.5·‖z<sub>0</sub>‖" in app.status.value
    app.rank.value = 1
    assert app.step_bound()[0] == pytest.approx(1.5) and "capped" not in app.status.value


def test_effective_step_rule():
    assert effective_step(2.0, 3.0, 10.0) == 5.0  # 6 capped at 0.5 · 10
    assert effective_step(2.0, 1.5, 10.0) == 3.0
    assert effective_step(2.0, 3.0, 10.0, max_fraction=1.0) == 6.0
    with pytest.raises(ValueError, match="max_fraction"):
        effective_step(1.0, 1.0, 10.0, max_fraction=0)


def test_spherical_walk_keeps_the_norm(app):
    app.mode.value = "spherical"
    z0 = app.reference().z0
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


def test_busy_while_the_metric_is_computed(app, monkeypatch):
    """A new seed shows a progress bar and what is being computed, dims the outputs and locks the controls."""
    from helpers import metric

    seen, original = {}, metric.metric

    def watched(*args, **kwargs):
        seen.update(display=app.progress.layout.display, status=app.status.value,
                    disabled=[c.disabled for c in app.controls], dimmed="gg-dim" in app.strip._dom_classes)
        return original(*args, **kwargs)

    monkeypatch.setattr("helpers.explore.metric_module.metric", watched)
    app.seed.value = 7
    assert seen["display"] is None and "computing the metric" in seen["status"]
    assert "seed 7" in seen["status"] and "100 Jacobian columns" in seen["status"]
    assert all(seen["disabled"]) and seen["dimmed"]
    assert app.progress.layout.display == "none" and "gg-dim" not in app.strip._dom_classes
    assert not any(c.disabled for c in app.controls if c is not app.eye_class)
    assert app.eye_class.disabled  # a custom generator has no eye colour
    assert "seed 7" in app.status.value and "working" not in app.status.value


def test_errors_are_shown_and_the_app_recovers(app, monkeypatch):
    def broken(*args, **kwargs):
        raise RuntimeError("out of memory (simulated)")

    monkeypatch.setattr("helpers.explore.metric_module.metric", broken)
    with pytest.raises(RuntimeError, match="simulated"):
        app.seed.value = 11
    assert "error" in app.status.value and "out of memory (simulated)" in app.status.value
    assert app.progress.layout.display == "none" and not app.rank.disabled
    monkeypatch.undo()
    app.seed.value = 0
    assert "seed 0" in app.status.value


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
