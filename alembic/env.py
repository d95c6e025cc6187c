"""Alembic environment: the URL comes from the caller (`nasscore db upgrade` passes it as an attribute)
or from the nasscore settings, so one configuration drives the service and its migrations."""

from sqlalchemy import Connection

from alembic import context
from app.db.engine import make_engine
from app.db.models import Base
from app.settings import Settings

target_metadata = Base.metadata


def _database_url() -> str:
    return context.config.attributes.get("database_url") or Settings().resolved_database_url


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        compare_type=True,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_offline() -> None:
    context.configure(url=_database_url(), target_metadata=target_metadata, literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def run_migrations_online() -> None:
    engine = make_engine(_database_url())
    try:
        with engine.connect() as connection:
            _run(connection)
            connection.commit()
    finally:
        engine.dispose()


if context.is_offline_mode():
    run_migrations_offline()
else:
    run_migrations_online()
