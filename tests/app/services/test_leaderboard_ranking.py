"""Leaderboard ranking, in-process: populations written to a real SQLite file through the service layer, then
ranked by `leaderboard`, placed by `stored_standing` / `candidate_standing` and loaded by the population
cache, all called directly. Every class's scores grow with its index, so each expected rank, percentile and
order can be read off the index. test_service_reports.py and test_score_percentile.py check the same
answers through the real server."""

import math

import pytest
from conftest import StoredClasses, one_cell_per_class, store_classes

from app.db import Database
from app.services.errors import InvalidInput, NotFound
from app.services.leaderboard import (
    MIN_VOTE_POPULATION,
    NO_STORED_SCORES,
    Leaderboard,
    LeaderboardQuery,
    candidate_standing,
    leaderboard,
    stored_standing,
)
from app.services.observations import ObservationInput, delete_observations, record_observations
from app.services.population import Population, load_scored_population
from app.services.votes import VoteRequest
from scorers import DEFAULT_PROXIES
from scorers.presets import DEFAULT_PRESET, PRESETS
from search_spaces import nb201

# Node 1 feeds nothing that reaches the output, so its input op does not matter: one class, two cells.
TWINS = [
    "|nor_conv_3x3~0|+|nor_conv_1x1~0|none~1|+|skip_connect~0|none~1|nor_conv_3x3~2|",
    "|avg_pool_3x3~0|+|nor_conv_1x1~0|none~1|+|skip_connect~0|none~1|nor_conv_3x3~2|",
]
CLASSES = MIN_VOTE_POPULATION + 1
TWINS_INDEX = 10
GAPPY = ("snip", "synflow")


def _values(index: int) -> dict[str, float]:
    return {proxy: float(index) for proxy in DEFAULT_PROXIES}


@pytest.fixture(scope="module")
def ranked(sqlite_database: Database) -> StoredClasses:
    """CLASSES classes scored with every default proxy, class i's scores all equal to i; the twins are class
    TWINS_INDEX. Observed: the twins (90 and 92) and the best class (95)."""
    singles = [[arch] for arch in one_cell_per_class(CLASSES - 1, seed=11, taken={nb201.canonical_key(TWINS[0])})]
    cells = singles[:TWINS_INDEX] + [TWINS] + singles[TWINS_INDEX:]
    stored = store_classes(sqlite_database, 21, cells, [_values(index) for index in range(CLASSES)])
    observed = [(TWINS[0], 90.0), (TWINS[1], 92.0), (cells[-1][0], 95.0)]
    with sqlite_database.session() as session:
        inputs = [ObservationInput(arch=arch, dataset="cifar10", accuracy=accuracy) for arch, accuracy in observed]
        record_observations(session, "nb201", inputs, [""] * len(inputs))
    return stored


@pytest.fixture(scope="module")
def gappy(sqlite_database: Database) -> StoredClasses:
    """Four classes with only snip and synflow: snip 3, not finite, 1, 3 (a tie with the first)."""
    cells = [[arch] for arch in one_cell_per_class(4, seed=12, taken={nb201.canonical_key(TWINS[0])})]
    snips = [3.0, math.inf, 1.0, 3.0]
    return store_classes(sqlite_database, 22, cells, [{"snip": snip, "synflow": 1.0} for snip in snips])


def _board(database: Database, stored: StoredClasses, **fields: object) -> Leaderboard:
    with database.read_session() as session:
        return leaderboard(session, LeaderboardQuery(config=stored.fingerprint, **fields))


def test_classes_rank_once_by_the_default_vote(sqlite_database: Database, ranked: StoredClasses) -> None:
    board = _board(sqlite_database, ranked)
    assert (board.unit, board.total, board.choice.preset) == ("class", CLASSES, DEFAULT_PRESET)
    assert board.choice.voters == PRESETS[DEFAULT_PRESET].proxies
    assert [row.canonical_key for row in board.rows] == ranked.keys[::-1]
    assert [row.vote_rank for row in board.rows] == list(range(1, CLASSES + 1))
    assert [row.rank for row in board.rows] == [row.vote_rank for row in board.rows]
    best_first = [index / (CLASSES - 1) for index in reversed(range(CLASSES))]
    assert [row.percentile for row in board.rows] == pytest.approx(best_first)
    [twins] = [row for row in board.rows if row.members == 2]
    assert twins.arch == TWINS[0] and twins.canonical_key == ranked.keys[TWINS_INDEX]
    assert twins.accuracy == pytest.approx(91.0) and board.rows[0].accuracy == pytest.approx(95.0)
    assert board.rows[1].accuracy is None


def test_expanded_cells_rank_every_member_and_tie_the_twins(sqlite_database: Database, ranked: StoredClasses) -> None:
    board = _board(sqlite_database, ranked, expand="cells")
    assert (board.unit, board.total) == ("cell", CLASSES + 1)
    twins = [row for row in board.rows if row.canonical_key == ranked.keys[TWINS_INDEX]]
    assert [row.arch for row in twins] == TWINS
    assert twins[0].vote_rank == twins[1].vote_rank == CLASSES - TWINS_INDEX
    assert [row.accuracy for row in twins] == [90.0, 92.0]


def test_a_page_is_a_slice_of_the_whole_order(sqlite_database: Database, ranked: StoredClasses) -> None:
    page = _board(sqlite_database, ranked, limit=5, offset=5)
    assert page.total == CLASSES and (page.limit, page.offset) == (5, 5)
    assert [row.vote_rank for row in page.rows] == [6, 7, 8, 9, 10]


def test_ranking_by_one_proxy_shares_ties_and_puts_missing_values_last(
    sqlite_database: Database, gappy: StoredClasses
) -> None:
    board = _board(sqlite_database, gappy, rank_by="snip")
    assert (board.rank_by, board.choice.voters, board.choice.preset) == ("snip", GAPPY, None)
    keys = gappy.keys
    assert [row.canonical_key for row in board.rows] == [keys[0], keys[3], keys[2], keys[1]]
    assert [row.rank for row in board.rows] == [1, 1, 3, None]
    assert board.rows[-1].scores == {"snip": None, "synflow": 1.0}


@pytest.mark.parametrize(
    ("fields", "error", "field"),
    [
        ({"rank_by": "no-such-proxy"}, InvalidInput, "rank_by"),
        ({"expand": "rows"}, InvalidInput, "expand"),
        ({"vote": VoteRequest(preset=DEFAULT_PRESET)}, InvalidInput, "preset"),
        ({"dataset": "cifar100"}, InvalidInput, "config"),
    ],
    ids=["unknown-rank-by", "unknown-unit", "preset-not-scored", "config-of-another-dataset"],
)
def test_a_leaderboard_that_cannot_be_ranked_names_the_field(
    sqlite_database: Database, gappy: StoredClasses, fields: dict, error: type, field: str
) -> None:
    with pytest.raises(error) as raised:
        _board(sqlite_database, gappy, **fields)
    assert raised.value.field == field


@pytest.mark.parametrize(
    ("dataset", "config", "error", "field"),
    [
        ("imagenet16-120", None, NotFound, "dataset"),
        ("cifar10", "abc", InvalidInput, "config"),
        ("cifar10", "0123456789", NotFound, "config"),
    ],
    ids=["nothing-on-the-dataset", "prefix-too-short", "unknown-fingerprint"],
)
def test_a_population_that_cannot_be_found_names_the_field(
    sqlite_database: Database, gappy: StoredClasses, dataset: str, config: str | None, error: type, field: str
) -> None:
    with sqlite_database.read_session() as session, pytest.raises(error) as raised:
        load_scored_population(session, "nb201", dataset, config)
    assert raised.value.field == field


def test_a_stored_class_stands_where_the_leaderboard_lists_it(sqlite_database: Database, ranked: StoredClasses) -> None:
    rows = _board(sqlite_database, ranked).rows
    with sqlite_database.read_session() as session:
        for position, row in enumerate(rows):
            key = row.canonical_key
            standing = stored_standing(session, "nb201", "cifar10", ranked.fingerprint, key, VoteRequest())
            assert (standing.rank, standing.percentile, standing.position) == (row.vote_rank, row.percentile, position)
            assert standing.population == CLASSES and standing.reason is None


def test_a_standing_needs_the_voters_and_enough_classes(
    sqlite_database: Database, ranked: StoredClasses, gappy: StoredClasses
) -> None:
    with sqlite_database.read_session() as session:
        few = stored_standing(session, "nb201", "cifar10", gappy.fingerprint, gappy.keys[0], VoteRequest())
        lacking = stored_standing(
            session, "nb201", "cifar10", gappy.fingerprint, gappy.keys[0], VoteRequest(preset=DEFAULT_PRESET)
        )
        unscored = stored_standing(session, "nb201", "cifar10", "f" * 64, ranked.keys[0], VoteRequest())
    assert few.choice.voters == GAPPY and few.rank is None and few.position is not None
    needed = f"a rank needs at least {MIN_VOTE_POPULATION}"
    assert few.reason == f"only 4 isomorphism classes scored under this configuration; {needed}"
    assert lacking.rank is None and "to vote with" in lacking.reason and lacking.population == 4
    assert (unscored.population, unscored.reason) == (0, NO_STORED_SCORES)


def test_a_candidate_joins_the_stored_classes_once(sqlite_database: Database, ranked: StoredClasses) -> None:
    [newcomer] = one_cell_per_class(1, seed=13, taken=set(ranked.keys))
    best = _values(CLASSES)
    with sqlite_database.read_session() as session:
        new = candidate_standing(session, "nb201", "cifar10", ranked.fingerprint, nb201.canonical_key(newcomer), best)
        again = candidate_standing(session, "nb201", "cifar10", ranked.fingerprint, ranked.keys[0], best)
        nowhere = candidate_standing(session, "nb201", "cifar10", "f" * 64, ranked.keys[0], best)
    assert (new.rank, new.percentile, new.population) == (1, 1.0, CLASSES + 1)
    assert (again.rank, again.percentile, again.population) == (1, 1.0, CLASSES)
    assert nowhere is None


def test_a_cached_snapshot_lasts_until_its_scores_or_observations_change(
    sqlite_database: Database, ranked: StoredClasses
) -> None:
    """Its own classes and configuration, so the observation it adds changes no other test's accuracies.
    Writing scores that are all stored already adds nothing and keeps the snapshot; a deletion replaces it."""
    cells = [[arch] for arch in one_cell_per_class(3, seed=14, taken=set(ranked.keys))]
    stored = store_classes(sqlite_database, 23, cells[:2], [_values(0), _values(1)])

    def snapshot() -> Population:
        with sqlite_database.read_session() as session:
            return load_scored_population(session, "nb201", "cifar10", stored.fingerprint).population

    first = snapshot()
    assert snapshot() is first
    store_classes(sqlite_database, 23, cells[2:], [_values(2)])
    grown = snapshot()
    assert grown is not first and grown.size == 3
    with sqlite_database.session() as session:
        observation = ObservationInput(arch=cells[0][0], dataset="cifar10", accuracy=50.0)
        record_observations(session, "nb201", [observation], [""])
    observed = snapshot()
    assert observed is not grown and observed.accuracy[0] == 50.0
    store_classes(sqlite_database, 23, cells, [_values(0), _values(1), _values(2)])
    assert snapshot() is observed
    with sqlite_database.session() as session:
        other = ObservationInput(arch=cells[1][0], dataset="cifar10", accuracy=60.0, source="cache-test")
        record_observations(session, "nb201", [other], [""])
    relabelled = snapshot()
    assert relabelled is not observed
    assert delete_observations(sqlite_database, "cache-test", dataset="cifar10") == 1
    assert snapshot() is not relabelled
