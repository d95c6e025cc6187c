"""Leaderboards: one configuration's population ranked by the rank vote or by one proxy, and the standing
of one architecture's isomorphism class in that ranking (the zero-cost score of POST /v1/scores and
`nasscore score`), taken from the same snapshot and memoised ranking so the two always agree.

By default a leaderboard lists each isomorphism class once and ranks the population of classes: isomorphic
cells share one recorded score, so counting every member would let one class fill the top ranks with
copies of itself.
"""

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.stats import rankdata
from sqlalchemy.orm import Session

from app.services.errors import InvalidInput, NotFound
from app.services.observations import DEFAULT_METRIC
from app.services.population import Population, ScoredPopulation, class_population, load_scored_population
from app.services.votes import (
    VoteChoice,
    VoteRequest,
    check_vote_request,
    choose_vote,
    default_vote_for,
    population_vote,
    requested_choice,
)
from scorers import get_proxy

RANK_BY_VOTE = "vote"
UNIT_CLASS = "class"
UNIT_CELL = "cell"
EXPAND_UNITS = {"cells": UNIT_CELL}
# Fewest isomorphism classes a standing is ranked among (see `VoteStanding`).
MIN_VOTE_POPULATION = 20
# The default vote request (frozen, so one shared instance is safe as a default argument).
DEFAULT_VOTE_REQUEST = VoteRequest()
NO_STORED_SCORES = "no scores of this architecture are stored under the configuration"


@dataclass(frozen=True)
class Ranking:
    """Row indices best first, and each row's competition rank (1 = best; NaN when unranked)."""

    order: np.ndarray
    rank: np.ndarray


@dataclass(frozen=True)
class LeaderboardQuery:
    space: str = "nb201"
    dataset: str = "cifar10"
    rank_by: str = RANK_BY_VOTE
    vote: VoteRequest = VoteRequest()
    config: str | None = None
    metric: str = DEFAULT_METRIC
    source: str | None = None
    limit: int = 100
    offset: int = 0
    expand: str | None = None


@dataclass(frozen=True)
class LeaderboardRow:
    architecture_id: int
    arch: str
    canonical_key: str
    members: int
    scores: dict[str, float | None]
    vote: float | None
    percentile: float | None
    vote_rank: int | None
    rank: int | None
    accuracy: float | None


@dataclass(frozen=True)
class Leaderboard:
    scored: ScoredPopulation
    choice: VoteChoice
    rank_by: str
    unit: str
    total: int
    limit: int
    offset: int
    rows: list[LeaderboardRow]


@dataclass(frozen=True)
class VoteStanding:
    """Where one architecture's isomorphism class stands in the vote of its configuration's population.

    `population` counts the classes voted on, the architecture's own once. `rank` (1 = best, ties share the
    best) and `percentile` (share of the other classes with a lower vote, ties counting half) are the
    leaderboard's `vote_rank` and `percentile`; they are None, and `reason` says why, when the class lacks
    one of the voters or the population has fewer than MIN_VOTE_POPULATION classes: below that one place
    moves the percentile by more than five points and a handful of random neighbours decides it, so a
    number would look more precise than it is. `position` is the class's 0-based place in the
    leaderboard's vote order (None when it is not listed there).
    """

    choice: VoteChoice
    population: int
    rank: int | None = None
    percentile: float | None = None
    position: int | None = None
    reason: str | None = None


def vote_percentiles(votes: np.ndarray) -> np.ndarray:
    """Each architecture's vote as the share of the others with a lower vote, ties counting half.

    Equal to `scorers.voting.vote_percentile` with the architecture as the candidate and the rest as the
    population (the joined population is this one, so the votes are the same); NaN below two architectures.
    """
    if votes.size < 2 or not np.isfinite(votes).all():
        return np.full(votes.size, np.nan)
    return (rankdata(votes) - 1.0) / (votes.size - 1)


def rank_rows(key: np.ndarray, architecture_ids: np.ndarray, higher_is_better: bool = True) -> Ranking:
    """Order by `key` (best first, ties by architecture id, non-finite last) with competition ranks."""
    finite = np.isfinite(key)
    oriented = np.where(finite, key if higher_is_better else -key, -np.inf)
    order = np.lexsort((architecture_ids, -oriented))
    rank = np.full(key.size, np.nan)
    rank[finite] = rankdata(-oriented[finite], method="min")
    return Ranking(order=order, rank=rank)


def validate_expand(expand: str | None) -> str:
    """The unit a leaderboard lists: isomorphism classes by default, every cell with `expand=cells`."""
    if expand is None:
        return UNIT_CLASS
    if expand not in EXPAND_UNITS:
        raise InvalidInput("expand", f"cannot expand {expand!r}; known: {', '.join(EXPAND_UNITS)}")
    return EXPAND_UNITS[expand]


def unit_population(population: Population, unit: str) -> Population:
    return class_population(population) if unit == UNIT_CLASS else population


def leaderboard(session: Session, query: LeaderboardQuery) -> Leaderboard:
    """A page of the population ranked by the vote or one proxy; ranks, votes and percentiles are taken over
    the listed unit, so collapsed ranks order classes, not copies of them."""
    check_vote_request(query.vote)
    unit = validate_expand(query.expand)
    scored = load_scored_population(session, query.space, query.dataset, query.config, query.metric, query.source)
    population = unit_population(scored.population, unit)
    choice = choose_vote(population, query.vote, scored.selection.config)
    voters, method = choice.voters, choice.method
    rank_by = _validate_rank_by(query.rank_by, population)
    votes = population_vote(population, voters, method)
    by_vote = _vote_ranking(population, voters, method)
    ranking = by_vote if rank_by == RANK_BY_VOTE else _proxy_ranking(population, rank_by)
    percentiles = population.memo(("percentile", voters, method), lambda: vote_percentiles(votes))
    page = ranking.order[query.offset : query.offset + query.limit]
    rows = [
        LeaderboardRow(
            architecture_id=int(population.architecture_ids[row]),
            arch=str(population.archs[row]),
            canonical_key=str(population.canonical_keys[row]),
            members=int(population.members[row]),
            scores=_row_scores(population, row),
            vote=_finite_or_none(votes[row]),
            percentile=_finite_or_none(percentiles[row]),
            vote_rank=_int_or_none(by_vote.rank[row]),
            rank=_int_or_none(ranking.rank[row]),
            accuracy=_finite_or_none(population.accuracy[row]),
        )
        for row in page
    ]
    return Leaderboard(scored, choice, rank_by, unit, population.size, query.limit, query.offset, rows)


def stored_standing(
    session: Session, space: str, dataset: str, fingerprint: str, canonical_key: str, request: VoteRequest
) -> VoteStanding:
    """How a stored architecture's class ranks under the vote `request` asks for: the same cached snapshot,
    memoised vote and ranks as GET /v1/leaderboard, so the two always agree. A cached snapshot is reused
    only while its configuration's (score count, highest score id) stamp is unchanged, and the
    architecture's scores are committed before this reads the stamp, so a snapshot without them never is."""
    try:
        scored = load_scored_population(session, space, dataset, fingerprint)
    except NotFound:
        return VoteStanding(requested_choice(request), population=0, reason=NO_STORED_SCORES)
    classes = class_population(scored.population)
    return _standing(classes, _row_of(classes, canonical_key), request)


def candidate_standing(
    session: Session,
    space: str,
    dataset: str,
    fingerprint: str,
    canonical_key: str,
    scores: Mapping[str, float],
    request: VoteRequest = DEFAULT_VOTE_REQUEST,
) -> VoteStanding | None:
    """How an architecture scored outside the service would stand among the classes stored under
    `fingerprint` (None: nothing is stored there). Its class joins them with `scores`, replacing the stored
    row of the same class, so the class counts once; as `scorers.voting.vote_percentile` does, everyone is
    voted on together, since ranks depend on the whole population."""
    try:
        scored = load_scored_population(session, space, dataset, fingerprint)
    except NotFound:
        return None
    classes = _with_candidate(class_population(scored.population), canonical_key, scores)
    return _standing(classes, _row_of(classes, canonical_key), request)


def _standing(classes: Population, row: int | None, request: VoteRequest) -> VoteStanding:
    scored = set() if row is None else _scored_proxies(classes, row)
    choice = requested_choice(default_vote_for(scored, request))
    if row is None:
        return VoteStanding(choice, classes.size, reason=NO_STORED_SCORES)
    missing = [name for name in choice.voters if name not in scored]
    if missing:
        reason = f"no {', '.join(missing)} score of this architecture to vote with"
        return VoteStanding(choice, classes.size, reason=reason)
    by_vote = _vote_ranking(classes, choice.voters, choice.method)
    positions = classes.memo(("position", choice.voters, choice.method), lambda: np.argsort(by_vote.order))
    position = int(positions[row])
    if classes.size < MIN_VOTE_POPULATION:
        counted = f"{classes.size} isomorphism class{'' if classes.size == 1 else 'es'}"
        reason = f"only {counted} scored under this configuration; a rank needs at least {MIN_VOTE_POPULATION}"
        return VoteStanding(choice, classes.size, position=position, reason=reason)
    votes = population_vote(classes, choice.voters, choice.method)
    percentiles = classes.memo(("percentile", choice.voters, choice.method), lambda: vote_percentiles(votes))
    rank, percentile = _int_or_none(by_vote.rank[row]), _finite_or_none(percentiles[row])
    return VoteStanding(choice, classes.size, rank, percentile, position)


def _scored_proxies(population: Population, row: int) -> set[str]:
    return {proxy for column, proxy in enumerate(population.proxies) if population.present[row, column]}


def _row_of(population: Population, canonical_key: str) -> int | None:
    rows = population.memo(("row-of-class",), lambda: {key: row for row, key in enumerate(population.canonical_keys)})
    return rows.get(canonical_key)


def _with_candidate(classes: Population, canonical_key: str, scores: Mapping[str, float]) -> Population:
    """The classes with the candidate's class first, under id 0 (never a stored id, so rows keep ascending
    ids) and with `scores` instead of any stored ones; scores of proxies the others lack are left out."""
    keep = classes.canonical_keys != canonical_key
    values = np.array([[scores.get(proxy, math.nan) for proxy in classes.proxies]], dtype=float)

    def joined(candidate: Any, column: np.ndarray) -> np.ndarray:
        return np.concatenate((np.asarray(candidate, dtype=column.dtype), column[keep]))

    return Population(
        architecture_ids=joined([0], classes.architecture_ids),
        archs=joined([""], classes.archs),
        proxies=classes.proxies,
        values=joined(values, classes.values),
        seconds=joined(np.full(values.shape, math.nan), classes.seconds),
        present=joined([[proxy in scores for proxy in classes.proxies]], classes.present),
        accuracy=joined([math.nan], classes.accuracy),
        canonical_keys=joined([canonical_key], classes.canonical_keys),
        members=joined([1], classes.members),
    )


def _vote_ranking(population: Population, voters: tuple[str, ...], method: str) -> Ranking:
    votes = population_vote(population, voters, method)
    return population.memo(("ranking", voters, method), lambda: rank_rows(votes, population.architecture_ids))


def _proxy_ranking(population: Population, proxy: str) -> Ranking:
    direction = get_proxy(proxy).higher_is_better
    return population.memo(
        ("ranking", proxy), lambda: rank_rows(population.column(proxy), population.architecture_ids, direction)
    )


def _validate_rank_by(rank_by: str, population: Population) -> str:
    if rank_by == RANK_BY_VOTE or rank_by in population.proxies:
        return rank_by
    choices = ", ".join((RANK_BY_VOTE, *population.proxies))
    raise InvalidInput("rank_by", f"cannot rank by {rank_by!r}; this population can be ranked by: {choices}")


def _row_scores(population: Population, row: int) -> dict[str, float | None]:
    return {
        proxy: _finite_or_none(population.values[row, column])
        for column, proxy in enumerate(population.proxies)
        if population.present[row, column]
    }


def _finite_or_none(value: float) -> float | None:
    number = float(value)
    return number if math.isfinite(number) else None


def _int_or_none(value: float) -> int | None:
    return int(value) if math.isfinite(value) else None
