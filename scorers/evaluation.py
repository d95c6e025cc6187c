"""How well a score predicts observed accuracy: rank correlations and NAS-relevant top-k figures.

Rank correlation over the whole population says how well a proxy orders architectures; NAS only
needs the *top* to be right, hence the top-k recall and best-pick figures next to it. Values are
signed (no `abs`): a lower-is-better score is negated first, so a positive correlation always means
"orders architectures the right way" in the registry's direction.
"""

import math
from typing import Any

import numpy as np
from scipy import stats

MIN_ARCHITECTURES = 3
BEST_PICK_COUNTS: tuple[int, ...] = (10, 100)
_BOOTSTRAP_BLOCK_ELEMENTS = 1 << 21

_FIGURES = (
    "spearman_rho",
    "spearman_p",
    "spearman_ci_low",
    "spearman_ci_high",
    "kendall_tau",
    "kendall_p",
    "pearson_rank_r",
    "pearson_rank_p",
    "top_recall",
    *(f"best_accuracy_top{count}" for count in BEST_PICK_COUNTS),
    "best_accuracy",
)


def correlation_report(
    score: np.ndarray,
    accuracy: np.ndarray,
    *,
    higher_is_better: bool = True,
    bootstrap: int = 1000,
    seed: int = 0,
    top_fraction: float = 0.10,
) -> dict[str, Any]:
    """Correlation of `score` with observed `accuracy` over the architectures that have an accuracy.

    Keys: n, reason (None, or why the figures are None), spearman_rho/_p, spearman_ci_low/_high (95 %
    percentile bootstrap, `bootstrap` resamples drawn with `seed`), kendall_tau/_p (tau-b),
    pearson_rank_r/_p (Pearson between the score's rank and the accuracy: the relation the
    correlation plot shows; Pearson between both ranks would just repeat Spearman's rho),
    top_fraction, top_recall (expected share of the true top `top_fraction` by accuracy found in the
    score's top `top_fraction`, boundary ties split at random), best_accuracy_top10/_top100 (best
    accuracy among the score's first 10/100 picks, ties at the cut resolved against the score) and
    best_accuracy (best overall). Non-finite scores rank last; entries without a finite accuracy
    are left out.
    """
    if not 0.0 < top_fraction <= 1.0:
        raise ValueError(f"top_fraction must be in (0, 1], got {top_fraction}")
    score_rank, observed = _observed_score_ranks(score, accuracy, higher_is_better)
    report: dict[str, Any] = {"n": int(observed.size), "top_fraction": top_fraction, "reason": None}
    report.update(dict.fromkeys(_FIGURES))
    if observed.size < MIN_ARCHITECTURES:
        report["reason"] = (
            f"needs at least {MIN_ARCHITECTURES} architectures with an observed accuracy, got {observed.size}"
        )
        return report
    report.update(_best_picks(score_rank, observed))
    report["top_recall"] = _top_recall(score_rank, observed, top_fraction)
    if np.ptp(score_rank) == 0 or np.ptp(observed) == 0:
        report["reason"] = "constant score or accuracy: rank correlations are undefined"
        return report
    report.update(_correlations(score_rank, observed))
    report["spearman_ci_low"], report["spearman_ci_high"] = _bootstrap_spearman_ci(
        score_rank, observed, bootstrap, seed
    )
    return report


def _observed_score_ranks(
    score: np.ndarray, accuracy: np.ndarray, higher_is_better: bool
) -> tuple[np.ndarray, np.ndarray]:
    """Ranks of the score (N = best, non-finite last) among the entries with a finite accuracy."""
    score, accuracy = np.asarray(score, dtype=float), np.asarray(accuracy, dtype=float)
    if score.ndim != 1 or score.shape != accuracy.shape:
        raise ValueError(f"score and accuracy must be 1-D of equal length: {score.shape} vs {accuracy.shape}")
    observed = np.isfinite(accuracy)
    oriented = score[observed] if higher_is_better else -score[observed]
    oriented[~np.isfinite(oriented)] = -np.inf
    return stats.rankdata(oriented), accuracy[observed]


def _correlations(score_rank: np.ndarray, accuracy: np.ndarray) -> dict[str, float]:
    spearman = stats.spearmanr(score_rank, accuracy)
    kendall = stats.kendalltau(score_rank, accuracy)
    pearson = stats.pearsonr(score_rank, accuracy)
    return {
        "spearman_rho": float(spearman.statistic),
        "spearman_p": float(spearman.pvalue),
        "kendall_tau": float(kendall.statistic),
        "kendall_p": float(kendall.pvalue),
        "pearson_rank_r": float(pearson.statistic),
        "pearson_rank_p": float(pearson.pvalue),
    }


def _bootstrap_spearman_ci(
    score_rank: np.ndarray, accuracy: np.ndarray, resamples: int, seed: int
) -> tuple[float | None, float | None]:
    """95 % percentile interval of Spearman's rho over resamples drawn with replacement.

    A resample is held as how often it drew each architecture, so its ranks come from cumulative
    sums over tie groups instead of a sort per resample; a block of resamples is done at once.
    """
    if resamples < 1:
        return None, None
    count = score_rank.size
    score_groups, accuracy_groups = _tie_groups(score_rank), _tie_groups(accuracy)
    generator = np.random.default_rng(seed)
    rhos = np.empty(resamples)
    block = max(1, _BOOTSTRAP_BLOCK_ELEMENTS // count)
    for start in range(0, resamples, block):
        rows = min(resamples, start + block) - start
        picks = generator.integers(0, count, size=(rows, count))
        offsets = np.arange(rows)[:, None] * count
        draws = np.bincount((picks + offsets).ravel(), minlength=rows * count).reshape(rows, count)
        rhos[start : start + rows] = _weighted_row_pearson(
            _resampled_ranks(draws, score_groups), _resampled_ranks(draws, accuracy_groups), draws
        )
    if np.isnan(rhos).all():
        return None, None
    low, high = np.nanpercentile(rhos, [2.5, 97.5])
    return float(low), float(high)


def _tie_groups(values: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Each value's tie group (0 = smallest), the order sorting by group, and where groups start."""
    groups = stats.rankdata(values, method="dense").astype(np.intp) - 1
    order = np.argsort(groups, kind="stable")
    starts = np.flatnonzero(np.r_[True, np.diff(groups[order]) != 0])
    return groups, order, starts


def _resampled_ranks(draws: np.ndarray, tie_groups: tuple[np.ndarray, np.ndarray, np.ndarray]) -> np.ndarray:
    """Average rank each architecture gets within each resample (row of `draws`)."""
    groups, order, starts = tie_groups
    group_size = np.add.reduceat(draws[:, order], starts, axis=1)
    below = np.cumsum(group_size, axis=1) - group_size
    return (below + (group_size + 1) / 2)[:, groups]


def _weighted_row_pearson(left: np.ndarray, right: np.ndarray, weights: np.ndarray) -> np.ndarray:
    """Pearson correlation of each row pair with per-entry weights; NaN where a row is constant."""
    total = weights.sum(axis=1)
    weighted_left, weighted_right = weights * left, weights * right
    sum_left, sum_right = weighted_left.sum(axis=1), weighted_right.sum(axis=1)
    covariance = np.einsum("ij,ij->i", weighted_left, right) - sum_left * sum_right / total
    variance_left = np.einsum("ij,ij->i", weighted_left, left) - sum_left**2 / total
    variance_right = np.einsum("ij,ij->i", weighted_right, right) - sum_right**2 / total
    denominator = np.sqrt(np.clip(variance_left * variance_right, 0.0, None))
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(denominator > 1e-9 * total**2, covariance / denominator, np.nan)


def _top_count(fraction: float, count: int) -> int:
    return max(1, min(count, math.floor(fraction * count + 0.5)))


def _top_membership(values: np.ndarray, size: int) -> np.ndarray:
    """Probability of each entry being among the `size` largest when ties are broken at random."""
    threshold = np.sort(values)[-size]
    above = values > threshold
    at_threshold = values == threshold
    membership: np.ndarray = above.astype(float)
    membership[at_threshold] = (size - np.count_nonzero(above)) / np.count_nonzero(at_threshold)
    return membership


def _top_recall(score_rank: np.ndarray, accuracy: np.ndarray, fraction: float) -> float:
    size = _top_count(fraction, accuracy.size)
    overlap = _top_membership(score_rank, size) @ _top_membership(accuracy, size)
    return float(overlap / size)


def _best_picks(score_rank: np.ndarray, accuracy: np.ndarray) -> dict[str, float]:
    """Best accuracy among the score's first picks; among tied scores the worse accuracy comes first."""
    pick_order = np.lexsort((accuracy, -score_rank))
    figures = {f"best_accuracy_top{count}": float(accuracy[pick_order[:count]].max()) for count in BEST_PICK_COUNTS}
    figures["best_accuracy"] = float(accuracy.max())
    return figures
