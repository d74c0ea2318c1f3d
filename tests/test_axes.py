"""Walks, step scaling, montage codes, GANSpace and SeFa on constructed generators with planted axes, and alignment."""
import math
from types import SimpleNamespace

import pytest
import torch
from torch import nn

from helpers import axes
from helpers.generators import Generator


def orthonormal(d, seed=0):
    return torch.linalg.qr(torch.randn(d, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64))[0]


# --- walks -----------------------------------------------------------------------------------------------------

def test_linear_walk_steps_are_exactly_t_apart_along_the_unit_direction():
    z0, v = torch.randn(10, dtype=torch.float64), 3 * torch.randn(10, dtype=torch.float64)
    steps = torch.tensor([-2.0, 0.0, 0.5, 3.0])
    codes = axes.walk(z0, v, steps)
    assert codes.shape == (4, 10)
    gaps = torch.cdist(codes, codes)
    torch.testing.assert_close(gaps, (steps[:, None] - steps[None]).abs().double(), rtol=0, atol=1e-12)
    torch.testing.assert_close(codes[1], z0)
    torch.testing.assert_close(codes[3] - z0, 3.0 * v / v.norm())


def test_spherical_walk_stays_on_the_sphere_starts_at_z0_and_moves_by_arc_length():
    torch.manual_seed(0)
    z0, v = torch.randn(16, dtype=torch.float64), torch.randn(16, dtype=torch.float64)
    r = z0.norm()
    steps = torch.tensor([0.0, 0.3, -1.0, 5.0, 40.0])
    codes = axes.walk(z0, v, steps, mode="spherical")
    torch.testing.assert_close(codes.norm(dim=1), r.expand(5), rtol=1e-6, atol=0)
    torch.testing.assert_close(codes[0], z0, rtol=0, atol=1e-12)
    # chord between z(t) and z0 on a great circle, t being arc length: 2 r |sin(t / 2r)| (t = 40 goes round)
    torch.testing.assert_close((codes - z0).norm(dim=1), 2 * r * torch.sin(steps.double() / (2 * r)).abs())
    # the circle lies in the plane of z0 and v
    plane = torch.linalg.qr(torch.stack([z0, v], dim=1))[0]
    torch.testing.assert_close(codes - codes @ plane @ plane.T, torch.zeros_like(codes), rtol=0, atol=1e-12)


def test_spherical_walk_starts_along_the_part_of_v_orthogonal_to_z0():
    z0 = torch.tensor([3.0, 0.0, 0.0, 0.0], dtype=torch.float64)
    v = torch.tensor([5.0, 2.0, 0.0, 0.0], dtype=torch.float64)  # mostly radial; its tangent part is e2
    h = 1e-7
    velocity = (axes.walk(z0, v, [h], mode="spherical")[0] - z0) / h
    torch.testing.assert_close(velocity, torch.tensor([0.0, 1.0, 0.0, 0.0], dtype=torch.float64),
                               rtol=0, atol=1e-6)
    with pytest.raises(ValueError, match="parallel"):
        axes.walk(z0, -2 * z0, [1.0], mode="spherical")


def test_walk_keeps_the_dtype_of_z0():
    z0 = torch.randn(5)
    assert axes.walk(z0, torch.randn(5, dtype=torch.float64), [0.0, 1.0], "spherical").dtype == torch.float32


# --- step scaling and montage codes ----------------------------------------------------------------------------

def test_step_scales_on_known_eigenvalues():
    torch.testing.assert_close(axes.step_scales(torch.tensor([8.0, 1.0, 1 / 8])),
                               torch.tensor([1.0, 2.0, 4.0], dtype=torch.float64))
    torch.testing.assert_close(axes.step_scales(torch.tensor([4.0, 1.0]), power=0.5),
                               torch.tensor([1.0, 2.0], dtype=torch.float64))
    # zero and negative eigenvalues are clipped at floor × λ_1: finite, equal, large steps
    torch.testing.assert_close(axes.step_scales(torch.tensor([1.0, 0.0, -1.0]), floor=1e-6),
                               torch.tensor([1.0, 100.0, 100.0], dtype=torch.float64))


def test_explore_uses_one_based_ranks_and_scaled_steps():
    d = 12
    V = orthonormal(d)
    eigvals = 2.0 ** -torch.arange(d, dtype=torch.float64)
    z0 = torch.randn(d, dtype=torch.float64)
    ranks, steps = (1, 2, 4), torch.tensor([-1.0, 0.0, 2.0])
    codes = axes.eigen_walks(z0, V, eigvals, ranks, steps)
    assert codes.shape == (3, 3, d)
    coords = (codes - z0) @ V  # coordinates of each displacement in the eigenbasis
    scales = axes.step_scales(eigvals)
    for row, rank in enumerate(ranks):
        expected = torch.zeros(3, d, dtype=torch.float64)
        expected[:, rank - 1] = steps.double() * scales[rank - 1]
        torch.testing.assert_close(coords[row], expected, rtol=0, atol=1e-12)
    assert scales[3] == pytest.approx(2 ** 1.0)  # λ_4 / λ_1 = 1/8 -> (1/8)^(-1/3) = 2
    with pytest.raises(ValueError, match="1-based"):
        axes.eigen_walks(z0, V, eigvals, (0, 1), steps)
    spherical = axes.eigen_walks(z0, V, eigvals, ranks, steps, mode="spherical")
    torch.testing.assert_close(spherical.norm(dim=-1), z0.norm().expand(3, 3))


def test_render_and_distance_curves_on_the_faces_model(faces, lpips_alex):
    z0 = faces.sample(1, seed=3)[0]
    V, eigvals = orthonormal(100, seed=1), torch.logspace(0, -3, 100, dtype=torch.float64)
    codes = axes.eigen_walks(z0, V, eigvals, (1, 2), torch.tensor([0.0, 2.0, 4.0]))
    images = axes.render(faces, codes, batch=4)
    assert images.shape == (2, 3, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(images[1, 2], faces(codes[1, 2].float()), rtol=0, atol=1e-5)
    curves = axes.distance_curves(faces, lpips_alex, z0, codes, batch=4)
    assert curves.shape == (2, 3)
    assert curves[:, 0].abs().max() < 1e-6  # t = 0 is z0 itself
    assert (curves[:, 1:] > 1e-3).all()


# --- GANSpace and SeFa -----------------------------------------------------------------------------------------

class Counter(nn.Module):
    def __init__(self):
        super().__init__()
        self.calls = 0

    def forward(self, x):
        self.calls += 1
        return x


def planted_generator(d=8, side=4, seed=0):
    """G(z) = tanh(A z) reshaped to an image, A = U S Pᵀ: the first layer's output varies most along P[:, 0], then
    P[:, 1] (singular values 10, 5, then 0.1)."""
    P, U = orthonormal(d, seed), orthonormal(3 * side * side, seed + 1)[:, :d]
    S = torch.tensor([10.0, 5.0] + [0.1] * (d - 2), dtype=torch.float64)
    linear = nn.Linear(d, 3 * side * side, bias=True)
    with torch.no_grad():
        linear.weight.copy_(U @ torch.diag(S) @ P.T)
    counter = Counter()
    net = nn.Sequential(linear, counter, nn.Tanh(), nn.Unflatten(1, (3, side, side)))
    return Generator(net, d, name="planted"), P, counter


# PCA from YᵀY (48 activations < 2000 samples) and from YYᵀ (700 samples < 768 activations). The regression on
# sampled codes leaves an error of about sqrt(d / N): |cos| is 0.997-0.999 (N = 2000) and 0.993-0.995 (N = 700).
@pytest.mark.parametrize("side, n_samples", [(4, 2000), (16, 700)])
def test_pca_directions_recover_planted_latent_directions_and_stop_at_the_hooked_layer(side, n_samples):
    G, P, counter = planted_generator(side=side)
    B = axes.pca_directions(G, G.net[0], n_samples=n_samples, k=2, seed=0)
    assert B.shape == (8, 2)
    torch.testing.assert_close(B.norm(dim=0), torch.ones(2, dtype=B.dtype))
    cosines = (B.T @ P[:, :2].to(B)).abs()
    assert cosines[0, 0] > 0.99 and cosines[1, 1] > 0.99, cosines
    assert counter.calls == 0  # layers after the hooked one never ran
    torch.testing.assert_close(axes.pca_directions(G, "net.0", n_samples=n_samples, k=2, seed=0), B)


def test_sefa_recovers_the_top_eigenvectors_of_AtA_up_to_sign():
    d = 10
    P, U = orthonormal(d, 2), orthonormal(30, 3)[:, :d]
    S = torch.linspace(6.0, 1.0, d, dtype=torch.float64)
    A = U @ torch.diag(S) @ P.T  # AᵀA = P S² Pᵀ
    B = axes.sefa_directions(A, k=4)
    assert B.shape == (d, 4)
    torch.testing.assert_close((B.T @ P[:, :4]).abs(), torch.eye(4, dtype=torch.float64), rtol=0, atol=1e-10)


def test_first_layer_weight_of_the_faces_model_maps_codes_to_the_first_layer_output(faces):
    A = axes.first_layer_weight(faces)
    conv = faces.net.main[0]
    assert axes.first_layer(faces) is conv
    assert A.shape == (512 * 4 * 4, 100)
    torch.testing.assert_close(A, conv.weight.reshape(100, -1).T)
    z = faces.sample(3, seed=0)
    with torch.no_grad():
        torch.testing.assert_close(conv(z[:, :, None, None]).flatten(1), z @ A.T, rtol=1e-5, atol=1e-5)


def test_first_layer_weight_composes_what_runs_before_the_layer():
    """A code with a fixed one-hot appended (like the eye model's noise space): A is the code's columns only;
    the layer registered first (never run on the code) is not the first layer."""

    class AppendClass(nn.Module):
        def __init__(self):
            super().__init__()
            self.unused = nn.Linear(3, 3)  # registered first, never called
            self.layer = nn.ConvTranspose2d(7, 2, 3, 1, 0, bias=False)
            self.register_buffer("one_hot", torch.tensor([[0.0, 1.0]]))

        def forward(self, z):
            full = torch.cat([z, self.one_hot.expand(len(z), -1)], dim=1)
            return self.layer(full[:, :, None, None])[:, :1].expand(-1, 3, -1, -1)  # (n, 3, 3, 3) "images"

    torch.manual_seed(0)
    net = AppendClass()
    G = Generator(net, 5)
    A = axes.first_layer_weight(G)
    assert axes.first_layer(G) is net.layer
    torch.testing.assert_close(A, net.layer.weight.reshape(7, -1).T[:, :5])


# --- alignment -------------------------------------------------------------------------------------------------

def test_alignment_of_identical_sets_is_the_identity_with_full_energy():
    V = orthonormal(20, 4)
    result = axes.alignment(V[:, :5], V, k=5)
    torch.testing.assert_close(result.cosine[:, :5], torch.eye(5, dtype=torch.float64), rtol=0, atol=1e-12)
    torch.testing.assert_close(result.cosine[:, 5:], torch.zeros(5, 15, dtype=torch.float64), rtol=0, atol=1e-12)
    torch.testing.assert_close(result.energy, torch.ones(5, dtype=torch.float64))
    assert result.random_baseline == pytest.approx(5 / 20)


def test_random_directions_carry_energy_k_over_d():
    d, k, n = 50, 10, 4000
    V = orthonormal(d, 5)
    directions = torch.randn(d, n, generator=torch.Generator().manual_seed(7), dtype=torch.float64)
    result = axes.alignment(directions, V, k=k, n_random=n, seed=1)
    # energy of a random unit direction ~ Beta(k/2, (d−k)/2): mean k/d, variance 2 (k/d)(1 − k/d) / (d + 2)
    p = k / d
    tolerance = 5 * math.sqrt(2 * p * (1 - p) / (d + 2) / n)
    assert abs(result.energy.mean().item() - p) < tolerance
    assert abs(result.random_energy.mean().item() - p) < tolerance
    assert result.random_energy.shape == (n,)
    # and the seeded random set differs from a top-k-aligned one
    assert axes.alignment(V[:, :3], V, k=k).energy.min() > 1 - 1e-12


# --- the walks and measurements of chapter 04 -----------------------------------------------------------------------

def toy_metric(d=6, b=2, seed=0):
    """A stand-in for a `Metric`: codes z (b, d), eigenvalues 2^-k and a random orthonormal frame per code."""
    gen = torch.Generator().manual_seed(seed)
    eigvecs = torch.stack([orthonormal(d, seed + i) for i in range(b)])
    eigvals = (2.0 ** -torch.arange(d, dtype=torch.float64)).expand(b, -1) * torch.arange(1, b + 1)[:, None]
    return SimpleNamespace(z=torch.randn(b, d, generator=gen, dtype=torch.float64), eigvecs=eigvecs, eigvals=eigvals)


def linear_generator(d=6, seed=0):
    torch.manual_seed(seed)
    return Generator(nn.Sequential(nn.Linear(d, 12), nn.Tanh(), nn.Unflatten(1, (3, 2, 2))), d, name="toy")


def test_walks_at_a_code_and_global_walks_are_eigen_walks():
    m, steps = toy_metric(), torch.tensor([-1.0, 0.0, 1.0])
    walks = axes.walks_at(m, (1, 3), steps, code=1, mode="spherical", power=0.5)
    torch.testing.assert_close(walks, axes.eigen_walks(m.z[1], m.eigvecs[1], m.eigvals[1], (1, 3), steps,
                                                       mode="spherical", power=0.5))
    average = SimpleNamespace(eigvecs=m.eigvecs[0], eigvals=m.eigvals[0])
    codes = torch.randn(3, 6, generator=torch.Generator().manual_seed(4), dtype=torch.float64)
    walks = axes.global_walks(average, codes, 2, steps)
    assert walks.shape == (3, 3, 6)
    for z, row in zip(codes, walks):
        torch.testing.assert_close(row, axes.eigen_walks(z, m.eigvecs[0], m.eigvals[0], [2], steps)[0])
    rows, cols = axes.walk_labels(torch.tensor([8.0, 4.0, 1.0]), (1, 3), [-1.5, 0, 0.75])
    assert rows == ["rank 1 (×1.0)", "rank 3 (×2.0)"] and cols == ["-1.50", "+0.00", "+0.75"]


def test_image_distances_step_panels_and_global_axis_change_on_a_toy_generator():
    from helpers import distances

    G, mse, m = linear_generator(), distances.mse(), toy_metric()
    steps = torch.tensor([-1.0, 0.0, 1.0])
    walks = axes.walks_at(m, (1, 2), steps)
    d = axes.image_distances(G, mse, walks, walks.flip(1))
    assert d.shape == (2, 3) and (d[:, 1] < 1e-12).all() and (d[:, [0, 2]] > 1e-6).all()
    torch.testing.assert_close(d[1, 0], mse(axes.render(G, walks[1, :1]), axes.render(G, walks[1, 2:])).squeeze())
    panels = axes.step_panels(G, mse, m, (1, 2), steps, power=0.5)
    assert list(panels) == ["same step", "step × (λ_k/λ_1)^(−0.5)"]
    x, same = panels["same step"]
    assert list(same) == ["rank 1", "rank 2", "rank 6"] and x is steps  # the bottom rank joins the same-step panel
    torch.testing.assert_close(same["rank 6"], axes.distance_curves(G, mse, m.z[0], axes.walks_at(m, [6], steps,
                                                                                                  power=0))[0])
    assert all(curve[1] < 1e-10 for _, series in panels.values() for curve in series.values())  # step 0: z0
    average, codes = SimpleNamespace(eigvecs=m.eigvecs[0], eigvals=m.eigvals[0]), m.z
    change = axes.global_axis_change(G, mse, average, codes, (1, 3), steps)
    assert change.shape == (2, 2)
    ends = axes.global_walks(average, codes, 3, steps)[1, [0, -1]]
    torch.testing.assert_close(change[1, 1], axes.distance_curves(G, mse, codes[1], ends).mean())


def test_earlier_axes_are_ganspace_on_two_layers_and_sefa():
    G, P, _ = planted_generator()
    found = axes.earlier_axes(G, n_samples=500, k=2, seed=1)
    assert list(found) == ["GANSpace, first layer", "GANSpace, first block", "SeFa"]
    torch.testing.assert_close(found["SeFa"], axes.sefa_directions(axes.first_layer_weight(G), 2))
    torch.testing.assert_close(found["GANSpace, first layer"], axes.pca_directions(G, G.net[0], 500, 2, 1))
    torch.testing.assert_close(found["GANSpace, first block"], axes.pca_directions(G, G.net[2], 500, 2, 1))
    assert (found["SeFa"].T @ P[:, :2]).abs().diagonal().min() > 0.99  # the planted axes


def test_alignment_random_summary():
    result = axes.alignment(orthonormal(20, 4)[:, :3], orthonormal(20, 4), k=5, n_random=400, seed=2)
    summary = result.random_summary()
    assert summary == {"k/d": 0.25, "mean": pytest.approx(float(result.random_energy.mean())),
                       "p95": pytest.approx(float(result.random_energy.quantile(0.95)))}
    assert summary["mean"] < summary["p95"] < 1
