"""Geodesics, shooting, lengths and the metric along paths (helpers.geodesic) against closed forms and each other.

Units (the module's docstring): the metric is H, a curve's length ∫√(żᵀHż) dt and energy ∫żᵀHż dt over [0, 1]; a
discrete path's length Σ√(2 d_i) and energy n·Σ 2 d_i. Toys in float64 (tests/cases.py): a flat map G(z) = A z and a
sphere in stereographic coordinates, both with MSE, where geodesics, lengths and the exponential map are known.
"""
import math

import numpy as np
import pytest
import torch

import cases
from helpers import distances, geodesic, threads
from helpers.generators import Generator


@pytest.fixture(autouse=True)
def one_thread(request):
    """The toys run on one thread: their tensors are tiny, and on a busy machine two threads wait on each other at
    every operation (a test took 70× as long). The faces tests keep torch's threads."""
    if "faces" in request.fixturenames:
        yield
        return
    with threads.one_thread():
        yield


def codes(*shape, seed=0):
    return torch.randn(*shape, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def flat():
    G, A = cases.linear_generator(d=8)
    return G, distances.mse(), cases.analytic_metric(A)


@pytest.fixture(scope="module")
def sphere():
    G, net = cases.sphere_generator(d=2)
    return G, distances.mse(), net


def great_circle(net, z_a, z_b, t):
    """Points (len(t), d) of the great-circle arc from z_a to z_b at fractions t of its angle, and the angle."""
    s_a, s_b = net.to_sphere(z_a), net.to_sphere(z_b)
    angle = torch.arccos((s_a * s_b).sum())
    t = t[:, None]
    return net.from_sphere((torch.sin((1 - t) * angle) * s_a + torch.sin(t * angle) * s_b) / angle.sin()), angle


def rate(errors, ns):
    """The order p in error ∝ n^-p, fitted in log-log."""
    return -np.polyfit(np.log(ns), np.log(errors), 1)[0]


# --- units -------------------------------------------------------------------------------------------------------

def test_a_small_step_costs_half_its_squared_metric_length():
    """d(G(z), G(z + εu)) = ½ε²uᵀHu + O(ε³), H the exact metric: so a step's length is √(2d)."""
    G, net = cases.quadratic_generator(d=6)
    z, u = codes(6, seed=1), codes(6, seed=2)
    H = net.metric(z)
    for eps in (1e-3, 1e-4):
        step = geodesic.segment_lengths(G, distances.mse(), torch.stack([z, z + eps * u]))[0, 0]
        assert step.item() == pytest.approx(eps * (u @ H @ u).sqrt().item(), rel=10 * eps)


def test_flat_map_lengths_and_energies_are_exact(flat):
    """G(z) = A z, MSE: H = 2AᵀA/N everywhere; the straight line has length √(ΔᵀHΔ) at any n and energy ΔᵀHΔ = L²
    at constant speed; the same line walked at uneven speed has the same length and more energy (L² ≤ E)."""
    G, mse, H = flat
    a, b = codes(2, 8, seed=3)
    length = ((b - a) @ H @ (b - a)).sqrt()
    for n in (1, 2, 7):
        line = geodesic.straight(a, b, n)
        assert geodesic.path_length(G, mse, line).item() == pytest.approx(length.item(), rel=1e-12)
        assert geodesic.path_energy(G, mse, line).item() == pytest.approx(length.item() ** 2, rel=1e-12)
    uneven = a + torch.tensor([0, 0.1, 0.2, 0.7, 1], dtype=torch.float64)[:, None] * (b - a)
    assert geodesic.path_length(G, mse, uneven).item() == pytest.approx(length.item(), rel=1e-12)
    # steps of 0.1, 0.1, 0.5, 0.3 of the way: E = 4·(0.01 + 0.01 + 0.25 + 0.09)·L² = 1.44·L²
    assert geodesic.path_energy(G, mse, uneven).item() == pytest.approx(1.44 * length.item() ** 2, rel=1e-12)
    # differentiable in the path: the gradient of the energy is zero at the interior of the (uniform) straight line
    line = geodesic.straight(a, b, 4).requires_grad_(True)
    (gradient,) = torch.autograd.grad(geodesic.path_energy(G, mse, line).sum(), line)
    assert gradient[0, 1:-1].abs().max() < 1e-12 and gradient[0, 0].abs().max() > 1e-3


def test_curve_length_is_the_integral_of_the_exact_metric():
    """curve_length (one JVP per node, 2‖Jż‖²) against ∫√(żᵀHż) with the analytic metric H of the quadratic case."""
    G, net = cases.quadratic_generator(d=6)
    a, b, c = codes(3, 6, seed=5)

    def curve(t):
        return a + t[:, None] * (b - a) + torch.sin(math.pi * t)[:, None] * c

    x, w = np.polynomial.legendre.leggauss(40)
    speeds = []
    for t in torch.from_numpy((x + 1) / 2):
        z, v = curve(t[None])[0], torch.autograd.functional.jacobian(lambda s: curve(s[None])[0], t)
        speeds.append((v @ net.metric(z) @ v).sqrt())
    truth = (torch.stack(speeds) * torch.from_numpy(w / 2)).sum()
    assert geodesic.curve_length(G, distances.mse(), curve).item() == pytest.approx(truth.item(), rel=1e-12)
    # p curves at once: (p, m, d)
    two = geodesic.curve_length(G, distances.mse(), lambda t: torch.stack([curve(t), curve(1 - t)]))
    assert torch.allclose(two, truth.expand(2), rtol=1e-12)


def test_discrete_length_converges_to_the_curve_length_at_second_order():
    """Σ√(2 d_i) of a smooth curve sampled at n + 1 points → its length, with error ∝ n⁻² (chord vs arc)."""
    G, _ = cases.quadratic_generator(d=6)
    a, b, c = codes(3, 6, seed=5)

    def curve(t):
        return a + t[:, None] * (b - a) + torch.sin(math.pi * t)[:, None] * c

    length = geodesic.curve_length(G, distances.mse(), curve).item()
    ns = [4, 8, 16, 32, 64]
    errors = [length - geodesic.path_length(G, distances.mse(), curve(torch.linspace(0, 1, n + 1,
                                                                                     dtype=torch.float64))).item()
              for n in ns]
    assert all(e > 0 for e in errors)  # chords are shorter than arcs
    assert rate(errors, ns) == pytest.approx(2, abs=0.05)
    assert errors[-1] < 2e-4 * length


# --- geodesics: closed forms -------------------------------------------------------------------------------------

def test_flat_map_geodesics_are_straight_lines(flat):
    """From a curved start (slerp), three pairs at once reach the straight lines, length √(ΔᵀHΔ), energy = L²."""
    G, mse, H = flat
    a, b = codes(3, 8, seed=6), codes(3, 8, seed=7)
    result = geodesic.geodesic(G, mse, a, b, n=6, init=geodesic.slerp(a, b, 6), rtol=1e-12, coarse=())
    line = geodesic.straight(a, b, 6)
    assert result.path.shape == (3, 7, 8) and result.converged.all()
    assert (result.path - line).abs().max() < 1e-10
    lengths = torch.einsum("pi,ij,pj->p", b - a, H, b - a).sqrt()
    assert torch.allclose(result.length, lengths, rtol=1e-12)
    assert torch.allclose(result.energy, lengths ** 2, rtol=1e-12)
    assert result.energies[0].gt(result.energy).all()  # slerp was longer
    assert torch.allclose(result.velocity, b - a, rtol=1e-9)  # ż(0) of the geodesic: the log map


def test_flat_map_without_preconditioning_and_with_a_plain_distance(flat):
    """Plain L-BFGS on the codes, and a distance without features (called on consecutive pairs), agree."""
    G, mse, _ = flat
    a, b = codes(2, 8, seed=8)
    init = geodesic.slerp(a, b, 5)
    line = geodesic.straight(a, b, 5)
    raw = geodesic.geodesic(G, mse, a, b, n=5, init=init, rtol=1e-10, precondition=False, max_iter=500)
    assert (raw.path - line).abs().max() < 1e-5

    def plain(x0, x):  # MSE with no feature map
        return (x0 - x).pow(2).mean((1, 2, 3))

    other = geodesic.geodesic(G, plain, a, b, n=5, init=init, rtol=1e-12)
    assert (other.path - line).abs().max() < 1e-10


def test_sphere_geodesics_are_great_circles(sphere):
    """The discrete minimiser is the great-circle arc in n equal steps of angle θ/n: length √(2/N)·2n·sin(θ/2n),
    energy 8n²·sin²(θ/2n)/N (N = 3·side² pixels); two pairs with different angles in one call."""
    G, mse, net = sphere
    N = net.Q.shape[0]
    z_a = torch.tensor([[0.3, -0.8], [1.5, 0.2]], dtype=torch.float64)
    z_b = torch.tensor([[-1.2, 0.5], [0.9, 1.1]], dtype=torch.float64)
    n = 12
    result = geodesic.geodesic(G, mse, z_a, z_b, n=n, rtol=1e-14, max_iter=300)
    assert result.converged.all() and result.coarse.path.shape == (2, 5, 2)  # started from a 4-step solve
    assert result.coarse.times[-1] <= result.times[0] <= result.seconds
    for j in range(2):
        arc, angle = great_circle(net, z_a[j], z_b[j], torch.linspace(0, 1, n + 1, dtype=torch.float64))
        assert (result.path[j] - arc).abs().max() < 1e-6
        chord = 2 * n * math.sin(angle / (2 * n))
        assert result.length[j].item() == pytest.approx(math.sqrt(2 / N) * chord, rel=1e-11)
        assert result.energy[j].item() == pytest.approx(2 / N * chord ** 2, rel=1e-11)
    assert (result.energies[1:] <= result.energies[:-1]).all()  # every iteration lowers the energy


def test_sphere_geodesic_length_converges_to_the_angle(sphere):
    """As n grows, the minimiser's discrete length → √(2/N)·θ, with error ∝ n⁻², and its points approach the
    continuous great circle."""
    G, mse, net = sphere
    N = net.Q.shape[0]
    z_a, z_b = torch.tensor([0.3, -0.8], dtype=torch.float64), torch.tensor([-1.2, 0.5], dtype=torch.float64)
    _, angle = great_circle(net, z_a, z_b, torch.zeros(1, dtype=torch.float64))
    ns = [4, 8, 16, 32]
    errors = [math.sqrt(2 / N) * angle.item() - geodesic.geodesic(G, mse, z_a, z_b, n=n, rtol=1e-14).length.item()
              for n in ns]
    assert rate(errors, ns) == pytest.approx(2, abs=0.02)
    assert errors[-1] < 1e-3 * math.sqrt(2 / N) * angle.item()


# --- shooting ----------------------------------------------------------------------------------------------------

def test_shooting_on_the_sphere_follows_the_great_circle(sphere):
    """exp_z(v) in closed form: s(t) = cos(ωt)s₀ + sin(ωt)u/ω, u the image of v on the sphere, ω = ‖u‖. The
    discrete scheme converges at second order, RK4 at fourth; the shot's length is √(vᵀHv)."""
    G, mse, net = sphere
    z = torch.tensor([0.3, -0.8], dtype=torch.float64)
    v = torch.tensor([-1.5, 1.3], dtype=torch.float64)
    s0 = net.to_sphere(z)
    u = torch.func.jvp(net.to_sphere, (z,), (v,))[1]
    end = net.from_sphere(torch.cos(u.norm()) * s0 + torch.sin(u.norm()) * u / u.norm())
    ns = [8, 16, 32]
    for method, order in (("discrete", 2), ("rk4", 4)):
        errors = [(geodesic.shoot(G, mse, z, v, n=n, method=method)[0, -1] - end).norm().item() for n in ns]
        assert rate(errors, ns) == pytest.approx(order, abs=0.3), method
    path = geodesic.shoot(G, mse, z, v, n=32, method="rk4")
    assert path.shape == (1, 33, 2) and torch.equal(path[0, 0], z)
    speed = (v @ net.metric(z) @ v).sqrt().item()
    assert geodesic.path_length(G, mse, path).item() == pytest.approx(speed, rel=1e-3)


def test_shooting_with_the_minimisers_velocity_arrives_at_its_end():
    """On a smooth curved toy (a small conv net and a feature distance, tests/cases.py): shoot from z_a along the
    energy minimiser's initial velocity (its log map) and arrive at z_b, closer as n grows (O(n⁻²))."""
    case = cases.conv_case()
    z_a, z_b = case.z[0], case.z[1]
    errors = {"discrete": [], "rk4": []}
    ns = [4, 8, 16]
    for n in ns:
        result = geodesic.geodesic(case.G, case.distance, z_a, z_b, n=n, rtol=1e-14)
        assert result.converged.all()
        for method in errors:
            shot = geodesic.shoot(case.G, case.distance, z_a, result.velocity, n=n, method=method)
            errors[method].append((shot[0, -1] - z_b).norm().item() / (z_b - z_a).norm().item())
    for method, e in errors.items():
        assert e[-1] < 1e-4 and rate(e, ns) == pytest.approx(2, abs=0.3), (method, e)


# --- the metric along a path -------------------------------------------------------------------------------------

def test_path_metric_warm_starts_match_the_truth_and_save_products():
    """Top-k eigenpairs at every point of a path (quadratic case, known metric), certified, warm-started from the
    previous point: fewer products than cold starts; neighbours' eigenspaces turn by small principal angles."""
    G, net = cases.quadratic_generator(d=24, spread=0.3)
    path = geodesic.straight(codes(24, seed=9), codes(24, seed=10), 4)
    found = geodesic.path_metric(G, distances.mse(), torch.cat([path, path.flip(1)]), 4, tol=1e-8, cold=True)
    assert found.eigvals.shape == (2, 5, 4) and found.eigvecs.shape == (2, 5, 24, 4)
    for i, z in enumerate(path[0]):
        truth = torch.linalg.eigvalsh(net.metric(z)).flip(0)[:4]
        assert torch.allclose(found.eigvals[0, i], truth, rtol=1e-7)
    assert (found.residuals <= 1e-8 * found.eigvals[..., :1]).all()
    assert found.saved[:, 1:].sum() > 0 and found.columns[:, 1:].sum() < found.cold_columns[:, 1:].sum()
    angles = found.angles()
    assert angles.shape == (2, 4, 4) and (angles >= 0).all() and angles.max() < 0.5


def test_principal_angles_of_known_rotations():
    """Subspaces rotated by known angles in orthogonal planes give those angles, small ones to roundoff."""
    d, chosen = 8, torch.tensor([1e-9, 0.3, 1.2], dtype=torch.float64)
    E = torch.eye(d, dtype=torch.float64)
    U = E[:, :3]
    V = torch.stack([torch.cos(a) * E[:, i] + torch.sin(a) * E[:, 3 + i] for i, a in enumerate(chosen)], 1)
    angles = geodesic.principal_angles(U, V @ torch.linalg.qr(codes(3, 3, seed=11))[0])  # any basis of span V
    assert torch.allclose(angles, chosen, rtol=1e-9, atol=1e-15)
    assert geodesic.principal_angles(U, U).abs().max() < 1e-15


# --- volume elements -----------------------------------------------------------------------------------------------

def test_volume_element_of_the_flat_map_and_the_sphere(flat, sphere):
    """log det(VᵀHV) against the analytic metric: the flat map's constant 2AᵀA/N for shared and per-code directions,
    and the sphere's round metric (2/N)·4/(1 + ‖u‖²)², whose area element shrinks away from the origin."""
    G, mse, H = flat
    z, V = codes(3, 8, seed=20), codes(8, 2, seed=21)
    truth = torch.linalg.slogdet(V.T @ H @ V).logabsdet
    assert torch.allclose(geodesic.volume_element(G, mse, z, V), truth.expand(3), rtol=1e-10)
    per_code = codes(3, 8, 3, seed=22)
    truth = torch.linalg.slogdet(per_code.transpose(1, 2) @ H @ per_code).logabsdet
    assert torch.allclose(geodesic.volume_element(G, mse, z, per_code), truth, rtol=1e-10)
    assert geodesic.volume_element(G, mse, z[0], V[:, :1]).shape == (1,)
    assert geodesic.volume_element(G, mse, z, torch.cat([V[:, :1], 2 * V[:, :1]], 1)).isneginf().all()
    G, mse, net = sphere
    u = codes(4, 2, seed=23)
    truth = torch.stack([torch.linalg.slogdet(net.metric(x)).logabsdet for x in u])
    assert torch.allclose(geodesic.volume_element(G, mse, u, torch.eye(2, dtype=torch.float64)), truth, rtol=1e-10)


def test_volume_element_refuses_bad_directions(flat):
    G, mse, _ = flat
    z = codes(2, 8, seed=24)
    with pytest.raises(TypeError, match="directions must be a torch.Tensor"):
        geodesic.volume_element(G, mse, z, [[1.0] * 8])
    for bad in (codes(7, 2), codes(3, 8, 2), codes(2), torch.full((8, 2), math.nan, dtype=torch.float64)):
        with pytest.raises(ValueError, match="directions"):
            geodesic.volume_element(G, mse, z, bad)


# --- baselines -----------------------------------------------------------------------------------------------------

def test_straight_and_slerp_baselines():
    a, b = codes(2, 5, seed=12)
    b = b / b.norm() * a.norm()  # equal norms: slerp then keeps the norm and turns by equal angles
    line, arc = geodesic.straight(a, b, 4), geodesic.slerp(a, b, 4)
    assert line.shape == arc.shape == (1, 5, 5)
    for path in (line, arc):
        assert torch.equal(path[0, 0], a) or torch.allclose(path[0, 0], a, rtol=1e-15)
        assert torch.allclose(path[0, -1], b, rtol=1e-14)
    cosines = (arc[0, :-1] * arc[0, 1:]).sum(1) / (arc[0, :-1].norm(dim=1) * arc[0, 1:].norm(dim=1))
    assert torch.allclose(cosines, cosines[:1].expand(4), rtol=1e-12)  # equal steps of angle
    same = geodesic.slerp(a, 2 * a, 3)  # collinear: the straight line
    assert torch.allclose(same, geodesic.straight(a, 2 * a, 3), rtol=1e-14)
    assert geodesic.straight(a, codes(3, 5, seed=13), 2).shape == (3, 3, 5)  # one code shared by three pairs


# --- a real model ------------------------------------------------------------------------------------------------

def test_faces_geodesic_is_shorter_than_straight_and_slerp(faces, lpips_alex):
    """dcgan-faces64 with LPIPS, 3 interior points, a few iterations on the codes: the energy decreases every
    iteration, and the path is shorter than the straight line and slerp between the same codes."""
    z_a, z_b = faces.sample(2, seed=3)
    result = geodesic.geodesic(faces, lpips_alex, z_a, z_b, n=4, max_iter=4, precondition=False)
    assert (result.energies[1:] <= result.energies[:-1]).all() and result.energy < result.energies[0]
    for baseline in (geodesic.straight(z_a, z_b, 4), geodesic.slerp(z_a, z_b, 4)):
        assert result.length < geodesic.path_length(faces, lpips_alex, baseline)
    assert result.path.dtype == torch.float32 and result.path.shape == (1, 5, 100)


@pytest.mark.slow
def test_faces_geodesic_with_the_defaults(faces, lpips_alex):
    """16 interior points, preconditioned, to the default tolerance: converged, monotone, shorter than both baselines,
    and L² ≤ E with near equality (constant perceptual speed)."""
    z_a, z_b = faces.sample(2, seed=1)
    result = geodesic.geodesic(faces, lpips_alex, z_a, z_b, n=17)
    assert result.converged.all() and (result.energies[1:] <= result.energies[:-1]).all()
    for baseline in (geodesic.straight(z_a, z_b, 17), geodesic.slerp(z_a, z_b, 17)):
        assert result.length < geodesic.path_length(faces, lpips_alex, baseline)
    assert result.length ** 2 <= result.energy <= 1.05 * result.length ** 2


# --- bad input -----------------------------------------------------------------------------------------------------

def test_bad_input_is_refused(flat, sphere):
    G, mse, _ = flat
    a, b = codes(2, 8, seed=14)
    with pytest.raises(ValueError, match=r"z must have shape \(8,\) or \(b, 8\)"):
        geodesic.geodesic(G, mse, a[:5], b)
    with pytest.raises(ValueError, match="as many codes"):
        geodesic.geodesic(G, mse, codes(2, 8), codes(3, 8))
    with pytest.raises(ValueError, match=r"equal for path\(s\) \[1\]"):
        geodesic.geodesic(G, mse, torch.stack([a, b]), torch.stack([b, b]))
    with pytest.raises(ValueError, match="n must be a positive integer, got 0"):
        geodesic.straight(a, b, 0)
    with pytest.raises(ValueError, match="n must be a positive integer"):
        geodesic.geodesic(G, mse, a, b, n=0)
    with pytest.raises(ValueError, match="non-finite"):
        geodesic.geodesic(G, mse, a, b.clone().fill_(math.nan))
    with pytest.raises(ValueError, match="each coarse step count must be a positive integer"):
        geodesic.geodesic(G, mse, a, b, coarse=(0,))
    with pytest.raises(ValueError, match="rtol must be"):
        geodesic.geodesic(G, mse, a, b, rtol=2.0)
    with pytest.raises(ValueError, match="init must start at z_a and end at z_b"):
        geodesic.geodesic(G, mse, a, b, n=3, init=geodesic.straight(a, 2 * b, 3))
    with pytest.raises(ValueError, match=r"init must have shape \(1, 4, 8\)"):
        geodesic.geodesic(G, mse, a, b, n=3, init=geodesic.straight(a, b, 5))
    with pytest.raises(ValueError, match="at least two points"):
        geodesic.path_length(G, mse, a[None])
    with pytest.raises(TypeError, match="a path must be a torch.Tensor"):
        geodesic.path_energy(G, mse, [a, b])
    with pytest.raises(ValueError, match=r"v must have shape \(8,\) or \(1, 8\)"):
        geodesic.shoot(G, mse, a, b[:3])
    with pytest.raises(ValueError, match="v contains non-finite"):
        geodesic.shoot(G, mse, a, b.clone().fill_(math.inf))
    with pytest.raises(ValueError, match="unknown method 'euler'"):
        geodesic.shoot(G, mse, a, b, method="euler")
    with pytest.raises(ValueError, match="curve\\(t\\) must return codes"):
        geodesic.curve_length(G, mse, lambda t: t)
    with pytest.raises(ValueError, match="slerp between opposite codes"):
        geodesic.slerp(a, -a, 2)
    with pytest.raises(ValueError, match="must be \\(..., d, k\\) of one shape"):
        geodesic.principal_angles(torch.eye(3)[:, :2], torch.eye(3)[:, :1])


def test_distances_without_features_are_refused_where_derivatives_are_needed(flat):
    """Shooting, curve lengths, volume elements and the metric along a path need the feature map's Jacobian; the
    energy does not."""
    G, _, _ = flat
    a, b = codes(2, 8, seed=15)

    def plain(x0, x):
        return (x0 - x).pow(2).mean((1, 2, 3))

    with pytest.raises(TypeError, match="no `features` map, which shoot needs"):
        geodesic.shoot(G, plain, a, b)
    with pytest.raises(TypeError, match="which curve_length needs"):
        geodesic.curve_length(G, plain, lambda t: a + t[:, None] * (b - a))
    with pytest.raises(TypeError, match="which path_metric needs"):
        geodesic.path_metric(G, plain, geodesic.straight(a, b, 2), 2)
    with pytest.raises(TypeError, match="which volume_element needs"):
        geodesic.volume_element(G, plain, a, codes(8, 2))
    assert geodesic.path_length(G, plain, geodesic.straight(a, b, 2)).item() == pytest.approx(
        geodesic.path_length(G, distances.mse(), geodesic.straight(a, b, 2)).item(), rel=1e-12)


def test_generator_output_is_checked(flat):
    """Images far outside the distance's range are refused on the first forward pass (checks.generated)."""
    G, _, _ = flat
    a, b = codes(2, 8, seed=16)

    class Bounded(distances.MSE):
        input_range = (-1.0, 1.0)

    big = Generator(lambda z: 300 * G(z), 8, name="too-bright")
    with pytest.raises(ValueError, match=r"generator output spans .* expects images in \[-1, 1\]"):
        geodesic.geodesic(big, Bounded(), a, b, n=2)
    with pytest.raises(ValueError, match="expects images in"):
        geodesic.path_length(big, Bounded(), geodesic.straight(a, b, 2))


def test_a_repeated_point_has_a_zero_gradient_not_nan(flat):
    G, mse, _ = flat
    path = geodesic.straight(codes(8, seed=1), codes(8, seed=2), 4)
    path = torch.cat([path[:2], path[1:]]).requires_grad_(True)  # point 1 twice: a step of length zero
    geodesic.path_length(G, mse, path).sum().backward()
    assert torch.isfinite(path.grad).all()


def test_coarse_takes_one_step_count_or_several(flat):
    G, mse, _ = flat
    a, b = codes(8, seed=1), codes(8, seed=2)
    one = geodesic.geodesic(G, mse, a, b, n=8, coarse=4)
    assert one.coarse is not None and one.coarse.path.shape[-2] == 5
    with pytest.raises(TypeError, match="coarse must be a step count"):
        geodesic.geodesic(G, mse, a, b, n=8, coarse="4")


def test_the_preconditioner_follows_the_metric_along_the_path():
    """The preconditioner's latent factor at interior point i is H(t_i)^(-1/2), H linear in t from the exact metric at
    one end to the middle's and on to the other end's: M_i H(t_i) M_i = I where no eigenvalue is floored. On the
    quadratic map, whose metric differs at every point, solves from the straight line (with a coarse level) and from
    slerp reach one minimum (plain L-BFGS on the codes agrees, after thousands of iterations)."""
    G, net = cases.quadratic_generator(d=6, spread=0.3)
    mse = distances.mse()
    a, b = codes(6, seed=21), codes(6, seed=22)
    H_a, H_mid, H_b = net.metric(a), net.metric((a + b) / 2), net.metric(b)
    M = geodesic._interpolated_factor(H_a[None], H_mid[None], H_b[None], 4, 1e-12)
    assert M.shape == (1, 3, 6, 6)
    for i, H in enumerate([(H_a + H_mid) / 2, H_mid, (H_mid + H_b) / 2]):
        assert torch.allclose(M[0, i] @ H @ M[0, i], torch.eye(6, dtype=torch.float64), atol=1e-8)
    line = geodesic.geodesic(G, mse, a, b, n=6, rtol=1e-13, max_iter=500)
    arc = geodesic.geodesic(G, mse, a, b, n=6, init=geodesic.slerp(a, b, 6), rtol=1e-13, max_iter=500, coarse=())
    for result in (line, arc):
        assert result.converged.all() and (result.energies[1:] <= result.energies[:-1]).all()
    assert line.energy.item() == pytest.approx(arc.energy.item(), rel=1e-10)
    assert (line.path - arc.path).abs().max() < 1e-3  # the metric's smallest eigenvalues are ~1e-6 of its largest
