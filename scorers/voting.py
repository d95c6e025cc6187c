"""Rank voting: combine several zero-cost proxies into one ordering of a population.

A single proxy is a weak predictor of trained accuracy; proxies measure different things and their
scales are incomparable, so they are combined through their *ranks*, never their raw values. The
population is all architectures of one space scored under one configuration.

Conventions shared by every function here:
- a proxy's rank is taken in its own direction (`higher_is_better` from the registry), so rank N is
  always the best of N; ties share their average rank; a non-finite score ranks last for that proxy;
- every vote is HIGHER = BETTER, whatever the method.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
from scipy.stats import rankdata

VOTE_METHODS: tuple[str, ...] = ("mean_rank", "log_rank", "majority")
MAJORITY_MAX_ARCHITECTURES = 25_000
_PAIRWISE_BLOCK_ELEMENTS = 1 << 22


@dataclass(frozen=True)
class VoteResult:
    """A candidate's vote as a percentile in [0, 1] of the population it was voted in.

    `value` is None when the percentile is undefined: a population of one has nobody to compare with.
    `population_size` counts the candidate itself.
    """

    value: float | None
    population_size: int


def rank_scores(scores: np.ndarray, higher_is_better: Sequence[bool]) -> np.ndarray:
    """Per-proxy percentile ranks rank/N in (0, 1], 1 = best, for an N×P score matrix.

    rank/N (not (rank-1)/(N-1)) is the AZ-NAS convention, which keeps log(rank) finite; ties share
    their average rank (scipy.stats.rankdata) and non-finite scores tie for last place.
    """
    matrix = _as_score_matrix(scores)
    directions = np.asarray(higher_is_better, dtype=bool)
    if directions.shape != (matrix.shape[1],):
        raise ValueError(f"higher_is_better has {directions.size} entries for {matrix.shape[1]} proxies")
    if matrix.shape[0] == 0:
        return matrix.copy()
    oriented = np.where(directions, matrix, -matrix)
    oriented[~np.isfinite(oriented)] = -np.inf
    percentile_ranks: np.ndarray = rankdata(oriented, axis=0) / matrix.shape[0]
    return percentile_ranks


def vote(
    scores: Mapping[str, np.ndarray] | np.ndarray,
    higher_is_better: Mapping[str, bool],
    method: str = "mean_rank",
    names: Sequence[str] | None = None,
) -> np.ndarray:
    """One vote per architecture (length N, higher = better) from several proxies' scores.

    `scores` is either {proxy: length-N array} or an N×P array whose columns are named by `names`.
    Methods:
    - `mean_rank` (default): Borda count, the mean of the per-proxy percentile ranks, in (0, 1].
    - `log_rank`: AZ-NAS (Lee & Ham, "AZ-NAS: Assembling Zero-Cost Proxies for Network Architecture
      Search", CVPR 2024), sum over proxies of log(rank/N) with rank N the best, in (-inf, 0];
      the logarithm punishes a low rank from any one proxy hard, so it rewards architectures that
      every proxy ranks high.
    - `majority`: pairwise majority vote (Abdelfattah et al., "Zero-Cost Proxies for Lightweight
      NAS", ICLR 2021): in each pair of architectures every proxy votes for the one it ranks
      higher; the vote is the share of the N-1 pairwise contests won, a drawn contest counting half.
      It is O(N²·P) in time (in blocks, so memory stays bounded): meant for ordering a given set,
      it refuses populations above MAJORITY_MAX_ARCHITECTURES, and is NaN for N = 1 (no contests).
    """
    matrix, proxy_names = _score_matrix_and_names(scores, names)
    directions = _directions(proxy_names, higher_is_better)
    percentile_ranks = rank_scores(matrix, directions)
    if method == "mean_rank":
        mean_ranks: np.ndarray = percentile_ranks.mean(axis=1)
        return mean_ranks
    if method == "log_rank":
        log_ranks: np.ndarray = np.log(percentile_ranks).sum(axis=1)
        return log_ranks
    if method == "majority":
        return _pairwise_majority_share(percentile_ranks)
    raise ValueError(f"unknown vote method={method!r}; expected one of {', '.join(VOTE_METHODS)}")


def vote_percentile(
    population: Mapping[str, np.ndarray],
    candidate: Mapping[str, float],
    higher_is_better: Mapping[str, bool],
    method: str = "mean_rank",
) -> VoteResult:
    """A new architecture's vote as its percentile among the others of its population.

    `population` holds the *other* architectures' scores; the candidate joins them, everyone is
    voted on together (ranks depend on the whole population), and the result is the share of the
    others whose vote is below the candidate's, ties counting half: 1.0 = better than all of them.
    """
    missing = [name for name in population if name not in candidate]
    if missing:
        raise ValueError(f"candidate lacks scores for proxies: {', '.join(missing)}")
    joined = {
        name: np.append(np.asarray(values, dtype=float), float(candidate[name])) for name, values in population.items()
    }
    votes = vote(joined, higher_is_better, method)
    population_size = votes.shape[0]
    if population_size < 2:
        return VoteResult(value=None, population_size=population_size)
    others, own = votes[:-1], votes[-1]
    share = (np.count_nonzero(others < own) + 0.5 * np.count_nonzero(others == own)) / others.size
    return VoteResult(value=float(share), population_size=population_size)


def _pairwise_majority_share(percentile_ranks: np.ndarray) -> np.ndarray:
    """Share of pairwise majority contests each row wins, computed block by block of rows."""
    count, proxies = percentile_ranks.shape
    if count > MAJORITY_MAX_ARCHITECTURES:
        raise ValueError(
            f"method='majority' compares all pairs and is limited to "
            f"{MAJORITY_MAX_ARCHITECTURES} architectures, got {count}; use mean_rank or log_rank"
        )
    if count < 2:
        return np.full(count, np.nan)
    dense_ranks = rankdata(percentile_ranks, method="dense", axis=0).astype(np.int32)
    columns = [np.ascontiguousarray(dense_ranks[:, proxy]) for proxy in range(proxies)]
    points = np.empty(count)
    block = max(1, _PAIRWISE_BLOCK_ELEMENTS // count)
    for start in range(0, count, block):
        stop = min(count, start + block)
        margin = np.zeros((stop - start, count), dtype=np.int8 if proxies < 128 else np.int32)
        for column in columns:
            rows = column[start:stop, None]
            margin += rows > column
            margin -= rows < column
        draws_with_others = np.count_nonzero(margin == 0, axis=1) - 1
        points[start:stop] = np.count_nonzero(margin > 0, axis=1) + 0.5 * draws_with_others
    share: np.ndarray = points / (count - 1)
    return share


def _score_matrix_and_names(
    scores: Mapping[str, np.ndarray] | np.ndarray, names: Sequence[str] | None
) -> tuple[np.ndarray, list[str]]:
    if isinstance(scores, Mapping):
        if names is not None:
            raise ValueError("pass names only with an N×P array; a mapping names its own proxies")
        proxy_names = list(scores)
        columns = [np.asarray(scores[name], dtype=float) for name in proxy_names]
        lengths = {column.shape for column in columns}
        if len(lengths) > 1 or any(column.ndim != 1 for column in columns):
            raise ValueError(f"every proxy needs a 1-D score array of the same length, got {lengths}")
        matrix = np.column_stack(columns) if columns else np.empty((0, 0))
    else:
        if names is None:
            raise ValueError("an N×P score array needs names, one per column")
        matrix, proxy_names = _as_score_matrix(scores), list(names)
        if len(proxy_names) != matrix.shape[1]:
            raise ValueError(f"{len(proxy_names)} names for {matrix.shape[1]} score columns")
    if not proxy_names:
        raise ValueError("a vote needs at least one proxy")
    return matrix, proxy_names


def _directions(proxy_names: Sequence[str], higher_is_better: Mapping[str, bool]) -> list[bool]:
    unknown = [name for name in proxy_names if name not in higher_is_better]
    if unknown:
        raise ValueError(f"no direction (higher_is_better) for proxies: {', '.join(unknown)}")
    return [bool(higher_is_better[name]) for name in proxy_names]


def _as_score_matrix(scores: np.ndarray) -> np.ndarray:
    matrix = np.asarray(scores, dtype=float)
    if matrix.ndim != 2:
        raise ValueError(f"scores must be an N×P matrix, got shape {matrix.shape}")
    return matrix
