"""The metric engine against the analytic linear case, against each other on the real model, and its errors."""
import numpy as np
import pytest
import torch

from helpers import distances, metric as M
from helpers.generators import Generator

from cases import analytic_metric, linear_generator, quadratic_generator


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
    with pytest.raises(ValueError, match="k must be an integer between 1 and d-1 = 7"):
        M.metric(G, torch.zeros(8), distances.mse(), "lanczos", k=8)


def test_distance_must_return_one_value_per_image():
    G, _ = linear_generator()
    mean_distance = lambda x0, x: ((x0 - x) ** 2).mean()  # noqa: E731  a scalar, not (n,)
    with pytest.raises(ValueError, match=r"one value per image, shape \(\d+,\); got \(\)"):
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


# --- bad input: no silent wrong answers (issue 12) ------------------------------------------------------------

def matrix_generator(dtype=torch.float64, d=8, side=4, seed=0):
    """A parameter-free callable G(z) = A z (A closed over, not a parameter): the metric follows z's dtype."""
    A = torch.randn(3 * side * side, d, generator=torch.Generator().manual_seed(seed), dtype=dtype)
    return Generator(lambda z: (z @ A.T).view(-1, 3, side, side), d, name="matrix"), A


@pytest.mark.parametrize("method", M.METHODS)
def test_float64_callable_generator_computes_in_float64(method):
    """Failed before: z was cast to float32 for a G without parameters, and `z @ A.T` raised a dtype error."""
    G, A = matrix_generator()
    z = torch.randn(2, 8, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    result = M.metric(G, z, distances.mse(), method, k=4, progress=False)
    assert result.z.dtype == torch.float64 and result.H.dtype == torch.float64
    true_vals = torch.linalg.eigvalsh(analytic_metric(A)).flip(0)
    assert torch.allclose(result.eigvals, true_vals[:result.eigvals.shape[1]].expand(2, -1), rtol=1e-7, atol=0)


def test_float32_codes_for_a_float64_callable_get_a_dtype_hint():
    G, _ = matrix_generator()
    with pytest.raises(TypeError, match=r"failed on torch.float32 codes.*z.double\(\)"):
        M.metric(G, torch.randn(8), distances.mse(), "backprop")


def grey_generator(side=4):
    """Returns (n, H, W) images, three channels short of (n, 3, H, W)."""
    A = torch.randn(side * side, 8, generator=torch.Generator().manual_seed(0))
    return Generator(lambda z: torch.tanh(z @ A.T).view(-1, side, side), 8, name="grey")


@pytest.mark.parametrize("method", M.METHODS)
def test_every_method_refuses_images_that_are_not_n_3_h_w(method):
    with pytest.raises(ValueError, match=r"generator output: expected images of shape \(n, 3, H, W\), got \(\d, 4, 4\)"):
        M.metric(grey_generator(), torch.randn(8), distances.mse(), method, k=3)


def test_jacobian_with_lpips_refuses_grey_images(lpips_alex):
    """Failed before: with LPIPS's feature map three (H, W) images were read as one RGB image, and three
    codes shared one wrong metric."""
    with pytest.raises(ValueError, match=r"expected images of shape \(n, 3, H, W\), got \(\d, 32, 32\)"):
        M.metric(grey_generator(32), torch.randn(3, 8), lpips_alex)


def byte_range_generator(side=32):
    """Images in [0, 255], the other common convention."""
    A = torch.randn(3 * side * side, 8, generator=torch.Generator().manual_seed(0))
    return Generator(lambda z: 127.5 * (1 + torch.tanh(z @ A.T)).view(-1, 3, side, side), 8, name="bytes")


@pytest.mark.parametrize("method", M.METHODS)
def test_lpips_refuses_images_in_0_255_with_every_method(method, lpips_alex):
    with pytest.raises(ValueError, match=r"generator output spans \[.*\] but LPIPS expects images in \[-1, 1\]"):
        M.metric(byte_range_generator(), torch.randn(8), lpips_alex, method, k=3)
    # MSE has no range: the same images are fine there
    assert M.metric(byte_range_generator(4), torch.randn(8), distances.mse(), method, k=3).eigvals[0, 0] > 0


def test_images_slightly_outside_the_range_are_accepted(lpips_alex):
    """A generator without a final tanh overshoots [-1, 1] a little: not refused (only beyond [-1.2, 1.2]); G(z) + 1,
    2·G(z) and the like are (they change LPIPS by tens of per cent)."""
    def scaled(scale, shift=0.0):
        return Generator(lambda z: scale * torch.tanh(z[:, :1, None, None]).expand(-1, 3, 32, 32)
                         + 0.001 * z.sum(1)[:, None, None, None] + shift, 8)  # (per code: the probe compares batches)

    assert M.metric(scaled(1.1), torch.full((8,), 3.0), lpips_alex, "backprop").H.abs().max() > 0
    for G in (scaled(1.3), scaled(2.0), scaled(1.0, 1.0)):
        with pytest.raises(ValueError, match=r"expects images in \[-1, 1\] \(values beyond \[-1.2, 1.2\] are refused"):
            M.metric(G, torch.full((8,), 3.0), lpips_alex, "backprop")


def test_integer_images_are_refused():
    G = Generator(lambda z: (z[:, :1, None, None] > 0).expand(-1, 3, 4, 4).to(torch.uint8), 8, name="ints")
    with pytest.raises(TypeError, match="expected floating-point images, got torch.uint8"):
        M.metric(G, torch.randn(8), distances.mse(), "backprop")


def test_finite_difference_checks_the_distance_returns_one_value_per_image():
    """Failed before: a distance returning the batch mean made finite-difference return exactly ½ H."""
    G, _ = linear_generator()
    mean_distance = lambda x0, x: ((x0 - x) ** 2).flatten(1).sum(1).mean()  # noqa: E731
    with pytest.raises(ValueError, match=r"one value per image, shape \(\d+,\); got \(\)"):
        M.metric(G, torch.randn(8, dtype=torch.float64), mean_distance, "finite-difference", k=3)


def nan_generator():
    G, _ = linear_generator()
    return Generator(lambda z: G(z) * torch.where(z[:, :1, None, None] > 0, torch.nan, 1.0), 8, name="nanny")


@pytest.mark.parametrize("method", M.METHODS)
def test_nan_images_are_refused_naming_the_generator(method):
    """Failed before: all-nan metrics from jacobian and backprop; a bare ARPACK error from the others."""
    z = torch.tensor([[1.0] * 8, [-1.0] * 8], dtype=torch.float64)
    with pytest.raises(ValueError, match=r"generator output contains non-finite values \(nan or inf\) in image"):
        M.metric(nan_generator(), z[:1] if method in ("lanczos", "finite-difference") else z, distances.mse(),
                 method, k=3)


def test_nan_at_a_later_point_is_found_after_the_probe():
    """The probe checks the images of the first two codes; a nan at another point is caught in H."""
    z = torch.tensor([[-1.0] * 8, [-2.0] * 8, [1.0] * 8], dtype=torch.float64)  # points 0, 1 fine, point 2 nan
    with pytest.raises(ValueError, match=r"metric is non-finite at point\(s\) \[2\]: the generator output"):
        M.metric(nan_generator(), z, distances.mse())
    with pytest.raises(ValueError, match=r"generator output contains non-finite values \(nan or inf\) in image\(s\) \[1\]"):
        M.metric(nan_generator(), z[[0, 2]], distances.mse())  # within the probe


class NanDistance(distances.Distance):
    def features(self, x):
        return x.flatten(1) * torch.nan


@pytest.mark.parametrize("method", M.METHODS)
def test_nan_distance_is_refused_naming_the_distance(method):
    G, _ = linear_generator()
    with pytest.raises(ValueError, match=r"distance (returned|returns) (non-finite values|nan)"):
        M.metric(G, torch.randn(8, dtype=torch.float64), NanDistance(), method, k=3)


@pytest.mark.parametrize("method", ["backprop", "lanczos"])
def test_nan_derivative_is_refused_and_explained(method):
    """The square of a norm written as sqrt(·)²: the value is 0 at z0 but its derivative there is nan. (A plain norm is
    refused before: it grows like the step, not its square.)"""
    G, _ = linear_generator()
    squared_norm = lambda x0, x: ((x0 - x) ** 2).flatten(1).sum(1).sqrt() ** 2  # noqa: E731
    with pytest.raises(ValueError, match="non-finite .* although the generator output .* derivative"):
        M.metric(G, torch.randn(8, dtype=torch.float64), squared_norm, method, k=3)
    norm = lambda x0, x: ((x0 - x) ** 2).flatten(1).sum(1).sqrt()  # noqa: E731
    with pytest.raises(ValueError, match="grows like .x − x0., not like its square"):
        M.metric(G, torch.randn(8, dtype=torch.float64), norm, method, k=3)


def test_empty_batch_is_a_clear_error():
    G, _ = linear_generator()
    with pytest.raises(ValueError, match=r"z holds no codes \(shape \(0, 8\)\)"):
        M.metric(G, torch.zeros(0, 8, dtype=torch.float64), distances.mse())


def test_finite_difference_at_the_origin():
    """Failed before: the step eps·‖z‖ was 0 at z = 0 (ARPACK error); now it is eps·max(‖z‖, 1)."""
    G, A = linear_generator()
    result = M.metric(G, torch.zeros(8, dtype=torch.float64), distances.mse(), "finite-difference", k=3)
    true_vals = torch.linalg.eigvalsh(analytic_metric(A)).flip(0)
    assert torch.allclose(result.eigvals[0], true_vals[:3], rtol=1e-7)


@pytest.mark.parametrize("method", M.METHODS)
def test_every_method_reports_a_generator_that_ignores_z(method):
    """Failed before for lanczos/finite-difference (ARPACK 'starting vector is zero') and, for a G without any
    graph, backprop (an autograd error)."""
    flat = Generator(lambda z: torch.zeros(z.shape[0], 3, 4, 4) + 0 * z.sum(1)[:, None, None, None], 8,
                     name="constant")
    frozen = Generator(lambda z: torch.zeros(z.shape[0], 3, 4, 4), 8, name="constant")
    for G in (flat, frozen):
        with pytest.raises(ValueError, match="constant does not depend on z"):
            M.metric(G, torch.randn(8), distances.mse(), method, k=3)


def test_metric_load_refuses_truncated_and_inconsistent_files(tmp_path):
    G, _ = linear_generator()
    good = M.metric(G, torch.randn(2, 8, dtype=torch.float64), distances.mse(), progress=False)
    path = good.save(tmp_path / "m.npz")
    (tmp_path / "cut.npz").write_bytes(path.read_bytes()[:500])
    with pytest.raises(ValueError, match=r"cut.npz is not a readable Metric file \(BadZipFile"):
        M.Metric.load(tmp_path / "cut.npz")
    fields = {"H": good.H.numpy(), "eigvals": good.eigvals.numpy(), "eigvecs": good.eigvecs.numpy(),
              "z": good.z.numpy(), "method": "jacobian", "seconds": 1.0, "options": "{}"}
    cases = {"missing": ({k: v for k, v in fields.items() if k != "eigvecs"}, "lacks eigvecs"),
             "shapes": (fields | {"H": good.H.numpy()[:1]}, "shapes disagree: H \\(1, 8, 8\\)"),
             "method": (fields | {"method": "magic"}, "unknown method 'magic'"),
             "options": (fields | {"options": "[1]"}, "options must be a dict")}
    for name, (content, message) in cases.items():
        np.savez(tmp_path / f"{name}.npz", **content)
        with pytest.raises(ValueError, match=message):
            M.Metric.load(tmp_path / f"{name}.npz")
    with pytest.raises(FileNotFoundError):
        M.Metric.load(tmp_path / "absent.npz")


# --- the top of the spectrum: Gauss–Newton products and the certified block solver ------------------------

def true_residuals(H, vals, vecs):
    """‖H v − λ v‖ per pair, recomputed against a dense H (d, d) for vals (k,), vecs (d, k)."""
    return (H @ vecs - vecs * vals).norm(dim=0)


def test_subspace_on_quadratic_generator_matches_the_known_metric_with_a_true_certificate():
    G, net = quadratic_generator()
    z = torch.randn(3, 24, dtype=torch.float64, generator=torch.Generator().manual_seed(1))
    tol = 1e-6
    result = M.metric(G, z, distances.mse(), "subspace", k=6, tol=tol, block=3, progress=False)
    assert result.residuals.shape == (3, 6) and result.passes.shape == (3, 2)
    assert result.options == {"k": 6, "tol": tol, "block": 3, "chunk_size": 64}
    for i in range(3):
        H = net.metric(z[i])
        true_vals, true_vecs = M.eigh_descending(H)
        vals, vecs = result.eigvals[i], result.eigvecs[i]
        assert torch.allclose(vals, true_vals[:6], rtol=1e-8, atol=0)
        overlap = (vecs * true_vecs[:, :6]).sum(0).abs()
        assert torch.allclose(overlap, torch.ones(6, dtype=torch.float64), atol=1e-6)
        # the certificate holds against the dense metric, and is what the solver reports
        residuals = true_residuals(H, vals, vecs)
        assert (residuals <= tol * vals[0]).all()
        assert torch.allclose(result.residuals[i], residuals, rtol=1e-6, atol=1e-13 * vals[0])
        assert torch.allclose(result.H[i], vecs @ torch.diag(vals) @ vecs.T)
        assert 6 <= result.passes[i, 0] < 24 and result.passes[i, 0] == result.passes[i, 1]


def test_subspace_batch_equals_one_by_one():
    G, _ = quadratic_generator()
    z = torch.randn(4, 24, dtype=torch.float64, generator=torch.Generator().manual_seed(2))
    batch = M.metric(G, z, distances.mse(), "subspace", k=5, tol=1e-6, progress=False)
    for i in range(4):
        single = M.metric(G, z[i], distances.mse(), "subspace", k=5, tol=1e-6, progress=False)
        assert torch.allclose(single.eigvals[0], batch.eigvals[i], rtol=1e-10)
        assert torch.allclose(single.eigvecs[0], batch.eigvecs[i], atol=1e-8)  # signs are fixed
        assert torch.equal(single.passes[0], batch.passes[i])


def test_subspace_relative_certifies_every_eigenvalue_to_tol_relative():
    G, net = quadratic_generator(d=40)
    z = torch.randn(2, 40, dtype=torch.float64, generator=torch.Generator().manual_seed(9))
    tol = 1e-4
    plain = M.metric(G, z, distances.mse(), "subspace", k=10, tol=tol, block=4, progress=False)
    each = M.metric(G, z, distances.mse(), "subspace", k=10, tol=tol, block=4, relative=True, progress=False)
    assert each.options["relative"] is True and "relative" not in plain.options
    for i in range(2):
        H = net.metric(z[i])
        true_vals = M.eigh_descending(H)[0][:10]
        residuals = true_residuals(H, each.eigvals[i], each.eigvecs[i])
        assert (residuals <= tol * each.eigvals[i] * (1 + 1e-6)).all()  # the certificate, per eigenvalue
        assert torch.allclose(each.residuals[i], residuals, rtol=1e-6, atol=1e-14 * each.eigvals[i, 0])
        assert ((each.eigvals[i] - true_vals).abs() <= each.residuals[i] + 1e-12 * true_vals[0]).all()
        assert each.passes[i, 0] >= plain.passes[i, 0]  # a stricter stop for every pair below the first
    with pytest.raises(ValueError, match="relative .* is an option of method='subspace', not of 'jacobian'"):
        M.metric(G, z, distances.mse(), "jacobian", relative=True)
    with pytest.raises(TypeError, match="relative must be True or False"):
        M.metric(G, z, distances.mse(), "subspace", k=3, relative=1)


def test_warm_subspace_batch_equals_one_by_one():
    G, _ = quadratic_generator()
    z = torch.randn(3, 24, dtype=torch.float64, generator=torch.Generator().manual_seed(7))
    bases = torch.linalg.qr(torch.randn(3, 24, 10, dtype=torch.float64, generator=torch.Generator().manual_seed(8)))[0]
    options = dict(k=5, tol=1e-6, block=3, progress=False)
    batch = M.metric(G, z, distances.mse(), "subspace", basis=bases, **options)
    for i in range(3):
        single = M.metric(G, z[i], distances.mse(), "subspace", basis=bases[i], **options)
        assert torch.allclose(single.eigvals[0], batch.eigvals[i], rtol=1e-10)
        assert torch.allclose(single.eigvecs[0], batch.eigvecs[i], atol=1e-8)
        assert torch.equal(single.passes[0], batch.passes[i])


def test_subspace_tol_zero_spans_everything_and_equals_the_exact_metric():
    G, A = linear_generator(d=8)
    z = torch.randn(2, 8, dtype=torch.float64)
    result = M.metric(G, z, distances.mse(), "subspace", k=7, tol=0, progress=False)
    true_vals = M.eigh_descending(analytic_metric(A))[0]
    assert (result.passes[:, 0] == 8).all()
    assert torch.allclose(result.eigvals, true_vals[:7].expand(2, -1), rtol=1e-10)


def test_warm_start_needs_fewer_passes_on_a_homogeneous_generator():
    G, net = quadratic_generator(d=40, spread=0.05)  # the metric changes little from point to point
    z = torch.randn(7, 40, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    average = torch.stack([net.metric(p) for p in z[1:]]).mean(0)
    basis = M.eigh_descending(average)[1][:, :10]
    options = dict(k=8, tol=1e-5, block=4, progress=False)
    cold = M.metric(G, z[0], distances.mse(), "subspace", **options)
    warm = M.metric(G, z[0], distances.mse(), "subspace", basis=basis, **options)
    assert warm.passes[0, 0] < cold.passes[0, 0]
    assert torch.allclose(warm.eigvals, cold.eigvals, rtol=1e-4)
    assert (true_residuals(net.metric(z[0]), warm.eigvals[0], warm.eigvecs[0]) <= 1e-5 * warm.eigvals[0, 0]).all()
    assert warm.options["basis"] == M.describe_basis(basis)
    # a basis wider than the block seeds it with random mixtures of its columns: from the point's own top-8
    # eigenvectors (an invariant subspace) two blocks of 4 span it, and the pairs are exact
    true_vals, true_vecs = M.eigh_descending(net.metric(z[0]))
    own = M.metric(G, z[0], distances.mse(), "subspace", basis=true_vecs[:, :8].flip(1), **options)
    assert own.passes[0].tolist() == [8, 8]
    assert torch.allclose(own.eigvals[0], true_vals[:8], rtol=1e-10)
    assert torch.allclose((own.eigvecs[0] * true_vecs[:, :8]).sum(0).abs(), torch.ones(8, dtype=torch.float64))
    # a basis no wider than the block is the first block itself; the same pairs as the random start
    narrow = M.metric(G, z[0], distances.mse(), "subspace", basis=basis[:, :4], **options)
    assert torch.allclose(narrow.eigvals, cold.eigvals, rtol=1e-4)
    assert (true_residuals(net.metric(z[0]), narrow.eigvals[0], narrow.eigvecs[0]) <= 1e-5 * narrow.eigvals[0, 0]).all()
    # one basis per point works too, and the previous point's basis is a warm start along a path
    path = z[0] + 0.01 * torch.randn(3, 40, dtype=torch.float64, generator=torch.Generator().manual_seed(4))
    previous = M.metric(G, path[:1], distances.mse(), "subspace", **options)
    along = M.metric(G, path[1:], distances.mse(), "subspace", basis=previous.eigvecs.expand(2, -1, -1), **options)
    assert (along.passes[:, 0] < previous.passes[0, 0]).all()


def test_lanczos_with_gauss_newton_products_equals_double_backprop_and_the_exact_metric():
    G, net = quadratic_generator()
    z = torch.randn(2, 24, dtype=torch.float64, generator=torch.Generator().manual_seed(6))
    default = M.metric(G, z, distances.mse(), "lanczos", k=5, progress=False)
    gn = M.metric(G, z, distances.mse(), "lanczos", k=5, hvp_kind="gauss-newton", progress=False)
    db = M.metric(G, z, distances.mse(), "lanczos", k=5, hvp_kind="double-backprop", progress=False)
    assert default.options == {"k": 5, "tol": 0.0} and gn.options == {"k": 5, "tol": 0.0, "hvp_kind": "gauss-newton"}
    assert torch.equal(default.eigvals, db.eigvals)  # double backprop is the default
    for i in range(2):
        true_vals, true_vecs = M.eigh_descending(net.metric(z[i]))
        for result in (gn, db):
            assert torch.allclose(result.eigvals[i], true_vals[:5], rtol=1e-9, atol=0)
            overlap = (result.eigvecs[i] * true_vecs[:, :5]).sum(0).abs()
            assert torch.allclose(overlap, torch.ones(5, dtype=torch.float64), atol=1e-8)
    with pytest.raises(ValueError, match="hvp_kind is an option of method='lanczos', not of 'subspace'"):
        M.metric(G, z, distances.mse(), "subspace", k=5, hvp_kind="gauss-newton")
    with pytest.raises(ValueError, match="unknown hvp_kind 'exact'"):
        M.metric(G, z, distances.mse(), "lanczos", k=5, hvp_kind="exact")


def test_lanczos_gauss_newton_on_faces_equals_the_exact_metric(faces, lpips_alex):
    z = faces.sample(1, seed=5)
    exact = M.metric(faces, z, lpips_alex, progress=False)
    gn = M.metric(faces, z, lpips_alex, "lanczos", k=5, tol=1e-6, hvp_kind="gauss-newton", progress=False)
    assert ((gn.eigvals[0] - exact.eigvals[0, :5]).abs() / exact.eigvals[0, :5]).max() < 1e-4
    assert ((gn.eigvecs[0] * exact.eigvecs[0, :, :5]).sum(0).abs() > 0.999).all()


def test_subspace_on_faces_matches_the_exact_metric(faces, lpips_alex, faces_reference):
    z, bp = faces_reference
    tol = 1e-4
    sub = M.metric(faces, z, lpips_alex, "subspace", k=20, tol=tol, progress=False)
    exact = M.metric(faces, z, lpips_alex, "jacobian", progress=False)
    assert (exact.passes == torch.tensor([[100, 0], [100, 0]])).all()
    assert ((sub.eigvals - exact.eigvals[:, :20]).abs() / exact.eigvals[:, :20]).max() < 1e-3
    overlap = (sub.eigvecs[:, :, :5] * exact.eigvecs[:, :, :5]).sum(1).abs()
    assert (overlap > 0.999).all()
    for i in range(2):
        lam1 = exact.eigvals[i, 0]
        residuals = true_residuals(exact.H[i], sub.eigvals[i], sub.eigvecs[i])
        # certified: ≤ tol·λ₁, up to the float32 rounding of the Jacobian products (1e-6·λ₁ here)
        assert (residuals <= (tol + 1e-6) * lam1).all()
        assert ((residuals - sub.residuals[i]).abs() <= 1e-6 * lam1).all()
    assert (sub.passes[:, 0] < 100).all()
    # one point at a time (its own lockstep group) gives the same pairs
    single = M.metric(faces, z[1], lpips_alex, "subspace", k=20, tol=tol, progress=False)
    assert torch.allclose(single.eigvals[0], sub.eigvals[1], rtol=1e-5)


def test_gauss_newton_hvp_equals_double_backprop_and_the_dense_metric(faces, lpips_alex):
    z = faces.sample(1, seed=5)[0]
    dense = M.metric(faces, z, lpips_alex, progress=False).H[0].numpy()
    gn = M.hvp(faces, z, lpips_alex)
    db = M.hvp(faces, z, lpips_alex, kind="double-backprop")
    assert (gn.kind, db.kind) == ("gauss-newton", "double-backprop")
    V = np.random.default_rng(0).standard_normal((100, 3))
    for op in (gn, db):
        block = op.matmat(V)
        one_by_one = np.stack([op @ V[:, j] for j in range(3)], 1)
        np.testing.assert_allclose(block, one_by_one, rtol=1e-5, atol=1e-6 * np.abs(block).max())
        np.testing.assert_allclose(block, dense @ V, rtol=1e-4, atol=1e-6 * np.abs(block).max())
    assert gn.columns == 6 and db.columns == 6
    np.testing.assert_allclose(gn.matmat(V), db.matmat(V), rtol=1e-5, atol=1e-6 * np.abs(dense @ V).max())


def test_hvp_kind_follows_the_distance():
    G, A = linear_generator()
    z = torch.randn(8, dtype=torch.float64)
    plain = lambda x0, x: ((x0 - x) ** 2).flatten(1).sum(1)  # noqa: E731
    assert M.hvp(G, z, distances.mse()).kind == "gauss-newton"
    op = M.hvp(G, z, plain)
    assert op.kind == "double-backprop"
    np.testing.assert_allclose(op.matmat(np.eye(8)), 2 * (A.T @ A).numpy(), rtol=1e-10)
    with pytest.raises(TypeError, match="no `features` map, which hvp\\(kind='gauss-newton'\\) needs"):
        M.hvp(G, z, plain, kind="gauss-newton")
    with pytest.raises(ValueError, match="unknown kind 'newton'"):
        M.hvp(G, z, distances.mse(), kind="newton")


def test_gauss_newton_operator_counts_columns_and_lanczos_stays_on_double_backprop():
    G, A = linear_generator()
    z = torch.randn(8, dtype=torch.float64)
    op = M.hvp(G, z, distances.mse())
    vals, _ = M.top_eigenpairs(op, 3)
    assert op.columns > 0 and torch.allclose(vals, M.eigh_descending(analytic_metric(A))[0][:3], rtol=1e-10)
    result = M.metric(G, z, distances.mse(), "lanczos", k=3, progress=False)
    assert result.passes is None and result.residuals is None


def test_save_load_keeps_residuals_and_passes(tmp_path):
    G, _ = quadratic_generator()
    result = M.metric(G, torch.randn(2, 24, dtype=torch.float64), distances.mse(), "subspace", k=4, progress=False)
    back = M.Metric.load(result.save(tmp_path / "m.npz"))
    assert torch.equal(back.residuals, result.residuals) and torch.equal(back.passes, result.passes)
    assert back.options == result.options
    assert torch.equal(back[1].residuals[0], result.residuals[1]) and back[[0]].passes.shape == (1, 2)
    plain = M.metric(G, torch.randn(24, dtype=torch.float64), distances.mse(), "backprop", progress=False)
    again = M.Metric.load(plain.save(tmp_path / "p.npz"))
    assert again.residuals is None and again.passes is None


def test_subspace_bad_input():
    G, _ = quadratic_generator()
    z = torch.randn(2, 24, dtype=torch.float64)
    mse = distances.mse()
    with pytest.raises(ValueError, match=r"basis must have shape \(24, m\) or \(2, 24, m\)"):
        M.metric(G, z, mse, "subspace", k=4, basis=torch.randn(23, 4))
    with pytest.raises(ValueError, match=r"got \(3, 24, 4\)"):
        M.metric(G, z, mse, "subspace", k=4, basis=torch.randn(3, 24, 4))
    with pytest.raises(ValueError, match="finite"):
        M.metric(G, z, mse, "subspace", k=4, basis=torch.full((24, 4), float("nan")))
    dependent = torch.randn(24, 1).expand(24, 3)
    with pytest.raises(ValueError, match="linearly dependent"):
        M.metric(G, z, mse, "subspace", k=4, basis=dependent)
    with pytest.raises(TypeError, match="torch.Tensor"):
        M.metric(G, z, mse, "subspace", k=4, basis=np.eye(24)[:, :4])
    with pytest.raises(ValueError, match="basis .* is an option of method='subspace', not of 'lanczos'"):
        M.metric(G, z, mse, "lanczos", k=4, basis=torch.randn(24, 4))
    with pytest.raises(ValueError, match="block must be a positive integer"):
        M.metric(G, z, mse, "subspace", k=4, block=0)
    for k in (0, 24, 2.5, True):
        with pytest.raises(ValueError, match=r"k must be an integer between 1 and d-1 = 23 for 'subspace'"):
            M.metric(G, z, mse, "subspace", k=k)
    with pytest.raises(ValueError, match="basis must be floating point"):
        M.metric(G, z, mse, "subspace", k=4, basis=torch.ones(24, 4, dtype=torch.int64))
    with pytest.raises(ValueError, match="z must have shape"):
        M.metric(G, z[:, :23], mse, "subspace", k=4)
    with pytest.raises(ValueError, match=r"tol must be a (finite )?number in \[0, 1\)"):
        M.metric(G, z, mse, "subspace", k=4, tol=1.5)
    plain = lambda x0, x: ((x0 - x) ** 2).flatten(1).sum(1)  # noqa: E731
    with pytest.raises(TypeError, match="no `features` map, which method='subspace' needs"):
        M.metric(G, z, plain, "subspace", k=4)
