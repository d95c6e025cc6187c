"""End to end: a batch of real NB201 cells submitted over HTTP, scored by the worker pool on the shared
CIFAR-10 batch (the operator's `cifar10.npz`), and stored exactly once per (architecture, configuration,
proxy), with isomorphic cells sharing one computation — on SQLite and on PostgreSQL."""

import math
import random
from collections import defaultdict

import pytest
from conftest import ALL_NONE, LiveServer, wait_for_batch
from sqlalchemy import func, select

from app.db import Database
from app.db.models import Architecture, JobItem, Score, ScoringConfig
from search_spaces import nb201

PROXIES = ("snip", "grasp", "synflow")
REAL_DATA_CONFIG = {"data": "real", "batch_size": 16, "channels": 4, "cells_per_stage": 1}


def _batch_archs() -> list[str]:
    """36 seeded cells plus two isomorphic twins of the first one, so sharing is exercised."""
    archs = random.Random(2024).sample(nb201.all_archs(), 36)
    key = nb201.canonical_key(archs[0])
    twins = [a for a in nb201.all_archs() if nb201.canonical_key(a) == key and a not in archs][:2]
    return archs + twins


@pytest.fixture
def scored_batch(live_service: LiveServer, cifar10_npz) -> tuple[dict, list[str]]:
    archs = _batch_archs()
    created = live_service.client.post(
        "/v1/batches", json={"archs": archs, "dataset": "cifar10", "proxies": list(PROXIES), "config": REAL_DATA_CONFIG}
    )
    assert created.status_code == 202, created.text
    return wait_for_batch(live_service.client, created.json()["id"], timeout=600), archs


def test_batch_of_real_cells_is_scored_once_per_architecture_config_proxy(
    live_service: LiveServer, scored_batch: tuple[dict, list[str]]
) -> None:
    final, archs = scored_batch
    assert (final["status"], final["done"], final["failed"], final["total"]) == ("done", len(archs), 0, len(archs))
    database = Database(live_service.settings.resolved_database_url)
    try:
        with database.read_session() as session:
            config = session.execute(
                select(ScoringConfig).where(ScoringConfig.fingerprint == final["configuration"])
            ).scalar_one()
            assert config.calibration_digest is not None and config.batch_size == 16
            assert config.data_source.startswith(f"sha256:{config.calibration_digest[:12]}|cifar10|")
            duplicates = session.execute(
                select(Score.architecture_id, Score.config_id, Score.proxy)
                .group_by(Score.architecture_id, Score.config_id, Score.proxy)
                .having(func.count() > 1)
            ).all()
            assert duplicates == []
            rows = session.execute(
                select(Architecture, Score)
                .join(Score, Score.architecture_id == Architecture.id)
                .where(Score.config_id == config.id, Architecture.arch.in_(archs))
            ).all()
            items = session.execute(select(JobItem).where(JobItem.job_id == final["id"])).scalars().all()
    finally:
        database.dispose()
    scores: dict[str, dict[str, Score]] = defaultdict(dict)
    sources: dict[str, set[int]] = defaultdict(set)
    for architecture, score in rows:
        scores[architecture.arch][score.proxy] = score
        sources[architecture.canonical_key].add(score.computed_from_id)
    assert set(scores) == set(archs)
    assert all(set(by_proxy) == set(PROXIES) for by_proxy in scores.values())
    assert all(len(representatives) == 1 for representatives in sources.values())
    assert all(item.status == "done" and item.attempts <= 1 for item in items)
    _assert_sane(scores)
    first, *twins = [a for a in archs if nb201.canonical_key(a) == nb201.canonical_key(archs[0])]
    assert twins and all(
        {p: s.value for p, s in scores[t].items()} == {p: s.value for p, s in scores[first].items()} for t in twins
    )


def _assert_sane(scores: dict[str, dict[str, Score]]) -> None:
    """Finite values from real CPU runs; SNIP and SynFlow are sums of magnitudes (> 0 unless no input
    reaches the output, where every gradient is zero)."""
    dead_key = nb201.canonical_key(ALL_NONE)
    for arch, by_proxy in scores.items():
        for proxy, score in by_proxy.items():
            assert score.error is None and math.isfinite(score.value), (arch, proxy, score.error)
            assert score.device == "cpu" and score.seconds >= 0
        if nb201.canonical_key(arch) == dead_key:
            assert by_proxy["snip"].value == 0 and by_proxy["synflow"].value == 0
        else:
            assert by_proxy["snip"].value > 0 and by_proxy["synflow"].value > 0


def test_a_batch_links_to_the_reports_of_its_population(
    live_service: LiveServer, scored_batch: tuple[dict, list[str]]
) -> None:
    final, archs = scored_batch
    links = final["links"]
    board = live_service.client.get(links["leaderboard"], params={"expand": "cells", "rank_by": "snip", "limit": 1000})
    assert board.status_code == 200, board.text
    assert board.json()["population"]["configuration"]["fingerprint"] == final["configuration"]
    assert {row["arch"] for row in board.json()["items"]} >= set(archs)
    export = live_service.client.get(links["export"])
    assert export.status_code == 200 and export.text.startswith("arch,")
