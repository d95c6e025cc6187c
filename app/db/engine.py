"""Engine and explicit session factories. SQLite gets WAL (readers never block the writer), enforced
foreign keys, a busy timeout, and `BEGIN IMMEDIATE` for write sessions so two writers queue up instead of
failing with a stale-snapshot error; PostgreSQL (`postgresql+psycopg://`) needs none of that.

On PostgreSQL, psycopg's automatic prepared statements are off. A statement prepared after a few runs gets
a generic plan, which cannot hash an `IN` list of 500 bound names. In a large import, whose inserted rows
the planner has no statistics for yet, that generic plan compares every name with every row: 0.3 s per
500-name lookup at 20,000 architectures, against 15 ms with a plan made for the values. Planning each
statement costs well under a millisecond, and unprepared statements also pass through PgBouncer's
transaction pooling."""

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

from sqlalchemy import Engine, create_engine, event
from sqlalchemy.engine import make_url
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

SQLITE_BUSY_TIMEOUT_MS = 30_000
_BEGIN_OPTION = "nasscore_sqlite_begin"
# psycopg: never prepare statements server-side (see the module docstring).
POSTGRES_CONNECT_ARGS = {"prepare_threshold": None}
# PostgreSQL aborts one of two transactions that deadlock (or fail to serialise); running it again is safe.
RETRYABLE_SQLSTATES = {"40P01", "40001"}
TRANSACTION_ATTEMPTS = 5
T = TypeVar("T")


def _configure_sqlite(engine: Engine) -> None:
    @event.listens_for(engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        dbapi_connection.isolation_level = None  # let the "begin" hook below issue BEGIN itself
        cursor = dbapi_connection.cursor()
        cursor.execute("PRAGMA journal_mode=WAL")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine, "begin")
    def _on_begin(connection: Any) -> None:
        mode = connection.get_execution_options().get(_BEGIN_OPTION, "IMMEDIATE")
        connection.exec_driver_sql(f"BEGIN {mode}")


def make_engine(url: str) -> Engine:
    """An engine for `url`; creates the parent directory of a SQLite file."""
    parsed = make_url(url)
    if parsed.get_backend_name() != "sqlite":
        return create_engine(url, pool_pre_ping=True, pool_size=10, max_overflow=20, connect_args=POSTGRES_CONNECT_ARGS)
    if parsed.database and parsed.database != ":memory:":
        Path(parsed.database).parent.mkdir(parents=True, exist_ok=True)
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
    _configure_sqlite(engine)
    return engine


class Database:
    """Owns one engine; hands out short explicit sessions (`with db.session() as s: ...`)."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        self.is_sqlite = self.engine.dialect.name == "sqlite"
        self._write = sessionmaker(self.engine, expire_on_commit=False)
        self._reader = self.engine.execution_options(**{_BEGIN_OPTION: "DEFERRED"}) if self.is_sqlite else self.engine
        self._read = sessionmaker(self._reader, expire_on_commit=False)

    @contextmanager
    def session(self) -> Iterator[Session]:
        """A read-write transaction, committed on success and rolled back on error."""
        with self._write() as session, session.begin():
            yield session

    def transact(self, work: Callable[[Session], T]) -> T:
        """Run `work` in a read-write transaction, again from scratch if the database aborted it as a
        deadlock victim; `work` must therefore have no effects outside the session."""
        attempt = 1
        while True:
            try:
                with self.session() as session:
                    return work(session)
            except DBAPIError as error:
                if attempt == TRANSACTION_ATTEMPTS or getattr(error.orig, "sqlstate", None) not in RETRYABLE_SQLSTATES:
                    raise
                attempt += 1

    @contextmanager
    def read_session(self) -> Iterator[Session]:
        """A read-only transaction that never waits for SQLite's write lock."""
        with self._read() as session, session.begin():
            yield session

    def ping(self) -> None:
        """Raise when the database cannot answer a trivial query."""
        with self._reader.connect() as connection:
            connection.exec_driver_sql("SELECT 1")

    def dispose(self) -> None:
        self.engine.dispose()
