"""Inversion of the faces model by Adam in z and in the average-metric eigenbasis, and by CMA-ES.

Most faces runs are short (20 Adam steps at lr 0.2 on the distance alone, one seed); one runs `invert`'s
defaults (200 steps, 3 starts, LPIPS + L1), which must invert a generated face.
"""

import pytest
import torch

from helpers import inversion, metric
from helpers.generators import Generator

STEPS, LR = 20, 0.2  # measured: from seed 0 to the seed-123 target, LPIPS 0.292 -> 0.075 (z), 0.075 (eigen)


@pytest.fixture(scope="module")
def target(faces):
    return faces(faces.sample(1, seed=123)).detach()


@pytest.fixture(scope="module")
def average_metric(faces, lpips_alex):
    """Eigenvalues (d,) and eigenvectors (d, d) of the LPIPS metric averaged over 2 points, descending."""
    m = metric.metric(faces, faces.sample(2, seed=1000), lpips_alex, "jacobian", progress=False)
    eigvals, eigvecs = torch.linalg.eigh(m.H.mean(0))
    return eigvals.flip(0), eigvecs.flip(1)


@pytest.fixture(scope="module")
def z_run(faces, target, lpips_alex):
    return inversion.invert(faces, target, lpips_alex, steps=STEPS, lr=LR, seeds=(0,), schedule="constant",
                            pixel_weight=0.0, progress=False)


@pytest.fixture(scope="module")
def eigen_run(faces, target, lpips_alex, average_metric):
    return inversion.invert(faces, target, lpips_alex, basis=average_metric[1], steps=STEPS, lr=LR, seeds=(0,),
                            schedule="constant", pixel_weight=0.0, progress=False)


def test_default_inversion_inverts_a_generated_face(faces, target, lpips_alex):
    run = inversion.invert(faces, target, lpips_alex, progress=False)
    assert run.seeds == (0, 1, 2) and run.history.shape == (3, 200)
    assert run.history[:, 0].min() > 0.15  # three random faces, far from the target (0.20-0.29)
    assert run.loss_best.min() < 0.02  # measured 0.0045, 0.077 and 0.0055 from the three starts
    assert run.schedule == ("cosine",) * 3 and run.lr == (0.2,) * 3


def test_z_space_inversion_recovers_a_generated_target(z_run, faces, lpips_alex, target):
    start = z_run.history[0, 0].item()
    assert start > 0.25  # seed 0 vs seed 123: 0.292
    assert z_run.loss_best[0] < 0.1  # measured 0.075; two random faces are 0.2-0.3 apart
    assert z_run.loss_best[0] < start / 3
    assert z_run.z_best.shape == (1, faces.latent_dim) and z_run.images.shape == (1, 3, 64, 64)
    with torch.no_grad():  # the stored images and losses are those of the stored codes
        torch.testing.assert_close(z_run.images, faces(z_run.z_best))
        torch.testing.assert_close(lpips_alex(target, z_run.images), z_run.loss_best, atol=1e-5, rtol=1e-4)


def test_eigenbasis_inversion_is_comparable_to_z_space(z_run, eigen_run):
    # Neither is assumed better. Measured (seed 0): 20 steps at lr 0.2, z 0.075 vs eigenbasis 0.075; 30 steps at
    # lr 0.1, 0.058 vs 0.079; the default 200 steps at lr 0.05, 0.024 vs 0.049 (z ahead at small lr).
    assert eigen_run.basis_name == "basis-k100"
    assert eigen_run.loss_best[0] < eigen_run.history[0, 0] / 2
    assert eigen_run.loss_best[0] < 1.5 * z_run.loss_best[0]


def test_full_basis_starts_at_the_same_point(z_run, eigen_run):
    assert eigen_run.history[0, 0] == z_run.history[0, 0]  # exactly: z = z0 + V (c - c0) with c = c0


def test_best_so_far_bookkeeping(z_run, eigen_run):
    for run in (z_run, eigen_run):
        assert run.history.shape == (1, STEPS)
        assert torch.equal(run.loss_best, run.history.min(1).values)


def test_same_seeds_same_history(faces, target, lpips_alex, z_run):
    again = inversion.invert(faces, target, lpips_alex, steps=2, lr=LR, seeds=(0,), schedule="constant",
                             pixel_weight=0.0, progress=False)
    assert torch.equal(again.history, z_run.history[:, :2])


def test_each_seed_starts_where_it_would_alone(faces, target, lpips_alex, z_run):
    both = inversion.invert(faces, target, lpips_alex, steps=1, seeds=(5, 0), progress=False)
    assert both.seeds == (5, 0)
    torch.testing.assert_close(both.history[1, 0], z_run.history[0, 0])
    assert both.history[0, 0] != both.history[1, 0]


def test_truncated_basis_and_pixel_weight(faces, target, lpips_alex, average_metric):
    V = average_metric[1][:, :10]
    run = inversion.invert(faces, target, lpips_alex, basis=V, steps=2, pixel="mse", seeds=(0,), progress=False)
    z0 = faces.sample(1, seed=0)
    # a top-k search stays in the affine subspace through z0
    offset = (run.z_best - z0).double()
    torch.testing.assert_close(offset @ V @ V.T, offset, atol=1e-5, rtol=0)
    with torch.no_grad():  # the history reports the distance alone, whatever pixel term steers the search
        expected = lpips_alex(target, faces(z0))
    torch.testing.assert_close(run.history[0, 0], expected[0], atol=1e-6, rtol=1e-5)


def test_bad_inputs_raise(faces, target, lpips_alex):
    with pytest.raises(ValueError, match="one image of shape"):
        inversion.invert(faces, target.expand(2, -1, -1, -1), lpips_alex, steps=1, progress=False)
    with pytest.raises(ValueError, match=r"targets must be images of shape \(3, H, W\)"):
        inversion.invert(faces, target[0, 0], lpips_alex, steps=1, progress=False)
    with pytest.raises(ValueError, match="generator makes"):
        inversion.invert(faces, torch.zeros(3, 32, 32), lpips_alex, steps=1, progress=False)
    with pytest.raises(ValueError, match="orthonormal"):
        inversion.invert(faces, target, lpips_alex, basis=2 * torch.eye(100), steps=1, progress=False)
    with pytest.raises(ValueError, match=r"\(d, k\)"):
        inversion.invert(faces, target, lpips_alex, basis=torch.eye(50), steps=1, progress=False)


def test_invert_cma_within_budget(faces, target, lpips_alex, average_metric):
    eigvals, eigvecs = average_metric
    counted = []

    def counting(x0, x):
        counted.append(len(x))
        return lpips_alex(x0, x)

    budget = 24  # popsize 4 + 3 ln 100 = 17 in z, 10 in 10-d: the last population is cut to fit
    for kwargs in ({}, {"basis": eigvecs[:, :10], "eigvals": eigvals[:10]}):
        counted.clear()
        run = inversion.invert_cma(faces, target, counting, budget=budget, sigma0=0.5, progress=False, **kwargs)
        assert sum(counted) == budget
        assert run.history.shape == (1, budget)
        assert run.loss_best[0] == run.history[0, -1] == run.history.min()
        with torch.no_grad():
            torch.testing.assert_close(lpips_alex(target, faces(run.z_best)), run.loss_best, atol=1e-5, rtol=1e-4)
    assert run.basis_name == "basis-k10-hessian"
    with pytest.raises(ValueError, match="need a basis"):
        inversion.invert_cma(faces, target, lpips_alex, eigvals=eigvals, budget=5, progress=False)


def test_eigen_basis_by_name(faces, lpips_alex):
    target = faces(faces.sample(1, seed=123))
    frame = inversion.eigen_basis(faces, lpips_alex, n_points=2)
    assert frame.shape == (100, 100)
    torch.testing.assert_close(frame.T @ frame, torch.eye(100, dtype=frame.dtype), atol=1e-10, rtol=0)
    by_name = inversion.invert(faces, target, lpips_alex, basis="eigen", steps=2, progress=False)
    assert by_name.basis_name == "eigen"
    # the named basis is the average-metric frame of `eigen_basis`'s defaults: same run as passing it
    explicit = inversion.invert(faces, target, lpips_alex, basis=inversion.eigen_basis(faces, lpips_alex),
                                steps=2, progress=False)
    torch.testing.assert_close(by_name.history, explicit.history)
    with pytest.raises(ValueError, match="basis must be None, 'eigen' or a"):
        inversion.invert(faces, target, lpips_alex, basis="pca", steps=1, progress=False)


def test_distance_must_return_one_value_per_image(faces):
    target = faces(faces.sample(1, seed=123))
    scalar_distance = lambda x0, x: ((x0 - x) ** 2).mean()  # noqa: E731  one number for the whole batch
    with pytest.raises(ValueError, match=r"one value per image, shape \(2,\); got \(\)"):
        inversion.invert(faces, target, scalar_distance, seeds=(0, 1), steps=1, progress=False)


def test_images_in_the_wrong_range_are_refused(faces, target, lpips_alex):
    """LPIPS wants [-1, 1]: a [0, 255] target or generator is refused, as by `metric` and the explorer."""
    with pytest.raises(ValueError, match=r"target spans \[.*\] but LPIPS expects images in \[-1, 1\]"):
        inversion.invert(faces, (target + 1) * 127.5, lpips_alex, steps=1, progress=False)
    with pytest.raises(ValueError, match=r"target spans .* LPIPS expects"):
        inversion.invert_cma(faces, (target + 1) * 127.5, lpips_alex, budget=4, progress=False)
    bytes_faces = Generator(lambda z: (faces(z) + 1) * 127.5, 100, name="bytes")
    with pytest.raises(ValueError, match=r"generator output spans \[.*\] but LPIPS expects"):
        inversion.invert(bytes_faces, target, lpips_alex, steps=1, progress=False)
    with pytest.raises(ValueError, match=r"generator output spans \[.*\] but LPIPS expects"):
        inversion.invert_cma(bytes_faces, target, lpips_alex, budget=4, progress=False)
    with pytest.raises(ValueError, match=r"target contains non-finite"):
        inversion.invert(faces, target * torch.nan, lpips_alex, steps=1, progress=False)
