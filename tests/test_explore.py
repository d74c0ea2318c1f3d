"""The explorer widget, driven as a user would: set values, check that the images respond as they should."""
import html
import re
import threading
import time
import xml.etree.ElementTree as ET

import pytest
import torch

from helpers import axes, geodesic
from helpers.explore import effective_step, explore

JPEG = b"\xff\xd8\xff"


@pytest.fixture(scope="module")
def app(faces, lpips_alex):
    return explore({"faces": faces}, distance=lpips_alex, n_steps=5)


@pytest.fixture(scope="module")
def unscaled(faces, lpips_alex):
    """Steps not scaled by the eigenvalue (power 0): every rank moves the same distance in z."""
    return explore({"faces": faces}, distance=lpips_alex, n_steps=5, power=0.0)


SVG = "{http://www.w3.org/2000/svg}"


def _curve(app):
    """The curve's SVG element and its measured points (x, y), from the widget's markup (title, SVG, legend)."""
    svg = ET.fromstring(app.curve.value).find(f"{SVG}svg")
    points = svg.find(f"{SVG}polyline[@class='gg-measured']").get("points").split()
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


def test_the_cap_is_shown_at_the_step_slider(app):
    """Past the cap the step slider changes nothing: the app says where that is, next to the slider."""
    app.mode.value, app.step.value, app.rank.value = "linear", 1.5, 100
    cap = 0.5 * float(app.reference().z0.norm()) / app.step_bound()[1]
    assert cap < 1.5 and app.step_cap() == pytest.approx(cap)
    assert app.cap.value == f"capped at step {cap:.2f} for eigen-rank 100"
    app.step.value = round(cap, 1) - 0.1  # below the cap: the slider moves the walk again
    assert app.cap.value == "" and "capped" not in app.status.value
    app.rank.value = 1
    assert app.cap.value == ""


@pytest.mark.parametrize("control, value, message", [
    ("seed", -1, "seed must be an integer from 0 to 9,223,372,036,854,775,807, got -1"),
    ("seed", 2 ** 64, "seed must be an integer from 0 to"),
    ("step", float("nan"), "step must be a number from 0 to 4, got nan"),
])
def test_a_control_value_the_app_cannot_show_is_refused_by_name(app, control, value, message):
    app.seed.value, app.step.value, app.rank.value = 0, 1.0, 1
    strip = app.strip.value
    with pytest.raises(ValueError, match=re.escape(message)):
        setattr(getattr(app, control), "value", value)
    assert message in html.unescape(app.status.value)
    assert (app.seed.value, app.step.value) == (0, 1.0), "the control did not go back to its last value"
    assert app.strip.value == strip and not app.rank.disabled
    app.rank.value = 2  # and the app goes on
    assert "rank 2" in app.status.value


@pytest.mark.parametrize("options, message", [
    ({"n_steps": 0}, "n_steps (images per strip) must be a positive integer, got 0"),
    ({"n_steps": -3}, "n_steps (images per strip) must be a positive integer, got -3"),
    ({"step": float("nan")}, "step (the step slider's first value) must be a finite number at least 0"),
    ({"max_step": float("nan")}, "max_step (the step slider's largest value) must be a finite number above 0"),
    ({"step": 5.0}, "step (the step slider's first value) must be a finite number at least 0 and at most 4"),
    ({"path_steps": 1}, "path_steps (steps per path) must be at least 2, got 1"),
    ({"path_iter": 0}, "path_iter (L-BFGS iterations of a geodesic) must be a positive integer, got 0"),
])
def test_bad_options_are_refused_by_name_before_anything_runs(faces, lpips_alex, options, message):
    with pytest.raises(ValueError, match=re.escape(message)):
        explore({"faces": faces}, distance=lpips_alex, **options)


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
    both = explore({"faces": faces, "eyes": eyes}, distance=lpips_alex, n_steps=3, prefetch=False)
    assert both.images.shape[-1] == 64
    both.model.value = "eyes"
    assert both.images.shape[-1] == 128 and both.rank.max == 100


def test_other_models_are_computed_in_the_background(faces, cats, lpips_alex, monkeypatch):
    """While the app is idle, the other models' metrics at the selected seed are computed in the background, so
    that switching models only renders; a new seed queues the new seed's (and drops what is not started)."""
    app = explore({"faces": faces, "cats": cats}, distance=lpips_alex, n_steps=3)
    assert _background_done(app, cats, 0), "the background never computed the other model's metric"
    monkeypatch.setattr("helpers.explore.metric_module.metric", _fail)
    app.model.value = "cats"
    assert f"{cats.name}, seed 0" in app.status.value and app.images.shape[0] == 3
    monkeypatch.undo()
    app.seed.value = 4  # computes cats at seed 4 here, then faces at seed 4 in the background
    assert _background_done(app, faces, 4)
    monkeypatch.setattr("helpers.explore.metric_module.metric", _fail)
    app.model.value = "faces"
    assert f"{faces.name}, seed 4" in app.status.value


def test_the_apps_metrics_are_computed_one_at_a_time(faces, cats, lpips_alex):
    """torch's forward-mode AD levels are global to the process: two metric computations at once, the background's
    and the foreground's, corrupt each other ("no level exists") unless the app runs them in turn."""
    app = explore({"faces": faces}, distance=lpips_alex, n_steps=3)
    errors = []

    def compute(G):
        for seed in range(3):
            try:
                app._compute_reference(G, seed)
            except Exception as error:  # noqa: BLE001 (collected for the assert)
                errors.append(error)

    threads = [threading.Thread(target=compute, args=(G,)) for G in (faces, cats)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors[:2]


def test_models_load_while_no_metric_is_computed(monkeypatch):
    """Building a network draws its initial weights from torch's global generator: a model loaded while another
    thread computes a metric made that metric's entry check refuse its model as random ("draws random numbers when
    it runs"), so the app loads models under the lock its metrics take."""
    from helpers import explore as explore_module

    held = []

    def load(name, device="cpu", **options):
        held.append(explore_module._METRICS.locked())
        torch.randn(3)  # as a network's initialisation does
        return name

    monkeypatch.setattr(explore_module.generators, "load", load)
    assert explore_module._load("dcgan-faces64", "cpu", {}) == "dcgan-faces64"
    assert held == [True] and not explore_module._METRICS.locked()


def test_no_background_work_unless_asked(faces, cats, lpips_alex):
    app = explore({"faces": faces, "cats": cats}, distance=lpips_alex, n_steps=3, prefetch=False)
    time.sleep(0.5)
    assert ("reference", id(cats), 0) not in app._cache


def _background_done(app, G, seed, timeout=120.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        future = app._cache.get(("reference", id(G), seed))
        if future is not None and future.done():
            return future.exception() is None
        time.sleep(0.1)
    return False


def _fail(*args, **kwargs):
    raise AssertionError("metric computed in the foreground although the background had it")


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


@pytest.fixture(scope="module")
def regional(faces, lpips_alex):
    """The explorer with a region menu: the whole image and the left half of the faces."""
    return explore({"faces": faces}, distance=lpips_alex, n_steps=5,
                   regions={"whole image": None, "left half": ((0.0, 1.0), (0.0, 0.5))})


def test_region_choice_walks_the_local_directions(regional, faces, lpips_alex):
    """For a region the axes are the generalised eigenvectors of (H_region, H_rest) at the code, the curve is the
    distance inside the region, and those walks change the inside more, per change outside, than the top
    eigenvector of the whole image does."""
    from helpers import distances, local, metric

    app = regional
    app.region.value, app.rank.value, app.step.value, app.mode.value = "whole image", 1, 1.0, "linear"
    assert app.outside is None and "region" not in app.status.value
    ref = app.reference()
    mask = distances.box((64, 64), (0.0, 1.0), (0.0, 0.5))
    region = distances.Region(lpips_alex, mask)
    rest = region.complement()
    global_codes = app.codes()
    global_images = axes.render(faces, global_codes)
    ends = [0, app.n_steps - 1]
    global_ratio = (region(ref.image.expand_as(global_images), global_images)[ends].sum()
                    / rest(ref.image.expand_as(global_images), global_images)[ends].sum())

    app.region.value = "left half"
    inside, outside = metric.region_metric(faces, ref.z0, lpips_alex, mask)
    expected = local.generalized_directions(inside.H[0], outside.H[0])
    found = app.local_axes()
    assert torch.allclose(found.vectors[:, :3].double(), expected.vectors[:, :3], atol=1e-4)
    assert torch.allclose(found.scores, expected.scores, rtol=1e-6)
    direct = region(ref.image.expand(app.n_steps, -1, -1, -1), axes.render(faces, app.codes()))
    assert torch.allclose(app.distances, direct, rtol=1e-4, atol=1e-7)
    local_ratio = app.distances[ends].sum() / app.outside[ends].sum()
    assert local_ratio > 3 * global_ratio
    assert "region left half" in app.status.value and "local direction 1" in app.status.value
    assert f"{float(local_ratio):.3g}× the change outside" in app.status.value
    assert "local direction 1" in _curve(app)[0].find(f"{SVG}title").text
    assert app.rank.description == "local direction"
    app.region.value = "whole image"
    assert app.rank.description == "eigen-rank"


def test_region_small_steps_follow_the_region_metric(regional):
    """Near z0 the region's distance is ½ t² vᵀH_region v along a local direction v."""
    app = regional
    app.region.value, app.rank.value, app.step.value, app.mode.value = "left half", 2, 0.003, "linear"
    t = app.steps()
    predicted = 0.5 * float(app.local_axes().curvature[1]) * t ** 2
    ends = [0, app.n_steps - 1]
    assert torch.allclose(app.distances[ends].double(), predicted[ends], rtol=0.05)


def test_region_metrics_are_computed_once_per_code_and_region(regional, monkeypatch):
    app = regional
    app.region.value, app.rank.value = "left half", 1

    def fail(*args, **kwargs):
        raise AssertionError("region metrics recomputed for a cached code and region")

    monkeypatch.setattr("helpers.explore.metric_module.region_metric", fail)
    for rank in (2, 3):
        app.rank.value = rank
    app.region.value = "whole image"
    app.region.value = "left half"
    assert "local direction 3" in app.status.value


@pytest.mark.parametrize("regions, match", [
    ({}, "non-empty dict"),
    ({"upside down": ((0.6, 0.2), (0.0, 1.0))}, "region 'upside down': rows must be"),
    ({"too bright": torch.full((8, 8), 2.0)}, "region 'too bright': mask values must be finite and in"),
])
def test_bad_regions_are_refused_before_anything_runs(faces, lpips_alex, regions, match):
    with pytest.raises(ValueError, match=match):
        explore({"faces": faces}, distance=lpips_alex, regions=regions)


# --- the geodesic view ---------------------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def paths_app(faces, lpips_alex):
    """The geodesic view from seed 0 to seed 1 in 3 steps and a few L-BFGS iterations: quick, and enough to shorten."""
    app = explore({"faces": faces}, distance=lpips_alex, n_steps=3, path_steps=3, path_iter=5, prefetch=False)
    app.view.value = "geodesic"
    return app


def test_geodesic_view_joins_the_two_seeds(paths_app, faces):
    app = paths_app
    assert (app.seed.value, app.seed_b.value) == (0, 1)  # entering the view offers the next seed
    ends = faces(torch.cat([faces.sample(1, seed=0), faces.sample(1, seed=1)]))
    assert app.path_images.shape == (2, 4, *ends.shape[1:])  # the geodesic, then the straight line
    for images in app.path_images:
        assert torch.allclose(images[0], ends[0], atol=1e-5) and torch.allclose(images[-1], ends[1], atol=1e-5)
    assert app.geodesic_strip.value[:3] == JPEG and app.straight_strip.value[:3] == JPEG
    assert "geodesic" in app.path_labels[0].value and "straight line" in app.path_labels[1].value
    shown = {w: w.layout.display for w in (app.strip, app.region, app.paths_box, app.seed_b, app.path_steps)}
    assert list(shown.values()) == ["none", "none", None, None, None]
    rows = [box for box in app.children if {app.seed, app.status} & set(getattr(box, "children", ()))]
    assert len(rows) == 2 and all(box.layout.display is None for box in rows), "the view hid the seed or the status"
    assert app.seed.description == "from seed" and "seeds 0 → 1" in app.status.value


def test_geodesic_view_curve_is_the_step_lengths_of_the_shown_paths(paths_app, faces, lpips_alex):
    app, n = paths_app, paths_app.path_steps.value
    found = app.paths()
    assert torch.equal(found.paths["straight"][0], geodesic.straight(found.paths["geodesic"][0, 0],
                                                                      found.paths["geodesic"][0, -1], n)[0])
    svg = ET.fromstring(app.curve.value).find(f"{SVG}svg")
    assert svg.get("data-render") == str(app.renders)
    for kind in ("geodesic", "straight"):  # each step measured as 4 sub-steps of the chord between its codes
        codes = found.paths[kind][0].double()
        steps = geodesic.segment_lengths(faces, lpips_alex, geodesic.straight(codes[:-1], codes[1:], 4)).sum(1)
        assert torch.allclose(torch.tensor(app.speeds[kind], dtype=torch.float64), steps * n, rtol=1e-6)
        assert app.lengths[kind] == pytest.approx(float(steps.sum()), rel=1e-6)
        assert len(svg.find(f"{SVG}polyline[@class='gg-speed gg-{kind}']").get("points").split()) == n
        assert f"length {app.lengths[kind]:.3g}" in app.curve.value
    assert app.lengths["geodesic"] <= app.lengths["straight"]
    ratio = app.lengths["geodesic"] / app.lengths["straight"]
    assert f"the geodesic is {ratio:.3g}× as long as the straight line" in app.status.value


def test_geodesic_view_computes_once_per_seed_pair_and_steps(paths_app, monkeypatch):
    app, calls, original = paths_app, [], geodesic.geodesic

    def counted(*args, **kwargs):
        calls.append((app.progress.layout.display, app.status.value, "gg-dim" in app.paths_box._dom_classes,
                      app.seed_b.disabled))
        return original(*args, **kwargs)

    monkeypatch.setattr(geodesic, "geodesic", counted)
    app.seed_b.value = 2
    app.seed_b.value = 1
    app.seed_b.value = 2
    assert len(calls) == 1, "a geodesic recomputed for a cached pair"
    display, status, dimmed, disabled = calls[0]
    assert display is None and dimmed and disabled
    assert "computing the geodesic of dcgan-faces64 from seed 0 to seed 2 in 3 steps" in status
    assert app.progress.layout.display == "none" and not app.seed_b.disabled
    app.path_steps.value = 4  # other steps: another geodesic
    assert len(calls) == 2 and app.path_images.shape[1] == 5


def test_geodesic_view_reuses_a_pair_the_other_way_round(paths_app, faces, monkeypatch):
    app = paths_app
    app.seed.value, app.seed_b.value, app.path_steps.value = 0, 1, 3
    images, lengths, speeds = app.path_images.clone(), dict(app.lengths), dict(app.speeds)
    app.seed_b.value = 2
    app.seed.value = 1
    calls = []
    monkeypatch.setattr(geodesic, "geodesic", lambda *args, **kwargs: calls.append(args))
    app.seed_b.value = 0  # from seed 1 to seed 0: the path from 0 to 1 reversed
    assert calls == [] and "seeds 1 → 0" in app.status.value
    assert torch.equal(app.path_images, images.flip(1)) and app.lengths == pytest.approx(lengths, rel=1e-12)
    assert all(list(app.speeds[kind]) == list(speeds[kind])[::-1] for kind in speeds)
    found = app.paths()
    assert torch.equal(found.result.path, found.paths["geodesic"])
    assert torch.equal(found.paths["geodesic"][0, 0], faces.sample(1, seed=1)[0].to(found.paths["geodesic"]))
    monkeypatch.undo()
    app.seed_b.value = 2  # back to seed 0 → seed 1 through pairs already computed
    app.seed.value = 0
    app.seed_b.value = 1
    assert torch.equal(app.path_images, images)


@pytest.mark.parametrize("control, value, message", [
    ("seed_b", 0, "to seed must differ from the other seed (0): a geodesic joins two different codes"),
    ("seed", 1, "from seed must differ from the other seed (1)"),
    ("seed_b", -1, "to seed must be an integer from 0 to"),
])
def test_geodesic_view_refuses_a_seed_it_cannot_join_by_name(paths_app, control, value, message):
    app = paths_app
    app.seed.value, app.seed_b.value, app.path_steps.value = 0, 1, 3
    with pytest.raises(ValueError, match=re.escape(message)):
        setattr(getattr(app, control), "value", value)
    assert message in html.unescape(app.status.value)
    assert (app.seed.value, app.seed_b.value) == (0, 1), "the control did not go back to its last value"
    assert not app.seed_b.disabled


def test_back_to_the_eigen_axes_view(paths_app):
    app = paths_app
    app.view.value = "eigen-axes"
    assert app.strip.layout.display is None and app.paths_box.layout.display == "none"
    assert app.seed.description == "seed" and "rank 1" in app.status.value
