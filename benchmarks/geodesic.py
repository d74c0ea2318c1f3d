"""Geodesics on the faces model: ours (`helpers.geodesic.geodesic`) against stochman's recipe, the optimisers we
measured to choose ours, and the metric along the path with and without warm starts.

    python benchmarks/geodesic.py                                  # 16 interior points, one pair, every part
    python benchmarks/geodesic.py --pairs 3 --threads 2 --json benchmarks/geodesic-faces64.json
    python benchmarks/geodesic.py --parts stochman --stochman-iter 600

stochman is a benchmark-only dependency: `pip install -e '.[bench]'` (or `pip install stochman==0.3.0`, which
brings networkx and matplotlib). Its recipe: a cubic spline with fixed ends on an `EmbeddedManifold` whose embedding
is the LPIPS feature map of G, fitted by `stochman.geodesic.geodesic_minimizing_energy` (Adam at lr 0.1, fixed in
it; here each learning rate of --stochman-lr, and the best is compared), the energy on `eval_grid` points of the
curve. Both runs are timed to the first moment each reaches the same energy: the higher of the two final energies,
on the same 18 points (our path, or the spline at 18 equally spaced t), in the units of `helpers.geodesic`
(stochman's `curve_energy` of an embedding is half of ours: it has no factor 2). See README.md.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import math
import os
import time
from pathlib import Path

os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")  # idle threads sleep: CPU seconds count work (before torch)

import torch  # noqa: E402

from helpers import distances, generators, geodesic  # noqa: E402

INSTALL = "pip install -e '.[bench]'   (or: pip install stochman==0.3.0)"
PARTS = ("ours", "optimisers", "stochman", "path-metric")


def _sibling(name):
    spec = importlib.util.spec_from_file_location(f"benchmark_{name}", Path(__file__).with_name(f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


machine = _sibling("metric").machine


def first_time(times, energies, target):
    """The first time (seconds) at which an energy history reaches target (None if it never does)."""
    for t, e in zip(times, energies):
        if e <= target * (1 + 1e-12):
            return float(t)
    return None


def run_ours(G, lpips, z_a, z_b, n, rtol, **options) -> dict:
    cpu = time.process_time()
    result = geodesic.geodesic(G, lpips, z_a, z_b, n=n, rtol=rtol, **options)
    cpu = time.process_time() - cpu
    coarse = result.coarse
    return {"seconds": result.seconds, "cpu_seconds": cpu, "iterations": int(result.iterations[0]), "evaluations": result.evaluations,
            "coarse": None if coarse is None else {"n": coarse.path.shape[1] - 1, "evaluations": coarse.evaluations,
                                                   "iterations": int(coarse.iterations[0]),
                                                   "seconds": float(coarse.times[-1])},
            "converged": bool(result.converged[0]), "energy": float(result.energy[0]),
            "length": float(result.length[0]), "times": result.times.tolist(),
            "energies": result.energies[:, 0].tolist(), "path": result.path}


def run_torch_optimiser(G, lpips, z_a, z_b, n, name, budget_seconds, lr) -> dict:
    """Adam or torch's L-BFGS (strong Wolfe) on the interior codes, energy from `geodesic.path_energy`, for a time
    budget; the history is recorded at every energy evaluation."""
    line = geodesic.straight(z_a, z_b, n)
    interior = line[:, 1:-1].clone().requires_grad_(True)
    times, energies = [], []
    start = time.perf_counter()

    def closure():
        optimiser.zero_grad()
        energy = geodesic.path_energy(G, lpips, torch.cat([line[:, :1], interior, line[:, -1:]], 1)).sum()
        energy.backward()
        times.append(time.perf_counter() - start)
        energies.append(energy.item())
        return energy

    if name == "adam":
        optimiser = torch.optim.Adam([interior], lr=lr)
    else:
        optimiser = torch.optim.LBFGS([interior], lr=1, max_iter=1, history_size=10, line_search_fn="strong_wolfe")
    while time.perf_counter() - start < budget_seconds:
        optimiser.step(closure)
    return {"seconds": time.perf_counter() - start, "evaluations": len(energies), "energy": min(energies),
            "times": times, "energies": energies}


def run_stochman(G, lpips, z_a, z_b, n, iterations, num_nodes, lr=0.1) -> dict:
    """stochman 0.3.0's recipe: `geodesic_minimizing_energy` on a CubicSpline, with Adam at learning rate `lr` (its
    own is 0.1, fixed inside; any other is passed in through its `optimizer` argument); every `curve_energy`
    evaluation (one per Adam step) is recorded in our units (×2)."""
    from stochman.curves import CubicSpline
    from stochman.geodesic import geodesic_minimizing_energy
    from stochman.manifold import EmbeddedManifold

    times, energies = [], []

    class LPIPSFeatures(EmbeddedManifold):
        def embed(self, points, jacobian=False):
            shape = points.shape
            return lpips.features(G(points.reshape(-1, shape[-1]))).reshape(*shape[:-1], -1)

        def curve_energy(self, curve, reduction="sum", dt=None):
            energy = super().curve_energy(curve, reduction, dt)
            times.append(time.perf_counter() - start)
            energies.append(2 * energy.item())  # stochman: (N−1)·Σ‖Δφ‖²; ours: n·Σ 2‖Δφ‖²
            return energy

    def adam(parameters, **_):  # stochman calls optimizer(parameters, lr=0.1): this lr instead
        return torch.optim.Adam(parameters, lr=lr)

    curve = CubicSpline(z_a[None], z_b[None], num_nodes=num_nodes)
    start, cpu = time.perf_counter(), time.process_time()
    geodesic_minimizing_energy(curve, LPIPSFeatures(), optimizer=adam, max_iter=iterations, eval_grid=n + 1)
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    with torch.no_grad():
        path = curve(torch.linspace(0, 1, n + 1))
        check = float(geodesic.path_energy(G, lpips, path[None]))
    return {"seconds": seconds, "cpu_seconds": cpu, "iterations": iterations, "evaluations": len(energies),
            "energy": min(energies),
            "final_energy_checked": check, "times": times, "energies": energies,
            "parameters": int(curve.params.numel()), "num_nodes": num_nodes, "lr": lr}


def bench_pair(G, lpips, seed, args) -> dict:
    z_a, z_b = G.sample(2, seed=seed)
    n = args.interior + 1
    out = {"seed": seed, "n": n, "load_average": [round(x, 2) for x in os.getloadavg()]}
    print(f"\n== pair seed {seed}: {args.interior} interior points (n = {n} steps), load {out['load_average']}",
          flush=True)
    straight_energy = float(geodesic.path_energy(G, lpips, geodesic.straight(z_a, z_b, n)))
    out["straight_energy"] = straight_energy
    ours = run_ours(G, lpips, z_a, z_b, n, args.rtol)
    path = ours.pop("path")
    out["ours"] = ours
    verdict = "within" if ours["seconds"] <= args.target_seconds else "OVER"
    print(f"ours: {ours['seconds']:.1f} s ({verdict} the {args.target_seconds:g} s target; CPU "
          f"{ours['cpu_seconds']:.1f} s), {ours['iterations']} "
          f"iterations, {ours['evaluations']} evaluations, energy {straight_energy:.4f} -> {ours['energy']:.4f}, "
          f"length {ours['length']:.4f}, converged {ours['converged']}", flush=True)
    if "optimisers" in args.parts:
        budget = ours["seconds"] * args.optimiser_budget
        rows = {"ours": ours,
                "ours, no preconditioner": run_ours(G, lpips, z_a, z_b, n, args.rtol, precondition=False),
                "ours, no coarse start": run_ours(G, lpips, z_a, z_b, n, args.rtol, coarse=()),
                **{f"Adam lr {lr:g}": run_torch_optimiser(G, lpips, z_a, z_b, n, "adam", budget, lr)
                   for lr in args.adam_lr},
                "torch L-BFGS (strong Wolfe)": run_torch_optimiser(G, lpips, z_a, z_b, n, "lbfgs", budget, 1.0)}
        for row in rows.values():
            row.pop("path", None)
        print(f"{'optimiser':32s} {'s':>7s} {'evals':>6s} {'energy':>8s} {'E at our time':>14s} "
              f"{'s to our E':>10s}")
        for name, row in rows.items():
            at_ours = [e for t, e in zip(row["times"], row["energies"]) if t <= ours["seconds"]]
            reach = first_time(row["times"], row["energies"], ours["energy"])
            row["energy_at_our_time"] = min(at_ours) if at_ours else None
            row["seconds_to_our_energy"] = reach
            print(f"{name:32s} {row['seconds']:7.1f} {row['evaluations']:6d} {row['energy']:8.4f} "
                  f"{_fmt(row['energy_at_our_time'], '.4f'):>14s} {_fmt(reach, '.1f'):>10s}")
        out["optimisers"] = rows
    if "stochman" in args.parts:
        out["stochman"] = compare_stochman(G, lpips, z_a, z_b, n, ours, args)
    if "path-metric" in args.parts and args.metric_k:
        start = time.perf_counter()
        found = geodesic.path_metric(G, lpips, path, args.metric_k, tol=args.metric_tol, cold=True)
        seconds = time.perf_counter() - start
        warm, cold = found.columns[0, 1:].sum().item(), found.cold_columns[0, 1:].sum().item()
        angles = found.angles()[0]
        out["path_metric"] = {"k": args.metric_k, "tol": args.metric_tol, "seconds_warm_and_cold": seconds,
                              "warm_columns": warm, "cold_columns": cold, "points": n,
                              "first_point_columns": found.columns[0, 0].item(),
                              "largest_angle_per_step": angles[:, -1].tolist()}
        print(f"metric along the path (top {args.metric_k}, tol {args.metric_tol:g}): {warm} products warm-started "
              f"vs {cold} cold over the {n} points after the first ({1 - warm / cold:.0%} saved); largest principal "
              f"angle between neighbours {angles[:, -1].max().item():.3f} rad", flush=True)
    return out


def compare_stochman(G, lpips, z_a, z_b, n, ours, args) -> dict:
    if importlib.util.find_spec("stochman") is None:
        print(f"stochman: not installed, part skipped. Install it with\n    {INSTALL}", flush=True)
        return {"skipped": f"stochman is not installed: {INSTALL}"}
    tried = {}
    for lr in args.stochman_lr:  # its learning rate tuned as fairly as ours: the best of several
        run = tried[f"{lr:g}"] = run_stochman(G, lpips, z_a, z_b, n, args.stochman_iter,
                                              args.num_nodes or args.interior, lr)
        print(f"stochman, Adam lr {lr:g}: best energy {run['energy']:.4f} in {run['seconds']:.1f} s", flush=True)
    theirs = dict(min(tried.values(), key=lambda run: run["energy"]))
    theirs["by_lr"] = {lr: {key: run[key] for key in ("seconds", "cpu_seconds", "energy", "final_energy_checked")}
                       for lr, run in tried.items()}
    target = max(ours["energy"], theirs["energy"])
    t_ours = first_time(ours["times"], ours["energies"], target)
    t_theirs = first_time(theirs["times"], theirs["energies"], target)
    ratio = t_theirs / t_ours
    theirs |= {"target_energy": target, "seconds_to_target": t_theirs, "ours_seconds_to_target": t_ours,
               "speedup": ratio}
    print(f"stochman (best lr {theirs['lr']:g}): {theirs['evaluations']} Adam steps on {theirs['parameters']} "
          f"spline parameters in {theirs['seconds']:.1f} s (CPU {theirs['cpu_seconds']:.1f} s), best energy "
          f"{theirs['energy']:.4f} (ours {ours['energy']:.4f}); both reach {target:.4f} after {t_theirs:.1f} s "
          f"(stochman) and {t_ours:.1f} s (ours): ours {ratio:.1f}x faster", flush=True)
    return theirs


def _floats(text: str) -> tuple:
    return tuple(float(x) for x in text.split(","))


def _fmt(value, spec):
    return "-" if value is None else format(value, spec)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pairs", type=int, default=1, help="pairs of codes (seeds 1, 2, ...)")
    parser.add_argument("--interior", type=int, default=16, help="interior points of the path (n = interior + 1)")
    parser.add_argument("--rtol", type=float, default=geodesic.RTOL, help="our relative energy tolerance")
    parser.add_argument("--parts", default=",".join(PARTS), help=f"comma-separated, from {', '.join(PARTS)}")
    parser.add_argument("--target-seconds", type=float, default=20.0, help="the issue's budget for ours")
    parser.add_argument("--optimiser-budget", type=float, default=3.0,
                        help="other optimisers run for this many times our seconds")
    parser.add_argument("--adam-lr", type=_floats, default=(0.003, 0.01, 0.03),
                        help="comma-separated learning rates of the Adam row(s) on our energy")
    parser.add_argument("--stochman-iter", type=int, default=300, help="Adam steps of stochman's recipe")
    parser.add_argument("--stochman-lr", type=_floats, default=(0.03, 0.1, 0.3),
                        help="comma-separated learning rates for stochman's Adam (its own: 0.1); the best is compared")
    parser.add_argument("--num-nodes", type=int, default=0,
                        help="stochman's spline nodes (0: as many as our interior points, the same number of codes)")
    parser.add_argument("--metric-k", type=int, default=10, help="top-k of the metric along our path (0 skips)")
    parser.add_argument("--metric-tol", type=float, default=1e-3)
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--json", default=None, help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    args.parts = [part for part in args.parts.split(",") if part]
    unknown = set(args.parts) - set(PARTS)
    if unknown:
        parser.error(f"unknown parts {sorted(unknown)}; choose from {', '.join(PARTS)}")
    if args.threads:
        torch.set_num_threads(args.threads)
    G = generators.load("dcgan-faces64")
    lpips = distances.lpips("alex")
    info = machine(torch.device("cpu"))
    print(f"{info['device_name']}, {info['threads']} threads, load {info['load_average']}, {info['date']}",
          flush=True)
    warm = G.sample(2, seed=0)
    geodesic.geodesic(G, lpips, warm[0], warm[1], n=2, max_iter=1, precondition=False)  # untimed warm-up
    start = time.perf_counter()
    results = [bench_pair(G, lpips, seed, args) for seed in range(1, args.pairs + 1)]
    info["load_average_after"] = [round(x, 2) for x in os.getloadavg()]
    total = time.perf_counter() - start
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": info, "total_seconds": total, "settings": vars(args), "pairs": results}, f,
                      indent=2, default=lambda x: None if isinstance(x, float) and math.isnan(x) else str(x))
    return results


if __name__ == "__main__":
    main()
