"""Vote choice, in-process: which proxies vote and how for a request (a preset, a list of proxies, or neither)
on populations written to a real SQLite file through the service layer. The same choices are exercised over
HTTP by test_service_reports.py and test_score_percentile.py; these run in a second, without a server."""

import pytest
from conftest import StoredClasses, one_cell_per_class, store_classes

from app.db import Database
from app.services.errors import InvalidInput
from app.services.population import ScoredPopulation, load_scored_population
from app.services.votes import (
    CUSTOM_VOTE_METHOD,
    FALLBACK_PRESET,
    VoteChoice,
    VoteRequest,
    checked_vote_request,
    choose_vote,
    default_vote_for,
    population_vote,
    requested_choice,
    with_named_voters,
)
from scorers import DEFAULT_PROXIES
from scorers.presets import DEFAULT_PRESET, PRESETS

DEFAULT = PRESETS[DEFAULT_PRESET]
FALLBACK = PRESETS[FALLBACK_PRESET]
OTHERS = ("synflow", "params")
Stored = dict[str, StoredClasses]


def _values(proxies: tuple[str, ...], rank: int) -> dict[str, float]:
    return {proxy: float(rank) for proxy in proxies}


@pytest.fixture(scope="module")
def stored(sqlite_database: Database) -> Stored:
    """Under three configurations: every default proxy scored; only the fallback preset's voters; only
    proxies no preset votes with."""
    cells = [[arch] for arch in one_cell_per_class(10, seed=5)]
    return {
        "default": store_classes(sqlite_database, 1, cells[:4], [_values(DEFAULT_PROXIES, i) for i in range(4)]),
        "fallback": store_classes(sqlite_database, 2, cells[4:7], [_values(FALLBACK.proxies, i) for i in range(3)]),
        "others": store_classes(sqlite_database, 3, cells[7:], [_values(OTHERS, i) for i in range(3)]),
    }


def _choose(database: Database, stored: StoredClasses, request: VoteRequest) -> VoteChoice:
    scored = _loaded(database, stored)
    return choose_vote(scored.population, request, scored.selection.config)


def _loaded(database: Database, stored: StoredClasses) -> ScoredPopulation:
    with database.read_session() as session:
        return load_scored_population(session, "nb201", "cifar10", stored.fingerprint)


def test_no_request_votes_the_default_preset_where_its_proxies_are_scored(
    sqlite_database: Database, stored: Stored
) -> None:
    choice = _choose(sqlite_database, stored["default"], VoteRequest())
    assert choice == VoteChoice(DEFAULT.proxies, DEFAULT.method, DEFAULT_PRESET)


def test_no_request_falls_back_to_the_fallback_preset_then_to_every_scored_proxy(
    sqlite_database: Database, stored: Stored
) -> None:
    assert _choose(sqlite_database, stored["fallback"], VoteRequest()) == VoteChoice(
        FALLBACK.proxies, FALLBACK.method, FALLBACK_PRESET
    )
    assert _choose(sqlite_database, stored["others"], VoteRequest()) == VoteChoice(
        tuple(sorted(OTHERS)), CUSTOM_VOTE_METHOD, None
    )


def test_a_list_of_proxies_is_borda_voted_unless_a_method_is_named(sqlite_database: Database, stored: Stored) -> None:
    request = VoteRequest(proxies=["meco", "nwot", "meco"])
    expected = VoteChoice(("meco", "nwot"), CUSTOM_VOTE_METHOD, None)
    assert _choose(sqlite_database, stored["default"], request) == expected
    request = VoteRequest(proxies=["meco", "nwot"], method="log_rank")
    assert _choose(sqlite_database, stored["default"], request).method == "log_rank"


def test_a_named_preset_keeps_its_voters_and_may_change_its_method(sqlite_database: Database, stored: Stored) -> None:
    request = VoteRequest(preset=FALLBACK_PRESET, method="majority")
    expected = VoteChoice(FALLBACK.proxies, "majority", FALLBACK_PRESET)
    assert _choose(sqlite_database, stored["default"], request) == expected


@pytest.mark.parametrize(
    ("name", "vote_request", "field", "words"),
    [
        ("fallback", VoteRequest(preset=DEFAULT_PRESET), "preset", ("has no", DEFAULT.proxies[0])),
        ("others", VoteRequest(proxies=["synflow", "snip"]), "proxies[1]", ("has no 'snip' scores", "params")),
        ("default", VoteRequest(proxies=["snip"], preset=DEFAULT_PRESET), "preset", ("not both",)),
        ("default", VoteRequest(preset="no-such-preset"), "preset", ("no-such-preset",)),
        ("default", VoteRequest(method="no-such-method"), "method", ("no-such-method", "mean_rank")),
    ],
    ids=["preset-not-scored", "proxy-not-scored", "preset-and-proxies", "unknown-preset", "unknown-method"],
)
def test_an_impossible_vote_names_the_field_at_fault(
    sqlite_database: Database, stored: Stored, name: str, vote_request: VoteRequest, field: str, words: tuple[str, ...]
) -> None:
    with pytest.raises(InvalidInput) as raised:
        _choose(sqlite_database, stored[name], vote_request)
    assert raised.value.field == field
    assert all(word in raised.value.message for word in words)


def test_a_vote_nested_in_a_body_is_checked_under_its_field() -> None:
    checked = checked_vote_request(VoteRequest(proxies=["meco", "nwot", "meco"]), "vote")
    assert tuple(checked.proxies) == ("meco", "nwot")
    for vote_request, field in [
        (VoteRequest(proxies=["meco", "no-such-proxy"]), "vote.proxies[1]"),
        (VoteRequest(preset="no-such-preset"), "vote.preset"),
        (VoteRequest(method="no-such-method"), "vote.method"),
    ]:
        with pytest.raises(InvalidInput) as raised:
            checked_vote_request(vote_request, "vote")
        assert raised.value.field == field


def test_named_voters_are_computed_too_and_the_default_vote_takes_what_was_computed() -> None:
    assert with_named_voters(("snip", "meco"), VoteRequest()) == ("snip", "meco")
    assert with_named_voters(("snip", "meco"), VoteRequest(proxies=["nwot", "snip"])) == ("snip", "meco", "nwot")
    named = with_named_voters(("snip",), VoteRequest(preset=DEFAULT_PRESET))
    assert named == tuple(dict.fromkeys(("snip", *DEFAULT.proxies)))


def test_the_default_vote_of_one_architecture_is_judged_on_its_own_scores() -> None:
    assert default_vote_for(set(DEFAULT_PROXIES), VoteRequest()) == VoteRequest(preset=DEFAULT_PRESET)
    assert default_vote_for(set(FALLBACK.proxies), VoteRequest(method="majority")) == VoteRequest(
        preset=FALLBACK_PRESET, method="majority"
    )
    assert default_vote_for({"synflow", "params"}, VoteRequest()) == VoteRequest(proxies=("params", "synflow"))
    explicit = VoteRequest(proxies=["meco"])
    assert default_vote_for(set(FALLBACK.proxies), explicit) is explicit
    assert requested_choice(VoteRequest()) == VoteChoice(DEFAULT.proxies, DEFAULT.method, DEFAULT_PRESET)


def test_the_vote_is_memoised_on_the_snapshot_and_higher_is_better(sqlite_database: Database, stored: Stored) -> None:
    population = _loaded(sqlite_database, stored["default"]).population
    votes = population_vote(population, DEFAULT.proxies, DEFAULT.method)
    assert population_vote(population, list(DEFAULT.proxies), DEFAULT.method) is votes
    by_value = population.column(DEFAULT.proxies[0])
    assert list(votes.argsort()) == list(by_value.argsort())
