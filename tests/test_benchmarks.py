"""The benchmark scripts still run (tiny settings) and report what their READMEs describe. No timing is asserted."""
import importlib.util
import json
import math
import sys
from pathlib import Path

import pytest

BENCHMARKS = Path(__file__).resolve().parents[1] / "benchmarks"


def _load(name):
    spec = importlib.util.spec_from_file_location(f"benchmark_{name}", BENCHMARKS / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_metric_benchmark_runs(tmp_path, capsys):
    out = tmp_path / "metric.json"
    _load("metric").main(["--device", "cpu", "--cases", "faces64", "--methods", "jacobian,backprop,lanczos",
                          "--directions", "4", "--batch", "2", "--json", str(out)])
    result = json.loads(out.read_text())["cases"]["faces64"]
    rows = {row["method"]: row for row in result["rows"]}
    assert list(rows) == ["jacobian", "backprop", "lanczos", "forward floor", "jacobian, batch 2"]
    assert rows["lanczos"]["seconds_per_hessian"] is None and "skipped" in rows["lanczos"]["notes"]
    for name in ("jacobian", "backprop", "forward floor", "jacobian, batch 2"):
        assert rows[name]["seconds_per_hessian"] > 0 and "extrapolated from 4/100 directions" in rows[name]["notes"]
    assert rows["backprop"]["speedup_vs_backprop"] == pytest.approx(1.0)
    assert rows["jacobian"]["speedup_vs_backprop"] == pytest.approx(
        rows["backprop"]["seconds_per_hessian"] / rows["jacobian"]["seconds_per_hessian"])
    assert "jacobian/floor = " in rows["forward floor"]["notes"]
    assert "== faces64: dcgan-faces64 + LPIPS-alex at 64 px, d = 100" in capsys.readouterr().out


def test_explore_benchmark_runs(tmp_path, capsys):
    out = tmp_path / "explore.json"
    _load("explore").main(["--models", "dcgan-faces64", "--updates", "3", "--json", str(out)])
    (result,) = json.loads(out.read_text())
    assert result["model"] == "dcgan-faces64" and len(result["times"]) == 3
    assert all(t > 0 and math.isfinite(t) for t in result["times"])
    assert result["open_over_median"] == pytest.approx(result["open_seconds"] / result["median_seconds"])
    assert "dcgan-faces64" in capsys.readouterr().out


def test_region_benchmark_runs(tmp_path, capsys):
    out = tmp_path / "region.json"
    _load("region").main(["--device", "cpu", "--cases", "faces64", "--rows", "64", "--loop-rows", "4",
                          "--pixel-chunk", "32", "--json", str(out)])
    result = json.loads(out.read_text())["cases"]["faces64"]
    rows = {row["method"]: row for row in result["rows"]}
    assert list(rows) == ["region metric, LPIPS (ours)", "region metric, MSE (ours)", "pixel Jacobian, vmapped",
                          "pixel Jacobian, per pixel", "Robust PCA + projection"]
    assert all(row["seconds"] > 0 and math.isfinite(row["seconds"]) for row in rows.values())
    assert "extrapolated from 64/4096 rows" in rows["pixel Jacobian, vmapped"]["notes"]
    assert "extrapolated from 4/4096 rows" in rows["pixel Jacobian, per pixel"]["notes"]
    assert rows["pixel Jacobian, per pixel"]["speedup_vs_lowrankgan"] == pytest.approx(1.0)
    ours = rows["region metric, LPIPS (ours)"]
    assert ours["speedup_vs_lowrankgan"] == pytest.approx(rows["pixel Jacobian, per pixel"]["seconds"] / ours["seconds"])
    assert "== faces64: dcgan-faces64, LPIPS-alex at 64 px vs the pixel Jacobian at 64 px" in capsys.readouterr().out


def test_metric_benchmark_solver_and_hvp_rows(tmp_path, capsys):
    """The top-k solver (cold and warm) against the exact metric, and the two Hessian-vector products."""
    out = tmp_path / "solver.json"
    _load("metric").main(["--device", "cpu", "--cases", "faces64", "--methods", "jacobian,subspace,hvp",
                          "--batch", "0", "--warm-codes", "1", "--tol", "1e-3", "--relative", "--hvp-vectors", "2",
                          "--json", str(out)])
    result = json.loads(out.read_text())["cases"]["faces64"]
    rows = {row["method"]: row for row in result["rows"]}
    assert list(rows) == ["jacobian", "subspace", "subspace, warm", "hvp gauss-newton, single",
                          "hvp double-backprop, single", "hvp gauss-newton, block 20", "hvp double-backprop, block 20",
                          "forward floor"]
    for name in ("subspace", "subspace, warm"):
        solver = rows[name]["solver"]
        assert 20 <= solver["jvp_columns"] == solver["vjp_columns"] <= 100
        assert solver["max_residual_over_eigenvalue"] <= 1e-3 * (1 + 1e-9) and solver["tol"] == 1e-3
        assert solver["relative"] is True and "per eigenvalue" in rows[name]["notes"]
        assert 0 < solver["lambdaK_over_lambda1"] < 1
        assert solver["max_residual_over_eigenvalue"] <= solver["max_residual_over_lambda1"] / solver[
            "lambdaK_over_lambda1"] * (1 + 1e-9)  # the bound per eigenvalue follows from the certificate
        assert solver["max_eigenvalue_rel_error"] < 0.1  # measured against the exact metric of the same run
        assert solver["speedup_vs_jacobian"] == pytest.approx(
            rows["jacobian"]["seconds_per_hessian"] / rows[name]["seconds_per_hessian"])
        # passes counted and cost per pass: the speed-up is the break-even column count over the columns spent
        assert solver["seconds_per_column"] == pytest.approx(rows[name]["seconds_per_hessian"] / solver["jvp_columns"])
        assert solver["jacobian_seconds_per_column"] == pytest.approx(rows["jacobian"]["seconds_per_hessian"] / 100)
        assert solver["break_even_columns"] == pytest.approx(solver["speedup_vs_jacobian"] * solver["jvp_columns"])
        assert "s per column" in rows[name]["notes"] and "the solver wins below" in rows[name]["notes"]
    assert "warm start: top-20 eigenvectors" in rows["subspace, warm"]["notes"]  # one code: the average's rank, 20
    assert rows["subspace, warm"]["prepare_seconds"] > 0
    for name in ("hvp gauss-newton, single", "hvp gauss-newton, block 20"):
        assert rows[name]["seconds_per_hessian"] > 0 and "double-backprop/gauss-newton = " in rows[name]["notes"]
        assert rows[name]["speedup_vs_backprop"] is None
    assert "subspace, warm" in capsys.readouterr().out


@pytest.mark.slow
def test_explore_browser_benchmark_runs(tmp_path, capsys):
    """One timed move per control in JupyterLab and chromium: every control reports a positive round trip."""
    from test_book_render import chromium

    out = tmp_path / "browser.json"
    _load("explore_browser").main(["--models", "dcgan-faces64", "--moves", "1", "--chromium", chromium(),
                                   "--json", str(out)])
    (result,) = json.loads(out.read_text())["models"]  # one model: no switches
    assert result["model"] == "dcgan-faces64" and set(result["controls"]) == {"rank", "step", "mode"}
    for control in result["controls"].values():
        assert len(control["times"]) == 1 and 0 < control["times"][0] < 120
        assert control["p90_seconds"] == pytest.approx(control["times"][0])
    assert "target (p90 ≤ 1 s)" in capsys.readouterr().out


def test_geodesic_benchmark_runs(tmp_path, capsys):
    """Ours, the optimisers we compared, stochman's recipe (or the line that says how to install it) and the metric
    along the path, on a 2-interior-point path with a loose tolerance."""
    out = tmp_path / "geodesic.json"
    _load("geodesic").main(["--interior", "2", "--rtol", "0.1", "--optimiser-budget", "0.1", "--stochman-iter", "2",
                            "--adam-lr", "0.01,0.1", "--stochman-lr", "0.1,0.3", "--metric-k", "2", "--json", str(out)])
    (pair,) = json.loads(out.read_text())["pairs"]
    ours = pair["ours"]
    assert pair["n"] == 3 and ours["seconds"] > 0 and ours["energy"] <= pair["straight_energy"]
    assert len(ours["times"]) == len(ours["energies"]) == ours["iterations"] + 1
    assert set(pair["optimisers"]) == {"ours", "ours, no preconditioner", "ours, no coarse start", "Adam lr 0.01",
                                       "Adam lr 0.1", "torch L-BFGS (strong Wolfe)"}
    stochman = pair["stochman"]
    if "skipped" in stochman:
        assert "pip install" in stochman["skipped"]
    else:
        assert stochman["evaluations"] == 2 and stochman["parameters"] == 2 * 100
        assert set(stochman["by_lr"]) == {"0.1", "0.3"}
        assert stochman["energy"] == min(run["energy"] for run in stochman["by_lr"].values())
        assert stochman["by_lr"][f"{stochman['lr']:g}"]["energy"] == stochman["energy"]
        assert stochman["speedup"] == pytest.approx(stochman["seconds_to_target"] / stochman["ours_seconds_to_target"])
    metric = pair["path_metric"]
    assert metric["k"] == 2 and metric["warm_columns"] > 0 and metric["cold_columns"] > 0
    assert "ours:" in capsys.readouterr().out
