"""Writes that behave the same on SQLite and PostgreSQL: idempotent bulk inserts (both speak
`INSERT ... ON CONFLICT`, so a retried or concurrent write either lands once or is a no-op; rows go
through one cached statement executed for many parameter sets), and conditional updates that report how
many rows they changed."""

from collections.abc import Mapping, Sequence
from typing import Any, cast

from sqlalchemy import ColumnElement, CursorResult, Executable, Table
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session


def _insert_for(session: Session, table: Table) -> Any:
    dialect = session.get_bind().dialect.name
    if dialect == "postgresql":
        return postgresql.insert(table)
    if dialect == "sqlite":
        return sqlite.insert(table)
    raise NotImplementedError(f"idempotent inserts are not implemented for the {dialect} dialect")


def insert_ignore(session: Session, table: Table, rows: Sequence[Mapping[str, Any]], unique: Sequence[str]) -> int:
    """Insert rows, silently skipping those that collide on the `unique` columns; returns how many were
    inserted, or -1 where the driver cannot tell."""
    if not rows:
        return 0
    statement = _insert_for(session, table).on_conflict_do_nothing(index_elements=unique)
    return cast(CursorResult[Any], session.execute(statement, list(rows))).rowcount


def increment(session: Session, table: Table, keys: Sequence[Mapping[str, Any]], counter: str) -> None:
    """Add one to the `counter` column of each row named by `keys` (its primary key), creating a missing
    row at 1: concurrent writers each add their own one."""
    if not keys:
        return
    unique = [column.name for column in table.primary_key.columns]
    statement = _insert_for(session, table)
    statement = statement.on_conflict_do_update(index_elements=unique, set_={counter: table.c[counter] + 1})
    session.execute(statement, [{**key, counter: 1} for key in keys])


def upsert(
    session: Session,
    table: Table,
    rows: Sequence[Mapping[str, Any]],
    unique: Sequence[str],
    update: Sequence[str],
    where: ColumnElement[bool] | None = None,
) -> None:
    """Insert rows; where one collides on `unique`, overwrite its `update` columns (the newest write wins),
    only if the stored row satisfies `where` when given (else the stored row is kept)."""
    if not rows:
        return
    statement = _insert_for(session, table)
    statement = statement.on_conflict_do_update(
        index_elements=unique, set_={column: statement.excluded[column] for column in update}, where=where
    )
    session.execute(statement, list(rows))


def rows_changed(session: Session, statement: Executable) -> int:
    """Execute an UPDATE or DELETE and return how many rows it changed (0 where the driver cannot tell)."""
    result = cast(CursorResult[Any], session.execute(statement))
    return max(result.rowcount, 0)
