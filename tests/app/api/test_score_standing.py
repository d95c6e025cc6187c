"""POST /v1/scores answers a zero-cost score: the vote's rank and percentile of the architecture's isomorphism
class among the classes stored under the same configuration, through the real app over real HTTP on a real
SQLite file and a real PostgreSQL server. Populations are written straight through the service layer under
the configuration a request resolves to, so they are found as stored and nothing but the cases that say
so is computed; `nasscore score` is checked to print the same standing from the local database."""

import json
import math
from dataclasses import dataclass
from urllib.parse import parse_qs, urlsplit

import httpx
import numpy as np
import pytest
from conftest import TINY_CONFIG, LiveServer, one_cell_per_class, record_class_scores

from app.cli import main as nasscore_main
from app.db import Database
from app.services.calibration import CalibrationStore
from app.services.configs import ConfigOptions, get_or_create_config, resolve_config
from app.services.leaderboard import MIN_VOTE_POPULATION, stored_standing
from app.services.spaces import ensure_space
from app.services.votes import VoteRequest
from scorers import DEFAULT_PROXIES, get_proxy
from scorers.presets import PRESETS
from scorers.voting import vote, vote_percentile
from search_spaces import nb201

# Node 1 feeds nothing that reaches the output, so its input op does not matter: one class, two cells.
TWINS = (
    "|nor_conv_3x3~0|+|nor_conv_1x1~0|none~1|+|skip_connect~0|none~1|nor_conv_3x3~2|",
    "|avg_pool_3x3~0|+|nor_conv_1x1~0|none~1|+|skip_connect~0|none~1|nor_conv_3x3~2|",
)
MISSION = PRESETS["mission"].proxies
# The CLI builds the benchmark's full-size network; one cheap proxy on a small batch keeps it quick.
CLI_CONFIG = {"data": "synthetic", "batch_size": 8, "seed": 104}


@dataclass(frozen=True)
class Stored:
    """A population written through the service layer: each class's scores (NaN: not scored) and cells."""

    fingerprint: str
    config: dict
    values: dict[str, dict[str, float]]
    cells: dict[str, list[str]]


@dataclass(frozen=True)
class Populations:
    ranked: Stored
    small: Stored
    growing: Stored
    cli: Stored


def _store(database: Database, config: dict, classes: list[list[str]], proxies: list[tuple[str, ...]]) -> Stored:
    """Seeded scores under the configuration `config` resolves to; class i (its cells `classes[i]`) gets
    scores of `proxies[i]` only."""
    rng = np.random.default_rng(config["seed"])
    values, cells = {}, {}
    with database.session() as session:
        resolved = resolve_config(session, CalibrationStore(), "cifar10", ConfigOptions(**config))
        stored = get_or_create_config(session, resolved)
        space = ensure_space(session, "nb201")
        for members, scored in zip(classes, proxies, strict=True):
            drawn = {proxy: float(rng.normal()) if proxy in scored else math.nan for proxy in DEFAULT_PROXIES}
            key = record_class_scores(session, space, stored.id, members, {p: drawn[p] for p in scored})
            values[key], cells[key] = drawn, members
    return Stored(resolved.fingerprint, config, values, cells)


@pytest.fixture(scope="module")
def populations(live_service: LiveServer) -> Populations:
    """ranked: 25 classes with every default proxy (one of them two cells) and one with mission's three
    only; small: 5 classes; growing: the minimum, for a request that computes a new class; cli: the
    minimum with snip only, under the configuration `nasscore score` resolves to with CLI_CONFIG."""
    twin_key = nb201.canonical_key(TWINS[0])
    picks = one_cell_per_class(26 + 5 + 2 * MIN_VOTE_POPULATION + 2, seed=21, taken={twin_key})
    everything = tuple(DEFAULT_PROXIES)
    ranked_classes = [list(TWINS)] + [[arch] for arch in picks[:25]]
    database = Database(live_service.settings.resolved_database_url)
    try:
        ranked = _store(database, TINY_CONFIG | {"seed": 101}, ranked_classes, [everything] * 25 + [MISSION])
        small = _store(database, TINY_CONFIG | {"seed": 102}, [[arch] for arch in picks[26:31]], [everything] * 5)
        growing_cells = [[arch] for arch in picks[31 : 31 + MIN_VOTE_POPULATION]]
        growing = _store(database, TINY_CONFIG | {"seed": 103}, growing_cells, [everything] * MIN_VOTE_POPULATION)
        cli_cells = [[arch] for arch in picks[31 + MIN_VOTE_POPULATION : 31 + 2 * MIN_VOTE_POPULATION]]
        cli = _store(database, CLI_CONFIG, cli_cells, [("snip",)] * MIN_VOTE_POPULATION)
    finally:
        database.dispose()
    return Populations(ranked, small, growing, cli)


def _post(live: LiveServer, arch: str, config: dict, **body: object) -> httpx.Response:
    return live.client.post("/v1/scores", json={"arch": arch, "dataset": "cifar10", "config": config} | body)


def _done(response: httpx.Response) -> dict:
    assert response.status_code == 200, response.text
    return response.json()


def _listed(live: LiveServer, standing: dict, canonical_key: str) -> dict:
    """The row of the class on the leaderboard page the standing links to."""
    page = live.client.get(standing["leaderboard_url"])
    assert page.status_code == 200, page.text
    [row] = [row for row in page.json()["items"] if row["canonical_key"] == canonical_key]
    return row


def _expected(stored: Stored, canonical_key: str, voters: tuple[str, ...], method: str) -> tuple[int, float]:
    """Rank and percentile computed apart from the service: the class as `vote_percentile`'s candidate and
    every other stored class as its population."""
    others = [key for key in stored.values if key != canonical_key]
    directions = {name: get_proxy(name).higher_is_better for name in voters}
    population = {name: np.array([stored.values[key][name] for key in others]) for name in voters}
    candidate = {name: stored.values[canonical_key][name] for name in voters}
    percentile = vote_percentile(population, candidate, directions, method).value
    votes = vote({name: np.append(population[name], candidate[name]) for name in voters}, directions, method)
    return 1 + int(np.count_nonzero(votes[:-1] > votes[-1])), percentile


@pytest.mark.parametrize(
    ("vote_body", "preset", "method"),
    [
        ({}, "best", "log_rank"),
        ({"preset": "mission"}, "mission", "mean_rank"),
        ({"preset": "azn", "method": "mean_rank"}, "azn", "mean_rank"),
        ({"proxies": ["meco", "nwot"], "method": "log_rank"}, None, "log_rank"),
    ],
)
def test_a_stored_architecture_ranks_as_its_leaderboard_row(
    live_service: LiveServer, populations: Populations, vote_body: dict, preset: str | None, method: str
) -> None:
    ranked = populations.ranked
    key = nb201.canonical_key(TWINS[1])
    body = _done(_post(live_service, TWINS[1], ranked.config, vote=vote_body))
    assert body["cached"] is True and body["architecture"]["canonical_key"] == key
    standing = body["vote"]
    voters = PRESETS[preset].proxies if preset else ("meco", "nwot")
    assert (standing["preset"], standing["method"], standing["voters"]) == (preset, method, list(voters))
    assert standing["population"] == len(ranked.values) == 26 and standing["reason"] is None
    row = _listed(live_service, standing, key)
    assert (standing["rank"], standing["percentile"]) == (row["vote_rank"], row["percentile"])
    assert row["members"] == 2 and row["arch"] == TWINS[0]
    rank, percentile = _expected(ranked, key, voters, method)
    assert standing["rank"] == rank and standing["percentile"] == pytest.approx(percentile)
    query = parse_qs(urlsplit(standing["leaderboard_url"]).query)
    assert query["config"] == [ranked.fingerprint] and query["method"] == [method]
    assert query["offset"] == ["0"] and query["limit"] == ["100"]


def test_the_default_vote_falls_back_to_what_the_class_has(live_service: LiveServer, populations: Populations) -> None:
    """The class with mission's three only: `best` would rank it by scores it lacks, so `mission` votes."""
    ranked = populations.ranked
    [key] = [key for key, values in ranked.values.items() if math.isnan(values["meco"])]
    [arch] = ranked.cells[key]
    standing = _done(_post(live_service, arch, ranked.config, proxies=list(MISSION)))["vote"]
    assert (standing["preset"], standing["voters"], standing["reason"]) == ("mission", list(MISSION), None)
    row = _listed(live_service, standing, key)
    assert (standing["rank"], standing["percentile"]) == (row["vote_rank"], row["percentile"])
    assert (standing["rank"], standing["percentile"]) == pytest.approx(_expected(ranked, key, MISSION, "mean_rank"))


def test_a_class_without_the_named_voters_is_not_ranked(live_service: LiveServer, populations: Populations) -> None:
    """A voter whose computation failed leaves the class unranked with the reason (checked at the service, as
    a request computes every voter it names)."""
    ranked = populations.ranked
    [key] = [key for key, values in ranked.values.items() if math.isnan(values["meco"])]
    database = Database(live_service.settings.resolved_database_url)
    try:
        with database.read_session() as session:
            standing = stored_standing(session, "nb201", "cifar10", ranked.fingerprint, key, VoteRequest(preset="best"))
    finally:
        database.dispose()
    assert standing.choice.preset == "best" and standing.rank is None and standing.percentile is None
    assert "az_complexity" in standing.reason and standing.population == 26


def test_below_the_minimum_population_there_is_no_rank(live_service: LiveServer, populations: Populations) -> None:
    small = populations.small
    key, [arch] = next(iter(small.cells.items()))
    standing = _done(_post(live_service, arch, small.config))["vote"]
    assert standing["population"] == 5 and standing["rank"] is None and standing["percentile"] is None
    assert str(MIN_VOTE_POPULATION) in standing["reason"] and standing["preset"] == "best"
    assert _listed(live_service, standing, key)["vote_rank"] is not None


def test_a_newly_computed_architecture_joins_the_population(live_service: LiveServer, populations: Populations) -> None:
    """A cached snapshot of the population (loaded by a leaderboard request) must not hide the class the
    request just computed."""
    growing = populations.growing
    leaderboard = {"dataset": "cifar10", "config": growing.fingerprint}
    before = live_service.client.get("/v1/leaderboard", params=leaderboard).json()
    assert before["total"] == MIN_VOTE_POPULATION
    [arch] = one_cell_per_class(1, seed=22, taken=set(growing.values) | {nb201.canonical_key(TWINS[0])})
    body = _done(_post(live_service, arch, growing.config))
    assert body["cached"] is False and all(score["error"] is None for score in body["scores"].values())
    standing = body["vote"]
    assert standing["population"] == MIN_VOTE_POPULATION + 1 and standing["preset"] == "best"
    row = _listed(live_service, standing, body["architecture"]["canonical_key"])
    assert (standing["rank"], standing["percentile"]) == (row["vote_rank"], row["percentile"])
    assert standing["rank"] is not None


@pytest.mark.parametrize(
    ("vote_body", "field"),
    [
        ({"preset": "no_such_preset"}, "vote.preset"),
        ({"preset": "best", "proxies": ["snip"]}, "vote.preset"),
        ({"method": "no_such_method"}, "vote.method"),
        ({"proxies": ["snip", "no_such_proxy"]}, "vote.proxies[1]"),
    ],
)
def test_a_bad_vote_is_refused_naming_the_field(live_service: LiveServer, vote_body: dict, field: str) -> None:
    response = _post(live_service, TWINS[0], TINY_CONFIG, vote=vote_body)
    assert response.status_code == 422, response.text
    errors = {error["field"]: error["message"] for error in response.json()["errors"]}
    assert field in errors, errors
    if vote_body.get("preset") == "no_such_preset":
        assert all(name in errors[field] for name in PRESETS)


def test_the_cli_prints_the_standing_the_service_answers(
    live_service: LiveServer, populations: Populations, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    """`nasscore score` resolves the service's fingerprint from the same options and finds the population in
    the local database (here the service's own)."""
    cli = populations.cli
    [arch] = one_cell_per_class(1, seed=23, taken=set(cli.values) | {nb201.canonical_key(TWINS[0])})
    posted = _done(_post(live_service, arch, CLI_CONFIG, proxies=["snip"]))
    monkeypatch.setenv("NASSCORE_DATABASE_URL", live_service.settings.resolved_database_url)
    flags = ["--data", "synthetic", "--batch-size", "8", "--seed", "104", "--proxies", "snip", "--device", "cpu"]
    assert nasscore_main(["score", arch, *flags, "--json"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["scores"]["snip"]["value"] == pytest.approx(posted["scores"]["snip"]["value"], rel=1e-5)
    shared = ("preset", "method", "voters", "rank", "percentile", "population")
    expected = {name: posted["vote"][name] for name in shared}
    assert printed["vote"] == expected | {"configuration": posted["configuration"]["fingerprint"], "reason": None}
    assert printed["vote"]["population"] == MIN_VOTE_POPULATION + 1 and printed["vote"]["voters"] == ["snip"]


def test_the_cli_prints_no_standing_without_a_database(
    tmp_path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture
) -> None:
    home = tmp_path / "home"
    monkeypatch.setenv("NASSCORE_HOME", str(home))
    monkeypatch.delenv("NASSCORE_DATABASE_URL", raising=False)
    assert nasscore_main(["score", TWINS[0], "--data", "synthetic", "--batch-size", "8", "--proxies", "snip"]) == 0
    printed = capsys.readouterr().out
    assert "snip" in printed and "vote:" not in printed
    assert not home.exists()
