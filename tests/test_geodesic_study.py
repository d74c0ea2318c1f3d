"""helpers.geodesic_study: chapter 09's comparison of geodesics with straight lines and slerp, the area element over a
slice and the top eigenspace along a geodesic, on toys whose answers are known (tests/cases.py): a flat map, where
the geodesic is the straight line, the metric constant and the space flat; the round sphere in stereographic
coordinates, whose area element is known in closed form; a quadratic map, whose metric is known at every code.
"""
import dataclasses
import json
import math

import pytest
import torch

import cases
from helpers import distances, geodesic, report, threads
from helpers import geodesic_study as study


@pytest.fixture(autouse=True)
def one_thread():
    with threads.one_thread():  # tiny tensors: threads would only wait on each other
        yield


@pytest.fixture(scope="module")
def flat():
    G, A = cases.linear_generator(d=8)
    return G, distances.mse()


@pytest.fixture(scope="module")
def sphere():
    G, net = cases.sphere_generator(d=2)
    return G, distances.mse(), net


def test_a_flat_map_is_flat(flat):
    """G(z) = A z: the geodesic is the straight line (ratio 1, no deviation, even steps), and every sentence says so."""
    G, mse = flat
    found = study.pairs("linear", G, mse, 5, 4, seed=0, rtol=1e-12, coarse=())
    assert found.n_pairs == 5 and found.n_steps == 4 and set(found.paths) == set(study.KINDS)
    lengths = found.lengths()
    assert torch.allclose(lengths["geodesic"], lengths["straight"], rtol=1e-9)
    assert (lengths["slerp"] >= lengths["straight"] * (1 - 1e-12)).all()
    assert found.deviation().max() < 1e-9
    f = study.flatness(found, 0.9)
    assert f.verdict == "flat" and f.line.ratio == pytest.approx(1, rel=1e-9) and f.n == 5
    assert f.uneven["geodesic"] == pytest.approx(1, rel=1e-6) and f.uneven["straight"] == pytest.approx(1, rel=1e-6)
    columns = study.flatness_columns({"linear": f})
    assert list(columns) == ["ours: linear"] and len(columns["ours: linear"]) == len(study.ROWS)
    assert columns["ours: linear"][2].endswith("of 5")
    verdict = study.flatness_verdict({"linear": f}, 0.9)
    assert "looks flat on `linear`" in verdict and "at least 0.9" in verdict
    assert "agrees with them on `linear`" in study.shao_comparison({"linear": f}, 0.9)
    assert "along the geodesic the ratio is at most 1" in study.speed_verdict({"linear": f})
    assert "about as evenly as the straight line on `linear`" in study.speed_verdict({"linear": f})
    curved = dataclasses.replace(f, uneven={"straight": 2.5, "slerp": 2.0, "geodesic": 1.5})
    assert "more evenly than the straight line on every model" in study.speed_verdict({"a": curved, "b": curved})
    mixed = study.speed_verdict({"a": curved, "b": f})
    assert "more evenly than the straight line on `a` and about as evenly as the straight line on `b`" in mixed
    assert "2.5 times as much as the smallest on `a`" in mixed
    assert study.cost_table({"linear": found})["converged"] == ["5 of 5"]
    images = study.path_images(G, found)
    assert images.shape == (3, 5, 3, 4, 4) and len(study.step_labels(found)) == 5
    t, speeds = study.speed_curves(found)
    assert len(t) == 4 and all(len(v) == 4 for v in speeds.values())


def test_too_few_pairs_decide_nothing(flat):
    G, mse = flat
    f = study.flatness(study.pairs("linear", G, mse, 2, 3, seed=1, coarse=()), 0.9)
    assert f.verdict == "too few"
    assert "cannot be judged" in study.flatness_verdict({"linear": f}, 0.9)
    assert "decides nothing" in study.scope(2, 0.9) and "undecided" in study.scope(5, 0.9)


def _recorded(tmp_path, columns):
    """A book/recorded.json holding a full run's flatness table with these {model: (ratio, interval, wins)}."""
    rows = study.ROWS
    table = {"title": "t", "row_header": "measure", "rows": rows,
             "note": "30 pairs of codes per model from seed 0, paths of 16 steps; ratios are geometric means",
             "columns": {f"ours: {name}": [ratio, ci, wins] + [1.0] * (len(rows) - 3)
                         for name, (ratio, ci, wins) in columns.items()}}
    path = tmp_path / "recorded.json"
    path.write_text(json.dumps({"full": {"09_geodesics": {"finished": "2026-12-07T10:00:00Z",
                                                          "tables": {"results/geodesic_flatness": table}}}}))
    return path


def test_the_recorded_full_run_answers_model_by_model(flat, tmp_path):
    """The recorded run's verdicts follow `flatness`'s rule on its intervals; a model this run decided the other way
    is named; nothing recorded (or no such model) gives ""."""
    G, mse = flat
    here = study.flatness(study.pairs("linear", G, mse, 5, 4, seed=0, rtol=1e-12, coarse=()), 0.9)
    assert here.verdict == "flat"
    current = {"linear": here, "b": here, "c": here, "d": here}
    path = _recorded(tmp_path, {"linear": (0.78, "[0.75, 0.81]", "30 of 30"), "b": (0.95, "[0.91, 0.97]", "2 of 30"),
                                "c": (0.9, "[0.85, 0.93]", "20 of 30"), "d": (0.9, "no interval: one pair", "1 of 1"),
                                "e": (0.5, "[0.4, 0.6]", "30 of 30")})
    text = study.recorded_flatness(current, 0.9, path=path)
    assert text.startswith("**The answer of the recorded full-profile run** (30 pairs of codes per model from seed 0, "
                           "paths of 16 steps; "
                           "in brackets, the geodesic's length over the straight line's with its $95\\%$ bootstrap "
                           "interval over pairs): under LPIPS the latent space is not flat on `linear` (0.78 [0.75, "
                           "0.81]): the whole interval lies below 0.9; it looks flat on `b` (0.95 [0.91, 0.97])")
    assert "stays undecided on `c` (0.9 [0.85, 0.93]): the interval straddles 0.9" in text
    assert "could not be judged on `d` (0.9): too few pairs" in text and "`e`" not in text
    assert text.endswith("This run's own verdict is the opposite on `linear`.")
    assert study.recorded_flatness(current, 0.9, path=tmp_path / "none.json") == ""
    assert study.recorded_flatness({"x": here}, 0.9, path=path) == ""
    recorded = study.recorded_verdicts(current, 0.9, path=path)
    assert recorded == {"linear": ("curved", "0.78 [0.75, 0.81]"), "b": ("flat", "0.95 [0.91, 0.97]"),
                        "c": ("undecided", "0.9 [0.85, 0.93]"), "d": ("too few", "0.9")}
    assert study.recorded_verdicts(current, 0.9, path=tmp_path / "none.json") == {}
    # Shao et al.'s comparison: this run's verdicts first; the recorded run's only for models this run leaves open
    few = study.flatness(study.pairs("linear", G, mse, 2, 4, seed=0, rtol=1e-12, coarse=()), 0.9)
    shao = study.shao_comparison({"linear": few, "b": few, "c": few, "d": here}, 0.9, recorded=recorded)
    assert shao.startswith("Under LPIPS this run agrees with them on `d` and leaves `linear`, `b` and `c` open. The "
                           "recorded full-profile run decides `linear` and `b`: it agrees with Shao et al. on `b` and "
                           "disagrees on `linear`, where the geodesic is shorter than the straight line by more than "
                           "10% of its length. The largest saving in this run")
    both_curved = {"linear": ("curved", ""), "b": ("curved", "")}
    every = study.shao_comparison({"linear": few, "b": few}, 0.9, recorded=both_curved)
    assert ("this run leaves `linear` and `b` open. The recorded full-profile run decides them: it disagrees with Shao "
            "et al. on each of them, where") in every
    assert "recorded" not in study.shao_comparison({"linear": few}, 0.9, recorded={})
    assert report.interval_parts("[0.75, 0.81]") == (0.75, 0.81) and report.interval_parts("0.8 [0.7, 0.9]") is None
    assert report.interval_parts("no interval: one pair") is None and report.interval_parts(0.8) is None


def test_on_the_sphere_the_geodesic_is_shorter_and_leaves_the_chord(sphere):
    """Straight lines in stereographic coordinates are not great circles (unless through the origin): the geodesic is
    shorter on every pair, as long as n equal chords of the great circle, and strays from the chord in latent space."""
    G, mse, net = sphere
    found = study.pairs("sphere", G, mse, 5, 8, seed=2, rtol=1e-12)
    lengths = found.lengths()
    z_a, z_b = study.pair_codes(G, 5, 2)
    angle = torch.arccos((net.to_sphere(z_a.double()) * net.to_sphere(z_b.double())).sum(1))
    # refined, the geodesic's polyline in latent space is measured: within a few % of the arc √(2/N)·angle (N = 48)
    assert torch.allclose(lengths["geodesic"], math.sqrt(2 / 48) * angle, rtol=3e-2)
    assert (lengths["geodesic"] <= lengths["straight"] * (1 + 3e-2)).all()
    assert found.deviation().max() > 1e-2
    f = study.flatness(found, 0.999)
    assert f.line.ratio < 1 and f.line.wins >= 4 and f.verdict in ("curved", "undecided")
    coarse = study.pairs("sphere", G, mse, 5, 8, seed=2, rtol=1e-12, refine=1).lengths()["geodesic"]
    chords = math.sqrt(2 / 48) * 2 * 8 * torch.sin(angle / 16)  # unrefined: 8 equal chords of the great circle
    assert torch.allclose(coarse, chords, rtol=1e-6)


def test_the_area_element_of_the_sphere_over_a_slice(sphere):
    """In two dimensions the slice is the whole plane: log10 of the area element relative to the centre is
    2·log10((1 + ‖c‖²)/(1 + ‖u‖²)) for the round metric; the montage takes the corners and the centre."""
    G, mse, net = sphere
    centre = torch.tensor([0.3, -0.2], dtype=torch.float64)
    piece = study.area_slice(G, mse, centre, 5, 1.0)
    assert piece.log_area.shape == (5, 5) and piece.log_area[2, 2].abs() < 1e-12
    u = piece.codes(range(5), range(5)).reshape(-1, 2)
    truth = 2 * torch.log10((1 + centre.pow(2).sum()) / (1 + u.pow(2).sum(1))).reshape(5, 5)
    assert torch.allclose(piece.log_area, truth, atol=1e-10)
    assert piece.corners() == [0, 2, 4]
    images, rows, cols = study.slice_images(G, piece)
    assert images.shape == (3, 3, 3, 4, 4) and rows[0] == "second -1" and cols[0] == "first -1"
    panels = study.slice_heatmap({"sphere": piece})
    assert panels["zmax"] == pytest.approx(float(piece.log_area.abs().max())) and panels["zmin"] == -panels["zmax"]
    assert "decades on `sphere`" in study.slice_verdict({"sphere": piece})


def test_a_constant_metric_does_not_turn(flat):
    G, mse = flat
    found = study.pairs("linear", G, mse, 1, 4, seed=3, coarse=())
    turn = study.turning(G, mse, found.paths["geodesic"][0], 3)
    assert turn.steps.shape == (4,) and turn.total < 1e-6 and turn.ends < 1e-6 and turn.winding == 1.0
    assert (turn.log_volume - turn.log_volume[0]).abs().max() < 1e-6
    assert "turns steadily" in study.turning_verdict({"linear": turn}, 1.5)


def test_turning_against_the_known_metric_of_a_quadratic_map():
    """The principal angles between neighbouring top-3 eigenspaces along a path, and between the ends, against the
    eigenvectors of the analytic metric; the top-3 volume element against its eigenvalues."""
    G, net = cases.quadratic_generator(d=12, spread=0.3)
    path = geodesic.straight(torch.randn(12, dtype=torch.float64, generator=torch.Generator().manual_seed(4)),
                             torch.randn(12, dtype=torch.float64, generator=torch.Generator().manual_seed(5)), 4)[0]
    turn = study.turning(G, distances.mse(), path, 3, tol=1e-9)
    lam, V = zip(*(torch.linalg.eigh(net.metric(z)) for z in path))
    tops = torch.stack([v[:, -3:] for v in V])
    truth = geodesic.principal_angles(tops[:-1], tops[1:]).norm(dim=1)
    assert torch.allclose(turn.steps, truth, atol=1e-4)
    assert turn.ends == pytest.approx(float(geodesic.principal_angles(tops[0], tops[-1]).norm()), abs=1e-4)
    volume = torch.stack([l[-3:].log10().sum() / 2 for l in lam])
    assert torch.allclose(turn.log_volume, volume, atol=1e-6)
    assert turn.winding >= 1 - 1e-6
    table = study.turning_table({"quadratic": turn})
    assert table["model"] == ["quadratic"] and len(table) == 6
    x, series = study.turning_curves({"quadratic": turn})["quadratic"]
    assert x == [1, 2, 3, 4] and len(series["largest angle"]) == 4
