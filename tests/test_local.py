"""Region metrics and local directions: masks, the partition identity, one Jacobian pass for both metrics, local
directions recovering the coordinates that only change one half of the image, LowRankGAN's recipe, locality."""
import numpy as np
import pytest
import torch
from torch import nn

from cases import HalfGenerator
from helpers import distances, local, metric
from helpers.generators import Generator


D_LATENT, K_LEFT, SIDE = 10, 3, 8
LEFT = distances.box(SIDE, (0, 1), (0, 0.5))


@pytest.fixture(scope="module")
def half():
    return Generator(HalfGenerator(D_LATENT, K_LEFT, SIDE), D_LATENT, name="half")


@pytest.fixture(scope="module")
def codes():
    return torch.randn(4, D_LATENT, dtype=torch.float64, generator=torch.Generator().manual_seed(1))


def span_cosines(V, k=K_LEFT, d=D_LATENT):
    """Cosines of the principal angles between span(V) and span(e_0..e_{k-1}): all 1 when V lies inside it."""
    Q = torch.linalg.qr(V.double())[0]
    return torch.linalg.svdvals(torch.eye(d, dtype=torch.float64)[:, :k].T @ Q)


# --- masks -------------------------------------------------------------------------------------------------------

def test_box_holds_the_covered_fraction_of_each_pixel():
    m = distances.box(8, (0.25, 0.6), (0, 0.5))
    assert m.shape == (8, 8) and m.dtype == torch.float32
    assert m[2:4, :4].eq(1).all() and m[4, :4].allclose(torch.full((4,), 0.8))  # row 4 is [0.5, 0.625): 80 % in
    assert m[:2].eq(0).all() and m[5:].eq(0).all() and m[:, 4:].eq(0).all()
    for size in (8, 64, 100):  # the same box covers the same area at any resolution
        covered = distances.box(size, (0.25, 0.6), (0.1, 0.5)).double().mean().item()
        assert covered == pytest.approx(0.35 * 0.4, abs=1e-7)


def test_resize_mask_averages_over_areas_and_keeps_constants():
    m = distances.box(8, (0.25, 0.6), (0, 0.5))
    small = distances.resize_mask(m, 3)
    # cell (0, 0) covers rows and columns [0, 8/3) px: pixel row 2 is 2/3 inside and fully in the box
    assert small[0, 0].item() == pytest.approx((2 / 3) / (8 / 3))
    assert small.mean().item() == pytest.approx(m.double().mean().item())  # area is kept exactly
    assert torch.allclose(distances.resize_mask(torch.ones(5, 7), (3, 4)), torch.ones(3, 4, dtype=torch.float64))
    assert torch.allclose(distances.resize_mask(m, 8), m.double())  # same grid: identity
    big = distances.resize_mask(torch.tensor([[1.0, 0.0]]), (2, 4))
    assert big.tolist() == [[1, 1, 0, 0], [1, 1, 0, 0]]


@pytest.mark.parametrize("mask, match", [(torch.ones(2, 3, 4), r"shape \(H, W\)"), (torch.full((4, 4), 1.5), "in \\[0, 1\\]"),
                                         (torch.full((4, 4), float("nan")), "finite"), (torch.zeros(4, 4), "empty")])
def test_bad_masks_are_refused(mask, match):
    with pytest.raises(ValueError, match=match):
        distances.Region(distances.mse(), mask)


def test_bad_boxes_and_mismatched_masks_are_refused(half, codes):
    with pytest.raises(ValueError, match="fractions"):
        distances.box(8, (0.5, 0.2), (0, 1))
    with pytest.raises(ValueError, match="aspect ratios differ"):
        distances.Region(distances.mse(), torch.ones(4, 8))(half(codes[:1]), half(codes[1:2]))
    with pytest.raises(ValueError, match="complement is empty"):
        metric.region_metric(half, codes[:1], distances.mse(), torch.ones(8, 8))
    with pytest.raises(NotImplementedError, match="no per-position feature maps"):
        distances.Region(distances.Distance(), LEFT).features(half(codes[:1]))


# --- the region metric ---------------------------------------------------------------------------------------------

def test_mse_partition_gives_the_global_metric_exactly(half, codes):
    region, rest = metric.region_metric(half, codes, distances.mse(), LEFT, normalize=False)
    H = metric.metric(half, codes, distances.mse())
    assert ((region.H + rest.H - H.H).norm() / H.H.norm()).item() < 1e-13
    # the left-only coordinates do not touch the right half: their rows of H_rest vanish
    assert rest.H[:, :K_LEFT].abs().max().item() < 1e-14 and region.H[:, :K_LEFT, :K_LEFT].abs().min().item() > 0
    # normalized: each is the mean over its area, a = 1/2 here, so ½ H_region + ½ H_rest = H
    region_n, rest_n = metric.region_metric(half, codes, distances.mse(), LEFT)
    assert torch.allclose(0.5 * region_n.H + 0.5 * rest_n.H, H.H, rtol=1e-12, atol=1e-15)


def test_mse_region_metric_matches_the_masked_pixel_gram(half, codes):
    """Forward-mode region metric vs LowRankGAN's reverse-mode masked JᵀJ: H_region = 2 J_fᵀJ_f / n_f."""
    mask = distances.box(SIDE, (0.1, 0.7), (0.2, 0.9))
    binary = (distances.resize_mask(mask, SIDE) >= 0.5).float()  # the pixel recipe works on whole pixels
    region, rest = metric.region_metric(half, codes[:1], distances.mse(), binary)
    J = local.pixel_jacobian(half, codes[0], fuse_channels=False)
    M_fore, M_back = local.pixel_region_metrics(J, binary, (SIDE, SIDE))
    assert torch.allclose(region.H[0], 2 * M_fore, rtol=1e-12, atol=1e-15)
    assert torch.allclose(rest.H[0], 2 * M_back, rtol=1e-12, atol=1e-15)


@pytest.mark.parametrize("method", metric.METHODS)
def test_every_metric_method_works_with_a_region(half, codes, method):
    region_distance = distances.Region(distances.mse(), LEFT)
    exact, _ = metric.region_metric(half, codes[:1], distances.mse(), LEFT)
    result = metric.metric(half, codes[:1], region_distance, method, k=4, progress=False)
    assert torch.allclose(result.eigvals[0], exact.eigvals[0, :result.eigvals.shape[1]], rtol=1e-5)


def test_one_jacobian_pass_serves_both_metrics(half, codes):
    """region_metric runs G and the distance's feature maps as often as the metric of the region alone does (G twice
    more: the input probe, `checks.model`, on two codes and on one)."""
    calls = {"G": 0, "maps": 0}

    class Counted(distances.MSE):
        def feature_maps(self, x):
            calls["maps"] += 1
            return super().feature_maps(x)

    class CountedNet(nn.Module):
        def __init__(self, net):
            super().__init__()
            self.net = net

        def forward(self, z):
            calls["G"] += 1
            return self.net(z)

    G = Generator(CountedNet(half.net), D_LATENT)
    region = distances.Region(Counted(), LEFT)
    metric.pullback(lambda x: region.features(G(x)), codes, chunk_size=8)  # the metric of the region alone
    one = dict(calls)
    calls.update(G=0, maps=0)
    metric.region_metric(G, codes, Counted(), LEFT, chunk_size=8)
    # a probe, then per point its 10 directions in vmapped calls of at most 8 images (8 + 2): 1 + 4 × 2 passes
    assert one == {"G": 9, "maps": 9} and calls == {"G": 9 + 2, "maps": 9}
    calls.update(G=0, maps=0)
    two = {"left": LEFT, "top": distances.box(SIDE, (0, 0.5), (0, 1))}
    metric.region_metrics(G, codes, Counted(), two, chunk_size=8)
    assert calls == {"G": 9 + 2, "maps": 9}  # two masks, four metrics: still one pass


def test_several_masks_in_one_pass_give_each_mask_s_metrics(half, codes):
    masks = {"left": LEFT, "corner": distances.box(SIDE, (0.5, 1), (0.6, 1))}
    both = metric.region_metrics(half, codes[:2], distances.mse(), masks)
    for name, mask in masks.items():
        alone = metric.region_metric(half, codes[:2], distances.mse(), mask)
        for got, want in zip(both[name], alone):
            assert torch.allclose(got.H, want.H, rtol=1e-12, atol=1e-16)
            assert got.options["mask"] == name
    with pytest.raises(ValueError, match="mask 'all' covers the whole image"):
        metric.region_metrics(half, codes[:1], distances.mse(), {"left": LEFT, "all": torch.ones(8, 8)})


def test_lpips_partition_identity_holds_on_faces(faces, lpips_alex):
    """LPIPS: the per-position terms add up before the spatial mean and the area resize keeps constants, so
    un-normalised region + rest = the global metric, to float32 roundoff; and for images, d_M + d_{1-M} = d."""
    z = faces.sample(1, seed=3)
    eyes = distances.box(64, (0.35, 0.5), (0.2, 0.8))
    region, rest = metric.region_metric(faces, z, lpips_alex, eyes, normalize=False)
    H = metric.metric(faces, z, lpips_alex)
    assert ((region.H + rest.H - H.H).norm() / H.H.norm()).item() < 1e-5
    assert 0 < region.H[0].trace() < rest.H[0].trace()  # a 9 % box holds a small share
    # normalised: every layer's resized mask keeps the area fraction a, so normalising divides by a and 1 − a
    a = eyes.double().mean().item()
    region_n, rest_n = metric.region_metric(faces, z, lpips_alex, eyes)
    assert torch.allclose(region_n.H, region.H / a, rtol=1e-5) and torch.allclose(rest_n.H, rest.H / (1 - a), rtol=1e-5)
    assert ((a * region_n.H + (1 - a) * rest_n.H - H.H).norm() / H.H.norm()).item() < 1e-5
    with torch.no_grad():
        x0, x = faces(z), faces(faces.sample(2, seed=4))
        inside = distances.Region(lpips_alex, eyes, normalize=False)
        total = inside(x0, x) + inside.complement()(x0, x)
    assert torch.allclose(total, lpips_alex(x0, x), rtol=1e-5)
    assert torch.allclose(total, lpips_alex.reference(x0, x), rtol=1e-4)


# --- local directions --------------------------------------------------------------------------------------------

def test_generalized_directions_solve_the_pencil(half, codes):
    region, rest = metric.region_metric(half, codes[:1], distances.mse(), distances.box(SIDE, (0, 0.6), (0, 0.7)))
    out = local.generalized_directions(region, rest, 4, tau=1e-3)
    A, B = region.H[0], rest.H[0] + 1e-3 * rest.H[0].trace() * torch.eye(D_LATENT, dtype=torch.float64)
    # dense reference: eigenvalues of B^{-1/2} A B^{-1/2}
    w, U = torch.linalg.eigh(B)
    root = U @ torch.diag(w.rsqrt()) @ U.T
    assert torch.allclose(out.scores, torch.linalg.eigvalsh(root @ A @ root).flip(0)[:4], rtol=1e-9)
    assert torch.allclose(A @ out.vectors, B @ out.vectors * out.scores, rtol=1e-8, atol=1e-12)
    assert torch.allclose(out.vectors.norm(dim=0), torch.ones(4, dtype=torch.float64))
    assert torch.allclose(local.quotients(region, rest, out.vectors)[0], out.scores, rtol=1e-9)


def test_local_directions_recover_the_left_only_coordinates(half, codes):
    region, rest = metric.region_metric(half, codes, distances.mse(), LEFT)
    for i in range(len(codes)):
        gen = local.generalized_directions(region.H[i], rest.H[i], K_LEFT, tau=1e-10)
        assert torch.allclose(span_cosines(gen.vectors), torch.ones(K_LEFT, dtype=torch.float64), atol=1e-8)
        assert gen.scores[-1] > 1e6 * local.generalized_directions(region.H[i], rest.H[i], K_LEFT + 1,
                                                                   tau=1e-10).scores[-1]
        # Robust PCA with LowRankGAN's λ = 1/60 (set for their 512-d latents) finds a rank-0 region part at some
        # codes of this 10-d toy, hence no directions; Candès et al.'s λ = 1/√d finds some at every code.
        lamb = 1 / np.sqrt(D_LATENT)
        for found in (local.lowrank_directions(region.H[i], rest.H[i], lamb=lamb),
                      local.lowrankgan_directions(half, codes[i], LEFT, lamb=lamb)):
            # LowRankGAN's recipe: the rest's null space is exactly e_0..e_{k-1}; every direction lies in it
            assert found.info["rank_rest"] == D_LATENT - K_LEFT and found.info["null_dim"] == K_LEFT
            assert len(found) >= 1  # rank_region of them, possibly more than the null space holds (then dependent)
            inside = found.vectors[:K_LEFT].pow(2).sum(0)  # each unit direction's energy in e_0..e_{k-1}
            assert torch.allclose(inside, torch.ones(len(found), dtype=torch.float64), atol=1e-10)
    average = local.generalized_directions(region.H.mean(0), rest.H.mean(0), K_LEFT, tau=1e-10)
    assert torch.allclose(span_cosines(average.vectors), torch.ones(K_LEFT, dtype=torch.float64), atol=1e-8)


def test_robust_pca_separates_low_rank_from_sparse():
    gen = torch.Generator().manual_seed(0)
    U = torch.randn(30, 2, generator=gen, dtype=torch.float64)
    L_true = U @ U.T
    S_true = torch.zeros(30, 30, dtype=torch.float64)
    S_true[[0, 7, 14, 21, 28], [3, 10, 17, 24, 2]] = 5.0
    L, S, iterations = local.robust_pca(L_true + S_true, lamb=1 / np.sqrt(30))
    assert np.linalg.matrix_rank(L.numpy()) == 2 and iterations < 10000
    assert ((L - L_true).norm() / L_true.norm()).item() < 1e-6 and ((S - S_true).norm() / 5).item() < 1e-5
    assert ((L + S - L_true - S_true).norm() / (L_true + S_true).norm()).item() <= 1.01e-7


def test_robust_pca_of_a_symmetric_matrix_takes_the_same_steps_as_with_the_svd():
    gen = torch.Generator().manual_seed(1)
    J = torch.randn(40, 12, generator=gen, dtype=torch.float64) * 0.7 ** torch.arange(12.0, dtype=torch.float64)
    M_sym = J.T @ J
    M_asym = M_sym.clone()
    M_asym[0, 1] += 1e-9 * M_sym.abs().max()  # not symmetric: the SVD path
    L, S, iterations = local.robust_pca(M_sym, max_iter=50)
    L_svd, S_svd, iterations_svd = local.robust_pca(M_asym, max_iter=50)
    assert iterations == iterations_svd == 50
    assert torch.allclose(L, L_svd, atol=1e-6 * M_sym.abs().max()) and torch.allclose(L, L.T)


def test_pixel_jacobian_is_the_reverse_mode_jacobian_of_the_resized_fused_image(half, codes):
    z = codes[0]

    def image(code):
        x = torch.nn.functional.interpolate(half(code[None]), size=(16, 16), mode="nearest")
        return x.mean(1).flatten()

    dense = torch.autograd.functional.jacobian(image, z)
    for vectorize in (True, False):
        J = local.pixel_jacobian(half, z, size=16, vectorize=vectorize, chunk_size=50)
        assert J.shape == (256, D_LATENT) and torch.allclose(J, dense, rtol=1e-12, atol=1e-14)
    assert local.pixel_jacobian(half, z, fuse_channels=False).shape == (3 * SIDE * SIDE, D_LATENT)


# --- locality and homogeneity ------------------------------------------------------------------------------------

def test_locality_matches_the_inside_change_and_scores_local_directions_highest(half, codes):
    region = distances.Region(distances.mse(), LEFT)
    V = torch.eye(D_LATENT, dtype=torch.float64)[:, [0, 1, 5]]  # two left-only coordinates and a shared one
    loc = local.locality(half, codes[0], V, region, target=0.02, rtol=1e-4)
    assert loc.reached.all()
    assert torch.allclose(loc.inside, torch.full((2, 3), 0.02, dtype=torch.float64), rtol=1e-4)
    assert (loc.steps[0] < 0).all() and (loc.steps[1] > 0).all()
    assert loc.outside[:, :2].max().item() < 1e-20 and loc.outside[:, 2].min().item() > 1e-4
    assert loc.ratio[:2].min() > 1e10 and 0 < loc.ratio[2] < 1e3
    guessed = local.locality(half, codes[0], V, region, target=0.02, rtol=1e-4,
                             first_step=torch.tensor([5.0, 0.001, 1.0]))  # too far, too near, about right
    assert torch.allclose(guessed.steps, loc.steps, rtol=1e-3) and guessed.reached.all()
    inside, outside = local.changes(half, codes[0], V, loc.steps, region)  # the same walks, measured again
    assert torch.allclose(inside, loc.inside) and torch.allclose(outside, loc.outside)
    far = local.locality(half, codes[0], V, region, target=50.0, max_step=2.0)  # unreachable: tanh saturates
    assert not far.reached.any() and torch.allclose(far.steps.abs(), torch.full((2, 3), 2.0, dtype=torch.float64))


def test_homogeneity_of_the_local_directions(half, codes):
    box = distances.box(SIDE, (0, 0.6), (0, 0.7))
    linear = Generator(HalfGenerator(D_LATENT, K_LEFT, SIDE, activation=lambda x: x), D_LATENT)
    # a linear generator has the same pair of metrics at every code: perfectly homogeneous
    h = local.region_homogeneity(*metric.region_metric(linear, codes, distances.mse(), box), k=6)
    assert torch.allclose(h, torch.ones(4, 4, dtype=torch.float64), atol=1e-9)
    region, rest = metric.region_metric(half, codes, distances.mse(), box)
    h = local.region_homogeneity(region, rest, k=6)
    assert h.shape == (4, 4) and (h.abs() <= 1).all() and h.min() < 0.99  # tanh: the pencils differ by code
    # entry (0, 2) by hand: code 0's directions scored by code 2's pencil, against code 2's own eigenvalues
    own = [local.generalized_directions(region.H[i], rest.H[i], 6) for i in (0, 2)]
    q = local.quotients(region.H[2], rest.H[2], own[0].vectors)
    expected = np.corrcoef(q.log10().numpy(), own[1].scores.log10().numpy())[0, 1]
    assert h[0, 2].item() == pytest.approx(expected, abs=1e-12)


def test_direction_inputs_are_checked():
    with pytest.raises(ValueError, match="one \\(d, d\\) matrix"):
        local.generalized_directions(torch.eye(3)[None].expand(2, 3, 3), torch.eye(3))
    with pytest.raises(ValueError, match="k must be between 1 and d = 3"):
        local.generalized_directions(torch.eye(3), torch.eye(3), 4)
    with pytest.raises(ValueError, match="not positive definite"):
        local.generalized_directions(torch.eye(3), torch.zeros(3, 3), tau=0)
    with pytest.raises(ValueError, match="target must be a finite number > 0"):
        local.locality(None, torch.zeros(3), torch.eye(3), None, 0)


def test_geometric_mean_and_fold_change_with_bootstrap_intervals():
    ratios = torch.tensor([[2.0, 8.0], [4.0, 4.0], [1.0, 16.0]], dtype=torch.float64)  # every code: gm 4
    estimate, low, high = local.geometric_mean(ratios, n_boot=500)
    assert estimate == pytest.approx(4.0) and low == pytest.approx(4.0) and high == pytest.approx(4.0)
    fold, low, high = local.fold_change(3 * ratios, ratios, n_boot=500)
    assert fold == pytest.approx(3.0) and low == pytest.approx(3.0) and high == pytest.approx(3.0)
    varied = torch.tensor([[1.0], [10.0], [100.0], [1000.0]], dtype=torch.float64)
    estimate, low, high = local.geometric_mean(varied, n_boot=2000, seed=1)
    assert estimate == pytest.approx(10 ** 1.5) and 1.0 <= low < estimate < high <= 1000.0
    with pytest.raises(ValueError, match="positive"):
        local.geometric_mean(torch.tensor([[1.0, 0.0]]))
    with pytest.raises(ValueError, match="one row per code"):
        local.fold_change(ratios, ratios[:2])


# --- the methods compared at a set of codes (chapter 07) --------------------------------------------------------

CORNER = distances.box(SIDE, (0.5, 1), (0.5, 1))


@pytest.fixture(scope="module")
def compared(half, codes):
    masks = {"left": LEFT, "corner": CORNER}
    pairs = metric.region_metrics(half, codes, distances.mse(), masks)
    whole = metric.metric(half, codes, distances.mse()).H
    found = local.directions_by_method(half, codes, pairs, masks, whole, 2, lowrank_codes=1, lowrank_regions=["left"])
    return masks, pairs, whole, found


def test_directions_by_method_gives_each_method_at_each_code(codes, compared):
    masks, pairs, whole, found = compared
    assert list(found.directions) == ["left", "corner"] and all(len(v) == len(codes) for v in found.directions.values())
    for name, (region, rest) in pairs.items():
        for i, at_code in enumerate(found.directions[name]):
            lowrank = i == 0 and name == "left"
            assert set(at_code) == set(local.METHODS) if lowrank else {"generalized", "global top", "global local axes"}
            assert torch.equal(at_code["generalized"],
                               local.generalized_directions(region.H[i], rest.H[i], 2).vectors)
            held_out = local.generalized_directions(local.leave_one_out(region.H, i), local.leave_one_out(rest.H, i), 2)
            assert torch.equal(at_code["global local axes"], held_out.vectors)
            assert torch.equal(at_code["global top"], torch.linalg.eigh(whole[i])[1][:, -2:].flip(1))
    assert list(found.lowrank_info) == ["left, code 0"] and set(found.lowrank_info["left, code 0"]) == {"ours",
                                                                                                      "LowRankGAN"}
    assert found.seconds_pixel > 0 and found.seconds_rpca > 0


def test_leave_one_out_is_the_mean_of_the_others():
    H = torch.arange(12.0).reshape(4, 3)
    assert torch.equal(local.leave_one_out(H, 1), H[[0, 2, 3]].mean(0))


def test_directions_by_method_without_low_rank_runs_or_with_one_code(half, codes, compared):
    masks, pairs, whole, _ = compared
    found = local.directions_by_method(half, codes, pairs, masks, whole, 2, lowrank_codes=0, lowrank_regions=["left"])
    assert found.lowrank_info == {} and np.isnan(found.seconds_pixel) and np.isnan(found.seconds_rpca)
    one = metric.region_metrics(half, codes[:1], distances.mse(), masks)
    alone = local.directions_by_method(half, codes[:1], one, masks, whole[:1], 2, lowrank_codes=0)
    assert set(alone.directions["left"][0]) == {"generalized", "global top"}  # no other codes to fit axes to


def test_walk_ratios_matches_walks_and_scores_left_only_directions_highest(half, codes, compared):
    _, pairs, _, _ = compared
    eye = torch.eye(D_LATENT, dtype=torch.float64)
    found = {"left only": eye[:, :2], "shared": eye[:, 5:6]}
    out = local.walk_ratios(half, codes[0], found, pairs["left"][0].H[0], LEFT, distances.mse(), 0.02, rtol=1e-4)
    assert list(out) == ["left only", "shared"] and [len(m["lpips"]) for m in out.values()] == [2, 1]
    assert out["left only"]["reached"] == [True, True] and out["shared"]["reached"] == [True]
    assert min(out["left only"]["lpips"]) > 1e10 and 0 < out["shared"]["lpips"][0] < 1e3
    assert out["left only"]["pixels"] == pytest.approx(out["left only"]["lpips"], rel=1e-12)  # MSE both times
    steps = torch.tensor(out["shared"]["steps"], dtype=torch.float64).T  # (2, 1): the ends of the walk
    inside, outside = local.changes(half, codes[0], eye[:, 5:6], steps, distances.Region(distances.mse(), LEFT))
    assert steps[0, 0] < 0 < steps[1, 0] and torch.allclose(inside, torch.full((2, 1), 0.02, dtype=torch.float64),
                                                             rtol=1e-4)
    assert out["shared"]["lpips"][0] == pytest.approx((inside.sum() / outside.sum()).item(), rel=1e-12)


def measured(*codes_):
    """walk_ratios-shaped results, one {method: ratios} per code."""
    return [{method: {"lpips": ratios, "pixels": [2 * r for r in ratios]} for method, ratios in at.items()}
            for at in codes_]


def test_method_summary_skips_codes_where_a_method_did_not_run_and_cuts_to_the_fewest_directions():
    runs = measured({"a": [2.0, 8.0, 100.0], "b": [1.0]}, {"a": [4.0, 4.0], "b": []}, {"a": [16.0, 1.0]})
    estimate, low, high = local.method_summary(runs, "a", n_boot=200)
    assert estimate == pytest.approx(4.0) and low == pytest.approx(4.0) and high == pytest.approx(4.0)
    one = local.method_summary(runs, "b", "pixels", n_boot=200)  # one code ran it: nothing to resample
    assert one[0] == pytest.approx(2.0) and np.isnan(one[1]) and np.isnan(one[2])
    assert local.method_summary(runs, "c") is None


def test_estimates_read_as_table_cells_and_one_code_has_no_interval():
    assert local.estimate_text((8.781, 7.72, 9.914)) == "8.78 [7.72, 9.91]"
    assert local.estimate_text((2.0, float("nan"), float("nan"))) == "2 (one code: no interval)"
    assert local.estimate_text(None) == "not run"
    runs = measured({"a": [2.0, 8.0]})
    assert local.estimate_text(local.method_summary(runs, "a", n_boot=50)) == "4 (one code: no interval)"


def test_locality_verdict_states_its_thresholds():
    assert local.locality_verdict(7.7) == ("several times more local than the global axes (the whole interval "
                                           "lies above 3)")
    assert local.locality_verdict(2.0).endswith("(the interval starts at 2, below 3)")
    assert local.locality_verdict(0.8).startswith("not clearly more local")
    assert "one code" in local.locality_verdict(float("nan"))


def test_homogeneity_note_explains_the_difference_from_chapter_03():
    note = local.homogeneity_note("dcgan-celeba64", 0.955, 4, 128, 64, chapter_model="dcgan-celeba64", seed=0)
    assert note == ("The whole-image homogeneity of `dcgan-celeba64` here, 0.955, is not chapter 03's for the same "
                    "model: it averages over the 12 ordered pairs of only 4 codes, the first 4 of chapter 03's (the "
                    "same seed) and LPIPS works at 128 px, the 64 px images resized, where chapter 03 works at the "
                    "generator's own 64 px. Chapter 03 measures its first codes at both working sizes and says how "
                    "much of the difference each of the two accounts for.")
    native = local.homogeneity_note("dcgan-celeba64", 0.93, 4, None, 64, chapter_model="dcgan-celeba64", seed=3)
    assert "drawn from another seed" in native and "px" not in native
    assert local.homogeneity_note("dcgan-faces64", 0.9, 4, 128, 64, chapter_model="dcgan-celeba64", seed=0) == ""


def test_fold_over_regions_pairs_every_region_and_code():
    runs = {"eyes": measured({"a": [6.0, 6.0], "b": [2.0, 2.0]}), "mouth": measured({"a": [8.0, 2.0], "b": [1.0, 1.0]})}
    fold, low, high = local.fold_over_regions(runs, "a", "b", n_boot=200)
    expected = local.fold_change([[6.0, 6.0], [8.0, 2.0]], [[2.0, 2.0], [1.0, 1.0]], n_boot=200)
    assert (fold, low, high) == expected and fold == pytest.approx(np.sqrt(3 * 4))
    assert local.fold_over_regions(runs, "a", "b", k=1, n_boot=200)[0] == pytest.approx(np.sqrt(3 * 8))


def test_trace_shares_of_a_region_and_its_rest_add_up_to_one(half, codes):
    region, rest = metric.region_metric(half, codes, distances.mse(), LEFT)
    H = metric.metric(half, codes, distances.mse()).H
    a = LEFT.double().mean().item()
    shares = local.trace_share(region, H, a), local.trace_share(rest.H, H, 1 - a)
    assert sum(shares) == pytest.approx(1.0, rel=1e-12) and shares[0] > a  # the left half holds the left-only codes


def test_held_out_transfer_is_one_where_every_code_has_the_same_pencil(half, codes):
    linear = Generator(HalfGenerator(D_LATENT, K_LEFT, SIDE, activation=lambda x: x), D_LATENT)
    region, rest = metric.region_metric(linear, codes, distances.mse(), CORNER)
    axes = [local.generalized_directions(local.leave_one_out(region.H, i), local.leave_one_out(rest.H, i), 1).vectors
            for i in range(len(codes))]
    assert local.held_out_transfer(region.H, rest.H, axes) == pytest.approx(1.0, rel=1e-9)
    region, rest = metric.region_metric(half, codes, distances.mse(), CORNER)
    axes = [local.generalized_directions(local.leave_one_out(region.H, i), local.leave_one_out(rest.H, i), 1).vectors
            for i in range(len(codes))]
    assert 0 < local.held_out_transfer(region.H, rest.H, axes) < 1  # tanh: each code's own top is better


def test_walk_examples_renders_the_walks_at_the_matched_steps(half, codes):
    v = torch.eye(D_LATENT, dtype=torch.float64)[:, :1]
    found = {"left": {"generalized": v, "LowRankGAN": v[:, :0]}}  # LowRankGAN found nothing: left out
    steps = {"left": {"generalized": {"steps": [[-0.5, 0.25]]}}}
    (name, method, images), = local.walk_examples(half, codes[0], found, steps)
    assert (name, method) == ("left", "generalized") and images.shape == (5, 3, SIDE, SIDE)
    offsets = torch.tensor([-1.0, -0.5, 0.0, 0.25, 0.5], dtype=torch.float64)
    assert torch.allclose(images, half(codes[0] + offsets[:, None] * v.T))
