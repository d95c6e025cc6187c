"""Programmatic Alembic: `nasscore db upgrade`, the server's start-up check and the tests all go through
here, so the schema only ever comes from the migration scripts.

The scripts ship inside the package as `app/db/migration_scripts` (package data; in a checkout it is a link
to the repository's top-level `alembic/` folder), and the configuration is built here rather than read
from `alembic.ini`, so a wheel install migrates as well as an editable one. `alembic.ini` remains for
developers running `alembic` from the repository root."""

from pathlib import Path

from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Engine

from alembic import command

SCRIPT_LOCATION = Path(__file__).with_name("migration_scripts")


def alembic_config(database_url: str) -> Config:
    config = Config()
    # Config values are interpolated: a literal % in the path must be doubled.
    config.set_main_option("script_location", str(SCRIPT_LOCATION).replace("%", "%%"))
    config.attributes["database_url"] = database_url
    return config


def upgrade(database_url: str, revision: str = "head") -> None:
    """Apply migrations up to `revision` (idempotent)."""
    command.upgrade(alembic_config(database_url), revision)


def downgrade(database_url: str, revision: str) -> None:
    command.downgrade(alembic_config(database_url), revision)


def head_revision() -> str:
    heads = ScriptDirectory.from_config(alembic_config("")).get_heads()
    if len(heads) != 1:
        raise RuntimeError(f"expected one Alembic head, found {heads}")
    return heads[0]


def current_revision(engine: Engine) -> str | None:
    with engine.connect() as connection:
        return MigrationContext.configure(connection).get_current_revision()


def require_current(engine: Engine) -> None:
    """Refuse to run against a database whose schema is not at the latest migration."""
    current, head = current_revision(engine), head_revision()
    if current != head:
        raise RuntimeError(
            f"database schema is at revision {current or 'none'}, expected {head}: run `nasscore db upgrade`"
        )
