"""The migrations are the schema: on SQLite and on PostgreSQL they must produce exactly the ORM's tables,
and the database itself must enforce the uniqueness the service relies on."""

from typing import Any

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import JSON, Boolean, column, insert, inspect, select, table, text
from sqlalchemy.exc import IntegrityError

from app.db import Database
from app.db.migrations import (
    current_revision,
    downgrade,
    head_revision,
    require_current,
    upgrade,
)
from app.db.models import (
    Architecture,
    Base,
    Job,
    JobItem,
    ObservationVersion,
    Score,
    ScoringConfig,
    SearchSpace,
    UtcDateTime,
    utcnow,
)


def _schema_diff(database: Database) -> list:
    with database.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True, "compare_server_default": True})
        return compare_metadata(context, Base.metadata)


def test_migrations_produce_exactly_the_orm_schema(database_url: str) -> None:
    upgrade(database_url)
    database = Database(database_url)
    try:
        assert current_revision(database.engine) == head_revision()
        assert _schema_diff(database) == []
        assert set(inspect(database.engine).get_table_names()) == set(Base.metadata.tables) | {"alembic_version"}
    finally:
        database.dispose()


def test_downgrade_to_base_and_upgrade_again(database_url: str) -> None:
    upgrade(database_url)
    downgrade(database_url, "base")
    database = Database(database_url)
    try:
        assert set(inspect(database.engine).get_table_names()) <= {"alembic_version"}
        with pytest.raises(RuntimeError, match="nasscore db upgrade"):
            require_current(database.engine)
        upgrade(database_url)
        require_current(database.engine)
        assert _schema_diff(database) == []
    finally:
        database.dispose()


def _one_score_row(session, architecture: Architecture, config: ScoringConfig) -> Score:
    return Score(
        architecture_id=architecture.id,
        config_id=config.id,
        proxy="snip",
        value=1.0,
        seconds=0.1,
        device="cpu",
        computed_from_id=architecture.id,
    )


def test_database_enforces_one_score_per_architecture_config_proxy(database_url: str) -> None:
    upgrade(database_url)
    database = Database(database_url)
    try:
        with database.session() as session:
            space = SearchSpace(name="toy")
            session.add(space)
            session.flush()
            architecture = Architecture(space_id=space.id, arch="a", canonical_key="a")
            config = ScoringConfig(
                fingerprint="f" * 64,
                dataset="cifar10",
                data_source="synthetic",
                batch_size=8,
                sampling="random",
                seed=0,
                init="default",
                proxy_version="1",
                model_params={},
            )
            session.add_all([architecture, config])
            session.flush()
            session.add(_one_score_row(session, architecture, config))
        with pytest.raises(IntegrityError), database.session() as session:
            session.add(_one_score_row(session, architecture, config))
        with database.read_session() as session:
            assert session.execute(text("SELECT count(*) FROM scores")).scalar_one() == 1
    finally:
        database.dispose()


def test_sqlite_runs_in_wal_mode_with_foreign_keys(sqlite_url: str) -> None:
    upgrade(sqlite_url)
    database = Database(sqlite_url)
    try:
        with database.read_session() as session:
            assert session.execute(text("PRAGMA journal_mode")).scalar_one() == "wal"
            assert session.execute(text("PRAGMA foreign_keys")).scalar_one() == 1
        with pytest.raises(IntegrityError), database.session() as session:
            session.add(Architecture(space_id=12345, arch="orphan", canonical_key="orphan"))
    finally:
        database.dispose()


# scoring_configs as revision 0003 left it: a `legacy` flag instead of `calibration_kind`.
CONFIGS_0003 = table(
    "scoring_configs",
    *(column(name) for name in ("id", "fingerprint", "dataset", "data_source", "calibration_digest")),
    *(column(name) for name in ("batch_size", "sampling", "seed", "init", "proxy_version")),
    column("legacy", Boolean()),
    column("model_params", JSON()),
    column("created_at", UtcDateTime()),
)


def test_the_calibration_kind_is_backfilled_from_the_columns_it_replaces(database_url: str) -> None:
    """Revision 0004 classifies every existing configuration (synthetic, stored, legacy), and going back
    restores the `legacy` flag."""
    upgrade(database_url, "0003")
    database = Database(database_url)
    common = {"dataset": "cifar10", "batch_size": 8, "sampling": "random", "seed": 0, "init": "default"}
    common |= {"proxy_version": "1", "model_params": {}, "created_at": utcnow()}
    made = {
        "synthetic": {"data_source": "synthetic|cifar10", "calibration_digest": None, "legacy": False},
        "stored": {"data_source": "sha256:aaaa|cifar10", "calibration_digest": "a" * 64, "legacy": False},
        "legacy": {"data_source": "npz:old.npz:sha256-0|cifar10", "calibration_digest": None, "legacy": True},
    }
    try:
        with database.session() as session:
            for kind, values in made.items():
                session.execute(insert(CONFIGS_0003).values(fingerprint=kind.ljust(64, "0"), **common, **values))
        upgrade(database_url)
        with database.read_session() as session:
            kinds = session.execute(select(ScoringConfig.fingerprint, ScoringConfig.calibration_kind)).all()
        assert {fingerprint.rstrip("0"): kind for fingerprint, kind in kinds} == {kind: kind for kind in made}
        downgrade(database_url, "0003")
        with database.read_session() as session:
            flags = session.execute(select(CONFIGS_0003.c.fingerprint, CONFIGS_0003.c.legacy)).all()
        assert {fingerprint.rstrip("0"): legacy for fingerprint, legacy in flags} == {
            kind: values["legacy"] for kind, values in made.items()
        }
    finally:
        database.dispose()


# The tables as revision 0004 left them, written without the ORM (whose names are revision 0005's).
ARCHITECTURES_0004 = table("architectures", *(column(name) for name in ("id", "space_id", "arch", "canonical_key")))
CONFIGS_0004 = table(
    "scoring_configs",
    *(column(name) for name in ("id", "fingerprint", "dataset", "data_source", "calibration_kind")),
    *(column(name) for name in ("batch_size", "sampling", "seed", "init", "proxy_version")),
    column("model_params", JSON()),
    column("created_at", UtcDateTime()),
)
JOBS_0004 = table(
    "batch_jobs",
    *(column(name) for name in ("id", "kind", "space_id", "config_id", "spec_key", "status", "priority", "total")),
    column("proxies", JSON()),
    column("created_at", UtcDateTime()),
)
ITEMS_0004 = table(
    "batch_items", *(column(name) for name in ("id", "batch_id", "architecture_id", "status", "attempts"))
)


def _cells_and_config_at_0004(session: Any, fingerprint: str = "f" * 64) -> tuple[int, list[int], int]:
    """A space with two cells and a synthetic configuration, as revision 0004's columns store them; returns
    the space's, the cells' and the configuration's ids."""
    space = session.execute(insert(SearchSpace).values(name="nb201").returning(SearchSpace.id)).scalar_one()
    archs = [
        session.execute(
            insert(ARCHITECTURES_0004)
            .values(space_id=space, arch=f"a{n}", canonical_key=f"k{n}")
            .returning(ARCHITECTURES_0004.c.id)
        ).scalar_one()
        for n in range(2)
    ]
    config_values = {"fingerprint": fingerprint, "dataset": "cifar10", "data_source": "synthetic|cifar10"}
    config_values |= {"calibration_kind": "synthetic", "batch_size": 8, "sampling": "random", "seed": 0}
    config_values |= {"init": "default", "proxy_version": "1", "model_params": {}, "created_at": utcnow()}
    config = session.execute(insert(CONFIGS_0004).values(**config_values).returning(CONFIGS_0004.c.id)).scalar_one()
    return space, archs, config


def _queued_batch_at_0004(session: Any) -> tuple[int, int]:
    """A running batch (id 7) of two pending items (ids 40, 41); returns its space and configuration ids."""
    space, archs, config = _cells_and_config_at_0004(session)
    job = {"kind": "batch", "space_id": space, "config_id": config, "spec_key": "s", "priority": 0, "total": 2}
    session.execute(insert(JOBS_0004).values(id=7, status="running", proxies=[], created_at=utcnow(), **job))
    for item_id, arch in zip((40, 41), archs, strict=True):
        item = {"id": item_id, "batch_id": 7, "architecture_id": arch, "status": "pending", "attempts": 0}
        session.execute(insert(ITEMS_0004).values(**item))
    return space, config


def test_jobs_and_their_items_keep_their_ids_under_the_new_names(database_url: str) -> None:
    """Revision 0005 moves `batch_jobs`/`batch_items` to `jobs`/`job_items` with every row and id (a batch's
    URL stays valid), new jobs continue after the copied ids, and going back restores the old tables."""
    upgrade(database_url, "0004")
    database = Database(database_url)
    try:
        with database.session() as session:
            space, config = _queued_batch_at_0004(session)
        upgrade(database_url)
        with database.session() as session:
            assert session.execute(select(Job.id, Job.status)).all() == [(7, "running")]
            assert sorted(session.execute(select(JobItem.id, JobItem.job_id)).all()) == [(40, 7), (41, 7)]
            fresh = Job(kind="score", space_id=space, config_id=config, proxies=[], spec_key="t", total=1)
            session.add(fresh)
            session.flush()
            assert fresh.id == 8
        downgrade(database_url, "0004")
        with database.read_session() as session:
            assert sorted(session.execute(select(ITEMS_0004.c.id, ITEMS_0004.c.batch_id)).all()) == [(40, 7), (41, 7)]
            assert sorted(session.execute(select(JOBS_0004.c.id)).scalars()) == [7, 8]
    finally:
        database.dispose()


SCORES_0006 = table(
    "scores",
    *(column(name) for name in ("architecture_id", "config_id", "proxy", "value", "seconds", "device")),
    column("computed_from_id"),
    column("created_at", UtcDateTime()),
)
OBSERVATIONS_0006 = table(
    "observations",
    *(column(name) for name in ("architecture_id", "dataset", "metric", "accuracy", "source")),
    column("observed_at", UtcDateTime()),
)


def test_existing_scores_and_observations_start_their_version_counters(database_url: str) -> None:
    """Revision 0007 starts the counters of what is already stored: a configuration with scores at 1 (one
    without stays at 0, so populations skip it), and each observed dataset and metric at 1."""
    upgrade(database_url, "0006")
    database = Database(database_url)
    try:
        with database.session() as session:
            _, [first, _], scored = _cells_and_config_at_0004(session)
            stored = session.execute(select(CONFIGS_0004).where(CONFIGS_0004.c.id == scored)).one()._asdict()
            config_values = {name: value for name, value in stored.items() if name != "id"}
            unscored = session.execute(
                insert(CONFIGS_0004).values({**config_values, "fingerprint": "e" * 64}).returning(CONFIGS_0004.c.id)
            ).scalar_one()
            score = {"architecture_id": first, "config_id": scored, "proxy": "snip", "value": 1.0, "seconds": 0.1}
            session.execute(
                insert(SCORES_0006).values(device="cpu", computed_from_id=first, created_at=utcnow(), **score)
            )
            observation = {"architecture_id": first, "dataset": "cifar10", "metric": "test_accuracy", "accuracy": 90.0}
            session.execute(insert(OBSERVATIONS_0006).values(source="user", observed_at=utcnow(), **observation))
        upgrade(database_url)
        with database.read_session() as session:
            counters = dict(session.execute(select(ScoringConfig.id, ScoringConfig.scores_version)).all())
            observed = session.execute(
                select(ObservationVersion.dataset, ObservationVersion.metric, ObservationVersion.version)
            ).all()
        assert counters == {scored: 1, unscored: 0}
        assert observed == [("cifar10", "test_accuracy", 1)]
    finally:
        database.dispose()
