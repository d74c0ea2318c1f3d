"""helpers.stats against known cases: Pearson correlation against numpy, the one resampler and its draws, interval
coverage on synthetic samples, signs and sizes of paired effects, cluster resampling, and the curve summaries on
hand-made histories."""

import math

import numpy as np
import pytest
import torch
from scipy import stats as scipy_stats

from helpers import analysis, local, stats


def test_pearson_along_the_last_axis_matches_numpy():
    gen = torch.Generator().manual_seed(0)
    x = torch.randn(3, 4, 10, generator=gen, dtype=torch.float64)
    y = 0.5 * x + torch.randn(3, 4, 10, generator=gen, dtype=torch.float64)
    r = stats.pearson(x, y)
    assert r.shape == (3, 4)
    expected = [[np.corrcoef(x[i, j].numpy(), y[i, j].numpy())[0, 1] for j in range(4)] for i in range(3)]
    torch.testing.assert_close(r, torch.tensor(expected, dtype=torch.float64), rtol=0, atol=1e-12)
    assert stats.pearson(x[0, 0], -2 * x[0, 0] + 1).item() == pytest.approx(-1.0)
    assert math.isnan(stats.pearson(torch.ones(10, dtype=torch.float64), x[0, 0]).item())  # a constant has no correlation
    unit = stats.standardize(x)
    torch.testing.assert_close(unit.mean(-1), torch.zeros(3, 4, dtype=torch.float64), rtol=0, atol=1e-15)
    torch.testing.assert_close(unit.norm(dim=-1), torch.ones(3, 4, dtype=torch.float64))


def test_percentile_bootstrap_draws_units_from_numpys_seeded_stream_and_skips_resamples_without_a_value():
    seen = []

    def replicate(draws):
        seen.append(draws)
        return draws.mean(1)

    low, high = stats.percentile_bootstrap(replicate, 7, n_boot=300, level=0.9, seed=5)
    expected = np.random.default_rng(5).integers(0, 7, size=(300, 7))
    np.testing.assert_array_equal(seen[0], expected)
    assert (low, high) == tuple(np.quantile(expected.mean(1), [0.05, 0.95]))
    # resamples marked nan are left out of the interval; with none left there is no interval
    half = stats.percentile_bootstrap(lambda d: np.where(d[:, 0] < 3, np.nan, d[:, 0]), 7, n_boot=300, seed=5)
    assert half[0] >= 3
    assert all(map(math.isnan, stats.percentile_bootstrap(lambda d: np.full(len(d), np.nan), 7, n_boot=10)))
    with pytest.raises(ValueError, match="level"):
        stats.percentile_bootstrap(replicate, 7, level=1.0)
    with pytest.raises(ValueError, match="n_boot"):
        stats.percentile_bootstrap(replicate, 7, n_boot=0)
    with pytest.raises(ValueError, match="one value per resample"):
        stats.percentile_bootstrap(lambda d: d, 7, n_boot=10)


def test_every_bootstrap_interval_is_the_one_resampler():
    """bootstrap_ci, the geometric means and fold changes of local edits and the interval of homogeneity against
    distance resample the same units with the same draws: given the same data they give the same interval."""
    ratios = np.array([1.5, 3.0, 0.7, 9.0, 2.2, 4.1])
    low, high = stats.bootstrap_ci(np.log(ratios), n_boot=500, seed=4)
    _, g_low, g_high = local.geometric_mean(ratios, n_boot=500, seed=4)
    assert (g_low, g_high) == pytest.approx((math.exp(low), math.exp(high)), rel=1e-12)
    _, f_low, f_high = local.fold_change(ratios, np.ones(6), n_boot=500, seed=4)
    assert (f_low, f_high) == pytest.approx((g_low, g_high), rel=1e-12)

    z = torch.randn(8, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    matrix = torch.randn(8, 8, generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    distance = torch.cdist(z, z)

    def by_hand(draws):
        out = []
        for idx in torch.from_numpy(draws):
            distinct = idx[:, None] != idx[None, :]
            x, y = distance[idx][:, idx][distinct], matrix[idx][:, idx][distinct]
            out.append(stats.pearson(x, y).item() if len(idx.unique()) >= 3 else math.nan)
        return np.array(out)

    assert analysis.homogeneity_vs_distance_interval(z, matrix, n_boot=200, seed=3) == \
        stats.percentile_bootstrap(by_hand, 8, n_boot=200, seed=3)


def test_bootstrap_ci_covers_the_true_mean_at_about_the_nominal_rate():
    rng = np.random.default_rng(1)
    covered = 0
    for trial in range(200):
        sample = rng.normal(loc=2.0, scale=1.0, size=40)
        low, high = stats.bootstrap_ci(sample, n_boot=1000, seed=trial)
        assert low < sample.mean() < high
        covered += low <= 2.0 <= high
    # percentile bootstrap at n = 40: close to 95 %; measured 186/200 = 93 %
    assert 0.88 <= covered / 200 <= 0.99


def test_bootstrap_ci_width_matches_the_normal_theory_interval():
    sample = np.random.default_rng(0).normal(size=400)
    low, high = stats.bootstrap_ci(sample, n_boot=4000)
    half = 1.96 * sample.std(ddof=1) / math.sqrt(len(sample))
    assert (high - low) / 2 == pytest.approx(half, rel=0.1)


def test_bootstrap_ci_of_any_statistic_and_reproducible():
    sample = np.arange(1.0, 101.0)
    median = stats.bootstrap_ci(sample, np.median, n_boot=500, seed=3)
    assert median[0] < 50.5 < median[1]
    assert stats.bootstrap_ci(sample, np.median, n_boot=500, seed=3) == median
    # the vectorised mean path gives the same numbers as the generic one
    generic = stats.bootstrap_ci(sample, lambda a: float(np.mean(a)), n_boot=500, seed=3)
    assert stats.bootstrap_ci(sample, np.mean, n_boot=500, seed=3) == pytest.approx(generic, rel=1e-12)


def test_cluster_bootstrap_is_wider_when_values_within_a_group_are_alike():
    rng = np.random.default_rng(2)
    group_effect = rng.normal(size=10).repeat(5)  # 10 groups of 5 nearly identical values
    values = group_effect + 0.01 * rng.normal(size=50)
    groups = np.arange(10).repeat(5)
    naive = stats.bootstrap_ci(values, n_boot=2000)
    clustered = stats.bootstrap_ci(values, groups=groups, n_boot=2000)
    # the effective sample size is 10, not 50: the interval is about sqrt(5) wider
    ratio = (clustered[1] - clustered[0]) / (naive[1] - naive[0])
    assert 1.7 < ratio < 3.0


def test_paired_sign_size_and_wins():
    rng = np.random.default_rng(4)
    b = rng.uniform(0.05, 0.3, size=30)
    a = b * 0.5  # method a ends at half of b's loss on every pair
    result = stats.paired(a, b, log=True)
    assert result.n == 30 and result.wins == 30 and result.ties == 0
    assert result.ratio == pytest.approx(0.5)
    assert result.ratio_ci[0] == pytest.approx(0.5) and result.ratio_ci[1] == pytest.approx(0.5)
    assert result.mean == pytest.approx(math.log10(0.5))
    assert result.p_wilcoxon < 1e-5
    # linear differences, with noise: the sign and size of the mean difference, and d_z = mean / sd
    a = b - 0.02 + 0.01 * rng.normal(size=30)
    result = stats.paired(a, b)
    diff = a - b
    assert result.mean == pytest.approx(diff.mean()) and result.mean < 0
    assert result.ci[0] < diff.mean() < result.ci[1] < 0
    assert result.dz == pytest.approx(diff.mean() / diff.std(ddof=1))
    assert result.p_t == pytest.approx(scipy_stats.ttest_rel(a, b).pvalue)
    assert result.p_wilcoxon == pytest.approx(scipy_stats.wilcoxon(a, b).pvalue)
    assert result.ratio is None


def test_paired_no_difference_and_groups():
    a = np.array([0.1, 0.2, 0.3, 0.4])
    result = stats.paired(a, a.copy())
    assert result.mean == 0 and result.ties == 4 and result.wins == 0 and result.dz == 0
    assert math.isnan(result.p_wilcoxon) and math.isnan(result.p_t)
    grouped = stats.paired([1.0, 2.0, 3.0, 4.0], [2.0, 2.0, 2.0, 2.0], groups=["x", "x", "y", "y"], n_boot=200)
    assert grouped.n_groups == 2 and grouped.n == 4
    one_group = stats.paired([1.0, 2.0], [2.0, 2.5], groups=["x", "x"], n_boot=200)
    assert one_group.n_groups == 1 and all(math.isnan(c) for c in one_group.ci)


def test_paired_rejects_bad_input():
    with pytest.raises(ValueError, match="paired"):
        stats.paired([1.0, 2.0], [1.0, 2.0, 3.0])
    with pytest.raises(ValueError, match="positive"):
        stats.paired([1.0, -2.0], [1.0, 2.0], log=True)
    with pytest.raises(ValueError, match="finite"):
        stats.paired([1.0, math.inf], [1.0, 2.0])
    with pytest.raises(ValueError, match="NaN"):
        stats.paired([1.0, math.nan], [1.0, 2.0])
    with pytest.raises(ValueError, match="groups"):
        stats.bootstrap_ci([1.0, 2.0], groups=[0])


def test_evaluations_to_reach_and_log_auc():
    history = np.array([[0.5, 0.2, 0.1, 0.05],
                        [0.5, 0.5, 0.5, 0.5],
                        [0.01, 0.01, 0.01, 0.01]])
    reach = stats.evaluations_to_reach(history, 0.1)
    assert reach.tolist() == [3.0, math.inf, 1.0]
    auc = stats.log_auc(history)
    assert auc[1] == pytest.approx(math.log10(0.5)) and auc[2] == pytest.approx(-2.0)
    assert auc[0] == pytest.approx(np.mean(np.log10([0.5, 0.2, 0.1, 0.05])))
    # raw (non-monotone) losses are summarised by their best so far
    assert stats.log_auc([[0.5, 0.1, 0.4]])[0] == pytest.approx(np.mean(np.log10([0.5, 0.1, 0.1])))
    with pytest.raises(ValueError, match="positive"):
        stats.log_auc([[0.1, 0.0]])


def test_direction_reads_the_interval_against_no_change():
    lower = stats.paired([1, 2, 3, 4, 5, 6], [2, 3, 4, 5, 6, 7.5], groups=range(6), log=True)
    assert stats.direction(lower) == "lower" and stats.direction(lower, ratio=False) == "lower"
    higher = stats.paired([2, 3, 4, 5, 6, 7.5], [1, 2, 3, 4, 5, 6], groups=range(6))
    assert higher.ratio_ci is None and stats.direction(higher) == "higher"
    mixed = stats.paired([1, 3, 2, 5, 4, 6], [2, 2, 3, 4, 5, 6], groups=range(6))
    assert stats.direction(mixed) == "undecided"
    assert stats.direction(lower, min_groups=7) == "too few"


def test_quartile_band_of_curves():
    history = np.arange(12, dtype=float).reshape(4, 3)
    x, median, low, high = stats.quartile_band(history)
    assert x.tolist() == [1, 2, 3]
    np.testing.assert_allclose(median, np.median(history, 0))
    np.testing.assert_allclose(low, np.quantile(history, 0.25, 0))
    np.testing.assert_allclose(high, np.quantile(history, 0.75, 0))
