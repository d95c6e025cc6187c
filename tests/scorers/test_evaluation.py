"""correlation_report against scipy, its sign convention and hand-built top-k figures."""

import csv

import numpy as np
import pytest
from conftest import NB201_CSV
from scipy import stats

from scorers.evaluation import correlation_report


def _noisy_population(size: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Accuracies rounded to one decimal (so ties occur) and a score that tracks them loosely."""
    rng = np.random.default_rng(seed)
    accuracy = np.round(rng.normal(85.0, 5.0, size), 1)
    score = np.round(accuracy + rng.normal(0.0, 6.0, size), 0)
    return score, accuracy


def test_correlations_equal_scipy_on_the_same_numbers():
    score, accuracy = _noisy_population(300, seed=1)
    report = correlation_report(score, accuracy, bootstrap=200)
    spearman = stats.spearmanr(score, accuracy)
    kendall = stats.kendalltau(score, accuracy)
    pearson = stats.pearsonr(stats.rankdata(score), accuracy)
    assert report["n"] == 300 and report["reason"] is None
    assert report["spearman_rho"] == pytest.approx(spearman.statistic, abs=1e-12)
    assert report["spearman_p"] == pytest.approx(spearman.pvalue, rel=1e-9)
    assert report["kendall_tau"] == pytest.approx(kendall.statistic, abs=1e-12)
    assert report["kendall_p"] == pytest.approx(kendall.pvalue, rel=1e-9)
    assert report["pearson_rank_r"] == pytest.approx(pearson.statistic, abs=1e-12)
    assert report["pearson_rank_p"] == pytest.approx(pearson.pvalue, rel=1e-9)


def test_lower_is_better_score_is_negated_so_positive_means_correct_order():
    score, accuracy = _noisy_population(200, seed=2)
    higher = correlation_report(score, accuracy, bootstrap=0)
    lower = correlation_report(-score, accuracy, higher_is_better=False, bootstrap=0)
    assert higher["spearman_rho"] > 0.3
    assert lower["spearman_rho"] == pytest.approx(higher["spearman_rho"], abs=1e-12)
    assert lower["kendall_tau"] == pytest.approx(higher["kendall_tau"], abs=1e-12)
    wrong_way = correlation_report(score, accuracy, higher_is_better=False, bootstrap=0)
    assert wrong_way["spearman_rho"] == pytest.approx(-higher["spearman_rho"], abs=1e-12)
    assert wrong_way["top_recall"] < higher["top_recall"]


def test_bootstrap_interval_contains_rho_and_is_reproducible():
    score, accuracy = _noisy_population(400, seed=3)
    report = correlation_report(score, accuracy, bootstrap=500, seed=11)
    assert report["spearman_ci_low"] < report["spearman_rho"] < report["spearman_ci_high"]
    assert report["spearman_ci_high"] - report["spearman_ci_low"] < 0.3
    again = correlation_report(score, accuracy, bootstrap=500, seed=11)
    other_seed = correlation_report(score, accuracy, bootstrap=500, seed=12)
    assert again["spearman_ci_low"] == report["spearman_ci_low"]
    assert other_seed["spearman_ci_low"] != report["spearman_ci_low"]
    no_bootstrap = correlation_report(score, accuracy, bootstrap=0)
    assert no_bootstrap["spearman_ci_low"] is None and no_bootstrap["spearman_rho"] is not None


def test_bootstrap_interval_matches_explicit_resampling_distribution():
    # The interval must describe the sampling spread of rho: its width is close to that of an
    # independent bootstrap drawn here with scipy (different draws, so only approximately).
    score, accuracy = _noisy_population(150, seed=4)
    report = correlation_report(score, accuracy, bootstrap=2000, seed=0)
    rng = np.random.default_rng(99)
    picks = rng.integers(0, 150, size=(2000, 150))
    rhos = [stats.spearmanr(score[p], accuracy[p]).statistic for p in picks]
    low, high = np.percentile(rhos, [2.5, 97.5])
    assert report["spearman_ci_low"] == pytest.approx(low, abs=0.03)
    assert report["spearman_ci_high"] == pytest.approx(high, abs=0.03)


def test_top_k_figures_on_a_hand_built_population():
    # 20 architectures with accuracies 1..20. The score picks, best first, the archs with
    # accuracy 19, 3, 7, 12, 1, 2, 4, 5, 6, 8 | 9, 10, 11, 13, 14, 15, 16, 17, 18, 20.
    # Top 10 % = 2 archs. True top 2 = {20, 19}; score's top 2 = {19, 3} -> recall 1/2.
    # Best among the first 10 picks = 19; the first 100 picks are all 20 archs -> 20; overall 20.
    pick_order = [19, 3, 7, 12, 1, 2, 4, 5, 6, 8, 9, 10, 11, 13, 14, 15, 16, 17, 18, 20]
    accuracy = np.arange(1.0, 21.0)
    score = np.empty(20)
    score[np.array(pick_order) - 1] = np.arange(20, 0, -1)
    report = correlation_report(score, accuracy, bootstrap=0)
    assert report["top_recall"] == 0.5
    assert report["best_accuracy_top10"] == 19.0
    assert report["best_accuracy_top100"] == 20.0
    assert report["best_accuracy"] == 20.0


def test_top_recall_splits_boundary_ties_and_best_picks_resolve_ties_against_the_score():
    # 10 archs, top 20 % = 2. Score: arch 0 alone at the top, archs 1, 2, 3 tied second.
    # True top 2 by accuracy = archs 0 and 2. Arch 0 is surely picked (1 of the true top);
    # one of the 3 tied archs fills the second slot: arch 2 with probability 1/3.
    # Expected overlap 1 + 1/3 over 2 slots -> recall 2/3.
    score = np.array([9.0, 5.0, 5.0, 5.0, 1.0, 1.0, 1.0, 1.0, 1.0, 1.0])
    accuracy = np.array([95.0, 80.0, 94.0, 70.0, 60.0, 61.0, 62.0, 63.0, 64.0, 65.0])
    report = correlation_report(score, accuracy, bootstrap=0, top_fraction=0.2)
    assert report["top_recall"] == pytest.approx(2 / 3)
    # All 12 scores tied: the first 10 picks are taken worst-accuracy first -> best of them is
    # the 10th lowest accuracy, 10.0, not the overall best 12.0.
    flat = correlation_report(np.zeros(12), np.arange(1.0, 13.0), bootstrap=0)
    assert flat["best_accuracy_top10"] == 10.0 and flat["best_accuracy"] == 12.0
    assert flat["spearman_rho"] is None and "constant" in flat["reason"]


def test_non_finite_scores_rank_last_and_missing_accuracies_are_left_out():
    accuracy = np.array([90.0, 80.0, 70.0, 60.0, np.nan])
    # NaN score on the best arch: ranks it last, same as giving it the lowest score.
    with_nan = correlation_report(np.array([np.nan, 3.0, 2.0, 1.0, 5.0]), accuracy, bootstrap=0)
    with_lowest = correlation_report(np.array([0.0, 3.0, 2.0, 1.0, 5.0]), accuracy, bootstrap=0)
    assert with_nan["n"] == 4
    assert with_nan["spearman_rho"] == pytest.approx(with_lowest["spearman_rho"])
    assert with_nan["spearman_rho"] == pytest.approx(stats.spearmanr([0, 3, 2, 1], accuracy[:4]).statistic)


@pytest.mark.parametrize("size", [0, 1, 2])
def test_fewer_than_three_observations_give_none_with_a_reason(size):
    report = correlation_report(np.arange(size, dtype=float), np.arange(size, dtype=float))
    assert report["n"] == size
    assert report["spearman_rho"] is None and report["top_recall"] is None
    assert "at least 3" in report["reason"]


def test_invalid_inputs_are_rejected():
    with pytest.raises(ValueError, match="equal length"):
        correlation_report(np.ones(3), np.ones(4))
    with pytest.raises(ValueError, match="top_fraction"):
        correlation_report(np.ones(3), np.ones(3), top_fraction=0.0)


def test_report_on_real_nb201_accuracies_with_a_structural_score():
    # A cheap, accuracy-free score on real data: the number of convolution edges in the cell
    # (3x3 counted thrice, as it holds ~9x the weights of a 1x1). Cells made of convolutions
    # train best on NAS-Bench-201, so the order must be clearly positive.
    if not NB201_CSV.exists():
        pytest.skip(f"shared NAS-Bench-201 accuracies not found at {NB201_CSV}")
    with NB201_CSV.open() as handle:
        rows = list(csv.DictReader(handle))
    score = np.array([3 * r["arch"].count("nor_conv_3x3") + r["arch"].count("nor_conv_1x1") for r in rows])
    accuracy = np.array([float(r["cifar10_test_acc"]) for r in rows])
    report = correlation_report(score.astype(float), accuracy, bootstrap=300)
    assert report["n"] == 15_625
    assert report["spearman_rho"] == pytest.approx(stats.spearmanr(score, accuracy).statistic, abs=1e-12)
    assert report["spearman_rho"] > 0.5
    assert report["spearman_ci_low"] < report["spearman_rho"] < report["spearman_ci_high"]
    assert report["top_recall"] > 0.3  # a random score would find 10 % of the true top 10 %
    assert report["best_accuracy_top100"] <= report["best_accuracy"] == accuracy.max()
