"""Population snapshots brought up to date from the score rows written since they were loaded, on a real
SQLite file and a real PostgreSQL server: an updated snapshot must equal one loaded from scratch, and a
writer that commits late must never be skipped."""

import math
import threading
from collections import defaultdict

import numpy as np
import pytest
from conftest import StoredClasses, one_cell_per_class, record_class_scores, store_classes
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db import Database
from app.db.migrations import upgrade
from app.db.models import Score, ScoringConfig
from app.services.population import Population, ScoredPopulation, class_population, load_scored_population
from app.services.spaces import ensure_space, get_or_create_architectures
from search_spaces import nb201

SEED = 41
# How long the second writer is given to get past the first one's lock, which it must not do.
BLOCKED_FOR_SECONDS = 0.5


def _twins() -> list[str]:
    """Two cells of one isomorphism class."""
    by_class: dict[str, list[str]] = defaultdict(list)
    for arch in nb201.all_archs():
        members = by_class[nb201.canonical_key(arch)]
        members.append(arch)
        if len(members) == 2:
            return members
    raise AssertionError("NB201 has isomorphic cells")


def _load(database: Database, fingerprint: str) -> ScoredPopulation:
    with database.read_session() as session:
        return load_scored_population(session, "nb201", "cifar10", fingerprint)


def _load_from_scratch(url: str, fingerprint: str) -> ScoredPopulation:
    """Through a second engine, which has a cache of its own."""
    database = Database(url)
    try:
        return _load(database, fingerprint)
    finally:
        database.dispose()


def _assert_same(updated: Population, loaded: Population) -> None:
    assert updated.proxies == loaded.proxies
    for name in ("architecture_ids", "archs", "values", "seconds", "present", "accuracy", "canonical_keys", "members"):
        np.testing.assert_array_equal(getattr(updated, name), getattr(loaded, name), err_msg=name)


def _store(database: Database, cells: list[list[str]], values: list[dict[str, float]]) -> StoredClasses:
    return store_classes(database, SEED, cells, values)


@pytest.fixture
def database(database_url: str) -> Database:
    upgrade(database_url)
    return Database(database_url)


def test_a_snapshot_brought_up_to_date_equals_a_fresh_load(database: Database, database_url: str) -> None:
    """New architectures whose ids fall between the snapshot's, a class of two cells, a null score and a
    proxy the snapshot had no column for, written after the snapshot was cached."""
    cells = one_cell_per_class(8, seed=SEED, taken={nb201.canonical_key(_twins()[0])})
    with database.session() as session:
        get_or_create_architectures(session, ensure_space(session, "nb201"), cells)
    early, late = cells[::2], cells[1::2]
    stored = _store(database, [[cell] for cell in early], [{"snip": i, "synflow": -i} for i in range(len(early))])
    first = _load(database, stored.fingerprint)
    assert _load(database, stored.fingerprint).population is first.population

    _store(database, [[cell] for cell in late], [{"snip": 10 + i, "synflow": math.inf} for i in range(len(late))])
    _store(database, [_twins(), early[:1]], [{"snip": 20.0, "synflow": 1.0}, {"grasp": 0.5}])
    updated = _load(database, stored.fingerprint)

    loaded = _load_from_scratch(database_url, stored.fingerprint)
    assert updated.population is not first.population
    assert updated.population.size == len(cells) + 2
    assert updated.population.proxies == ("grasp", "snip", "synflow")
    _assert_same(updated.population, loaded.population)
    _assert_same(class_population(updated.population), class_population(loaded.population))
    assert updated.selection.counts == loaded.selection.counts
    assert (updated.selection.counts.scores, updated.selection.counts.architectures) == (2 * len(cells) + 4 + 1, 10)


def test_a_write_that_adds_nothing_keeps_the_snapshot(database: Database) -> None:
    cells = one_cell_per_class(3, seed=SEED + 1)
    stored = _store(database, [[cell] for cell in cells], [{"snip": 1.0}] * 3)
    first = _load(database, stored.fingerprint)
    _store(database, [[cell] for cell in cells], [{"snip": 2.0}] * 3)
    again = _load(database, stored.fingerprint)
    assert again.population is first.population
    assert np.all(again.population.column("snip") == 1.0)


def test_a_writer_that_commits_late_is_read_after_it_commits(database: Database, database_url: str) -> None:
    """A holds its configuration's next version, uncommitted; B, writing the same configuration, waits for
    A to commit, so B cannot commit a higher version while A's lower one is still invisible (a reader that
    had moved past it would never read A's rows)."""
    cells = one_cell_per_class(4, seed=SEED + 2)
    stored = _store(database, [[cells[0]]], [{"snip": 1.0}])
    first = _load(database, stored.fingerprint)
    b_wrote = threading.Event()

    def writer_b() -> None:
        _store(database, [[cells[2]]], [{"snip": 3.0}])
        b_wrote.set()

    with database.session() as session_a:
        _store_in(session_a, stored, cells[1], 2.0)
        b = threading.Thread(target=writer_b)
        b.start()
        assert not b_wrote.wait(BLOCKED_FOR_SECONDS), "B committed while A held a lower version"
        assert _load(database, stored.fingerprint).population is first.population
    b.join()
    assert b_wrote.is_set()

    updated = _load(database, stored.fingerprint)
    _assert_same(updated.population, _load_from_scratch(database_url, stored.fingerprint).population)
    assert updated.population.size == 3
    with database.read_session() as session:
        versions = dict(session.execute(select(Score.architecture_id, Score.version)).all())
    ids = dict(zip(updated.population.archs, updated.population.architecture_ids, strict=True))
    assert versions[ids[cells[0]]] < versions[ids[cells[1]]] < versions[ids[cells[2]]]


def _store_in(session: Session, stored: StoredClasses, cell: str, snip: float) -> None:
    """One cell's snip score written in the caller's open transaction."""
    config_id = session.execute(
        select(ScoringConfig.id).where(ScoringConfig.fingerprint == stored.fingerprint)
    ).scalar_one()
    record_class_scores(session, ensure_space(session, "nb201"), config_id, [cell], {"snip": snip})
