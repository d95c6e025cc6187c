"""Observations in-process: provenance (who may replace a source's value) on a real SQLite file and a real
PostgreSQL database, the checks every observation passes before anything is written, deleting a source, and
the one source a population's accuracies come from. test_observations_provenance.py checks the same rules
through the real server."""

import csv
import math
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import nb201_slice, one_cell_per_class, store_classes
from sqlalchemy import func, select

from app.db import Database
from app.db.migrations import upgrade
from app.db.models import Architecture, Observation
from app.services.errors import Conflict, InvalidInput, NotFound
from app.services.keys import ANONYMOUS, Principal, Scope
from app.services.observations import (
    ObservationInput,
    delete_observations,
    record_observations,
    store_observations,
)
from app.services.population import SourceCount, load_scored_population

ALICE = Principal("alice", Scope.WRITE)
BOB = Principal("bob", Scope.WRITE)
ROOT = Principal("root", Scope.ADMIN)
BENCH = "nb201-bench.csv"
# Cells no other test of this module uses: one slice per test.
PROVENANCE_CELLS = nb201_slice(3, offset=3000)
CHECKED_CELLS = nb201_slice(2, offset=3100)
DELETED_CELLS = nb201_slice(2, offset=3200)
INDEXED_CELLS = nb201_slice(2, offset=3300)
INDEX_HOLDER = nb201_slice(1, offset=3400)
HELD_INDEX = 3400


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    """A migrated empty database on each backend."""
    upgrade(database_url)
    database = Database(database_url)
    yield database
    database.dispose()


def _observation(arch: str, accuracy: float, source: str, **fields: object) -> ObservationInput:
    return ObservationInput(arch=arch, dataset="cifar10", accuracy=accuracy, source=source, **fields)  # type: ignore[arg-type]


def _post(database: Database, author: Principal, *observations: ObservationInput, extra_metrics: tuple = ()) -> int:
    """As POST /v1/observations stores a list: one transaction, errors naming `body[i]`."""
    prefixes = [f"body[{position}]" for position in range(len(observations))]
    spaces = ["nb201"] * len(observations)
    return store_observations(
        database, spaces, list(observations), prefixes, author=author, extra_metrics=extra_metrics
    )


def _stored(database: Database, cells: list[str]) -> dict[tuple[str, str, str], tuple[float, str | None]]:
    """(cell, metric, source) -> (accuracy, posted_by) of every observation of `cells`."""
    with database.read_session() as session:
        rows = session.execute(
            select(
                Architecture.arch, Observation.metric, Observation.source, Observation.accuracy, Observation.posted_by
            )
            .join(Observation, Observation.architecture_id == Architecture.id)
            .where(Architecture.arch.in_(cells))
        ).all()
    return {(arch, metric, source): (accuracy, posted_by) for arch, metric, source, accuracy, posted_by in rows}


def test_a_source_is_replaced_only_by_its_key_or_an_admin(database: Database) -> None:
    first, second, third = PROVENANCE_CELLS
    test = "test_accuracy"
    assert _post(database, ANONYMOUS, _observation(first, 90.0, BENCH), _observation(second, 80.0, BENCH)) == 2
    imported = _stored(database, PROVENANCE_CELLS)
    assert imported == {(first, test, BENCH): (90.0, None), (second, test, BENCH): (80.0, None)}

    with pytest.raises(Conflict) as refused:
        _post(database, ALICE, _observation(first, 0.0, BENCH))
    assert refused.value.field == "body[0].source"
    assert "no key" in refused.value.message and "only an admin" in refused.value.message
    with pytest.raises(Conflict) as refused:
        _post(database, ALICE, _observation(third, 50.0, "alice"), _observation(second, 0.0, BENCH))
    assert refused.value.field == "body[1].source"
    assert _stored(database, PROVENANCE_CELLS) == imported

    assert _post(database, ALICE, _observation(first, 60.0, "alice")) == 1
    assert _post(database, ALICE, _observation(first, 61.0, "alice"), _observation(first, 62.0, "alice")) == 1
    assert _stored(database, [first])[(first, test, "alice")] == (62.0, "alice")
    with pytest.raises(Conflict) as refused:
        _post(database, BOB, _observation(first, 10.0, "alice"))
    assert refused.value.field == "body[0].source" and "key 'alice'" in refused.value.message

    assert _post(database, ROOT, _observation(first, 63.0, "alice"), _observation(second, 81.0, BENCH)) == 2
    assert _post(database, ANONYMOUS, _observation(first, 91.0, BENCH)) == 1
    assert _stored(database, PROVENANCE_CELLS) == {
        (first, test, BENCH): (91.0, None),
        (first, test, "alice"): (63.0, "root"),
        (second, test, BENCH): (81.0, "root"),
    }


@pytest.mark.parametrize(
    ("fields", "field", "message"),
    [
        ({"benchmark_index": 15_625}, "benchmark_index", "[0, 15,625)"),
        ({"benchmark_index": -1}, "benchmark_index", "[0, 15,625)"),
        ({"benchmark_index": "held"}, "benchmark_index", "is the stored benchmark index of"),
        ({"metric": "top1"}, "metric", "unknown metric 'top1'"),
        ({"metric": ""}, "metric", "printable"),
        ({"metric": "m" * 65}, "metric", "1-64"),
        ({"source": "nul\x00byte"}, "source", "printable"),
        ({"source": "new\nline"}, "source", "printable"),
        ({"source": "   "}, "source", "not only spaces"),
        ({"source": "s" * 129}, "source", "1-128"),
        ({"epochs": 100_001}, "epochs", "between 0 and 100,000"),
        ({"epochs": -1}, "epochs", "between 0 and 100,000"),
        ({"accuracy": 100.5}, "accuracy", "[0, 100]"),
    ],
)
def test_checks_name_the_field_and_store_nothing(
    sqlite_database: Database, fields: dict[str, object], field: str, message: str
) -> None:
    good, bad = CHECKED_CELLS
    if fields.get("benchmark_index") == "held":
        [holder] = INDEX_HOLDER
        _post(sqlite_database, ROOT, _observation(holder, 50.0, "holder", benchmark_index=HELD_INDEX))
        fields = {"benchmark_index": HELD_INDEX}
    values = {"source": "checks", "accuracy": 50.0} | fields
    with pytest.raises(InvalidInput) as refused:
        _post(sqlite_database, ALICE, _observation(good, 50.0, "checks"), _observation(bad, **values))  # type: ignore[arg-type]
    assert refused.value.field == f"body[1].{field}"
    assert message in refused.value.message, refused.value.message
    assert _stored(sqlite_database, CHECKED_CELLS) == {}


def test_a_benchmark_index_belongs_to_one_cell(sqlite_database: Database) -> None:
    """A key below admin can give a free index to an unindexed cell, not take another cell's index or
    change a stored one; an admin's import moves an index (how a wrong one is corrected)."""
    first, second = INDEXED_CELLS
    assert _post(sqlite_database, ALICE, _observation(first, 70.0, "indexed", benchmark_index=7000)) == 1
    for cell, index, message in ((first, 7001, "the stored benchmark index of"), (second, 7000, "is the stored")):
        with pytest.raises(InvalidInput) as refused:
            _post(sqlite_database, BOB, _observation(cell, 60.0, "bob", benchmark_index=index))
        assert refused.value.field == "body[0].benchmark_index" and message in refused.value.message
    with pytest.raises(InvalidInput, match="more than one benchmark index"):
        _post(sqlite_database, ROOT, *(_observation(first, 70.0, "indexed", benchmark_index=i) for i in (1, 2)))
    assert _indices(sqlite_database, INDEXED_CELLS) == {first: 7000, second: None}
    assert _post(sqlite_database, ROOT, _observation(second, 71.0, "indexed", benchmark_index=7000)) == 1
    assert _indices(sqlite_database, INDEXED_CELLS) == {first: None, second: 7000}


def _indices(database: Database, cells: list[str]) -> dict[str, int | None]:
    with database.read_session() as session:
        query = select(Architecture.arch, Architecture.benchmark_index).where(Architecture.arch.in_(cells))
        stored = dict(session.execute(query).all())
    return {cell: stored.get(cell) for cell in cells}


def test_an_operator_adds_metrics(sqlite_database: Database) -> None:
    cell = CHECKED_CELLS[1]
    extra = _observation(cell, 40.0, "extra", metric="top1_after_12_epochs")
    with pytest.raises(InvalidInput):
        _post(sqlite_database, ALICE, extra)
    assert _post(sqlite_database, ALICE, extra, extra_metrics=("top1_after_12_epochs",)) == 1
    assert _post(sqlite_database, ALICE, _observation(cell, 41.0, "extra", metric="train_accuracy")) == 1
    assert set(_stored(sqlite_database, [cell])) == {
        (cell, "top1_after_12_epochs", "extra"),
        (cell, "train_accuracy", "extra"),
    }


def test_the_shared_benchmark_table_passes_every_check(tmp_path: Path, nb201_csv: Path) -> None:
    """The whole NAS-Bench-201 table (15,625 cells with their indices), as `nasscore observations import`
    stores it: every row's index is stored, and a key below admin cannot move one afterwards."""
    with nb201_csv.open() as stream:
        table = list(csv.DictReader(stream))
    url = f"sqlite:///{tmp_path / 'table.db'}"
    upgrade(url)
    database = Database(url)
    try:
        inputs = [
            _observation(row["arch"], float(row["cifar10_test_acc"]), nb201_csv.name, benchmark_index=int(row["index"]))
            for row in table
        ]
        with database.session() as session:
            assert record_observations(session, "nb201", inputs, [f"row {i}" for i in range(len(inputs))]) == 15_625
        with database.read_session() as session:
            indices = dict(session.execute(select(Architecture.arch, Architecture.benchmark_index)).all())
        moved = _observation(table[1]["arch"], 50.0, "alice", benchmark_index=int(table[0]["index"]))
        with pytest.raises(InvalidInput, match="is the stored benchmark index of"):
            _post(database, ALICE, moved)
    finally:
        database.dispose()
    assert indices == {row["arch"]: int(row["index"]) for row in table}


def test_deleting_a_source_removes_only_its_observations(database: Database) -> None:
    first, second = DELETED_CELLS
    _post(
        database,
        ROOT,
        _observation(first, 10.0, "poisoned"),
        _observation(second, 11.0, "poisoned"),
        _observation(first, 12.0, "poisoned", metric="val_accuracy"),
        _observation(first, 13.0, "kept"),
    )
    assert delete_observations(database, "poisoned", metric="val_accuracy") == 1
    assert delete_observations(database, "poisoned", dataset="cifar10") == 2
    assert set(_stored(database, DELETED_CELLS)) == {(first, "test_accuracy", "kept")}
    with pytest.raises(NotFound) as missing:
        delete_observations(database, "poisoned")
    assert missing.value.field == "source" and "'kept'" in missing.value.message
    with pytest.raises(InvalidInput) as refused:
        delete_observations(database, "bad\x07")
    assert refused.value.field == "source"
    assert set(_stored(database, DELETED_CELLS)) == {(first, "test_accuracy", "kept")}


def test_a_population_reads_one_source(sqlite_database: Database) -> None:
    """Default: the source with the most observations of the dataset and metric, ties by name."""
    cells = one_cell_per_class(4, seed=41)
    stored = store_classes(sqlite_database, 41, [[cell] for cell in cells], [{"synflow": float(i)} for i in range(4)])
    metric = "val_accuracy"
    bench = [_observation(cell, 90.0 + i, "bench", metric=metric) for i, cell in enumerate(cells)]
    zeta = [_observation(cell, 10.0 + i, "zeta", metric=metric) for i, cell in enumerate(cells)]
    alice = [_observation(cell, 50.0 + i, "alice", metric=metric) for i, cell in enumerate(cells[:2])]
    _post(sqlite_database, ROOT, *bench, *zeta, *alice)

    def accuracies(**query: object) -> tuple[str | None, tuple[SourceCount, ...], list[float]]:
        with sqlite_database.read_session() as session:
            scored = load_scored_population(session, "nb201", "cifar10", stored.fingerprint, **query)  # type: ignore[arg-type]
        return scored.source, scored.sources, [float(value) for value in scored.population.accuracy]

    source, sources, values = accuracies(metric=metric)
    assert source == "bench" and values == [90.0, 91.0, 92.0, 93.0]
    assert sources == (SourceCount("bench", 4), SourceCount("zeta", 4), SourceCount("alice", 2))
    source, _, values = accuracies(metric=metric, source="alice")
    assert source == "alice" and values[:2] == [50.0, 51.0] and all(math.isnan(value) for value in values[2:])
    assert accuracies(metric=metric, source="zeta")[2] == [10.0, 11.0, 12.0, 13.0]
    with pytest.raises(NotFound) as missing:
        accuracies(metric=metric, source="nobody")
    assert missing.value.field == "source" and "'bench'" in missing.value.message
    source, sources, values = accuracies(metric="never_observed")
    assert (source, sources) == (None, ()) and all(math.isnan(value) for value in values)

    assert delete_observations(sqlite_database, "bench") == 4
    assert accuracies(metric=metric)[:2] == ("zeta", (SourceCount("zeta", 4), SourceCount("alice", 2)))


def test_a_conflict_leaves_no_trace(database: Database) -> None:
    """Nothing of a refused request is stored, not even the architectures it named."""
    cell = PROVENANCE_CELLS[0]
    _post(database, ANONYMOUS, _observation(cell, 90.0, BENCH))
    fresh = nb201_slice(1, offset=3300)[0]
    with database.read_session() as session:
        before = session.execute(select(func.count()).select_from(Architecture)).scalar_one()
    with pytest.raises(Conflict):
        _post(database, ALICE, _observation(fresh, 1.0, "alice"), _observation(cell, 0.0, BENCH))
    with database.read_session() as session:
        assert session.execute(select(func.count()).select_from(Architecture)).scalar_one() == before
    assert _stored(database, [cell, fresh]) == {(cell, "test_accuracy", BENCH): (90.0, None)}
