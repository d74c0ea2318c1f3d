"""The metric engine against the analytic linear case, against each other on the real model, and its errors."""
import numpy as np
import pytest
import torch
from torch import nn

from helpers import distances, metric as M
from helpers.generators import Generator


def linear_generator(d=8, side=4, seed=0, dtype=torch.float64):
    """G(z) = A z reshaped to (3, side, side); float64 so even finite differences are exact to roundoff."""
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(d, 3 * side * side, bias=False), nn.Unflatten(1, (3, side, side))).to(dtype)
    A = net[0].weight.detach().clone()
    return Generator(net, d, name="linear"), A


def analytic_metric(A):
    return 2 * A.T @ A / A.shape[0]  # MSE averages over N = 3·H·W pixels


@pytest.mark.parametrize("method", M.METHODS)
def test_linear_generator_with_mse_gives_two_AtA_over_N(method):
    G, A = linear_generator()
    z = torch.randn(3, 8, dtype=torch.float64)
    result = M.metric(G, z, distances.mse(), method, k=4, progress=False)
    H = analytic_metric(A)
    true_vals, true_vecs = torch.linalg.eigh(H)
    true_vals, true_vecs = true_vals.flip(0), true_vecs.flip(1)
    k = result.eigvals.shape[1]
    assert result.H.shape == (3, 8, 8) and result.H.dtype == torch.float64
    assert torch.allclose(result.eigvals, true_vals[:k].expand(3, -1), rtol=1e-6, atol=0)
    if method in ("jacobian", "backprop"):
        assert ((result.H - H).norm() / H.norm()).item() < 1e-6
    # eigenvectors agree up to sign
    overlap = (result.eigvecs * true_vecs[:, :k]).sum(1).abs()
    assert torch.allclose(overlap, torch.ones_like(overlap), atol=1e-6)


def test_finite_difference_is_the_hessian_not_half_of_it():
    G, A = linear_generator()
    z = torch.randn(8, dtype=torch.float64)
    op = M.finite_difference_hvp(G, z, distances.mse(), eps=1e-3)
    v = np.random.default_rng(1).standard_normal(8)
    np.testing.assert_allclose(op @ v, analytic_metric(A).numpy() @ v, rtol=1e-7)


def test_hvp_operator_matches_dense_metric_on_real_model(faces, lpips_alex):
    z = faces.sample(1, seed=5)[0]
    dense = M.metric(faces, z, lpips_alex, progress=False).H[0].numpy()
    op = M.hvp(faces, z, lpips_alex)
    v = np.random.default_rng(0).standard_normal(100)
    np.testing.assert_allclose(op @ v, dense @ v, rtol=1e-4, atol=1e-6 * np.abs(dense @ v).max())


@pytest.fixture(scope="module")
def faces_reference(faces, lpips_alex):
    """The paper's BP on two face codes: the baseline every other method is compared with."""
    z = faces.sample(2, seed=11)
    return z, M.metric(faces, z, lpips_alex, "backprop", progress=False)


def test_jacobian_matches_backprop_on_faces(faces, lpips_alex, faces_reference):
    z, bp = faces_reference
    jac = M.metric(faces, z, lpips_alex, "jacobian", progress=False)
    rel = ((jac.H - bp.H).norm() / bp.H.norm()).item()
    assert rel < 1e-4
    assert torch.allclose(jac.eigvals[:, :20], bp.eigvals[:, :20], rtol=1e-4)
    overlap = (jac.eigvecs[:, :, :5] * bp.eigvecs[:, :, :5]).sum(1).abs()
    assert (overlap > 0.999).all()


def test_lanczos_top20_matches_backprop(faces, lpips_alex, faces_reference):
    z, bp = faces_reference
    lz = M.metric(faces, z[:1], lpips_alex, "lanczos", k=20, progress=False)
    rel = ((lz.eigvals[0] - bp.eigvals[0, :20]).abs() / bp.eigvals[0, :20]).max().item()
    assert rel < 1e-4
    overlap = (lz.eigvecs[0, :, :5] * bp.eigvecs[0, :, :5]).sum(0).abs()
    assert (overlap > 0.999).all()


def test_finite_difference_correlates_with_backprop(faces, lpips_alex, faces_reference):
    z, bp = faces_reference
    fd = M.metric(faces, z[:1], lpips_alex, "finite-difference", k=20, progress=False)
    corr = np.corrcoef(fd.H[0].flatten().numpy(), bp.H[0].flatten().numpy())[0, 1]
    assert corr > 0.97
    assert abs(fd.eigvals[0, 0] / bp.eigvals[0, 0] - 1) < 0.05  # right scale: not ½H


def test_metric_is_symmetric_psd_and_batch_equals_one_by_one(faces, lpips_alex):
    z = faces.sample(3, seed=2)
    batch = M.metric(faces, z, lpips_alex, chunk_size=64, progress=False)
    assert torch.equal(batch.H, batch.H.transpose(1, 2)) or torch.allclose(batch.H, batch.H.transpose(1, 2))
    assert (batch.eigvals[:, -1] > -1e-6 * batch.eigvals[:, 0]).all()
    assert (batch.eigvals[:, :-1] >= batch.eigvals[:, 1:]).all()
    for i in range(3):
        # one point at a time, and a Jacobian budget so small that every point is its own group
        single = M.metric(faces, z[i], lpips_alex, chunk_size=17, max_memory=1, progress=False)
        assert torch.allclose(single.H[0], batch.H[i], rtol=1e-5, atol=1e-7 * batch.H[i].abs().max().item())


def test_reproducible_top_k(faces, lpips_alex):
    z = faces.sample(1, seed=4)
    a = M.metric(faces, z, lpips_alex, "lanczos", k=20, progress=False)
    b = M.metric(faces, z, lpips_alex, "lanczos", k=20, progress=False)
    assert torch.equal(a.eigvals, b.eigvals)


def test_save_load_roundtrip_is_atomic(tmp_path):
    G, _ = linear_generator()
    result = M.metric(G, torch.randn(2, 8, dtype=torch.float64), distances.mse(), progress=False)
    path = result.save(tmp_path / "sub" / "m.npz")
    assert sorted(p.name for p in path.parent.iterdir()) == ["m.npz"]  # no partial file left behind
    back = M.Metric.load(path)
    assert torch.equal(back.H, result.H) and torch.equal(back.eigvecs, result.eigvecs)
    assert back.method == "jacobian" and back.options == result.options
    vals, vecs = back.top(3)
    assert vals.shape == (2, 3) and vecs.shape == (2, 8, 3)
    assert torch.equal(back[1].H[0], result.H[1])
    with pytest.raises(ValueError, match="only 8 eigenpairs"):
        back.top(9)


# --- errors ----------------------------------------------------------------------------------------------

def test_wrong_latent_shape():
    G, _ = linear_generator()
    with pytest.raises(ValueError, match=r"z must have shape \(8,\) or \(b, 8\), got \(2, 7\)"):
        M.metric(G, torch.zeros(2, 7), distances.mse())
    with pytest.raises(ValueError, match="got \\(1, 2, 8\\)"):
        M.metric(G, torch.zeros(1, 2, 8), distances.mse())


def test_non_finite_latent():
    G, _ = linear_generator()
    z = torch.zeros(2, 8)
    z[1, 3] = float("nan")
    with pytest.raises(ValueError, match="non-finite"):
        M.metric(G, z, distances.mse())


def test_unknown_method_and_bad_k():
    G, _ = linear_generator()
    with pytest.raises(ValueError, match="unknown method 'bogus'.*jacobian, backprop, lanczos, finite-difference"):
        M.metric(G, torch.zeros(8), distances.mse(), "bogus")
    with pytest.raises(ValueError, match="k must be between 1 and d-1 = 7"):
        M.metric(G, torch.zeros(8), distances.mse(), "lanczos", k=8)


def test_distance_must_return_one_value_per_image():
    G, _ = linear_generator()
    mean_distance = lambda x0, x: ((x0 - x) ** 2).mean()  # noqa: E731  a scalar, not (n,)
    with pytest.raises(ValueError, match=r"one value per image, shape \(2,\); got \(\)"):
        M.metric(G, torch.randn(2, 8), mean_distance, "backprop")


def test_jacobian_needs_a_feature_map():
    G, _ = linear_generator()
    plain = lambda x0, x: ((x0 - x) ** 2).flatten(1).sum(1)  # noqa: E731
    with pytest.raises(TypeError, match="no `features` map.*method='backprop'"):
        M.metric(G, torch.randn(8), plain)
    # ...which every other method accepts
    H = M.metric(G, torch.randn(8, dtype=torch.float64), plain, "backprop").H[0]
    _, A = linear_generator()
    assert torch.allclose(H, 2 * A.T @ A, rtol=1e-10)


def test_generator_that_ignores_z_is_reported():
    const = Generator(lambda z: torch.zeros(z.shape[0], 3, 4, 4) + 0 * z.sum(1)[:, None, None, None], 8,
                      name="constant")
    for method in ("jacobian", "backprop"):
        with pytest.raises(ValueError, match="constant does not depend on z"):
            M.metric(const, torch.randn(8), distances.mse(), method)


def test_metric_runs_convolutions_in_float32_and_restores_the_setting(faces, lpips_alex, monkeypatch):
    """torch lets cuDNN use TF32 by default; the metric turns that off while it computes, unless asked."""
    seen = []

    class Watched(torch.nn.Module):
        latent_dim = faces.latent_dim

        def __init__(self):
            super().__init__()
            self.inner = faces

        def forward(self, z):
            seen.append(torch.backends.cudnn.allow_tf32)
            return self.inner(z)

    G = Watched()
    monkeypatch.setattr(torch.backends.cudnn, "allow_tf32", True)
    for method in M.METHODS:
        seen.clear()
        M.metric(G, faces.sample(1, seed=0), lpips_alex, method, k=3)
        assert seen and not any(seen), method
        assert torch.backends.cudnn.allow_tf32 is True, method
    seen.clear()
    allowed = M.metric(G, faces.sample(1, seed=0), lpips_alex, allow_tf32=True)
    assert seen and all(seen) and allowed.options["allow_tf32"] is True
    seen.clear()
    operator = M.hvp(G, faces.sample(1, seed=0), lpips_alex)
    operator.matvec(np.ones(faces.latent_dim))
    assert seen and not any(seen) and torch.backends.cudnn.allow_tf32 is True
    with pytest.raises(ValueError), M.float32_convolutions():
        assert torch.backends.cudnn.allow_tf32 is False
        raise ValueError("restored even when the block fails")
    assert torch.backends.cudnn.allow_tf32 is True
