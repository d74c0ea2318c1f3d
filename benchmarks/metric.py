"""Cost of the metric tensor H(z) by each method of `helpers.metric`, against one forward pass.

    python benchmarks/metric.py                                  # every case, on the GPU if there is one
    python benchmarks/metric.py --device cpu --cases faces64 --batch 16 --repeats 3
    python benchmarks/metric.py --device cpu --cases biggan256 --directions 16 --batch 0

Per case it prints seconds per Hessian (one point, after an untimed warm-up call), the speed-up against
`backprop` measured in the same run, the peak GPU memory, the batched `jacobian` throughput and the cost
floor (one no-grad forward pass of G and the distance's features on d perturbed codes). See README.md.
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
from helpers.metric import METHODS, _feature_jacobian, _gradient_graph, _gram64, float32_convolutions, metric

K = 20  # eigenpairs for the top-k methods
CASES = {  # generator, its options, LPIPS working resolution in px (None: the image's own), that resolution
    "faces64": ("dcgan-faces64", {}, None, 64),
    "faces256": ("dcgan-faces64", {}, 256, 256),
    "biggan256": ("biggan-deep-256", {"weights": "random"}, None, 256),
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


def jacobian_run(G, distance, z, chunk_size, allow_tf32, progress=False):
    """run(n) for 'jacobian': the public `metric` on all d directions, the JVPs and Gram matrix on fewer."""
    d = z.shape[1]

    def run(n):
        if n == d:
            metric(G, z, distance, "jacobian", chunk_size=chunk_size, progress=progress, allow_tf32=allow_tf32)
        else:
            directions = torch.eye(d, dtype=z.dtype, device=z.device)[:n]
            (J,) = _feature_jacobian(lambda x: (distance.features(G(x)),), z, directions, chunk_size)
            _gram64(J)
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
        gradient, z_var = _gradient_graph(G, z, distance)
        graph = clocks(device) - start
        for i in tqdm(range(n), desc="backprop rows", leave=False):
            torch.autograd.grad(gradient[:, i].sum(), z_var, retain_graph=True)
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


def bench_case(case: str, device, methods, batch, repeats, directions, chunk_size, allow_tf32=False) -> dict:
    """Every measurement of one case, as rows of a table."""
    name, options, resize, size = CASES[case]
    G = generators.load(name, device=device, **options)
    distance = distances.lpips("alex", resize=resize, device=device)
    z = G.sample(1, seed=0)
    d = z.shape[1]
    n = d if not directions or directions >= d else directions
    subset = f"extrapolated from {n}/{d} directions" if n < d else ""
    title = f"{case}: {G.name} + LPIPS-alex at {size} px, d = {d}" + (f", {subset}" if subset else "")

    plan = []
    for method in methods:
        if method == "jacobian":
            plan.append((method, jacobian_run(G, distance, z, chunk_size, allow_tf32), True, "exact"))
        elif method == "backprop":
            plan.append((method, backprop_run(G, distance, z, device, allow_tf32), True, "exact"))
        elif n == d:
            plan.append((method, topk_run(G, distance, z, method, allow_tf32), True, f"top-{K}"))
        else:
            plan.append((method, None, False, f"skipped: top-{K} methods need all {d} directions"))
    plan.append(("forward floor", floor_run(G, distance, z), True, f"no grad, one batch of {n} codes"))
    if batch > 0:
        zb = G.sample(batch, seed=1)
        # Warmed up by the single-point 'jacobian' run (same code, larger shapes); on CUDA warm it up anyway.
        plan.append((f"jacobian, batch {batch}", jacobian_run(G, distance, zb, chunk_size, allow_tf32, progress=True),
                     device.type == "cuda", f"{batch} points"))

    rows = []
    steps = tqdm(plan, desc=case, leave=False)
    for label, run, warmup, notes in steps:
        steps.set_postfix_str(label)
        row = {"method": label, "notes": notes, "seconds_per_hessian": None, "cpu_seconds_per_hessian": None,
               "peak_bytes": None, "times": []}
        if run is not None:
            row |= measure(run, n, d, repeats, device, warmup)
            points = batch if label.startswith("jacobian, batch") else 1
            row["seconds_per_hessian"] = row.pop("seconds") / points
            row["cpu_seconds_per_hessian"] = row.pop("cpu_seconds") / points
        rows.append(row)

    seconds = {row["method"]: row["seconds_per_hessian"] for row in rows}
    for row in rows:
        s = row["seconds_per_hessian"]
        row["speedup_vs_backprop"] = (seconds["backprop"] / s if s and seconds.get("backprop")
                                      and row["method"] != "forward floor" else None)
        if row["method"] == "forward floor" and seconds.get("jacobian"):
            row["notes"] += f"; jacobian/floor = {seconds['jacobian'] / s:.2f}x"
        if row["method"].startswith("jacobian, batch") and s:
            row["notes"] += f": {1 / s:.3g} Hessians/s; per Hessian/floor = {s / seconds['forward floor']:.2f}x"
        if subset and row["times"]:
            row["notes"] += f"; {subset}"
    return {"title": title, "latent_dim": d, "directions": n, "batch": batch, "repeats": repeats, "rows": rows}


def table(result: dict) -> str:
    """The case's rows as a fixed-width text table."""
    lines = [f"== {result['title']} ==",
             f"{'method':<20} {'s/Hessian':>10} {'vs backprop':>12} {'CPU s/Hessian':>14} {'peak memory':>12}  notes"]
    for row in result["rows"]:
        s, up, cpu, peak = (row[key] for key in ("seconds_per_hessian", "speedup_vs_backprop",
                                                 "cpu_seconds_per_hessian", "peak_bytes"))
        lines.append(f"{row['method']:<20} {f'{s:.4g}' if s else '-':>10} {f'{up:.2f}x' if up else '-':>12} "
                     f"{f'{cpu:.4g}' if cpu else '-':>14} "
                     f"{f'{peak / 2 ** 20:.0f} MiB' if peak is not None else 'n/a':>12}  {row['notes']}")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--cases", default=",".join(CASES), help=f"comma-separated, from {', '.join(CASES)}")
    parser.add_argument("--methods", default=",".join(METHODS), help="comma-separated metric methods")
    parser.add_argument("--batch", type=int, default=64, help="points for the batched jacobian run (0: skip it)")
    parser.add_argument("--repeats", type=int, default=1, help="timed calls per measurement (median reported)")
    parser.add_argument("--directions", type=int, default=None,
                        help="exact methods on the first N directions only, extrapolated to d (0: all); "
                             "default: all, except 16 for biggan256 on CPU")
    parser.add_argument("--chunk-size", type=int, default=256, help="images per vmapped JVP call (jacobian)")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--allow-tf32", action="store_true",
                        help="let cuDNN convolutions use TF32 on the GPU, torch's default (metric's default: float32)")
    parser.add_argument("--json", default=None, help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    cases = args.cases.split(",")
    methods = args.methods.split(",")
    for value, known in [(c, CASES) for c in cases] + [(m, METHODS) for m in methods]:
        if value not in known:
            parser.error(f"unknown {value!r}; choose from {', '.join(known)}")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)

    info = machine(device) | {"allow_tf32": args.allow_tf32}
    print(f"torch {info['torch']} | {info['device']}: {info['device_name']} | {info['threads']} threads of "
          f"{info['cpu_count']} CPUs | load average {info['load_average'][0]} | {info['date']}"
          + (" | TF32 convolutions allowed" if args.allow_tf32 else ""), flush=True)
    results = {}
    start = time.perf_counter()
    for case in cases:
        directions = args.directions
        if directions is None:
            directions = 16 if case == "biggan256" and device.type == "cpu" else 0
        with float32_convolutions(args.allow_tf32):  # the floor and the partial runs at the metric's precision
            results[case] = bench_case(case, device, methods, args.batch, args.repeats, directions, args.chunk_size,
                                       args.allow_tf32)
        print("\n" + table(results[case]), flush=True)
    total = time.perf_counter() - start
    print(f"\ntotal {total:.0f} s (warm-ups and model loading included)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": info, "total_seconds": total, "cases": results}, f, indent=2)


if __name__ == "__main__":
    main()
