"""Leaderboards, correlation reports, plots and exports over real HTTP through the real app, on a real
SQLite file and a real PostgreSQL server. Real NB201 cells are scored with SynFlow on the shared CIFAR-10
batch through the normal batch path and correlated with the shared NAS-Bench-201 accuracies; hand-made
populations, written through the service layer, check ordering, ranks and configuration isolation
against direct computations; one of them holds whole isomorphism classes, to check that reports and
leaderboards count each class once."""

import csv
import io
import json
import math
import random
from collections import defaultdict
from dataclasses import dataclass, replace

import httpx
import numpy as np
import pytest
from conftest import CIFAR10_NPZ, NB201_CSV, PNG_MAGIC, LiveServer, record_class_scores, wait_for_batch
from matplotlib import image as mpimg
from scipy.stats import rankdata, spearmanr
from sqlalchemy import select

from app.cli import main as nasscore_main
from app.db import Database
from app.db.models import ScoringConfig
from app.reports.plots import DPI, PANEL_SIZE_INCHES, grid_shape
from app.services.configs import (
    PROXY_IMPLEMENTATION_VERSION,
    ResolvedConfig,
    get_or_create_config,
)
from app.services.observations import ObservationInput, record_observations
from app.services.reports import ReportQuery, correlation_panels
from app.services.scores import record_scores
from app.services.spaces import architectures_for_strings, ensure_space
from scorers import ProxyResult, get_proxy
from scorers.presets import DEFAULT_PRESET, PRESETS
from scorers.voting import VOTE_METHODS, vote, vote_percentile
from search_spaces import nb201
from search_spaces.nb201.naslib import arch_to_naslib_key, naslib_key_to_arch

PROXIES = ("snip", "grasp", "synflow")
REAL_SAMPLE = 150
# SynFlow needs one example; a narrow one-cell-per-stage network keeps 150 cells fast and still ranks well.
REAL_CONFIG = {"data": "real", "batch_size": 1, "channels": 8, "cells_per_stage": 1}
HELD_OUT = 3
SYNTHETIC_METRIC = "synthetic_accuracy"
OBSERVED_IN_A = 100
TWINS_METRIC = "twins_accuracy"


@dataclass(frozen=True)
class HandMade:
    """A population written straight through the service layer: values NaN where missing or non-finite."""

    fingerprint: str
    archs: list[str]
    values: dict[str, np.ndarray]
    seconds: dict[str, np.ndarray]
    missing: set[tuple[str, str]]
    accuracy: dict[str, float]


@dataclass(frozen=True)
class HandMadeSet:
    a: HandMade
    b: HandMade
    single: HandMade
    every_preset: HandMade


def _errors(response: httpx.Response) -> dict[str, str]:
    return {error["field"]: error["message"] for error in response.json()["errors"]}


def _get(live: LiveServer, path: str, **params: object) -> httpx.Response:
    response = live.client.get(path, params=params)
    assert response.status_code == 200, response.text
    return response


def _all_rows(live: LiveServer, page_size: int = 1000, **params: object) -> list[dict]:
    rows, offset = [], 0
    while True:
        page = _get(live, "/v1/leaderboard", limit=page_size, offset=offset, **params).json()
        rows += page["items"]
        offset += page_size
        if offset >= page["total"]:
            assert len(rows) == page["total"]
            return rows


def _store_hand_made(
    database: Database, label: str, archs: list[str], seed: int, *, ties: bool = False, extra: tuple[str, ...] = ()
) -> HandMade:
    """Seeded scores for `archs` under a configuration of their own; with `ties`, snip takes 12 values only,
    the 3rd and 4th architectures score the same, the 6th grasp value is NaN and the 8th architecture has
    no grasp score at all. `extra` proxies get normal values too."""
    rng = np.random.default_rng(seed)
    count = len(archs)
    values = {
        "snip": rng.integers(0, 12, count).astype(float) if ties else rng.normal(size=count),
        "grasp": rng.normal(size=count),
        "synflow": rng.lognormal(size=count),
    }
    seconds = {proxy: rng.uniform(0.001, 0.1, count) for proxy in PROXIES}
    values |= {proxy: rng.normal(size=count) for proxy in extra}
    seconds |= {proxy: rng.uniform(0.001, 0.1, count) for proxy in extra}
    missing: set[tuple[str, str]] = set()
    if ties:
        for proxy in PROXIES:
            values[proxy][3] = values[proxy][2]
        values["grasp"][5] = math.nan
        values["grasp"][7] = math.nan
        missing.add((archs[7], "grasp"))
    config = _hand_made_config(label, seed)
    with database.session() as session:
        stored = get_or_create_config(session, config)
        rows = architectures_for_strings(session, ensure_space(session, "nb201"), archs)
        for position, row in enumerate(rows):
            outcomes = {
                proxy: ProxyResult(float(values[proxy][position]), float(seconds[proxy][position]))
                for proxy in (*PROXIES, *extra)
                if (row.arch, proxy) not in missing
            }
            record_scores(
                session,
                member_ids=[row.id],
                computed_from_id=row.id,
                config_id=stored.id,
                outcomes=outcomes,
                device="cpu",
            )
    return HandMade(config.fingerprint, archs, values, seconds, missing, {})


def _hand_made_config(label: str, seed: int) -> ResolvedConfig:
    return ResolvedConfig(
        dataset="cifar10",
        data_source=f"synthetic:test-{label}",
        batch_size=1,
        sampling="random",
        seed=seed,
        init="default",
        proxy_version=PROXY_IMPLEMENTATION_VERSION,
        model_params={},
    )


def _one_cell_per_class(count: int, seed: int) -> list[str]:
    """`count` seeded cells of distinct isomorphism classes: for these populations a leaderboard lists the
    same rows collapsed or expanded, so the tests of per-cell voting below hold in both units."""
    picks: dict[str, str] = {}
    for arch in random.Random(seed).sample(nb201.all_archs(), 4 * count):
        picks.setdefault(nb201.canonical_key(arch), arch)
        if len(picks) == count:
            return list(picks.values())
    raise AssertionError(f"fewer than {count} classes drawn")


@pytest.fixture(scope="module")
def hand_made(live_service: LiveServer) -> HandMadeSet:
    """A: 200 cells (ties, a NaN, a missing score) with synthetic accuracies for 100 of them; B: 50 cells,
    30 of them shared with A, scored differently; single: one cell; every_preset: 40 cells scored with every
    preset's proxies (fewer scores than A, so A stays the default population)."""
    picks = _one_cell_per_class(261, seed=5)
    database = Database(live_service.settings.resolved_database_url)
    try:
        a = _store_hand_made(database, "A", picks[:200], seed=1, ties=True)
        b = _store_hand_made(database, "B", picks[:30] + picks[200:220], seed=2)
        single = _store_hand_made(database, "single", picks[220:221], seed=3)
        extra = tuple(sorted({p for preset in PRESETS.values() for p in preset.proxies} - set(PROXIES)))
        every_preset = _store_hand_made(database, "every-preset", picks[221:], seed=4, extra=extra)
    finally:
        database.dispose()
    accuracy = {arch: round(50 + 40 * random.Random(arch).random(), 3) for arch in a.archs[:OBSERVED_IN_A]}
    observations = [
        {"arch": arch, "dataset": "cifar10", "metric": SYNTHETIC_METRIC, "accuracy": value}
        for arch, value in accuracy.items()
    ]
    posted = live_service.client.post("/v1/observations", json=observations)
    assert posted.status_code == 200, posted.text
    return HandMadeSet(replace(a, accuracy=accuracy), b, single, every_preset)


@pytest.fixture(scope="module")
def real_synflow(live_service: LiveServer) -> dict:
    """A seeded sample of NB201 cells scored with SynFlow on the shared CIFAR-10 batch by the worker pool
    (POST /v1/batches), and the shared NAS-Bench-201 accuracies of all cells but the first few sampled.
    Scoring dominates this file's run time, so it runs on SQLite only; the hand-made populations cover
    the same queries on PostgreSQL."""
    if not CIFAR10_NPZ.exists() or not NB201_CSV.exists():
        pytest.skip(f"shared CIFAR-10 batch or NB201 accuracies not found under {CIFAR10_NPZ.parents[2]}")
    archs = random.Random(11).sample(nb201.all_archs(), REAL_SAMPLE)
    body = {"archs": archs, "dataset": "cifar10", "proxies": ["synflow"], "config": REAL_CONFIG}
    created = live_service.client.post("/v1/batches", json=body)
    assert created.status_code == 202, created.text
    with NB201_CSV.open() as stream:
        table = [row for row in csv.DictReader(stream) if row["arch"] not in archs[:HELD_OUT]]
    observations = [
        ObservationInput(
            arch=row["arch"], dataset="cifar10", accuracy=float(row["cifar10_test_acc"]), source=NB201_CSV.name
        )
        for row in table
    ]
    database = Database(live_service.settings.resolved_database_url)
    try:
        with database.session() as session:
            record_observations(session, "nb201", observations, [f"row {i}" for i in range(len(observations))])
    finally:
        database.dispose()
    final = wait_for_batch(live_service.client, created.json()["id"], timeout=600)
    assert (final["status"], final["done"], final["failed"]) == ("done", REAL_SAMPLE, 0), final
    return {"fingerprint": final["configuration"], "archs": archs, "held_out": set(archs[:HELD_OUT])}


@pytest.mark.parametrize("live_service", ["sqlite"], indirect=True)
def test_synflow_correlation_on_real_nb201_cells(live_service: LiveServer, real_synflow: dict) -> None:
    params = {"config": real_synflow["fingerprint"], "proxies": "synflow", "bootstrap": 200}
    report = _get(live_service, "/v1/correlations", **params).json()
    assert report["population"]["configuration"]["calibration_digest"] is not None
    assert report["population"]["selected_by"] == "request" and report["population"]["proxies"] == ["synflow"]
    synflow, voted = report["correlations"]
    assert (synflow["name"], voted["name"], voted["kind"]) == ("synflow", "vote", "vote")
    exported = _get(live_service, "/v1/export", config=real_synflow["fingerprint"], format="csv").text
    rows = list(csv.DictReader(io.StringIO(exported)))
    assert {row["arch"] for row in rows} >= set(real_synflow["archs"])
    assert len(rows) == report["population"]["size"]
    observed = [row for row in rows if row["accuracy"]]
    assert {row["arch"] for row in rows} - {row["arch"] for row in observed} == real_synflow["held_out"]
    per_cell = synflow["per_cell"]
    expected = spearmanr([float(r["synflow"]) for r in observed], [float(r["accuracy"]) for r in observed])
    assert per_cell["n"] == report["observed_cells"] == len(observed)
    assert per_cell["spearman_rho"] > 0.6
    assert per_cell["spearman_rho"] == pytest.approx(expected.statistic, abs=1e-12)
    assert per_cell["spearman_p"] == pytest.approx(expected.pvalue, rel=1e-6, abs=1e-300)
    assert per_cell["best_accuracy"] == max(float(r["accuracy"]) for r in observed)

    classes = defaultdict(list)
    for row in observed:
        classes[row["canonical_key"]].append(row)
    assert all(len({row["synflow"] for row in members}) == 1 for members in classes.values()), "one class score"
    class_score = [float(members[0]["synflow"]) for members in classes.values()]
    class_accuracy = [np.mean([float(row["accuracy"]) for row in members]) for members in classes.values()]
    expected = spearmanr(class_score, class_accuracy)
    assert report["unit"] == "class" and synflow["n"] == report["observed"] == len(classes) < per_cell["n"]
    assert synflow["spearman_rho"] > 0.6
    assert synflow["spearman_rho"] == pytest.approx(expected.statistic, abs=1e-12)
    assert synflow["spearman_p"] == pytest.approx(expected.pvalue, rel=1e-6, abs=1e-300)
    assert synflow["spearman_p"] > per_cell["spearman_p"], "copies of a class are not evidence"
    assert synflow["spearman_ci_low"] <= synflow["spearman_rho"] <= synflow["spearman_ci_high"]
    assert voted["spearman_rho"] == pytest.approx(synflow["spearman_rho"], abs=1e-12)
    assert voted["per_cell"]["spearman_rho"] == pytest.approx(per_cell["spearman_rho"], abs=1e-12)
    assert synflow["best_accuracy"] == pytest.approx(max(class_accuracy), abs=1e-9)


def test_correlation_plot_is_a_png_with_one_panel_per_proxy_and_the_vote(
    live_service: LiveServer, hand_made: HandMadeSet
) -> None:
    for params, panels in (
        ({"config": hand_made.a.fingerprint, "metric": SYNTHETIC_METRIC, "proxies": "synflow"}, 2),
        ({"config": hand_made.a.fingerprint, "metric": SYNTHETIC_METRIC, "method": "log_rank"}, 4),
    ):
        response = _get(live_service, "/v1/correlations/plot.png", **params)
        assert response.headers["content-type"] == "image/png"
        assert response.content.startswith(PNG_MAGIC)
        pixels = mpimg.imread(io.BytesIO(response.content), format="png")
        rows, columns = grid_shape(panels)
        expected = (round(rows * PANEL_SIZE_INCHES[1] * DPI), round(columns * PANEL_SIZE_INCHES[0] * DPI))
        assert pixels.shape[:2] == expected
        assert pixels.std() > 0.05


def _expected_votes(population: HandMade, method: str, voters: tuple[str, ...] = PROXIES) -> np.ndarray:
    directions = {proxy: get_proxy(proxy).higher_is_better for proxy in voters}
    return vote({proxy: population.values[proxy] for proxy in voters}, directions, method)


@pytest.mark.parametrize("method", VOTE_METHODS)
def test_leaderboard_is_ordered_by_the_vote_with_its_ranks(
    live_service: LiveServer, hand_made: HandMadeSet, method: str
) -> None:
    a = hand_made.a
    rows = _all_rows(live_service, page_size=64, config=a.fingerprint, method=method, metric=SYNTHETIC_METRIC)
    votes = _expected_votes(a, method)
    position = {arch: i for i, arch in enumerate(a.archs)}
    ids = np.array([next(r["id"] for r in rows if r["arch"] == arch) for arch in a.archs])
    expected_order = np.lexsort((ids, -votes))
    assert [row["arch"] for row in rows] == [a.archs[i] for i in expected_order]
    expected_ranks = rankdata(-votes, method="min")
    for row in rows:
        i = position[row["arch"]]
        assert row["vote"] == pytest.approx(votes[i], rel=1e-12, abs=1e-12)
        assert row["vote_rank"] == row["rank"] == expected_ranks[i]
        assert row["accuracy"] == a.accuracy.get(row["arch"])
        expected_scores = {
            proxy: None if math.isnan(a.values[proxy][i]) else a.values[proxy][i]
            for proxy in PROXIES
            if (row["arch"], proxy) not in a.missing
        }
        assert row["scores"] == expected_scores
    assert len({row["vote_rank"] for row in rows}) < len(rows), "the population was built to have tied votes"


def test_percentile_is_vote_percentile_against_the_rest(live_service: LiveServer, hand_made: HandMadeSet) -> None:
    a = hand_made.a
    rows = {r["arch"]: r for r in _all_rows(live_service, config=a.fingerprint, method="log_rank")}
    directions = {proxy: get_proxy(proxy).higher_is_better for proxy in PROXIES}
    for i in (0, 5, 7, 42, 199):
        others = {proxy: np.delete(a.values[proxy], i) for proxy in PROXIES}
        candidate = {proxy: a.values[proxy][i] for proxy in PROXIES}
        expected = vote_percentile(others, candidate, directions, "log_rank")
        assert expected.population_size == len(a.archs)
        assert rows[a.archs[i]]["percentile"] == pytest.approx(expected.value, abs=1e-12)


@pytest.mark.parametrize("method", VOTE_METHODS)
def test_a_population_of_one_has_no_percentile(live_service: LiveServer, hand_made: HandMadeSet, method: str) -> None:
    single = hand_made.single
    board = _get(live_service, "/v1/leaderboard", config=single.fingerprint, method=method).json()
    assert board["population"]["size"] == board["total"] == 1
    [row] = board["items"]
    assert row["arch"] == single.archs[0] and row["percentile"] is None
    directions = {proxy: get_proxy(proxy).higher_is_better for proxy in PROXIES}
    alone = vote_percentile({p: np.array([]) for p in PROXIES}, {p: single.values[p][0] for p in PROXIES}, directions)
    assert alone.value is None and alone.population_size == 1
    if method == "majority":
        assert row["vote"] is None and row["vote_rank"] is None
    else:
        assert row["vote_rank"] == 1


def test_rank_by_a_proxy(live_service: LiveServer, hand_made: HandMadeSet) -> None:
    a = hand_made.a
    for proxy in ("grasp", "snip"):
        rows = _all_rows(live_service, page_size=50, config=a.fingerprint, rank_by=proxy)
        values = a.values[proxy]
        ranked = [row for row in rows if row["rank"] is not None]
        unranked = [row for row in rows if row["rank"] is None]
        assert {row["arch"] for row in unranked} == {a.archs[i] for i in np.flatnonzero(np.isnan(values))}
        assert rows == ranked + unranked
        finite = values[~np.isnan(values)]
        by_arch = dict(zip(a.archs, values, strict=True))
        assert [by_arch[row["arch"]] for row in ranked] == sorted(finite, reverse=True)
        assert all(row["rank"] == 1 + np.count_nonzero(finite > by_arch[row["arch"]]) for row in ranked)
        assert rows[0]["vote_rank"] is not None and rows[0]["rank"] == 1


def test_default_vote_is_the_default_preset_where_scored_else_mission(
    live_service: LiveServer, hand_made: HandMadeSet
) -> None:
    mission = _get(live_service, "/v1/leaderboard", config=hand_made.a.fingerprint).json()["vote"]
    assert mission == {"voters": list(PROXIES), "method": "mean_rank", "preset": "mission"}
    full = hand_made.every_preset
    board = _get(live_service, "/v1/leaderboard", config=full.fingerprint, limit=100).json()
    default = PRESETS[DEFAULT_PRESET]
    assert board["vote"] == {"voters": list(default.proxies), "method": default.method, "preset": DEFAULT_PRESET}
    votes = _expected_votes(full, default.method, default.proxies)
    by_arch = dict(zip(full.archs, votes, strict=True))
    assert [row["vote"] for row in board["items"]] == pytest.approx(sorted(votes, reverse=True), abs=1e-12)
    assert all(row["vote"] == pytest.approx(by_arch[row["arch"]], abs=1e-12) for row in board["items"])


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_a_named_preset_votes_with_its_proxies_and_method(
    live_service: LiveServer, hand_made: HandMadeSet, name: str
) -> None:
    full, preset = hand_made.every_preset, PRESETS[name]
    report = _get(live_service, "/v1/correlations", config=full.fingerprint, preset=name, bootstrap=0).json()
    assert report["vote"] == {"voters": list(preset.proxies), "method": preset.method, "preset": name}
    assert [entry["name"] for entry in report["correlations"]] == [*preset.proxies, "vote"]
    overridden = _get(live_service, "/v1/leaderboard", config=full.fingerprint, preset=name, method="majority").json()
    assert overridden["vote"]["method"] == "majority" and overridden["vote"]["preset"] == name
    rows = {row["arch"]: row["vote"] for row in overridden["items"]}
    expected = _expected_votes(full, "majority", preset.proxies)
    assert [rows[arch] for arch in full.archs] == pytest.approx(expected, abs=1e-12)


def test_a_preset_missing_scores_names_what_is_missing(live_service: LiveServer, hand_made: HandMadeSet) -> None:
    response = live_service.client.get("/v1/leaderboard", params={"config": hand_made.a.fingerprint, "preset": "azn"})
    assert response.status_code == 422
    message = _errors(response)["preset"]
    assert "az_expressivity" in message and hand_made.a.fingerprint[:12] in message


def test_pagination(live_service: LiveServer, hand_made: HandMadeSet) -> None:
    params = {"config": hand_made.a.fingerprint, "method": "mean_rank"}
    whole = _get(live_service, "/v1/leaderboard", limit=1000, **params).json()
    pages = [_get(live_service, "/v1/leaderboard", limit=30, offset=o, **params).json() for o in range(0, 200, 30)]
    assert whole["total"] == 200 and all(page["total"] == 200 for page in pages)
    assert [len(page["items"]) for page in pages] == [30] * 6 + [20]
    assert [row for page in pages for row in page["items"]] == whole["items"]
    beyond = _get(live_service, "/v1/leaderboard", limit=10, offset=500, **params).json()
    assert beyond["items"] == [] and beyond["offset"] == 500


def test_configurations_are_never_mixed(live_service: LiveServer, hand_made: HandMadeSet) -> None:
    a, b = hand_made.a, hand_made.b
    for population in (a, b):
        rows = {r["arch"]: r for r in _all_rows(live_service, config=population.fingerprint)}
        assert set(rows) == set(population.archs)
        for i, arch in enumerate(population.archs):
            synflow = population.values["synflow"][i]
            assert rows[arch]["scores"]["synflow"] == synflow
    shared = set(a.archs) & set(b.archs)
    assert len(shared) == 30
    default = _get(live_service, "/v1/leaderboard", limit=1).json()["population"]
    assert default["selected_by"] == "most_scores"
    counts = {default["configuration"]["fingerprint"]: (default["scores"], default["size"])}
    counts |= {other["fingerprint"]: (other["scores"], other["architectures"]) for other in default["alternatives"]}
    assert counts[a.fingerprint] == (3 * 200 - 1, 200) and counts[b.fingerprint] == (3 * 50, 50)
    assert default["scores"] == max(scores for scores, _ in counts.values())
    by_prefix = _get(live_service, "/v1/leaderboard", config=b.fingerprint[:10], limit=1).json()["population"]
    assert by_prefix["configuration"]["fingerprint"] == b.fingerprint and by_prefix["size"] == 50
    assert a.fingerprint in {other["fingerprint"] for other in by_prefix["alternatives"]}
    elsewhere = live_service.client.get("/v1/leaderboard", params={"config": a.fingerprint, "dataset": "cifar100"})
    assert elsewhere.status_code == 422 and "config" in _errors(elsewhere)


def _add_score(database: Database, fingerprint: str, arch: str, proxy: str, value: float) -> None:
    with database.session() as session:
        [row] = architectures_for_strings(session, ensure_space(session, "nb201"), [arch])
        find = select(ScoringConfig.id).where(ScoringConfig.fingerprint == fingerprint)
        config_id = session.execute(find).scalar_one()
        record_scores(
            session,
            member_ids=[row.id],
            computed_from_id=row.id,
            config_id=config_id,
            outcomes={proxy: ProxyResult(value, 0.01)},
            device="cpu",
        )


def test_new_scores_and_observations_show_up_at_once(live_service: LiveServer) -> None:
    archs = _one_cell_per_class(21, seed=6)
    database = Database(live_service.settings.resolved_database_url)
    try:
        fresh = _store_hand_made(database, "fresh", archs[:20], seed=4)
        before = _get(live_service, "/v1/leaderboard", config=fresh.fingerprint, limit=1000).json()
        _add_score(database, fresh.fingerprint, archs[20], "synflow", 1e9)
    finally:
        database.dispose()
    after = _get(live_service, "/v1/leaderboard", config=fresh.fingerprint, rank_by="synflow", limit=1).json()
    assert before["total"] == 20 and after["total"] == 21
    assert after["items"][0]["arch"] == archs[20] and after["items"][0]["scores"] == {"synflow": 1e9}
    target = before["items"][0]["arch"]
    posted = live_service.client.post(
        "/v1/observations", json={"arch": target, "dataset": "cifar10", "metric": "fresh", "accuracy": 12.5}
    )
    assert posted.status_code == 200
    rows = _all_rows(live_service, config=fresh.fingerprint, metric="fresh")
    assert {row["arch"]: row["accuracy"] for row in rows if row["accuracy"] is not None} == {target: 12.5}


def test_csv_export_holds_the_population(live_service: LiveServer, hand_made: HandMadeSet) -> None:
    a = hand_made.a
    response = _get(live_service, "/v1/export", config=a.fingerprint, format="csv", metric=SYNTHETIC_METRIC)
    assert response.headers["content-type"].startswith("text/csv")
    assert response.headers["content-disposition"].startswith("attachment;")
    assert a.fingerprint[:12] in response.headers["content-disposition"]
    rows = {row["arch"]: row for row in csv.DictReader(io.StringIO(response.text))}
    assert set(rows) == set(a.archs)
    for i, arch in enumerate(a.archs):
        assert rows[arch]["canonical_key"] == nb201.canonical_key(arch)
        assert rows[arch]["config_fingerprint"] == a.fingerprint
        for proxy in PROXIES:
            value, seconds = a.values[proxy][i], a.seconds[proxy][i]
            cell = rows[arch][proxy]
            assert cell == ("" if math.isnan(value) else repr(float(value)))
            missing = (arch, proxy) in a.missing
            assert rows[arch][f"{proxy}_seconds"] == ("" if missing else repr(float(seconds)))
        accuracy = a.accuracy.get(arch)
        assert rows[arch]["accuracy"] == ("" if accuracy is None else repr(accuracy))


def test_naslib_export_holds_the_population(live_service: LiveServer, hand_made: HandMadeSet) -> None:
    a = hand_made.a
    response = _get(live_service, "/v1/export", config=a.fingerprint, format="naslib", metric=SYNTHETIC_METRIC)
    assert response.headers["content-type"].startswith("application/json")
    document = json.loads(response.content)
    assert list(document) == ["cifar10"]
    entries = document["cifar10"]
    assert set(entries) == {arch_to_naslib_key(arch) for arch in a.archs}
    for i, arch in enumerate(a.archs):
        key = arch_to_naslib_key(arch)
        assert naslib_key_to_arch(key) == arch
        assert entries[key]["canonical_key"] == nb201.canonical_key(arch)
        assert entries[key]["config_fingerprint"] == a.fingerprint
        for proxy in PROXIES:
            if (arch, proxy) in a.missing:
                assert proxy not in entries[key]
                continue
            value = a.values[proxy][i]
            assert entries[key][proxy]["score"] == (None if math.isnan(value) else value)
            assert entries[key][proxy]["time"] == a.seconds[proxy][i]
        assert entries[key]["val_accuracy"] == a.accuracy.get(arch)


@pytest.mark.parametrize(
    ("path", "params", "status", "field"),
    [
        ("/v1/leaderboard", {"space": "nb999"}, 422, "space"),
        ("/v1/leaderboard", {"dataset": "mnist"}, 422, "dataset"),
        ("/v1/leaderboard", {"dataset": "imagenet16-120"}, 404, "dataset"),
        ("/v1/leaderboard", {"method": "borda"}, 422, "method"),
        ("/v1/leaderboard", {"proxies": "snip,no_such_proxy"}, 422, "proxies[1]"),
        ("/v1/leaderboard", {"proxies": "fisher"}, 422, "proxies[0]"),
        ("/v1/leaderboard", {"rank_by": "accuracy"}, 422, "rank_by"),
        ("/v1/leaderboard", {"config": "f" * 64}, 404, "config"),
        ("/v1/leaderboard", {"config": "abc"}, 422, "config"),
        ("/v1/leaderboard", {"limit": 0}, 422, "limit"),
        ("/v1/leaderboard", {"offset": -1}, 422, "offset"),
        ("/v1/leaderboard", {"preset": "borda"}, 422, "preset"),
        ("/v1/leaderboard", {"preset": "best"}, 422, "preset"),
        ("/v1/leaderboard", {"preset": "mission", "proxies": "snip"}, 422, "preset"),
        ("/v1/leaderboard", {"expand": "classes"}, 422, "expand"),
        ("/v1/correlations", {"method": "borda"}, 422, "method"),
        ("/v1/correlations", {"preset": "azn"}, 422, "preset"),
        ("/v1/correlations", {"top_fraction": 0}, 422, "top_fraction"),
        ("/v1/correlations", {"bootstrap": -1}, 422, "bootstrap"),
        ("/v1/correlations", {"proxies": "nope"}, 422, "proxies[0]"),
        ("/v1/correlations/plot.png", {"space": "nb999"}, 422, "space"),
        ("/v1/correlations/plot.png", {"dataset": "cifar100"}, 404, "dataset"),
        ("/v1/export", {"format": "xml"}, 422, "format"),
        ("/v1/export", {"dataset": "mnist"}, 422, "dataset"),
    ],
)
def test_bad_requests_name_the_field(
    live_service: LiveServer, hand_made: HandMadeSet, path: str, params: dict, status: int, field: str
) -> None:
    response = live_service.client.get(path, params=params)
    assert response.status_code == status, response.text
    assert field in _errors(response), response.json()


def test_cli_leaderboard_prints_the_same_table_locally_and_from_the_server(
    live_service: LiveServer, hand_made: HandMadeSet, capsys: pytest.CaptureFixture
) -> None:
    a = hand_made.a
    flags = [
        "leaderboard",
        "--config",
        a.fingerprint,
        "--method",
        "log_rank",
        "--limit",
        "5",
        "--metric",
        SYNTHETIC_METRIC,
    ]
    assert nasscore_main([*flags, "--database-url", live_service.settings.resolved_database_url]) == 0
    local = capsys.readouterr().out
    assert nasscore_main([*flags, "--server", str(live_service.client.base_url)]) == 0
    assert capsys.readouterr().out == local
    top = _get(live_service, "/v1/leaderboard", config=a.fingerprint, method="log_rank", limit=5).json()["items"]
    table = local.splitlines()[-5:]
    assert [line.split()[-1] for line in table] == [row["arch"] for row in top]
    assert [int(line.split()[0]) for line in table] == [row["rank"] for row in top]
    assert nasscore_main(["leaderboard", "--proxies", "nope", "--server", str(live_service.client.base_url)]) == 1
    assert "proxies[0]" in capsys.readouterr().err
    preset_flags = ["leaderboard", "--config", hand_made.every_preset.fingerprint, "--preset", "azn", "--limit", "3"]
    assert nasscore_main([*preset_flags, "--server", str(live_service.client.base_url)]) == 0
    assert f"vote: preset azn (log_rank) over {', '.join(PRESETS['azn'].proxies)};" in capsys.readouterr().out


def test_cli_correlate_prints_the_figures_and_writes_the_plot(
    live_service: LiveServer, hand_made: HandMadeSet, capsys: pytest.CaptureFixture, tmp_path
) -> None:
    a = hand_made.a
    plot = tmp_path / "rho.png"
    flags = [
        "correlate",
        "--config",
        a.fingerprint,
        "--metric",
        SYNTHETIC_METRIC,
        "--bootstrap",
        "50",
        "--server",
        str(live_service.client.base_url),
        "--plot",
        str(plot),
    ]
    assert nasscore_main(flags) == 0
    printed = capsys.readouterr().out
    assert plot.read_bytes().startswith(PNG_MAGIC)
    report = _get(live_service, "/v1/correlations", config=a.fingerprint, metric=SYNTHETIC_METRIC, bootstrap=50).json()
    for entry in report["correlations"]:
        label = entry["name"] if entry["kind"] == "proxy" else f"vote ({report['vote']['method']})"
        [line] = [line for line in printed.splitlines() if line.startswith(f"{label} ")]
        n, rho = line.removeprefix(label).split()[:2]
        assert (n, rho) == (f"{entry['n']:,}", f"{entry['spearman_rho']:+.3f}")
    assert report["observed"] == OBSERVED_IN_A


@dataclass(frozen=True)
class Twins:
    """Whole isomorphism classes scored as the batch path scores them: one set of values per class,
    recorded for every member. Accuracies are per cell and differ between members."""

    fingerprint: str
    classes: list[list[str]]
    values: dict[str, np.ndarray]
    accuracy: dict[str, float]

    def class_of(self, arch: str) -> int:
        return next(index for index, members in enumerate(self.classes) if arch in members)

    def class_accuracy(self) -> np.ndarray:
        """Mean of each class's observed members, NaN where none is observed: computed here, not by the app."""
        observed = [[self.accuracy[arch] for arch in members if arch in self.accuracy] for members in self.classes]
        return np.array([np.mean(values) if values else np.nan for values in observed])

    def cells(self) -> list[str]:
        return [arch for members in self.classes for arch in members]


@pytest.fixture(scope="module")
def twins(live_service: LiveServer) -> Twins:
    """12 classes: 8 with 2-5 members, 4 singletons. The last member of each multi-member class is left
    unobserved, and so is one whole class, so class means and observed counts differ from the cells'."""
    by_class = defaultdict(list)
    for arch in nb201.all_archs():
        by_class[nb201.canonical_key(arch)].append(arch)
    rng = random.Random(7)
    keys = sorted(by_class)
    classes = rng.sample([by_class[k] for k in keys if 2 <= len(by_class[k]) <= 5], 8)
    classes += rng.sample([by_class[k] for k in keys if len(by_class[k]) == 1], 4)
    rng.shuffle(classes)
    generator = np.random.default_rng(7)
    values = {proxy: generator.normal(size=len(classes)) for proxy in PROXIES}
    config = _hand_made_config("twins", seed=7)
    database = Database(live_service.settings.resolved_database_url)
    try:
        with database.session() as session:
            stored = get_or_create_config(session, config)
            space = ensure_space(session, "nb201")
            for index, members in enumerate(classes):
                scores = {proxy: float(values[proxy][index]) for proxy in PROXIES}
                record_class_scores(session, space, stored.id, members, scores)
    finally:
        database.dispose()
    unobserved = {members[-1] for members in classes if len(members) > 1} | set(classes[0])
    accuracy = {
        arch: round(rng.uniform(50, 90), 3) for members in classes for arch in members if arch not in unobserved
    }
    observations = [
        {"arch": arch, "dataset": "cifar10", "metric": TWINS_METRIC, "accuracy": value}
        for arch, value in accuracy.items()
    ]
    posted = live_service.client.post("/v1/observations", json=observations)
    assert posted.status_code == 200, posted.text
    return Twins(config.fingerprint, classes, values, accuracy)


def _twins_params(twins: Twins, **extra: object) -> dict[str, object]:
    return {"config": twins.fingerprint, "metric": TWINS_METRIC, **extra}


def _oriented(proxy: str, values: np.ndarray) -> np.ndarray:
    return values if get_proxy(proxy).higher_is_better else -values


def test_correlations_count_each_isomorphism_class_once(live_service: LiveServer, twins: Twins) -> None:
    report = _get(live_service, "/v1/correlations", **_twins_params(twins, bootstrap=200)).json()
    cells = twins.cells()
    class_accuracy = twins.class_accuracy()
    observed_classes = np.isfinite(class_accuracy)
    observed_cells = np.array([arch in twins.accuracy for arch in cells])
    cell_accuracy = np.array([twins.accuracy.get(arch, np.nan) for arch in cells])
    cell_class = np.array([twins.class_of(arch) for arch in cells])
    assert (report["population"]["size"], report["population"]["classes"]) == (len(cells), len(twins.classes))
    assert report["unit"] == "class"
    assert report["observed"] == observed_classes.sum() == 11
    assert report["observed_cells"] == observed_cells.sum() == len(twins.accuracy)

    directions = {proxy: get_proxy(proxy).higher_is_better for proxy in PROXIES}
    class_votes = vote(twins.values, directions, report["vote"]["method"])
    cell_votes = vote(
        {proxy: twins.values[proxy][cell_class] for proxy in PROXIES}, directions, report["vote"]["method"]
    )
    expected = {
        proxy: (_oriented(proxy, twins.values[proxy]), _oriented(proxy, twins.values[proxy][cell_class]))
        for proxy in PROXIES
    } | {"vote": (class_votes, cell_votes)}
    assert [entry["name"] for entry in report["correlations"]] == [*PROXIES, "vote"]
    for entry in report["correlations"]:
        class_score, cell_score = expected[entry["name"]]
        by_class = spearmanr(class_score[observed_classes], class_accuracy[observed_classes])
        by_cell = spearmanr(cell_score[observed_cells], cell_accuracy[observed_cells])
        assert entry["n"] == 11 < entry["per_cell"]["n"] == observed_cells.sum()
        assert entry["spearman_rho"] == pytest.approx(by_class.statistic, abs=1e-12)
        assert entry["spearman_p"] == pytest.approx(by_class.pvalue, rel=1e-9)
        assert entry["spearman_ci_low"] <= entry["spearman_rho"] <= entry["spearman_ci_high"]
        assert entry["per_cell"]["spearman_rho"] == pytest.approx(by_cell.statistic, abs=1e-12)
        assert entry["per_cell"]["spearman_p"] == pytest.approx(by_cell.pvalue, rel=1e-9)
        assert entry["best_accuracy"] == pytest.approx(np.nanmax(class_accuracy), abs=1e-9)


def test_correlation_plot_draws_one_point_per_class(live_service: LiveServer, twins: Twins) -> None:
    query = ReportQuery(config=twins.fingerprint, metric=TWINS_METRIC)
    database = Database(live_service.settings.resolved_database_url)
    try:
        with database.read_session() as session:
            panels = correlation_panels(session, query)
    finally:
        database.dispose()
    report = _get(live_service, "/v1/correlations", **_twins_params(twins, bootstrap=0)).json()
    assert len(panels) == len(report["correlations"]) == 4
    class_accuracy = twins.class_accuracy()
    for panel, entry in zip(panels, report["correlations"], strict=True):
        assert panel.score.size == len(twins.classes)
        assert panel.rho == pytest.approx(entry["spearman_rho"], abs=1e-12)
        if entry["kind"] == "proxy":
            accuracy_of = dict(zip(twins.values[entry["name"]], class_accuracy, strict=True))
            expected = [accuracy_of[score] for score in panel.score]
            np.testing.assert_allclose(panel.accuracy, expected, atol=1e-9)
    assert _get(live_service, "/v1/correlations/plot.png", **_twins_params(twins)).content.startswith(PNG_MAGIC)


def test_leaderboard_lists_each_class_once_ranked_among_classes(live_service: LiveServer, twins: Twins) -> None:
    board = _get(live_service, "/v1/leaderboard", **_twins_params(twins, limit=1000)).json()
    expanded = _get(live_service, "/v1/leaderboard", **_twins_params(twins, limit=1000, expand="cells")).json()
    ids = {row["arch"]: row["id"] for row in expanded["items"]}
    assert (board["unit"], board["total"], len(board["items"])) == ("class", 12, 12)
    assert board["population"]["size"] == len(twins.cells())

    directions = {proxy: get_proxy(proxy).higher_is_better for proxy in PROXIES}
    votes = vote(twins.values, directions, board["vote"]["method"])
    representatives = [min(members, key=ids.__getitem__) for members in twins.classes]
    order = np.lexsort(([ids[arch] for arch in representatives], -votes))
    assert [row["arch"] for row in board["items"]] == [representatives[index] for index in order]
    ranks, percentiles = rankdata(-votes, method="min"), (rankdata(votes) - 1) / (len(votes) - 1)
    class_accuracy = twins.class_accuracy()
    for row, index in zip(board["items"], order, strict=True):
        members = twins.classes[index]
        assert row["id"] == ids[row["arch"]] and row["canonical_key"] == nb201.canonical_key(members[0])
        assert row["members"] == len(members)
        assert row["vote"] == pytest.approx(votes[index], abs=1e-12)
        assert row["rank"] == row["vote_rank"] == ranks[index]
        assert row["percentile"] == pytest.approx(percentiles[index], abs=1e-12)
        expected_accuracy = None if math.isnan(class_accuracy[index]) else class_accuracy[index]
        assert row["accuracy"] == pytest.approx(expected_accuracy, abs=1e-9)
        listed = live_service.client.get(row["members_url"]).json()
        assert listed["total"] == row["members"]
        assert sorted(item["arch"] for item in listed["items"]) == sorted(members)


def test_expand_cells_lists_every_cell_ranked_among_cells(live_service: LiveServer, twins: Twins) -> None:
    expanded = _get(live_service, "/v1/leaderboard", **_twins_params(twins, limit=1000, expand="cells")).json()
    cells = twins.cells()
    assert (expanded["unit"], expanded["total"]) == ("cell", len(cells))
    assert sorted(row["arch"] for row in expanded["items"]) == sorted(cells)
    directions = {proxy: get_proxy(proxy).higher_is_better for proxy in PROXIES}
    cell_class = [twins.class_of(arch) for arch in cells]
    votes = vote({proxy: twins.values[proxy][cell_class] for proxy in PROXIES}, directions, "mean_rank")
    expected_ranks = dict(zip(cells, rankdata(-votes, method="min"), strict=True))
    for row in expanded["items"]:
        members = twins.classes[twins.class_of(row["arch"])]
        assert row["members"] == len(members)
        assert row["vote_rank"] == expected_ranks[row["arch"]]
        assert row["accuracy"] == twins.accuracy.get(row["arch"])
    for members in twins.classes:
        assert len({expected_ranks[arch] for arch in members}) == 1, "copies of a class share its rank"


def test_cli_counts_classes_and_cells(live_service: LiveServer, twins: Twins, capsys: pytest.CaptureFixture) -> None:
    server = ["--config", twins.fingerprint, "--metric", TWINS_METRIC, "--server", str(live_service.client.base_url)]
    assert nasscore_main(["leaderboard", *server, "--limit", "100"]) == 0
    collapsed = capsys.readouterr().out
    assert "in 12 isomorphism classes" in collapsed and "rows 1-12 of 12 isomorphism classes" in collapsed
    assert nasscore_main(["leaderboard", *server, "--limit", "100", "--expand", "cells"]) == 0
    cells = len(twins.cells())
    assert f"rows 1-{cells} of {cells} cells" in capsys.readouterr().out
    assert nasscore_main(["leaderboard", *server, "--expand", "rows"]) == 1
    assert "expand" in capsys.readouterr().err

    assert nasscore_main(["correlate", *server, "--bootstrap", "50"]) == 0
    printed = capsys.readouterr().out
    report = _get(live_service, "/v1/correlations", **_twins_params(twins, bootstrap=50)).json()
    for entry in report["correlations"]:
        label = entry["name"] if entry["kind"] == "proxy" else f"vote ({report['vote']['method']})"
        [line] = [line for line in printed.splitlines() if line.startswith(f"{label} ")]
        fields = line.removeprefix(label).split()
        assert fields[:2] == [f"{entry['n']:,}", f"{entry['spearman_rho']:+.3f}"]
        assert fields[11:13] == [f"{entry['per_cell']['n']:,}", f"{entry['per_cell']['spearman_rho']:+.3f}"]
