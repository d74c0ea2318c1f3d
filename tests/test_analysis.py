"""Analysis helpers on synthetic metrics whose answers are known by hand, and against slow reference loops."""
import math
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from torch import nn

from helpers import analysis as A
from helpers import distances, metric as M
from helpers import viz
from helpers.generators import Generator


def metrics_with_spectrum(spectra, seed=0):
    """H_p = R_p diag(spectra[p]) R_pᵀ with random orthogonal R_p: (b, d, d) float64."""
    spectra = torch.as_tensor(spectra, dtype=torch.float64)
    gen = torch.Generator().manual_seed(seed)
    R = torch.linalg.qr(torch.randn(*spectra.shape, spectra.shape[1], generator=gen, dtype=torch.float64))[0]
    return R @ torch.diag_embed(spectra) @ R.transpose(1, 2)


def spread_spectrum(d, decades=6.0):
    """λ_k = 10^(−decades·k/(d−1)): log10 λ linear in rank, like a GAN metric's spectrum."""
    return 10 ** (-decades * torch.arange(d, dtype=torch.float64) / (d - 1))


def eigh_descending(H):
    lam, U = torch.linalg.eigh(H)
    return lam.flip(-1), U.flip(-1)


def offdiag(matrix):
    return matrix[~torch.eye(len(matrix), dtype=torch.bool)]


def random_psd(b, d, seed=0):
    X = torch.randn(b, d, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return X @ X.transpose(1, 2) / d


# --- spectrum ---------------------------------------------------------------------------------------------------

def test_spectrum_summary_percentiles_on_scaled_copies():
    base = torch.tensor([4.0, 2.0, 1.0], dtype=torch.float64)
    eigvals = torch.arange(1, 22, dtype=torch.float64)[:, None] * base  # scales 1..21
    raw = A.spectrum_summary(eigvals, normalize=False)
    # 21 values 1..21, linear interpolation: p5 at position 1 -> 2, median 11, p95 at position 19 -> 20
    for stat, scale in [(raw.mean, 11), (raw.median, 11), (raw.p5, 2), (raw.p95, 20)]:
        torch.testing.assert_close(stat, scale * base)
    normalized = A.spectrum_summary(eigvals[torch.randperm(21)], normalize=True)
    for stat in (normalized.mean, normalized.median, normalized.p5, normalized.p95):
        torch.testing.assert_close(stat, base / 4)


def test_spectrum_summary_takes_a_metric_and_sorts():
    H = metrics_with_spectrum([[1.0, 3.0, 2.0], [2.0, 6.0, 4.0]])
    summary = A.spectrum_summary(H, normalize=True)
    torch.testing.assert_close(summary.mean, torch.tensor([1.0, 2 / 3, 1 / 3], dtype=torch.float64))


def test_dims_for_fraction_counts_ties_as_reached():
    eigvals = torch.tensor([[90, 9, 0.9, 0.09, 0.01],    # cumulative 90, 99, 99.9, 99.99, 100
                            [60, 30, 9.5, 0.4, 0.1]],    # cumulative 60, 90, 99.5, 99.9, 100
                           dtype=torch.float64)
    dims = A.dims_for_fraction(eigvals, fractions=(0.5, 0.99, 0.999, 0.9999))
    assert dims.counts.tolist() == [[1, 2, 3, 4], [1, 3, 4, 5]]
    torch.testing.assert_close(dims.mean, torch.tensor([1.0, 2.5, 3.5, 4.5], dtype=torch.float64))
    assert dims.fractions == (0.5, 0.99, 0.999, 0.9999)


def test_dims_for_fraction_clips_negative_roundoff_and_sorts():
    eigvals = torch.tensor([[-1e-15, 1.0, 3.0, -2e-15]], dtype=torch.float64)  # ascending order, as eigh gives
    assert A.dims_for_fraction(eigvals, fractions=(0.75, 0.76, 1.0)).counts.tolist() == [[1, 2, 2]]


def test_decades_of_known_spectra():
    lam = torch.tensor([[100.0, 10, 1, 0.1], [5.0, 5, 5, 5], [1.0, 0.5, 0, -1e-9]], dtype=torch.float64)
    torch.testing.assert_close(A.decades(lam), torch.tensor([3.0, 0.0, 12.0], dtype=torch.float64))
    torch.testing.assert_close(A.decades(lam[:1].flip(-1)), torch.tensor([3.0], dtype=torch.float64))  # sorted
    H = torch.diag_embed(lam[:1])
    torch.testing.assert_close(A.decades(H), torch.tensor([3.0], dtype=torch.float64))


def test_random_direction_null_mean_and_variance_match_theory():
    d, n = 20, 4000
    H = metrics_with_spectrum(torch.stack([spread_spectrum(d, 3), torch.linspace(1, 5, d, dtype=torch.float64)]))
    values = A.random_direction_null(H, n_directions=n, seed=3)
    assert values.shape == (2, n)
    s1 = torch.diagonal(H, dim1=1, dim2=2).sum(-1)
    s2 = (H * H).sum((1, 2))
    variance = 2 / (d + 2) * (s2 / d - (s1 / d) ** 2)
    assert ((values.mean(1) - s1 / d).abs() < 5 * (variance / n).sqrt()).all()
    assert ((values.var(1) / variance - 1).abs() < 0.15).all()  # sd of a sample variance ~ 2.5/sqrt(n) here
    torch.testing.assert_close(values, A.random_direction_null(H, n_directions=n, seed=3))


# --- homogeneity --------------------------------------------------------------------------------------------------

def slow_homogeneity(H, lam, U, scale, against="target", floor=A.FLOOR):
    """Reference: the double loop over pairs, with numpy."""
    H, lam, U = H.numpy(), lam.numpy(), U.numpy()
    b = len(H)
    out = np.ones((b, b))
    for i in range(b):
        for j in range(b):
            if i == j:
                continue
            alpha = np.diag(U[i].T @ H[j] @ U[i])
            y = lam[j] if against == "target" else lam[i]
            if scale == "log":
                alpha = np.log10(np.maximum(alpha, floor * lam[j, 0]))
                y = np.log10(np.maximum(y, floor * (lam[j, 0] if against == "target" else lam[i, 0])))
            out[i, j] = np.corrcoef(alpha, y)[0, 1]
    return torch.from_numpy(out)


@pytest.mark.parametrize("scale", ["log", "linear"])
@pytest.mark.parametrize("against", ["target", "source"])
def test_homogeneity_vectorized_equals_double_loop(scale, against):
    H = random_psd(5, 7, seed=1)
    H[2] = H[2] @ torch.diag(torch.tensor([1.0] * 5 + [0.0] * 2, dtype=torch.float64)) @ H[2]  # rank 5: floor used
    lam, U = eigh_descending(H)  # the same eigenvectors for both (H[2]'s null space is degenerate)
    fast = A.homogeneity(H, lam, U, scale=scale, against=against, max_memory=1)  # one source row per block
    torch.testing.assert_close(fast, slow_homogeneity(H, lam, U, scale, against), rtol=0, atol=1e-10)
    assert not torch.allclose(fast, torch.ones_like(fast))


@pytest.mark.parametrize("scale", ["log", "linear"])
def test_identical_metrics_are_perfectly_homogeneous(scale):
    H = metrics_with_spectrum(spread_spectrum(12)[None]).expand(4, -1, -1).clone()
    torch.testing.assert_close(A.homogeneity(H, scale=scale), torch.ones(4, 4, dtype=torch.float64))
    torch.testing.assert_close(A.vec_correlation(H), torch.ones(4, 4, dtype=torch.float64))


def test_randomly_rotated_metrics_are_not_homogeneous():
    # H_p = R_p Λ R_pᵀ: the eigenvectors of H_i are random directions for H_j, so α^{ij}_k ≈ tr/d with
    # fluctuations unrelated to the rank; a correlation over d ranks with no association has sd ≈ 1/sqrt(d).
    d, b = 64, 6
    H = metrics_with_spectrum(spread_spectrum(d).expand(b, -1), seed=2)
    bound = 4 / math.sqrt(d)  # = 0.5
    for scale in ("log", "linear"):
        corr = A.homogeneity(H, scale=scale)
        assert A.offdiag_summary(corr.abs()).mean < bound / 2  # measured: 0.10 (both scales)
        assert offdiag(corr).abs().max() < bound  # measured: 0.25, 0.26
    assert offdiag(A.vec_correlation(H)).abs().max() < bound  # measured: 0.16
    # a small perturbation of one metric stays homogeneous, so the test above can tell the two apart
    near = torch.stack([H[0], H[0] + 1e-3 * random_psd(1, d, seed=5)[0]])
    assert A.homogeneity(near)[0, 1] > 0.9


def test_homogeneity_accepts_a_metric_and_top_k_eigenpairs():
    H = random_psd(4, 6, seed=4)
    lam, U = eigh_descending(H)
    full = A.homogeneity(H)
    metric = M.Metric(H, lam, U, torch.zeros(4, 6), "jacobian")
    torch.testing.assert_close(A.homogeneity(metric), full)
    # top-k: the correlation runs over the k computed ranks only
    top = A.homogeneity(H, lam[:, :3], U[:, :, :3])
    alpha = torch.einsum("ak,ab,bk->k", U[0, :, :3], H[1], U[0, :, :3])
    expected = np.corrcoef(np.log10(alpha.numpy()), np.log10(lam[1, :3].numpy()))[0, 1]
    assert abs(top[0, 1].item() - expected) < 1e-12


def test_offdiag_summary_and_distance_correlation():
    matrix = torch.tensor([[1.0, 2, 3], [4, 1, 6], [7, 9, 1]])
    summary = A.offdiag_summary(matrix)
    assert summary.mean == pytest.approx(31 / 6) and summary.median == pytest.approx(5.0)
    z = torch.tensor([[0.0, 0], [3, 0], [0, 1], [1, 1]], dtype=torch.float64)
    distance = torch.cdist(z, z)
    assert A.homogeneity_vs_distance(z, 2 - 0.1 * distance) == pytest.approx(-1.0)
    assert A.homogeneity_vs_distance(z, distance + torch.eye(4) * 50) == pytest.approx(1.0)


# --- average metric, subspaces, comparison -----------------------------------------------------------------------

def test_distance_interval_brackets_r_and_shrinks_with_more_codes():
    gen = torch.Generator().manual_seed(0)

    def case(n):
        z = torch.randn(n, 5, generator=gen, dtype=torch.float64)
        distance = torch.cdist(z, z)
        noise = torch.randn(n, n, generator=gen, dtype=torch.float64)
        return z, 1 - 0.05 * distance + 0.05 * noise  # a real but noisy fall with distance

    z, matrix = case(8)
    r = A.homogeneity_vs_distance(z, matrix)
    low, high = A.homogeneity_vs_distance_interval(z, matrix, n_boot=400, seed=1)
    assert -1 <= low < r < high <= 1
    z_big, matrix_big = case(40)
    low_big, high_big = A.homogeneity_vs_distance_interval(z_big, matrix_big, n_boot=400, seed=1)
    assert high_big - low_big < high - low
    assert high_big < 0  # with 40 codes the negative dependence is clear
    assert A.homogeneity_vs_distance_interval(z, matrix, n_boot=400, seed=1) == (low, high)  # seeded
    exact = torch.cdist(z, z)  # a matrix that is the distance itself: every replicate gives r = 1
    assert A.homogeneity_vs_distance_interval(z, exact, n_boot=50) == pytest.approx((1.0, 1.0))
    with pytest.raises(ValueError, match="level"):
        A.homogeneity_vs_distance_interval(z, matrix, level=1.5)
    few = A.homogeneity_vs_distance_interval(z[:4], matrix[:4, :4])  # too few codes to resample
    assert math.isnan(few[0]) and math.isnan(few[1])


def test_average_metric():
    H = random_psd(1, 5, seed=6).expand(3, -1, -1)
    average = A.average_metric(H)
    torch.testing.assert_close(average.H_mean, H[0])
    torch.testing.assert_close(average.eigvecs @ torch.diag(average.eigvals) @ average.eigvecs.T, H[0])
    two = A.average_metric(torch.diag_embed(torch.tensor([[1.0, 4, 0], [3, 0, 2]], dtype=torch.float64)))
    torch.testing.assert_close(two.eigvals, torch.tensor([2.0, 2.0, 1.0], dtype=torch.float64))
    assert torch.all(torch.diff(two.eigvals) <= 0)


def test_restrict_gives_the_block_and_its_spectrum():
    H = random_psd(3, 8, seed=7)
    sub = A.restrict(H, slice(2, 5))
    torch.testing.assert_close(sub.H, H[:, 2:5, 2:5])
    torch.testing.assert_close(sub.eigvals, torch.linalg.eigvalsh(H[:, 2:5, 2:5]).flip(-1))
    torch.testing.assert_close(A.restrict(H, [2, 3, 4]).H, sub.H)
    torch.testing.assert_close(sub.eigvecs @ torch.diag_embed(sub.eigvals) @ sub.eigvecs.transpose(1, 2), sub.H)


def test_restricted_metric_is_the_metric_of_the_block_generator():
    """Holding the other coordinates fixed, the block's own generator has exactly the restricted metric."""
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(6, 48), nn.Tanh(), nn.Unflatten(1, (3, 4, 4)))
    full = Generator(net, 6)
    fixed = torch.tensor([[0.0, 1.0]])
    block = Generator(lambda noise: net(torch.cat([noise, fixed.expand(len(noise), -1)], 1)), 4)
    z = torch.cat([torch.randn(3, 4, generator=torch.Generator().manual_seed(1)), fixed.expand(3, -1)], 1)
    m_full = M.metric(full, z, distances.mse(), progress=False)
    direct = M.metric(block, z[:, :4], distances.mse(), progress=False)
    restricted = A.restrict_metric(m_full, slice(0, 4))
    torch.testing.assert_close(restricted.H, direct.H, rtol=1e-6, atol=1e-12)
    torch.testing.assert_close(restricted.eigvals, direct.eigvals, rtol=1e-6, atol=1e-12)
    assert torch.equal(restricted.z, z[:, :4]) and restricted.method == m_full.method
    assert restricted.options["restricted_to"] == "slice(0, 4, None)"
    torch.testing.assert_close(A.homogeneity(restricted), A.homogeneity(direct), rtol=1e-5, atol=1e-6)


def test_compare_identical_and_scaled_metrics():
    H = metrics_with_spectrum(torch.stack([spread_spectrum(10), spread_spectrum(10, 2)]))
    for other in (H, 3 * H):
        result = A.compare_metrics(H, other, k=4)
        for value in (result.vec_corr, result.log_spectrum_corr, result.cosine, result.overlap):
            torch.testing.assert_close(value, torch.ones_like(value))
        assert result.cosine.shape == (2, 4)


def test_compare_swapped_top_axes():
    a = torch.diag(torch.tensor([3.0, 2, 1, 0.5], dtype=torch.float64))[None]
    b = torch.diag(torch.tensor([2.0, 3, 1, 0.5], dtype=torch.float64))[None]  # top two axes swapped
    two = A.compare_metrics(a, b, k=2)
    torch.testing.assert_close(two.cosine, torch.tensor([[0.0, 0.0]], dtype=torch.float64))
    torch.testing.assert_close(two.overlap, torch.tensor([1.0], dtype=torch.float64))  # same 2-d subspace
    assert A.compare_metrics(a, b, k=1).overlap.item() == pytest.approx(0.0, abs=1e-12)
    torch.testing.assert_close(two.log_spectrum_corr, torch.tensor([1.0], dtype=torch.float64))  # same spectrum
    expected = np.corrcoef(a.flatten().numpy(), b.flatten().numpy())[0, 1]
    assert two.vec_corr.item() == pytest.approx(expected, abs=1e-12) and expected < 0.95


# --- controls --------------------------------------------------------------------------------------------------

def small_net():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(4, 6), nn.BatchNorm1d(6), nn.ReLU(True), nn.Linear(6, 3)).double().eval()
    with torch.no_grad():
        net[1].weight.uniform_(0.5, 2.0)
        net[1].bias.uniform_(-0.5, 0.5)
        net[1].running_mean.uniform_(-0.5, 0.5)
    return net


def test_shuffle_weights_permutes_each_parameter_and_leaves_the_original():
    net = small_net()
    before = {k: v.clone() for k, v in net.state_dict().items()}
    shuffled = A.shuffle_weights(net, seed=1)
    for (name, p), q in zip(net.named_parameters(), shuffled.parameters()):
        torch.testing.assert_close(p.flatten().sort().values, q.flatten().sort().values)  # same multiset
        assert not torch.equal(p, q), name  # every parameter here has distinct values, so order changes
    for name, value in net.state_dict().items():
        assert torch.equal(value, before[name]), name  # original untouched
    torch.testing.assert_close(shuffled[1].running_mean, net[1].running_mean)  # buffers are not shuffled
    again = A.shuffle_weights(net, seed=1)
    assert all(torch.equal(p, q) for p, q in zip(shuffled.parameters(), again.parameters()))
    other = A.shuffle_weights(net, seed=2)
    assert not all(torch.equal(p, q) for p, q in zip(shuffled.parameters(), other.parameters()))
    G = Generator(small_net(), 4)
    assert isinstance(A.shuffle_weights(G), Generator)


def test_layer_metrics_of_a_linear_chain_are_two_AtA():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(5, 7, bias=False), nn.Linear(7, 3)).double()
    a, b = net[0].weight.detach(), net[1].weight.detach()
    z = torch.randn(4, 5, dtype=torch.float64)
    H1, H2 = A.layer_metrics(net, z, [net[0], "1"], chunk_size=3)
    torch.testing.assert_close(H1, (2 * a.T @ a).expand(4, -1, -1))
    torch.testing.assert_close(H2, (2 * (b @ a).T @ (b @ a)).expand(4, -1, -1))


def test_layer_metrics_with_in_place_activations_match_dense_jacobians():
    net = small_net()
    z = torch.randn(3, 4, dtype=torch.float64)
    H_bn, H_relu, H_out = A.layer_metrics(net, z, [net[1], net[2], net[3]], max_memory=1)  # one point per group
    stages = [net[:2], net[:3], net]
    for H, stage in zip((H_bn, H_relu, H_out), stages):
        for p in range(len(z)):
            J = torch.autograd.functional.jacobian(lambda x: stage(x[None])[0], z[p])  # (F, d)
            torch.testing.assert_close(H[p], 2 * J.T @ J)
    assert not torch.allclose(H_bn, H_relu)  # the ReLU, applied in place to the BN output, changed it


def test_last_layer_metric_is_the_pixel_metric():
    torch.manual_seed(0)
    net = nn.Sequential(nn.Linear(6, 3 * 4 * 4), nn.Tanh(), nn.Unflatten(1, (3, 4, 4))).double()
    G = Generator(net, 6)
    z = torch.randn(2, 6, dtype=torch.float64)
    (H,) = A.layer_metrics(G, z, [net[2]])
    pixel = M.metric(G, z, distances.mse(), progress=False).H
    torch.testing.assert_close(H / (3 * 4 * 4), pixel)  # MSE averages over the N = 48 pixels


def test_layer_alignment_of_powers_of_one_metric():
    # H_l = c_l U diag(λ^p_l) Uᵀ: log10 α_l = p_l log10 λ + log10 c_l exactly
    d = 8
    lam = spread_spectrum(d, 3)
    powers, scales = torch.tensor([0.5, 2.0, 1.0]), torch.tensor([10.0, 0.1, 1.0])
    spectra = torch.stack([c * lam ** p for p, c in zip(powers, scales)])
    U = torch.linalg.qr(torch.randn(d, d, generator=torch.Generator().manual_seed(0), dtype=torch.float64))[0]
    layer_H = [U @ torch.diag(s) @ U.T for s in spectra]  # one point, (d, d) each
    result = A.layer_alignment(layer_H)
    assert result.alpha.shape == (1, 3, d)
    torch.testing.assert_close(result.alpha[0], spectra)
    torch.testing.assert_close(result.slope[0], powers.double())
    torch.testing.assert_close(result.intercept[0], scales.double().log10())
    torch.testing.assert_close(result.corr_log[0], torch.ones(3, 3, dtype=torch.float64))
    expected = torch.from_numpy(np.corrcoef(spectra.numpy()))
    torch.testing.assert_close(result.corr_linear[0], expected)
    assert result.corr_linear[0, 0, 1] < 0.99


# --- helpers used by chapters 02 and 03 ----------------------------------------------------------------


def test_pair_amplification_matches_loop_and_diagonal_is_spectrum():
    H = random_psd(4, 6)
    lam, U = torch.linalg.eigh(H)
    lam, U = lam.flip(-1), U.flip(-1)
    alpha = A.pair_amplification(H, [0, 2], [1, 2, 3])
    for a, i in enumerate([0, 2]):
        for b, j in enumerate([1, 2, 3]):
            expected = torch.stack([U[i][:, k] @ H[j] @ U[i][:, k] for k in range(6)])
            torch.testing.assert_close(alpha[a, b], expected)
    torch.testing.assert_close(alpha[1, 1], lam[2])


def test_pair_amplification_agrees_with_homogeneity():
    H = random_psd(3, 5, seed=1)
    alpha = A.pair_amplification(H, range(3), range(3))
    lam = torch.linalg.eigvalsh(H).flip(-1)
    expected = np.corrcoef(np.log10(alpha[0, 1].numpy()), np.log10(lam[1].numpy()))[0, 1]
    assert abs(A.homogeneity(H)[0, 1].item() - expected) < 1e-10


def test_subspace_energy_bounds():
    H = random_psd(3, 5, seed=2)
    own = torch.linalg.eigh(H[0])[1].flip(-1)
    energy = A.subspace_energy(H, own)
    torch.testing.assert_close(energy[:, -1], torch.ones(3, dtype=torch.float64))  # the whole space holds all
    assert (energy.diff(dim=1) >= -1e-12).all()
    lam = torch.linalg.eigvalsh(H[0]).flip(-1)
    torch.testing.assert_close(energy[0], lam.cumsum(0) / lam.sum())  # own eigenvectors: eigenvalue fractions
    # Ky Fan: no n-subspace holds more of H_1 than H_1's own top-n eigenvectors
    best = torch.linalg.eigvalsh(H[1]).flip(-1).cumsum(0) / torch.linalg.eigvalsh(H[1]).sum()
    assert (energy[1] <= best + 1e-12).all()


def test_layer_homogeneity_is_homogeneity_across_layers_against_source():
    layers = [random_psd(2, 5, seed=s) for s in range(3)]
    out = A.layer_homogeneity(layers, scale="linear")
    assert out.shape == (2, 3, 3)
    expected = A.homogeneity(torch.stack([h[1] for h in layers]), scale="linear", against="source")
    torch.testing.assert_close(out[1], expected)
    same = A.layer_homogeneity([layers[0], 3 * layers[0]])  # a scaled metric has the same eigenframe
    torch.testing.assert_close(same, torch.ones(2, 2, 2, dtype=torch.float64))


def test_figures_show_the_results_they_are_given():
    rng = np.random.default_rng(0)
    H = random_psd(4, 6)
    summary, raw = A.spectrum_summary(H), A.spectrum_summary(H, normalize=False)
    fig = viz.spectrum_chart({"a": summary, "b": raw})
    band, center = fig.data[:2]  # per entry: the 5-95 band, then the mean line
    np.testing.assert_allclose(center.y, summary.mean.numpy())
    np.testing.assert_allclose(band.y, np.concatenate([summary.p95.numpy(), summary.p5.numpy()[::-1]]))
    assert fig.layout.yaxis.type == "log" and fig.layout.yaxis.title.text == "eigenvalue"  # b is not normalised
    assert viz.spectrum_chart({"a": summary}).layout.yaxis.title.text == "eigenvalue / top eigenvalue"
    fig = viz.band_chart({"x": (np.arange(3), [1, 2, 3], [0.5, 1, 2], [2, 3, 4])}, log_y=True)
    assert list(fig.data[1].y) == [1, 2, 3] and list(fig.data[0].y) == [2, 3, 4, 2, 1, 0.5]
    values = rng.random(50)
    box, = viz.quantile_boxes({"m": {"eig": values}}).data
    assert box.median[0] == pytest.approx(np.median(values)) and box.upperfence[0] == pytest.approx(
        np.percentile(values, 95))
    a, b = rng.random(20), rng.random(10)
    fig = viz.histogram_overlay({"a": a, "b": b})
    assert [t.name for t in fig.data] == ["a", "b"] and fig.data[0].xbins.size == fig.data[1].xbins.size
    np.testing.assert_array_equal(fig.data[1].x, b)
    fig = viz.scatter_grid(rng.random((2, 2, 6)), rng.random((2, 2, 6)), r=np.eye(2))
    assert len(fig.data) == 8 and [t.text for t in fig.layout.annotations] == [  # columns named at the top
        "0", "1", "r=1.00", "r=0.00", "r=0.00", "r=1.00"]
    x = rng.random(8)
    points, line = viz.scatter_fit(x, 2 * x + 1, r=0.3).data
    np.testing.assert_allclose(line.y, 2 * np.array(line.x) + 1)
    assert list(line.x) == [x.min(), x.max()] and line.name == "least squares (r = 0.30)"


# --- the chapters' studies: spectrum against random directions, class against noise, homogeneity, layers ------------

def as_metric(H, z=None):
    """A `Metric` of metrics H (b, d, d), exact eigenpairs, at codes z (default: seeded random)."""
    lam, U = eigh_descending(H)
    z = torch.randn(len(H), H.shape[-1], generator=torch.Generator().manual_seed(0)) if z is None else z
    return M.Metric(H, lam, U, z, "exact", 0.0, {})


def test_random_directions_of_an_isotropic_and_a_spread_metric():
    iso = A.random_directions(as_metric(torch.eye(6, dtype=torch.float64).expand(3, 6, 6).clone()), 200, seed=1)
    torch.testing.assert_close(iso.random, torch.ones(3, 200, dtype=torch.float64))  # vᵀIv = 1 = λ_1
    assert iso.eigenvalue_spread == pytest.approx(0) and iso.random_spread == pytest.approx(0, abs=1e-12)
    assert iso.ranks_above == 0  # the spectrum equals the random median, never above it
    spread = A.random_directions(as_metric(metrics_with_spectrum(spread_spectrum(20, 6).expand(2, -1))), 500)
    assert spread.eigenvalues.shape == (2, 20) and spread.random.shape == (2, 500)
    low, high = np.percentile(np.tile(spread_spectrum(20, 6).numpy(), 2), [5, 95])  # pooled over positions
    assert spread.eigenvalue_spread == pytest.approx(math.log10(high / low))
    assert 0.8 * 6 < spread.eigenvalue_spread < 6
    assert spread.random_spread < spread.eigenvalue_spread - 3  # random directions average the spectrum
    median = spread.random.median()
    assert spread.ranks_above == int((spread_spectrum(20, 6) > median).sum())


def test_class_noise_splits_a_model_with_blocks_and_skips_one_without():
    H = torch.diag_embed(torch.tensor([[4.0, 2, 1, 8, 6]] * 2, dtype=torch.float64))  # noise 0..2, class 3..4
    G = Generator(nn.Identity(), 5, blocks={"noise": slice(0, 3), "class": slice(3, 5)})
    model = SimpleNamespace(G=G, metric=as_metric(H), full=None, full_metric=None)
    split = A.class_noise(model)
    assert list(split.spectra) == ["full (5-d)", "noise (3-d)", "class (2-d)"]
    torch.testing.assert_close(split.spectra["class (2-d)"], torch.tensor([[8.0, 6]] * 2, dtype=torch.float64))
    torch.testing.assert_close(split.ratio, torch.tensor([2.0, 3.0], dtype=torch.float64))  # 8/4, 6/2: two ranks
    assert A.class_noise(SimpleNamespace(G=Generator(nn.Identity(), 5), metric=model.metric, full=None)) is None
    full = SimpleNamespace(G=Generator(nn.Identity(), 3), metric=None, full=G, full_metric=model.metric)
    torch.testing.assert_close(A.class_noise(full).ratio, split.ratio)  # the full input's metric is the one split


def test_homogeneity_tests_pair_scatter_and_distances_of_shared_eigenframes():
    H = metrics_with_spectrum(spread_spectrum(8)[None], seed=3).expand(4, -1, -1) * torch.tensor(
        [1.0, 2, 3, 4], dtype=torch.float64)[:, None, None]  # one eigenframe, scaled metrics
    m = as_metric(H)
    tests = A.homogeneity_tests(m)
    assert list(tests.matrices) == ["log scale", "linear scale", "vec(H) correlation"]
    for name, matrix in tests.matrices.items():
        torch.testing.assert_close(matrix, torch.ones(4, 4, dtype=torch.float64))
        assert tests.summary[name].mean == pytest.approx(1) and tests.summary[name].median == pytest.approx(1)
    assert tests.log is tests.matrices["log scale"]
    pairs = A.pair_scatter(m, [0, 2, 3])
    assert pairs.log_alpha.shape == (3, 3, 8) and pairs.n_pairs == 6
    torch.testing.assert_close(pairs.log_alpha, pairs.log_lambda)  # α_k = λ_k(H_j) when frames are shared
    assert pairs.slope == pytest.approx(1)
    torch.testing.assert_close(pairs.log_lambda[1, 2], torch.log10(m.eigvals[3]))  # column j: λ(H_j)
    z = torch.tensor([[0.0, 0], [3, 4], [0, 1]])
    torch.testing.assert_close(A.pair_distances(z), torch.tensor([5.0, 1, 5, 4.2426406871, 1, 4.2426406871],
                                                                 dtype=torch.float64))
    torch.testing.assert_close(A.off_diagonal(torch.arange(9.0).view(3, 3)), torch.tensor([1.0, 2, 3, 5, 6, 7]))


def test_pair_scatter_slope_of_compressed_spectra():
    """λ(H_j) spans twice the decades of λ(H_i) in the same frame: α^{ij} = λ(H_j) but against λ(H_i) the slope is
    2; against λ(H_j) (what pair_scatter fits) it is 1 whatever the spread."""
    frame = metrics_with_spectrum(spread_spectrum(10, 3)[None], seed=4)
    lam, U = eigh_descending(frame)
    H = torch.cat([frame, U @ torch.diag_embed(lam ** 2) @ U.transpose(1, 2)])
    assert A.pair_scatter(as_metric(H), [0, 1]).slope == pytest.approx(1)
    R = metrics_with_spectrum(spread_spectrum(10, 3)[None], seed=5)  # another frame: the slope falls below one
    assert A.pair_scatter(as_metric(torch.cat([frame, R])), [0, 1]).slope < 0.9


def test_frame_energy_of_shared_and_random_frames():
    shared = A.frame_energy(as_metric(metrics_with_spectrum(spread_spectrum(6, 2)[None]).expand(3, -1, -1)))
    torch.testing.assert_close(shared.average, shared.own)  # the average metric has every code's frame
    torch.testing.assert_close(shared.own[:, -1], torch.ones(3, dtype=torch.float64))
    spread = A.frame_energy(as_metric(metrics_with_spectrum(spread_spectrum(6, 2).expand(3, -1), seed=2)))
    assert (spread.average <= spread.own + 1e-12).all()  # no subspace holds more than the code's own top n
    assert (spread.average[:, :-1] < spread.own[:, :-1]).any()


def test_shuffled_generator_permutes_every_weight_and_keeps_the_original():
    torch.manual_seed(0)
    G = Generator(nn.Sequential(nn.Linear(4, 12), nn.Tanh(), nn.Unflatten(1, (3, 2, 2))), 4, name="toy")
    shuffled = A.shuffled_generator(G, seed=3)
    assert shuffled.name == "toy-shuffled3" and shuffled.latent_dim == 4
    for p, q in zip(G.parameters(), shuffled.parameters()):
        assert torch.equal(p.flatten().sort().values, q.flatten().sort().values) and not torch.equal(p, q)
    assert torch.equal(A.shuffled_generator(G, seed=3).net[0].weight, shuffled.net[0].weight)


def test_layer_tests_of_a_small_chain():
    torch.manual_seed(1)
    G = Generator(nn.Sequential(nn.Linear(5, 16), nn.ReLU(), nn.Linear(16, 12), nn.Tanh(), nn.Unflatten(1, (3, 2, 2))),
                  5, name="chain")
    z = torch.randn(3, 5, generator=torch.Generator().manual_seed(2))
    layers = A.layer_tests(G, z)
    assert layers.labels == ["1: ReLU", "2: Tanh"]
    assert layers.log.shape == layers.linear.shape == (2, 2) and layers.alignment.alpha.shape == (3, 2, 5)
    assert list(layers.summary) == ["authors' matrix, log", "authors' matrix, linear",
                                    "image-eigenvector amplification, log", "image-eigenvector amplification, linear"]
    layer_H = A.layer_metrics(G, z, ["net.1", "net.3"])
    torch.testing.assert_close(layers.log, A.layer_homogeneity(layer_H).mean(0))
    assert layers.summary["authors' matrix, linear"].mean == pytest.approx(
        A.offdiag_summary(A.layer_homogeneity(layer_H, scale="linear").mean(0)).mean)


def test_comparison_means_of_identical_metrics():
    H = random_psd(3, 6, seed=8)
    means = A.comparison_means(A.compare_metrics(H, 2 * H, k=4))
    assert list(means) == ["corr vec(H)", "corr log spectrum", "cosine of the top eigenvectors (abs.)",
                           "top-4 subspace overlap"]
    assert means == pytest.approx({name: 1.0 for name in means})



def test_method_agreement_of_a_scaled_and_a_truncated_metric():
    """2H against H: Frobenius error 1, eigenvalue error 1, correlation 1; a top-2 reconstruction is compared on
    its own two ranks, exactly."""
    g = torch.Generator().manual_seed(0)
    A_ = torch.randn(2, 5, 5, dtype=torch.float64, generator=g)
    H = A_ @ A_.transpose(1, 2)
    lam, V = M.eigh_descending(H)
    reference = SimpleNamespace(H=H, eigvals=lam)
    scaled = A.method_agreement(SimpleNamespace(H=2 * H, eigvals=2 * lam), reference, 5)
    assert scaled.rel_frobenius == pytest.approx(1) and scaled.top_eig_rel_error == pytest.approx(1)
    assert scaled.corr_vecH == pytest.approx(1)
    top2 = V[:, :, :2] @ torch.diag_embed(lam[:, :2]) @ V[:, :, :2].transpose(1, 2)
    truncated = A.method_agreement(SimpleNamespace(H=top2, eigvals=lam[:, :2]), reference, 5)
    assert truncated.top_eig_rel_error == pytest.approx(0, abs=1e-12)
    assert truncated.rel_frobenius == pytest.approx(float((top2 - H).norm() / H.norm()))
    assert truncated._asdict().keys() == {"rel_frobenius", "top_eig_rel_error", "corr_vecH"}
