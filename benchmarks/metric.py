"""Cost of the metric tensor H(z) by each method of `helpers.metric`, against one forward pass.

    python benchmarks/metric.py                                  # every case, on the GPU if there is one
    python benchmarks/metric.py --device cpu --cases faces64 --batch 16 --repeats 3
    python benchmarks/metric.py --device cpu --cases biggan256 --directions 16 --batch 0

Per case it prints seconds per Hessian (one point, after an untimed warm-up call), the speed-up against
`backprop` measured in the same run, the peak GPU memory, the batched `jacobian` throughput and the cost
floor (one no-grad forward pass of G and the distance's features on d perturbed codes); for the top-k
solver 'subspace' (cold and warm-started) the Jacobian columns it spent, its certificate and its speed-up
against `jacobian`; and the Gauss–Newton against the double-backprop Hessian-vector product. See README.md.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import time

import numpy as np
import torch
from tqdm.auto import tqdm

from helpers import distances, generators
from helpers import operators
from helpers.metric import METHODS, default_chunk_size, eigh_descending, float32_convolutions, hvp, metric

K = 20  # eigenpairs for the top-k methods
CHOICES = METHODS + ("hvp",)  # --methods: metric methods, and 'hvp' for the Hessian-vector product rows
CASES = {  # generator, its options, LPIPS working resolution in px (None: the image's own), that resolution
    "faces64": ("dcgan-faces64", {}, None, 64),
    "faces256": ("dcgan-faces64", {}, 256, 256),
    "biggan256": ("biggan-deep-256", {"weights": "random"}, None, 256),
    "biggan128": ("biggan-deep-128", {"weights": "random"}, None, 128),  # a cheaper stand-in for biggan256
}


def machine(device: torch.device) -> dict:
    """Torch version, device name, CPU threads and load, date."""
    if device.type == "cuda":
        name = torch.cuda.get_device_name(device)
    else:
        with open("/proc/cpuinfo") as f:
            models = [line.split(":", 1)[1].strip() for line in f if line.startswith("model name")]
        name = models[0] if models else platform.processor() or "unknown CPU"
    return {"torch": torch.__version__, "device": device.type, "device_name": name,
            "cpu_count": os.cpu_count(), "threads": torch.get_num_threads(),
            "load_average": [round(x, 2) for x in os.getloadavg()],
            "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())}


def clocks(device: torch.device) -> np.ndarray:
    """[wall, process CPU] seconds now (CPU: all threads), once queued GPU work is done."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    return np.array([time.perf_counter(), time.process_time()])


NO_FIXED = np.zeros(2)


def measure(run, n: int, d: int, repeats: int, device: torch.device, warmup: bool = True) -> dict:
    """Time run(n) `repeats` times after a warm-up (run(1) when n < d) and extrapolate to d directions.

    run(n) does the work for the first n latent directions and returns the [wall, CPU] seconds of it that do
    not grow with n (the backprop gradient graph); the estimate for d is fixed + (total − fixed)·d/n.
    Peak memory is CUDA's max_memory_allocated, reset before each call (None on CPU).
    """
    if warmup:
        run(n if n == d else 1)
    estimates, times, peaks = [], [], []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        start = clocks(device)
        fixed = run(n)
        total = clocks(device) - start
        times.append(float(total[0]))
        estimates.append(fixed + (total - fixed) * d / n)
        peaks.append(torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None)
    wall, cpu = np.median(estimates, axis=0)
    return {"seconds": float(wall), "cpu_seconds": float(cpu), "times": times,
            "peak_bytes": None if peaks[0] is None else max(peaks)}


def jacobian_run(G, distance, z, chunk_size, allow_tf32, progress=False, out=None):
    """run(n) for 'jacobian': the public `metric` on all d directions (the result kept in out['result']), the
    JVPs and Gram matrix on fewer."""
    d = z.shape[1]
    out = {} if out is None else out

    def run(n):
        if n == d:
            out["result"] = metric(G, z, distance, "jacobian", chunk_size=chunk_size, progress=progress,
                                   allow_tf32=allow_tf32)
        else:
            directions = torch.eye(d, dtype=z.dtype, device=z.device)[:n]
            (J,) = operators.feature_jacobian(lambda x: (distance.features(G(x)),), z, directions, chunk_size)
            operators.gram64(J)
        return NO_FIXED

    return run


def backprop_run(G, distance, z, device, allow_tf32):
    """run(n) for 'backprop': the public `metric` on all d rows; on fewer, the create_graph gradient once
    (returned as the fixed seconds) and then n second-backward rows."""
    d = z.shape[1]

    def run(n):
        if n == d:
            metric(G, z, distance, "backprop", progress=True, allow_tf32=allow_tf32)
            return NO_FIXED
        start = clocks(device)
        operator = operators.DoubleBackprop(G, z, distance)
        graph = clocks(device) - start
        for i in tqdm(range(n), desc="backprop rows", leave=False):
            torch.autograd.grad(operator.gradient[:, i].sum(), operator.z_var, retain_graph=True)
        return graph

    return run


def topk_run(G, distance, z, method, allow_tf32):
    """run(n) for 'lanczos' and 'finite-difference' (all directions only)."""

    def run(n):
        metric(G, z, distance, method, k=K, progress=False, allow_tf32=allow_tf32)
        return NO_FIXED

    return run


def floor_run(G, distance, z):
    """run(n): one no-grad forward pass of G and the distance's features on n perturbed codes."""
    d = z.shape[1]

    def run(n):
        codes = z + 1e-2 * torch.eye(d, dtype=z.dtype, device=z.device)[:n]
        with torch.no_grad():
            distance.features(G(codes))
        return NO_FIXED

    return run


def subspace_run(G, distance, z, chunk_size, allow_tf32, basis=None, tol=None, block=None, out=None, relative=False):
    """run(n) for 'subspace' (always the whole solve: its cost cannot be cut by directions); the last result
    is kept in out['result'] for its passes and certificate."""

    def run(n):
        out["result"] = metric(G, z, distance, "subspace", k=K, tol=tol, block=block, basis=basis, relative=relative,
                               chunk_size=chunk_size, progress=False, allow_tf32=allow_tf32)
        return NO_FIXED

    return run


def warm_basis(G, distance, codes, chunk_size, allow_tf32, tol=None, block=None):
    """The top min(2K, K·codes) eigenvectors of the average of the top-K metrics V Λ Vᵀ ('subspace') at other
    codes (the solver seeds its Krylov space with random mixtures of them: wider than K covers more of the
    point's own top-K space; beyond the average's rank K·codes there is nothing to add)."""
    width = min(2 * K, K * len(codes))
    average = 0
    for code in tqdm(codes, desc="warm start: average metric", leave=False):
        average = average + metric(G, code, distance, "subspace", k=K, tol=tol, block=block, chunk_size=chunk_size,
                                   progress=False, allow_tf32=allow_tf32).H[0] / len(codes)
    return eigh_descending(average)[1][:, :width]


def hvp_run(G, distance, z, kind, columns, chunk_size, allow_tf32):
    """run(n): the operator built once (returned as the fixed seconds) and applied to n vectors, one at a time
    (columns=1, as ARPACK does) or in blocks of `columns`."""
    d = z.shape[1]
    device = z.device

    def run(n):
        start = clocks(device)
        operator = hvp(G, z[0], distance, kind=kind, chunk_size=chunk_size, allow_tf32=allow_tf32)
        graph = clocks(device) - start
        V = np.random.default_rng(0).standard_normal((d, n))
        for s in range(0, n, columns):
            operator.matmat(V[:, s:s + columns])
        return graph

    return run


def solver_notes(result, exact_eigvals, seconds, exact_seconds, d) -> tuple[str, dict]:
    """Notes and numbers of a 'subspace' row: passes, certificate, accuracy against the exact metric."""
    jvps, vjps = (int(x) for x in result.passes[0])
    lam1 = float(result.eigvals[0, 0])
    certificate = float(result.residuals[0].max() / lam1)
    bound = float((result.residuals[0] / result.eigvals[0]).max())  # each θ within ‖r‖ of an eigenvalue
    spread = float(result.eigvals[0, -1] / lam1)  # lambda_K / lambda_1: tol = target * spread certifies the target
    numbers = {"jvp_columns": jvps, "vjp_columns": vjps, "max_residual_over_lambda1": certificate,
               "max_residual_over_eigenvalue": bound, "lambdaK_over_lambda1": spread, "tol": result.options["tol"],
               "block": result.options["block"], "relative": result.options.get("relative", False)}
    notes = (f"top-{K}, {jvps} JVP + {vjps} VJP columns (jacobian: {d} JVP) in {seconds / jvps:.3g} s per column"
             + (f" (jacobian: {exact_seconds / d:.3g} s per JVP column, ratio {seconds / jvps / (exact_seconds / d):.2f}: "
                f"the solver wins below {exact_seconds / (seconds / jvps):.0f} columns)" if exact_seconds else "")
             + f"; residuals <= {certificate:.1e} lambda1 "
             f"(tol {result.options['tol']:g}{', per eigenvalue' if numbers['relative'] else ''}), each eigenvalue within {bound:.1e} relative "
             f"(lambda{K}/lambda1 = {spread:.2g})")
    if exact_eigvals is not None:
        error = float(((result.eigvals[0] - exact_eigvals[:K]).abs() / exact_eigvals[:K]).max())
        numbers["max_eigenvalue_rel_error"] = error
        notes += f"; measured max eigenvalue error {error:.1e}"
    numbers["seconds_per_column"] = seconds / jvps
    if exact_seconds:
        numbers["jacobian_seconds_per_column"] = exact_seconds / d
        numbers["column_cost_ratio"] = seconds / jvps / (exact_seconds / d)
        numbers["break_even_columns"] = exact_seconds / (seconds / jvps)
        numbers["speedup_vs_jacobian"] = exact_seconds / seconds
        notes += f"; {exact_seconds / seconds:.2f}x jacobian"
    return notes, numbers


def measure_hvp(run, vectors: int, repeats: int, device: torch.device) -> dict:
    """Seconds per vector of an hvp operator (its graph built once per call, not counted), after a warm-up."""
    run(min(2, vectors))
    per_vector, builds, peaks = [], [], []
    for _ in range(repeats):
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        start = clocks(device)
        build = run(vectors)
        total = clocks(device) - start
        per_vector.append((total - build) / vectors)
        builds.append(float(build[0]))
        peaks.append(torch.cuda.max_memory_allocated(device) if device.type == "cuda" else None)
    wall, cpu = np.median(per_vector, axis=0)
    return {"seconds": float(wall), "cpu_seconds": float(cpu), "times": [float(t[0]) for t in per_vector],
            "build_seconds": float(np.median(builds)), "peak_bytes": None if peaks[0] is None else max(peaks)}


def bench_case(case: str, device, methods, batch, repeats, directions, chunk_size, allow_tf32=False, *,
               warm_codes: int = 4, tol=None, block=None, hvp_vectors: int = K, relative: bool = False) -> dict:
    """Every measurement of one case, as rows of a table."""
    name, options, resize, size = CASES[case]
    G = generators.load(name, device=device, **options)
    distance = distances.lpips("alex", resize=resize, device=device)
    z = G.sample(1, seed=0)
    d = z.shape[1]
    n = d if not directions or directions >= d else directions
    subset = f"extrapolated from {n}/{d} directions" if n < d else ""
    title = f"{case}: {G.name} + LPIPS-alex at {size} px, d = {d}" + (f", {subset}" if subset else "")
    exact = {}

    plan = []  # (label, run, warm up?, notes, directions measured, kind)
    for method in methods:
        if method == "jacobian":
            plan.append((method, jacobian_run(G, distance, z, chunk_size, allow_tf32, out=exact), True, "exact", n,
                         "metric"))
        elif method == "backprop":
            plan.append((method, backprop_run(G, distance, z, device, allow_tf32), True, "exact", n, "metric"))
        elif method == "subspace":
            solved = {}
            plan.append(("subspace", subspace_run(G, distance, z, chunk_size, allow_tf32, tol=tol, block=block,
                                                  out=solved, relative=relative), False, solved, d, "subspace"))
            if warm_codes > 0:
                warm = {}
                prepare = lambda warm=warm: warm.update(basis=warm_basis(  # noqa: E731
                    G, distance, G.sample(warm_codes, seed=2), chunk_size, allow_tf32, tol=tol, block=block))
                plan.append(("subspace, warm", (prepare, warm, G, distance, z, chunk_size, allow_tf32, tol, block),
                             False, {}, d, "warm"))
        elif method == "hvp":
            for columns in (1, K):
                for kind in ("gauss-newton", "double-backprop"):
                    shape = "1 vector at a time" if columns == 1 else f"blocks of {columns}"
                    plan.append((f"hvp {kind}, {'single' if columns == 1 else f'block {columns}'}",
                                 hvp_run(G, distance, z, kind, columns, chunk_size, allow_tf32), True,
                                 f"s per vector, {shape}", hvp_vectors, "hvp"))
        elif n == d:
            plan.append((method, topk_run(G, distance, z, method, allow_tf32), True, f"top-{K}", n, "metric"))
        else:
            plan.append((method, None, False, f"skipped: top-{K} methods need all {d} directions", n, "metric"))
    plan.append(("forward floor", floor_run(G, distance, z), True, f"no grad, one batch of {n} codes", n, "metric"))
    if batch > 0:
        zb = G.sample(batch, seed=1)
        # Warmed up by the single-point 'jacobian' run (same code, larger shapes); on CUDA warm it up anyway.
        plan.append((f"jacobian, batch {batch}", jacobian_run(G, distance, zb, chunk_size, allow_tf32, progress=True),
                     device.type == "cuda", f"{batch} points", n, "metric"))

    rows = []
    steps = tqdm(plan, desc=case, leave=False)
    solver_warmed = False
    for label, run, warmup, notes, measured, kind in steps:
        steps.set_postfix_str(label)
        row = {"method": label, "notes": notes if isinstance(notes, str) else "", "seconds_per_hessian": None,
               "cpu_seconds_per_hessian": None, "peak_bytes": None, "times": []}
        if kind in ("subspace", "warm") and not solver_warmed:  # a small solve warms up the code paths
            metric(G, z, distance, "subspace", k=2, block=2, tol=0.5, chunk_size=chunk_size, progress=False,
                   allow_tf32=allow_tf32)
            solver_warmed = True
        if kind == "warm":
            prepare, warm, *args = run
            start = time.perf_counter()
            prepare()
            row["prepare_seconds"] = time.perf_counter() - start
            notes = {}
            run = subspace_run(*args[:5], basis=warm["basis"], tol=args[5], block=args[6], out=notes,
                               relative=relative)
        if kind == "hvp":
            row |= measure_hvp(run, measured, repeats, device)
        elif run is not None:
            row |= measure(run, measured, measured if kind in ("subspace", "warm") else d, repeats, device, warmup)
        if "seconds" in row:
            points = batch if label.startswith("jacobian, batch") else 1
            row["seconds_per_hessian"] = row.pop("seconds") / points
            row["cpu_seconds_per_hessian"] = row.pop("cpu_seconds") / points
        if kind in ("subspace", "warm"):
            row["solver"] = notes["result"]
        row["kind"] = kind
        rows.append(row)

    seconds = {row["method"]: row["seconds_per_hessian"] for row in rows}
    exact_eigvals = exact["result"].eigvals[0].cpu() if "result" in exact else None
    for row in rows:
        s, kind = row["seconds_per_hessian"], row.pop("kind")
        row["speedup_vs_backprop"] = (seconds["backprop"] / s if s and seconds.get("backprop") and kind != "hvp"
                                      and row["method"] != "forward floor" else None)
        if "solver" in row:
            row["notes"], row["solver"] = solver_notes(row["solver"], exact_eigvals, s, seconds.get("jacobian"), d)
            if "prepare_seconds" in row:
                row["notes"] += (f"; warm start: top-{min(2 * K, K * warm_codes)} eigenvectors of the average of "
                                 f"{warm_codes} other codes' "
                                 f"top-{K} metrics (prepared once, {row['prepare_seconds']:.3g} s, not counted)")
        if kind == "hvp" and s:
            other = row["method"].replace("gauss-newton", "double-backprop")
            if other != row["method"] and seconds.get(other):
                row["notes"] += f"; double-backprop/gauss-newton = {seconds[other] / s:.2f}x"
            row["notes"] += f"; operator built in {row['build_seconds']:.3g} s (not counted)"
        if row["method"] == "forward floor" and seconds.get("jacobian"):
            row["notes"] += f"; jacobian/floor = {seconds['jacobian'] / s:.2f}x"
        if row["method"].startswith("jacobian, batch") and s:
            row["notes"] += f": {1 / s:.3g} Hessians/s; per Hessian/floor = {s / seconds['forward floor']:.2f}x"
            if seconds.get("jacobian"):
                row["notes"] += f"; per Hessian/one point alone = {s / seconds['jacobian']:.2f}x"
        if subset and row["times"] and kind == "metric":
            row["notes"] += f"; {subset}"
    return {"title": title, "latent_dim": d, "directions": n, "batch": batch, "repeats": repeats,
            "chunk_size": chunk_size, "rows": rows}


def table(result: dict) -> str:
    """The case's rows as a fixed-width text table."""
    lines = [f"== {result['title']} ==",
             f"{'method':<30} {'s/Hessian':>10} {'vs backprop':>12} {'CPU s/Hessian':>14} {'peak memory':>12}  notes"]
    for row in result["rows"]:
        s, up, cpu, peak = (row[key] for key in ("seconds_per_hessian", "speedup_vs_backprop",
                                                 "cpu_seconds_per_hessian", "peak_bytes"))
        lines.append(f"{row['method']:<30} {f'{s:.4g}' if s else '-':>10} {f'{up:.2f}x' if up else '-':>12} "
                     f"{f'{cpu:.4g}' if cpu else '-':>14} "
                     f"{f'{peak / 2 ** 20:.0f} MiB' if peak is not None else 'n/a':>12}  {row['notes']}")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--cases", default=",".join(CASES), help=f"comma-separated, from {', '.join(CASES)}")
    parser.add_argument("--methods", default=",".join(CHOICES),
                        help=f"comma-separated, from {', '.join(CHOICES)} ('hvp': Gauss-Newton against "
                             f"double-backprop Hessian-vector products)")
    parser.add_argument("--batch", type=int, default=64, help="points for the batched jacobian run (0: skip it)")
    parser.add_argument("--repeats", type=int, default=1, help="timed calls per measurement (median reported)")
    parser.add_argument("--directions", type=int, default=None,
                        help="exact methods on the first N directions only, extrapolated to d (0: all); "
                             "default: all, except 16 for biggan256 on CPU")
    parser.add_argument("--chunk-size", type=int, default=None,
                        help="images per vmapped call (jacobian, subspace, hvp blocks); default: metric's, by device")
    parser.add_argument("--tol", type=float, default=None, help="subspace: residuals <= tol*lambda1 (default: metric's)")
    parser.add_argument("--relative", action="store_true",
                        help="subspace: residuals <= tol*lambda_i for each pair (each eigenvalue certified to tol relative)")
    parser.add_argument("--block", type=int, default=None, help="subspace: directions per iteration (default: by device)")
    parser.add_argument("--warm-codes", type=int, default=4,
                        help="subspace, warm: other codes whose average metric gives the warm start (0: no warm row)")
    parser.add_argument("--hvp-vectors", type=int, default=K, help="vectors per timed hvp call")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--allow-tf32", action="store_true",
                        help="let cuDNN convolutions use TF32 on the GPU, torch's default (metric's default: float32)")
    parser.add_argument("--json", default=None, help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    cases = args.cases.split(",")
    methods = args.methods.split(",")
    for value, known in [(c, CASES) for c in cases] + [(m, CHOICES) for m in methods]:
        if value not in known:
            parser.error(f"unknown {value!r}; choose from {', '.join(known)}")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    chunk_size = args.chunk_size or default_chunk_size(device)

    info = machine(device) | {"allow_tf32": args.allow_tf32, "chunk_size": chunk_size}
    print(f"torch {info['torch']} | {info['device']}: {info['device_name']} | {info['threads']} threads of "
          f"{info['cpu_count']} CPUs | load average {info['load_average'][0]} | {info['date']}"
          + f" | {chunk_size} images per call" + (" | TF32 convolutions allowed" if args.allow_tf32 else ""),
          flush=True)
    results = {}
    start = time.perf_counter()
    for case in cases:
        directions = args.directions
        if directions is None:
            directions = 16 if case == "biggan256" and device.type == "cpu" else 0
        with float32_convolutions(args.allow_tf32):  # the floor and the partial runs at the metric's precision
            results[case] = bench_case(case, device, methods, args.batch, args.repeats, directions, chunk_size,
                                       args.allow_tf32, warm_codes=args.warm_codes, tol=args.tol, block=args.block,
                                       hvp_vectors=args.hvp_vectors, relative=args.relative)
        print("\n" + table(results[case]), flush=True)
    total = time.perf_counter() - start
    print(f"\ntotal {total:.0f} s (warm-ups and model loading included)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": info, "total_seconds": total, "cases": results}, f, indent=2)


if __name__ == "__main__":
    main()
