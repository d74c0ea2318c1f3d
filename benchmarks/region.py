"""Cost of the metrics of an image region, per image: ours (one forward-mode pass, both metrics) against the
reverse-mode pixel Jacobian of LowRankGAN's recipe.

    python benchmarks/region.py                                   # every case, on the GPU if there is one
    python benchmarks/region.py --device cpu --cases faces64 --repeats 3
    python benchmarks/region.py --device cpu --cases faces256 --rows 4096 --loop-rows 256

Per case it prints seconds per image of each step, measured in the same run after an untimed warm-up, and the
speed-up against the baseline, LowRankGAN's pixel Jacobian as their code computes it (one backward pass per
pixel). See README.md.
"""
from __future__ import annotations

import argparse
import importlib.util
import json
import time
from pathlib import Path

import torch
from tqdm.auto import tqdm

from helpers import distances, generators, local
from helpers.metric import float32_convolutions, region_metric


def _sibling(name):
    spec = importlib.util.spec_from_file_location(f"benchmark_{name}", Path(__file__).with_name(f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


_metric_benchmark = _sibling("metric")
machine, measure, NO_FIXED = _metric_benchmark.machine, _metric_benchmark.measure, _metric_benchmark.NO_FIXED

CASES = {  # generator, LPIPS working resolution (None: the image's own), pixel-Jacobian resolution, label px
    "faces64": ("dcgan-faces64", None, None, 64),
    "faces256": ("dcgan-faces64", 256, 256, 256),
}
EYES_BOX = ((0.36, 0.52), (0.16, 0.84))  # rows, cols: the eyes of the aligned DCGAN faces (chapter 07)
BASELINE = "pixel Jacobian, per pixel"


def bench_case(case: str, device, repeats: int, rows: int, loop_rows: int, chunk_size: int, pixel_chunk: int,
               allow_tf32: bool = False) -> dict:
    """Every measurement of one case, as rows of a table."""
    name, resize, size, px = CASES[case]
    G = generators.load(name, device=device)
    lpips = distances.lpips("alex", resize=resize, device=device)
    z = G.sample(1, seed=0)
    with torch.no_grad():
        native = G(z).shape[-1]
    side = native if size is None else size
    mask = distances.box(side, *EYES_BOX)
    n_pixels = side * side
    image = local.pixel_map(G, size, True)
    d = z.shape[1]

    def ours(distance):
        def run(n):
            region_metric(G, z, distance, mask, chunk_size=chunk_size, progress=False, allow_tf32=allow_tf32)
            return NO_FIXED
        return run

    def pixel(vectorize, n_rows):
        def run(n):
            J = local.pixel_rows(image, z[0], range(n), vectorize=vectorize, chunk_size=pixel_chunk, progress=n > 4096)
            if n == n_pixels:
                local.pixel_region_metrics(J, mask, (side, side))
            return NO_FIXED
        return run, min(n_rows or n_pixels, n_pixels), n_pixels

    def recipe():
        # this image's pixel metrics (forward mode: 2·J_fᵀJ_f/n_f, RGB unfused), so Robust PCA sees real spectra
        binary = (distances.resize_mask(mask, native) >= 0.5).float()
        pair = [m.H[0] / 2 for m in region_metric(G, z, distances.mse(), binary, progress=False)]

        def run(n):
            local.lowrank_directions(*pair)
            return NO_FIXED
        return run, 1, 1

    plan = [("region metric, LPIPS (ours)", ours(lpips), 1, 1, "one forward-mode pass: H_region and H_rest, eigh"),
            ("region metric, MSE (ours)", ours(distances.mse()), 1, 1, f"pixel metrics at {native} px, RGB unfused"),
            ("pixel Jacobian, vmapped", *pixel(True, rows), "reverse mode, batched, + masked JᵀJ"),
            (BASELINE, *pixel(False, loop_rows), "reverse mode, one pass per pixel (their code)"),
            ("Robust PCA + projection", *recipe(), "the rest of their recipe (CPU, numpy)")]
    title = (f"{case}: {G.name}, LPIPS-alex at {px} px vs the pixel Jacobian at {side} px "
             f"({n_pixels} pixel rows, fused RGB), eyes box, d = {d}")
    out = []
    for label, run, n, total, notes in (bar := tqdm(plan, desc=case, leave=False)):
        bar.set_postfix_str(label)
        row = {"method": label, "notes": notes}
        row |= measure(run, n, total, repeats, device, warmup=True)
        if n < total:
            row["notes"] += f"; extrapolated from {n}/{total} rows"
        out.append(row)
    seconds = {row["method"]: row["seconds"] for row in out}
    for row in out:
        row["speedup_vs_lowrankgan"] = seconds[BASELINE] / row["seconds"] if row["seconds"] else None
    return {"title": title, "pixels": n_pixels, "latent_dim": d, "repeats": repeats, "rows": out}


def table(result: dict) -> str:
    lines = [f"== {result['title']} ==",
             f"{'step':<30} {'s/image':>10} {'vs LowRankGAN':>14} {'CPU s/image':>12} {'peak memory':>12}  notes"]
    for row in result["rows"]:
        peak = row["peak_bytes"]
        lines.append(f"{row['method']:<30} {row['seconds']:>10.4g} {row['speedup_vs_lowrankgan']:>13.3g}x "
                     f"{row['cpu_seconds']:>12.4g} {f'{peak / 2 ** 20:.0f} MiB' if peak is not None else 'n/a':>12}  "
                     f"{row['notes']}")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", choices=("cpu", "cuda"), default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--cases", default=",".join(CASES), help=f"comma-separated, from {', '.join(CASES)}")
    parser.add_argument("--repeats", type=int, default=1, help="timed calls per measurement (median reported)")
    parser.add_argument("--rows", type=int, default=0,
                        help="vmapped pixel Jacobian on the first N pixel rows only, extrapolated (0: all)")
    parser.add_argument("--loop-rows", type=int, default=512,
                        help="per-pixel pixel Jacobian on the first N rows only, extrapolated (0: all)")
    parser.add_argument("--chunk-size", type=int, default=256, help="images per vmapped JVP call (ours)")
    parser.add_argument("--pixel-chunk", type=int, default=256, help="pixel rows per vmapped backward call")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--allow-tf32", action="store_true", help="TF32 convolutions on the GPU (default: float32)")
    parser.add_argument("--json", default=None, help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    cases = args.cases.split(",")
    for case in cases:
        if case not in CASES:
            parser.error(f"unknown case {case!r}; choose from {', '.join(CASES)}")
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    info = machine(device) | {"allow_tf32": args.allow_tf32}
    print(f"torch {info['torch']} | {info['device']}: {info['device_name']} | {info['threads']} threads of "
          f"{info['cpu_count']} CPUs | load average {info['load_average'][0]} | {info['date']}", flush=True)
    results = {}
    start = time.perf_counter()
    for case in cases:
        with float32_convolutions(args.allow_tf32):
            results[case] = bench_case(case, device, args.repeats, args.rows, args.loop_rows, args.chunk_size,
                                       args.pixel_chunk, args.allow_tf32)
        print("\n" + table(results[case]), flush=True)
    total = time.perf_counter() - start
    print(f"\ntotal {total:.0f} s (warm-ups and model loading included)")
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": info, "total_seconds": total, "cases": results}, f, indent=2)


if __name__ == "__main__":
    main()
