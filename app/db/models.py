"""ORM schema (SQLAlchemy 2.0 typed mappings). Alembic migrations are the only thing that creates these
tables; a test asserts the migrations and this module describe exactly the same schema."""

from datetime import UTC, datetime
from enum import StrEnum
from typing import TYPE_CHECKING, Any, ClassVar

from sqlalchemy import (
    JSON,
    Boolean,
    DateTime,
    Double,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column, relationship
from sqlalchemy.sql.expression import false

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


# The largest value an Integer column holds on every backend (PostgreSQL's INTEGER is 32-bit): every integer
# a client sends is bounded by it, so none reaches the database out of range.
MAX_DATABASE_INTEGER = 2**31 - 1


def utcnow() -> datetime:
    return datetime.now(UTC)


class UtcDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC timestamps on every backend (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is not None and value.tzinfo is None:
            raise ValueError("naive datetime given; use timezone-aware UTC timestamps")
        return value.astimezone(UTC) if value is not None else None

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)

    if TYPE_CHECKING:
        # Every model maps one plain Table (SQLAlchemy types `__table__` as any FromClause).
        __table__: ClassVar[Table]


class JobStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    CANCELLED = "cancelled"


class ItemStatus(StrEnum):
    PENDING = "pending"
    RUNNING = "running"
    DONE = "done"
    FAILED = "failed"
    CANCELLED = "cancelled"


class JobKind(StrEnum):
    BATCH = "batch"
    SCORE = "score"


class SearchSpace(Base):
    __tablename__ = "search_spaces"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class Architecture(Base):
    """One cell of a space; `canonical_key` groups isomorphic cells that share one computed score."""

    __tablename__ = "architectures"
    __table_args__ = (
        UniqueConstraint("space_id", "arch"),
        Index("ix_architectures_space_canonical", "space_id", "canonical_key"),
        Index("ix_architectures_space_benchmark_index", "space_id", "benchmark_index"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    space_id: Mapped[int] = mapped_column(ForeignKey("search_spaces.id"))
    arch: Mapped[str] = mapped_column(String(512))
    canonical_key: Mapped[str] = mapped_column(Text)
    benchmark_index: Mapped[int | None] = mapped_column(Integer)

    space: Mapped[SearchSpace] = relationship()


class CalibrationSet(Base):
    """Real images stored once under the SHA-256 of their content: a configuration's calibration batch
    (`role` "batch"), or an operator's pool that new batches are drawn from (`role` "pool"). Any process
    that reaches the database can score any configuration from here, on any host."""

    __tablename__ = "calibration_sets"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    digest: Mapped[str] = mapped_column(String(64), unique=True)
    dataset: Mapped[str] = mapped_column(String(64))
    role: Mapped[str] = mapped_column(String(16))
    count: Mapped[int] = mapped_column(Integer)
    images: Mapped[bytes] = mapped_column(LargeBinary, deferred=True)
    labels: Mapped[bytes] = mapped_column(LargeBinary, deferred=True)
    origin: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class DatasetDefault(Base):
    """The pool a dataset's "real" configurations are drawn from (the operator's latest `data add`)."""

    __tablename__ = "dataset_defaults"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    dataset: Mapped[str] = mapped_column(String(64), unique=True)
    pool_id: Mapped[int] = mapped_column(ForeignKey("calibration_sets.id"))
    updated_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)

    pool: Mapped[CalibrationSet] = relationship()


class ScoringConfig(Base):
    """Everything that changes a proxy value; scores are only ever compared within one fingerprint.
    Real-data configurations name their batch by `calibration_digest`; a `legacy` one was made before
    batches were stored and can be read but not scored until its data is added again."""

    __tablename__ = "scoring_configs"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    fingerprint: Mapped[str] = mapped_column(String(64), unique=True)
    dataset: Mapped[str] = mapped_column(String(64))
    data_source: Mapped[str] = mapped_column(Text)
    calibration_digest: Mapped[str | None] = mapped_column(String(64))
    pool_digest: Mapped[str | None] = mapped_column(String(64))
    legacy: Mapped[bool] = mapped_column(Boolean, default=False, server_default=false())
    batch_size: Mapped[int] = mapped_column(Integer)
    sampling: Mapped[str] = mapped_column(String(16))
    seed: Mapped[int] = mapped_column(Integer)
    init: Mapped[str] = mapped_column(String(32))
    proxy_version: Mapped[str] = mapped_column(String(32))
    model_params: Mapped[dict[str, Any]] = mapped_column(JSON)
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class Score(Base):
    """One proxy value; the unique constraint makes retries and concurrent workers unable to duplicate it."""

    __tablename__ = "scores"
    __table_args__ = (
        UniqueConstraint("architecture_id", "config_id", "proxy"),
        Index("ix_scores_config_proxy", "config_id", "proxy"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    architecture_id: Mapped[int] = mapped_column(ForeignKey("architectures.id"))
    config_id: Mapped[int] = mapped_column(ForeignKey("scoring_configs.id"))
    proxy: Mapped[str] = mapped_column(String(64))
    value: Mapped[float | None] = mapped_column(Double)
    seconds: Mapped[float | None] = mapped_column(Double)
    device: Mapped[str] = mapped_column(String(32))
    torch_version: Mapped[str | None] = mapped_column(String(32))
    error: Mapped[str | None] = mapped_column(Text)
    computed_from_id: Mapped[int] = mapped_column(ForeignKey("architectures.id"))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class ApiKey(Base):
    """A client's credential: only the SHA-256 of the token is stored (the token is shown once, at creation).
    Names are never reused, so a revoked key's name still identifies what it wrote."""

    __tablename__ = "api_keys"

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    name: Mapped[str] = mapped_column(String(64), unique=True)
    token_sha256: Mapped[str] = mapped_column(String(64), unique=True)
    prefix: Mapped[str] = mapped_column(String(16))
    scope: Mapped[str] = mapped_column(String(16))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UtcDateTime)


class Observation(Base):
    """A measured accuracy (e.g. a benchmark's trained test accuracy) to correlate scores against. Each
    `source` keeps its own value; `posted_by` names the API key that wrote it (null: a local CLI import or a
    server running without keys)."""

    __tablename__ = "observations"
    __table_args__ = (UniqueConstraint("architecture_id", "dataset", "metric", "source"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    architecture_id: Mapped[int] = mapped_column(ForeignKey("architectures.id"))
    dataset: Mapped[str] = mapped_column(String(64))
    metric: Mapped[str] = mapped_column(String(64))
    accuracy: Mapped[float] = mapped_column(Double)
    epochs: Mapped[int | None] = mapped_column(Integer)
    source: Mapped[str] = mapped_column(String(128))
    posted_by: Mapped[str | None] = mapped_column(String(64))
    observed_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)


class BatchJob(Base):
    """A persistent unit of work; `spec_key` identifies identical requests so they resume, not repeat.
    `owner` is the name of the API key that started it (null without keys): only it, or an admin, cancels it."""

    __tablename__ = "batch_jobs"
    __table_args__ = (Index("ix_batch_jobs_spec_status", "spec_key", "status"),)

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    space_id: Mapped[int] = mapped_column(ForeignKey("search_spaces.id"))
    config_id: Mapped[int] = mapped_column(ForeignKey("scoring_configs.id"))
    proxies: Mapped[list[str]] = mapped_column(JSON)
    spec_key: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default=JobStatus.PENDING)
    priority: Mapped[int] = mapped_column(Integer, default=0)
    total: Mapped[int] = mapped_column(Integer)
    owner: Mapped[str | None] = mapped_column(String(64))
    created_at: Mapped[datetime] = mapped_column(UtcDateTime, default=utcnow)
    started_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    space: Mapped[SearchSpace] = relationship()
    config: Mapped[ScoringConfig] = relationship()


class BatchItem(Base):
    """One architecture of a job; `claimed_by` + `lease_until` let a restart requeue abandoned work."""

    __tablename__ = "batch_items"
    __table_args__ = (
        UniqueConstraint("batch_id", "architecture_id"),
        Index("ix_batch_items_status_batch", "status", "batch_id"),
        Index("ix_batch_items_batch_status", "batch_id", "status"),
    )

    id: Mapped[int] = mapped_column(Integer, primary_key=True)
    batch_id: Mapped[int] = mapped_column(ForeignKey("batch_jobs.id", ondelete="CASCADE"))
    architecture_id: Mapped[int] = mapped_column(ForeignKey("architectures.id"))
    status: Mapped[str] = mapped_column(String(16), default=ItemStatus.PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    error: Mapped[str | None] = mapped_column(Text)
    claimed_by: Mapped[str | None] = mapped_column(String(128))
    lease_until: Mapped[datetime | None] = mapped_column(UtcDateTime)
    started_at: Mapped[datetime | None] = mapped_column(UtcDateTime)
    finished_at: Mapped[datetime | None] = mapped_column(UtcDateTime)

    architecture: Mapped[Architecture] = relationship()
