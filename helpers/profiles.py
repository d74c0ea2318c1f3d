"""The book's run profiles: the parameter overrides of `python -m helpers.book run --profile smoke|default|full`.
Chapters read them too (to say what a full run would do); a profile's names that a chapter lacks are skipped for it.
"""
from __future__ import annotations

# Chapter 05 (inversion): its smoke run tries every method on one target; its full run inverts at the paper's
# sample size (50 targets × 5 starts, tuned over 5 learning rates × 3 schedules, every method on every model).
_SMOKE_05 = {"n_targets": 1, "n_starts": 1, "n_tune": 1, "n_photos": 1, "budget": 10, "other_budget": 10,
             "lrs": [0.2], "basin_generations": 1, "basin_popsize": 2, "basin_inner_steps": 2, "toy_angles": 3,
             "toy_steps": 30}
_FULL_05 = {"n_targets": 50, "n_starts": 5, "n_tune": 5, "n_photos": 10, "budget": 300, "other_budget": 300,
            "other_methods": ["z", "eigenbasis", "top-k", "BasinCMA, z", "BasinCMA, eigenbasis"],
            "lrs": [0.05, 0.1, 0.2, 0.4, 0.8], "schedules": ["constant", "cosine", "step"], "basin_generations": 4,
            "basin_popsize": 8, "basin_inner_steps": 5, "threshold": 0.05}
# Chapter 08 (activation maximisation): its smoke run searches one unit of conv1 and conv5 once; its full run uses
# both priors, 3 units per layer × 5 starts, 300 images per search.
_SMOKE_08 = {"am_layers": ["conv1", "conv5"], "am_units": 1, "am_repeats": 1, "control_repeats": 1, "am_budget": 8}
_FULL_08 = {"am_models": ["dcgan-celeba64", "cdcgan-eyes128"], "am_units": 3, "am_repeats": 5, "control_repeats": 5,
            "am_budget": 300}

# Chapter 09 (geodesics): its smoke run joins two pairs per model in four steps on a 3 × 3 slice; its full run
# joins 30 pairs per model in 16 steps (15 interior codes), up to 200 L-BFGS iterations, on an 11 × 11 slice,
# and follows the top 5 eigenvectors.
_SMOKE_09 = {"n_pairs": 2, "path_steps": 4, "max_iter": 20, "slice_grid": 3}
_FULL_09 = {"n_pairs": 30, "path_steps": 16, "max_iter": 200, "slice_grid": 11, "turn_k": 5}

PROFILES: dict[str, dict] = {
    # smoke: every chapter in about a minute or less on 2 CPU cores (the rendered-book test uses it)
    "smoke": {"n_images": 4, "eps_grid": [1e-4, 1e-2], "n_points": 3, "n_reference": 2,
              "n_pca_samples": 500, "global_ranks": [1, 2], "ranks": [1, 4, 16], "n_steps": 5,
              "models": ["dcgan-celeba64", "fcgan-cats64"], "compare_distances": ["mse"], **_SMOKE_05, **_SMOKE_08,
              "n_codes": 2, "lpips_size": 64, "face_regions": ["eyes"], "eye_regions": ["iris"], "n_mean": 16,
              "n_directions": 2, "lowrank_regions": ["eyes"], "lowrankgan_size": 16, "rpca_max_iter": 200,
              **_SMOKE_09},
    "default": {},
    # full: paper-scale settings (30 points, as the paper's DCGAN figures); meant for a GPU
    "full": {"n_images": 16, "n_compare": 10, "n_points": 30, "n_reference": 8,
             "online_models": ["biggan-deep-128"],  # with its published weights when online; left out offline
             **_FULL_05, **_FULL_08, **_FULL_09},
}
