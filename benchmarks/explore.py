"""Latency of the explorer app (`helpers.explore`): how long one slider move takes once the metric is cached.

    python benchmarks/explore.py                      # both embedded models, 20 timed updates each
    python benchmarks/explore.py --models dcgan-faces64 --updates 50 --threads 2

Per model it prints the time to open the app (loading the distance and computing the exact metric at the
code, then the first strip: the baseline), the median and 90th percentile of the later updates, and the ratio
of the two measured in the same run. Each timed update changes one control (rank, step or walk mode in turn)
to a new value, with the metric cached. The target (issue 6): an update within a second on CPU.
"""
from __future__ import annotations

import argparse
import contextlib
import io
import json
import time

import numpy as np
import torch

from helpers import generators
from helpers.explore import Explorer

TARGET_SECONDS = 1.0


def timed_move(app: Explorer, control: str, value) -> float:
    """Seconds for one control change, as a user makes it: setting the widget's value runs the app's update."""
    start = time.perf_counter()
    with contextlib.redirect_stdout(io.StringIO()):  # outside Jupyter, display() would print the figure
        setattr(getattr(app, control), "value", value)
    return time.perf_counter() - start


def bench_model(name: str, updates: int, device: str) -> dict:
    """Opening the app (metric computed) and `updates` cached control changes, for one model."""
    G = generators.load(name, device=device)
    with contextlib.redirect_stdout(io.StringIO()):
        start = time.perf_counter()
        app = Explorer({name: G}, device=device)  # its constructor runs the first update
        opened = time.perf_counter() - start
    moves = [("rank", 2 + i % 30) if i % 3 == 0 else ("step", 0.5 + 0.5 * (i % 7)) if i % 3 == 1
             else ("mode", ("linear", "spherical")[(i // 3) % 2 == 0]) for i in range(updates)]
    times = [timed_move(app, control, value) for control, value in moves]
    median, p90 = float(np.median(times)), float(np.percentile(times, 90))
    return {"model": name, "latent_dim": G.latent_dim, "open_seconds": opened, "median_seconds": median,
            "p90_seconds": p90, "max_seconds": max(times), "open_over_median": opened / median, "times": times,
            "meets_target": p90 < TARGET_SECONDS}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", default="dcgan-faces64,cdcgan-eyes128", help="comma-separated model names")
    parser.add_argument("--updates", type=int, default=20, help="timed cached updates per model")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=None, help="torch CPU threads (default: torch's)")
    parser.add_argument("--json", default=None, help="also write the results to this JSON file")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__} | {args.device} | {torch.get_num_threads()} threads | "
          f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}")
    print(f"{'model':<16} {'open app':>13} {'cached median':>14} {'cached p90':>11} {'open/median':>13}  "
          f"target (p90 < {TARGET_SECONDS:g} s)")
    results = []
    for name in args.models.split(","):
        r = bench_model(name, args.updates, args.device)
        results.append(r)
        print(f"{name:<16} {r['open_seconds']:>12.3f}s {r['median_seconds']:>13.3f}s "
              f"{r['p90_seconds']:>10.3f}s {r['open_over_median']:>12.1f}x  {'met' if r['meets_target'] else 'MISSED'}",
              flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(results, f, indent=2)


if __name__ == "__main__":
    main()
