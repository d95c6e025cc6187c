"""Leaderboards: one configuration's population of scored architectures, ordered by the rank vote or by
one proxy.

The population is every architecture of a space scored under ONE configuration: proxy values depend on
the calibration data, the seed and the model, so scores of two fingerprints are never mixed. Loading a
population (all its score columns in one query) is the expensive step, so a snapshot is cached per
database and reused while cheap stamps are unchanged: scores are insert-only, so a configuration's
(row count, highest id) changes whenever its population does, and an observation import moves the
(count, latest observed_at) of its dataset and metric.

Isomorphic cells (one `canonical_key`) compute the same function and share one recorded score, so by
default a leaderboard lists each isomorphism class once and ranks the population of classes: counting
every member would let one class fill the top ranks with copies of itself.
"""

import math
import threading
import weakref
from collections import OrderedDict
from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import numpy as np
from scipy.stats import rankdata
from sqlalchemy import Engine, and_, func, select
from sqlalchemy.orm import Session

from app.db.models import Architecture, Observation, Score, ScoringConfig, SearchSpace
from app.services.configs import validate_dataset, validate_proxies
from app.services.errors import InvalidInput, NotFound
from app.services.observations import DEFAULT_METRIC
from app.services.spaces import space_module
from scorers import get_proxy
from scorers.presets import DEFAULT_PRESET, PRESETS, UnknownPresetError, VotePreset, get_preset
from scorers.voting import VOTE_METHODS, vote

RANK_BY_VOTE = "vote"
CUSTOM_VOTE_METHOD = "mean_rank"
FALLBACK_PRESET = "mission"
SELECTED_BY_REQUEST = "request"
SELECTED_BY_MOST_SCORES = "most_scores"
UNIT_CLASS = "class"
UNIT_CELL = "cell"
EXPAND_UNITS = {"cells": UNIT_CELL}
MIN_FINGERPRINT_PREFIX = 6
# Fewest isomorphism classes a standing is ranked among (see `VoteStanding`).
MIN_VOTE_POPULATION = 20
NO_STORED_SCORES = "no scores of this architecture are stored under the configuration"
CACHED_SNAPSHOTS = 16


@dataclass(frozen=True)
class ConfigCount:
    """How much of a space one configuration has scored."""

    config_id: int
    fingerprint: str
    scores: int
    architectures: int


@dataclass(frozen=True)
class ConfigSelection:
    """The configuration a population comes from, why it was chosen, and the others for the dataset."""

    config: ScoringConfig
    selected_by: str
    counts: ConfigCount
    alternatives: tuple[ConfigCount, ...]


@dataclass(eq=False)
class Population:
    """An immutable snapshot: rows are architectures (ascending id), columns are proxies (sorted).

    `values`/`seconds` are NaN where a score is missing or stored as null; `present` tells them apart.
    `members` is the number of the population's cells in each row's isomorphism class.
    Votes and orderings are memoised here, so they live exactly as long as the snapshot.
    """

    architecture_ids: np.ndarray
    archs: np.ndarray
    proxies: tuple[str, ...]
    values: np.ndarray
    seconds: np.ndarray
    present: np.ndarray
    accuracy: np.ndarray
    canonical_keys: np.ndarray
    members: np.ndarray
    _memo: dict[Hashable, Any] = field(default_factory=dict, repr=False)

    @property
    def size(self) -> int:
        return int(self.architecture_ids.size)

    def column(self, proxy: str) -> np.ndarray:
        return self.values[:, self.proxies.index(proxy)]

    def memo(self, key: Hashable, compute: Callable[[], Any]) -> Any:
        """A value derived from this snapshot, computed once (a benign race may compute it twice)."""
        if key not in self._memo:
            self._memo[key] = compute()
        return self._memo[key]


@dataclass(frozen=True)
class ScoredPopulation:
    space: str
    dataset: str
    metric: str
    selection: ConfigSelection
    population: Population


@dataclass(frozen=True)
class Ranking:
    """Row indices best first, and each row's competition rank (1 = best; NaN when unranked)."""

    order: np.ndarray
    rank: np.ndarray


@dataclass(frozen=True)
class VoteRequest:
    """Who votes and how, as asked: a named preset, an explicit list of proxies, or neither (the default).
    `method` overrides the preset's method; an explicit list is Borda-voted (mean_rank) unless told."""

    proxies: Sequence[str] | None = None
    preset: str | None = None
    method: str | None = None


@dataclass(frozen=True)
class VoteChoice:
    """The vote actually taken: its voters, its method, and the preset it came from (None: a custom list)."""

    voters: tuple[str, ...]
    method: str
    preset: str | None


@dataclass(frozen=True)
class LeaderboardQuery:
    space: str = "nb201"
    dataset: str = "cifar10"
    rank_by: str = RANK_BY_VOTE
    vote: VoteRequest = VoteRequest()
    config: str | None = None
    metric: str = DEFAULT_METRIC
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


class StampedCache:
    """Values keyed by what they describe, valid only while their stamp (a cheap query result) matches."""

    def __init__(self, max_entries: int = CACHED_SNAPSHOTS) -> None:
        self.max_entries = max_entries
        self._entries: OrderedDict[Hashable, tuple[Hashable, Any]] = OrderedDict()
        self._lock = threading.Lock()

    def get(self, key: Hashable, stamp: Hashable, compute: Callable[[], Any]) -> Any:
        with self._lock:
            entry = self._entries.get(key)
            if entry is not None and entry[0] == stamp:
                self._entries.move_to_end(key)
                return entry[1]
        value = compute()
        with self._lock:
            self._entries[key] = (stamp, value)
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
        return value


_CACHES: "weakref.WeakKeyDictionary[Engine, StampedCache]" = weakref.WeakKeyDictionary()
_CACHES_LOCK = threading.Lock()


def cache_for(session: Session) -> StampedCache:
    """One cache per engine, so two databases never share snapshots and a disposed one frees its own."""
    bind = session.get_bind()
    with _CACHES_LOCK:
        if bind not in _CACHES:
            _CACHES[bind] = StampedCache()
        return _CACHES[bind]


def split_names(values: Sequence[str] | None) -> list[str] | None:
    """`["snip,grasp", "synflow"]` -> `["snip", "grasp", "synflow"]`: lists may be comma-separated or repeated."""
    if values is None:
        return None
    return [name.strip() for value in values for name in value.split(",") if name.strip()]


def validate_method(method: str) -> str:
    if method not in VOTE_METHODS:
        raise InvalidInput("method", f"unknown vote method {method!r}; known methods: {', '.join(VOTE_METHODS)}")
    return method


def load_scored_population(
    session: Session, space: str, dataset: str, config: str | None = None, metric: str = DEFAULT_METRIC
) -> ScoredPopulation:
    """The population of `space` scored on `dataset` under one configuration, with observed accuracies.

    `config` is a fingerprint (or a unique prefix of at least 6 characters); without it the configuration
    with the most scores for the space and dataset is used, and the others are listed as alternatives.
    """
    space_module(space)
    validate_dataset(dataset)
    space_row = _stored_space(session, space)
    cache = cache_for(session)
    stamps = _dataset_config_stamps(session, dataset)
    selection = _select_configuration(session, cache, space_row, dataset, config, stamps)
    stamp = (stamps[selection.config.id], _observation_stamp(session, dataset, metric))
    population = cache.get(
        ("population", space_row.id, selection.config.id, dataset, metric),
        stamp,
        lambda: _load_population(session, space_row.id, selection.config.id, dataset, metric),
    )
    return ScoredPopulation(space, dataset, metric, selection, population)


def check_vote_request(request: VoteRequest) -> None:
    """The checks that need no population, so a bad request is refused before anything is loaded."""
    if request.proxies is not None and request.preset is not None:
        raise InvalidInput("preset", "give either a preset or a list of proxies, not both")
    if request.preset is not None:
        _named_preset(request.preset)
    if request.method is not None:
        validate_method(request.method)


def choose_vote(population: Population, request: VoteRequest, config: ScoringConfig) -> VoteChoice:
    """The vote to take. A named preset needs all its proxies scored; by default the default preset votes
    when all its proxies are scored, else the `mission` preset, else every scored proxy (Borda)."""
    check_vote_request(request)
    if request.proxies is not None:
        voters = require_scored(population, request.proxies, config)
        return VoteChoice(voters, validate_method(request.method or CUSTOM_VOTE_METHOD), None)
    if request.preset is not None:
        preset = _scored_preset(population, _named_preset(request.preset), config)
    else:
        preset = next(
            (PRESETS[name] for name in (DEFAULT_PRESET, FALLBACK_PRESET) if _is_scored(population, PRESETS[name])),
            None,
        )
    if preset is None:
        return VoteChoice(population.proxies, validate_method(request.method or CUSTOM_VOTE_METHOD), None)
    return VoteChoice(preset.proxies, validate_method(request.method or preset.method), preset.name)


def _named_preset(name: str) -> VotePreset:
    try:
        return get_preset(name)
    except UnknownPresetError as error:
        raise InvalidInput("preset", str(error)) from None


def _is_scored(population: Population, preset: VotePreset) -> bool:
    return set(preset.proxies) <= set(population.proxies)


def _scored_preset(population: Population, preset: VotePreset, config: ScoringConfig) -> VotePreset:
    missing = [name for name in preset.proxies if name not in population.proxies]
    if missing:
        raise InvalidInput(
            "preset",
            f"preset {preset.name!r} votes with {', '.join(preset.proxies)}, but configuration "
            f"{config.fingerprint[:12]} has no {', '.join(missing)} scores; score them first or pick another preset",
        )
    return preset


def require_scored(population: Population, proxies: Sequence[str], config: ScoringConfig) -> tuple[str, ...]:
    """Known proxy names without repeats, each with scores in the population; errors name `proxies[i]`."""
    names = validate_proxies(list(proxies), "proxies")
    for position, name in enumerate(proxies):
        if name not in population.proxies:
            raise InvalidInput(
                f"proxies[{position}]",
                f"configuration {config.fingerprint[:12]} has no {name!r} scores; "
                f"it has: {', '.join(population.proxies)}",
            )
    return names


def population_vote(population: Population, voters: Sequence[str], method: str) -> np.ndarray:
    """The vote of every architecture in the population (higher = better), memoised on the snapshot."""
    key = ("vote", tuple(voters), method)
    return population.memo(key, lambda: _compute_vote(population, voters, method))


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


def class_population(population: Population) -> Population:
    """One row per isomorphism class, memoised on the cell snapshot.

    A class's row is its representative, the member with the lowest id (ids never change, so neither does
    the representative; on a seeded space id order is the benchmark's order), with the representative's
    scores: the service records one class score for every member. Its accuracy is the mean of its members'
    observed accuracies, so a class counts once however many of its cells were trained.
    """
    return population.memo(("classes",), lambda: _collapse_classes(population))


def unit_population(population: Population, unit: str) -> Population:
    return class_population(population) if unit == UNIT_CLASS else population


def leaderboard(session: Session, query: LeaderboardQuery) -> Leaderboard:
    """A page of the population ranked by the vote or one proxy; ranks, votes and percentiles are taken over
    the listed unit, so collapsed ranks order classes, not copies of them."""
    check_vote_request(query.vote)
    unit = validate_expand(query.expand)
    scored = load_scored_population(session, query.space, query.dataset, query.config, query.metric)
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


def checked_vote_request(request: VoteRequest, field: str) -> VoteRequest:
    """`check_vote_request` for a vote nested in a request body under `field` (errors name e.g.
    `vote.preset`), with its proxy names validated and de-duplicated, before anything is computed."""
    proxies = None if request.proxies is None else validate_proxies(list(request.proxies), f"{field}.proxies")
    try:
        check_vote_request(request)
    except InvalidInput as error:
        raise InvalidInput(f"{field}.{error.field}", error.message) from None
    return VoteRequest(proxies=proxies, preset=request.preset, method=request.method)


def with_named_voters(proxies: Sequence[str], request: VoteRequest) -> tuple[str, ...]:
    """The proxies to compute for a vote: `proxies`, then the voters the request names (a named vote must be
    computable for the architecture; the default vote takes what was computed)."""
    if request.proxies is None and request.preset is None:
        return tuple(proxies)
    return tuple(dict.fromkeys((*proxies, *requested_choice(request).voters)))


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
    request: VoteRequest = VoteRequest(),
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


def requested_choice(request: VoteRequest) -> VoteChoice:
    """The vote a (checked) request names, the default preset when it names none; scores are not consulted."""
    if request.proxies is not None:
        return VoteChoice(tuple(request.proxies), request.method or CUSTOM_VOTE_METHOD, None)
    preset = _named_preset(request.preset or DEFAULT_PRESET)
    return VoteChoice(preset.proxies, request.method or preset.method, preset.name)


def _standing(classes: Population, row: int | None, request: VoteRequest) -> VoteStanding:
    scored = set() if row is None else _scored_proxies(classes, row)
    choice = requested_choice(_default_vote(scored, request))
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
        scored = f"{classes.size} isomorphism class{'' if classes.size == 1 else 'es'}"
        reason = f"only {scored} scored under this configuration; a rank needs at least {MIN_VOTE_POPULATION}"
        return VoteStanding(choice, classes.size, position=position, reason=reason)
    votes = population_vote(classes, choice.voters, choice.method)
    percentiles = classes.memo(("percentile", choice.voters, choice.method), lambda: vote_percentiles(votes))
    rank, percentile = _int_or_none(by_vote.rank[row]), _finite_or_none(percentiles[row])
    return VoteStanding(choice, classes.size, rank, percentile, position)


def _default_vote(scored: set[str], request: VoteRequest) -> VoteRequest:
    """A request that names no voters gets the leaderboard's default, judged on the architecture's own
    class: the default preset where it has all its voters, else `mission`, else every proxy it has (Borda).
    So a request that computed only some proxies is still ranked, by a vote its scores can take part in."""
    if request.proxies is not None or request.preset is not None:
        return request
    for name in (DEFAULT_PRESET, FALLBACK_PRESET):
        if set(PRESETS[name].proxies) <= scored:
            return VoteRequest(preset=name, method=request.method)
    return VoteRequest(proxies=tuple(sorted(scored)), method=request.method) if scored else request


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


def _collapse_classes(population: Population) -> Population:
    """Classes in ascending representative id, as the cell snapshot orders its rows."""
    keys = population.canonical_keys
    _, first_rows, sorted_class_of_row = np.unique(keys, return_index=True, return_inverse=True)
    by_representative = np.argsort(first_rows)
    representatives = first_rows[by_representative]
    class_of_row = np.argsort(by_representative)[sorted_class_of_row.ravel()]
    return Population(
        architecture_ids=population.architecture_ids[representatives],
        archs=population.archs[representatives],
        proxies=population.proxies,
        values=population.values[representatives],
        seconds=population.seconds[representatives],
        present=population.present[representatives],
        accuracy=_mean_per_class(population.accuracy, class_of_row, representatives.size),
        canonical_keys=keys[representatives],
        members=np.bincount(class_of_row, minlength=representatives.size),
    )


def _mean_per_class(accuracy: np.ndarray, class_of_row: np.ndarray, classes: int) -> np.ndarray:
    """Mean of each class's finite accuracies; NaN for a class with none observed."""
    observed = np.isfinite(accuracy)
    totals = np.bincount(class_of_row, weights=np.where(observed, accuracy, 0.0), minlength=classes)
    counts = np.bincount(class_of_row, weights=observed, minlength=classes)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(counts > 0, totals / counts, np.nan)


def _compute_vote(population: Population, voters: Sequence[str], method: str) -> np.ndarray:
    columns = {name: population.column(name) for name in voters}
    directions = {name: get_proxy(name).higher_is_better for name in voters}
    try:
        return vote(columns, directions, method)
    except ValueError as error:
        raise InvalidInput("method", str(error)) from None


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


def _stored_space(session: Session, name: str) -> SearchSpace:
    space = session.execute(select(SearchSpace).where(SearchSpace.name == name)).scalar_one_or_none()
    if space is None:
        raise NotFound("space", f"no architectures of search space {name!r} are stored yet")
    return space


def _select_configuration(
    session: Session,
    cache: StampedCache,
    space: SearchSpace,
    dataset: str,
    fingerprint: str | None,
    stamps: dict[int, tuple[int, int]],
) -> ConfigSelection:
    counts: tuple[ConfigCount, ...] = cache.get(
        ("config-counts", space.id, dataset),
        tuple(sorted(stamps.items())),
        lambda: _config_counts(session, space.id, list(stamps)),
    )
    if fingerprint is not None:
        config = _named_configuration(session, fingerprint, dataset)
        chosen = next((count for count in counts if count.config_id == config.id), None)
        if chosen is None:
            raise NotFound("config", f"no {space.name} architectures are scored under configuration {fingerprint}")
        selected_by = SELECTED_BY_REQUEST
    else:
        if not counts:
            raise NotFound("dataset", f"no {space.name} architectures have been scored on {dataset!r} yet")
        chosen, selected_by = counts[0], SELECTED_BY_MOST_SCORES
        config = session.get(ScoringConfig, chosen.config_id)
    alternatives = tuple(count for count in counts if count.config_id != chosen.config_id)
    return ConfigSelection(config, selected_by, chosen, alternatives)


def _named_configuration(session: Session, fingerprint: str, dataset: str) -> ScoringConfig:
    text = fingerprint.strip().lower()
    if len(text) < MIN_FINGERPRINT_PREFIX:
        raise InvalidInput("config", f"give the fingerprint or at least its first {MIN_FINGERPRINT_PREFIX} characters")
    matches = list(
        session.execute(select(ScoringConfig).where(ScoringConfig.fingerprint.startswith(text, autoescape=True)))
        .scalars()
        .all()
    )
    if not matches:
        raise NotFound("config", f"no configuration with fingerprint {fingerprint!r}")
    if len(matches) > 1:
        raise InvalidInput("config", f"fingerprint prefix {fingerprint!r} matches {len(matches)} configurations")
    [config] = matches
    if config.dataset != dataset:
        raise InvalidInput("config", f"configuration {fingerprint!r} scores {config.dataset!r}, not {dataset!r}")
    return config


def _dataset_config_stamps(session: Session, dataset: str) -> dict[int, tuple[int, int]]:
    """(row count, highest id) of the scores of each configuration of the dataset: index-only, so cheap."""
    rows = session.execute(
        select(Score.config_id, func.count(), func.max(Score.id))
        .join(ScoringConfig, ScoringConfig.id == Score.config_id)
        .where(ScoringConfig.dataset == dataset)
        .group_by(Score.config_id)
    ).all()
    return {config_id: (count, highest) for config_id, count, highest in rows}


def _config_counts(session: Session, space_id: int, config_ids: list[int]) -> tuple[ConfigCount, ...]:
    """Scores and scored architectures of the space per configuration, most scores first (then oldest)."""
    if not config_ids:
        return ()
    rows = session.execute(
        select(Score.config_id, ScoringConfig.fingerprint, func.count(), func.count(Score.architecture_id.distinct()))
        .join(Architecture, Architecture.id == Score.architecture_id)
        .join(ScoringConfig, ScoringConfig.id == Score.config_id)
        .where(Architecture.space_id == space_id, Score.config_id.in_(config_ids))
        .group_by(Score.config_id, ScoringConfig.fingerprint)
    ).all()
    counts = [ConfigCount(*row) for row in rows]
    return tuple(sorted(counts, key=lambda count: (-count.scores, count.config_id)))


def _observation_stamp(session: Session, dataset: str, metric: str) -> tuple[int, datetime | None]:
    return tuple(
        session.execute(
            select(func.count(), func.max(Observation.observed_at)).where(
                Observation.dataset == dataset, Observation.metric == metric
            )
        ).one()
    )


def _load_population(session: Session, space_id: int, config_id: int, dataset: str, metric: str) -> Population:
    """Two queries: every score of the configuration, then the scored architectures with their accuracy."""
    scores = session.execute(
        select(Score.architecture_id, Score.proxy, Score.value, Score.seconds)
        .join(Architecture, Architecture.id == Score.architecture_id)
        .where(Score.config_id == config_id, Architecture.space_id == space_id)
    ).all()
    scored_ids = select(Score.architecture_id).where(Score.config_id == config_id)
    observed = and_(
        Observation.architecture_id == Architecture.id, Observation.dataset == dataset, Observation.metric == metric
    )
    architectures = session.execute(
        select(Architecture.id, Architecture.arch, Observation.accuracy, Architecture.canonical_key)
        .outerjoin(Observation, observed)
        .where(Architecture.space_id == space_id, Architecture.id.in_(scored_ids))
        .order_by(Architecture.id)
    ).all()
    return _pivot(scores, architectures)


def _pivot(scores: Sequence[Any], architectures: Sequence[Any]) -> Population:
    architecture_ids = np.array([row[0] for row in architectures], dtype=np.int64)
    archs = np.array([row[1] for row in architectures], dtype=object)
    accuracy = np.array([np.nan if row[2] is None else row[2] for row in architectures], dtype=float)
    canonical_keys = np.array([row[3] for row in architectures], dtype=object)
    proxies = tuple(sorted({row[1] for row in scores}))
    column_of = {proxy: column for column, proxy in enumerate(proxies)}
    shape = (architecture_ids.size, len(proxies))
    values, seconds, present = np.full(shape, np.nan), np.full(shape, np.nan), np.zeros(shape, dtype=bool)
    if scores:
        rows = np.searchsorted(architecture_ids, np.fromiter((row[0] for row in scores), np.int64, len(scores)))
        columns = np.fromiter((column_of[row[1]] for row in scores), np.intp, len(scores))
        values[rows, columns] = np.array([row[2] for row in scores], dtype=float)
        seconds[rows, columns] = np.array([row[3] for row in scores], dtype=float)
        present[rows, columns] = True
    return Population(
        architecture_ids, archs, proxies, values, seconds, present, accuracy, canonical_keys, _class_sizes(canonical_keys)
    )


def _class_sizes(canonical_keys: np.ndarray) -> np.ndarray:
    """Each row's number of cells in the population with its canonical key."""
    _, class_of_row, counts = np.unique(canonical_keys, return_inverse=True, return_counts=True)
    return counts[class_of_row.ravel()]
