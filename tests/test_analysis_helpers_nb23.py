"""The small analysis helpers used by notebooks 2 and 3 (pair_amplification, subspace_energy,
layer_homogeneity), checked against slow loops and answers known by hand; and their figures build."""
import numpy as np
import torch

from helpers import analysis as A
from helpers import viz


def random_psd(b, d, seed=0):
    X = torch.randn(b, d, d, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
    return X @ X.transpose(1, 2) / d


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


def test_figures_build_from_results():
    H = random_psd(4, 6)
    summary = A.spectrum_summary(H)
    figures = [
        viz.spectrum_chart({"a": summary, "b": A.spectrum_summary(H, normalize=False)}),
        viz.band_chart({"x": (np.arange(3), [1, 2, 3], [0, 1, 2], [2, 3, 4])}, log_y=True),
        viz.quantile_boxes({"m": {"eig": np.random.rand(50), "null": np.random.rand(20)}}),
        viz.histogram_overlay({"a": np.random.rand(20), "b": np.random.rand(10)}),
        viz.scatter_grid(np.random.rand(2, 2, 6), np.random.rand(2, 2, 6), r=np.eye(2)),
        viz.scatter_fit(np.random.rand(8), np.random.rand(8), r=0.3),
    ]
    for fig in figures:
        assert fig.data and fig.to_json()
