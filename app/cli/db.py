"""`nasscore db upgrade|current`: apply or inspect the Alembic migrations (the only source of the schema)."""

import argparse

from app.cli._common import add_settings_arguments, fail, settings_from_args

DATABASE_SETTINGS = ("home", "database_url")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("db", help="database migrations", description="Manage the database schema.")
    actions = parser.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    upgrade = actions.add_parser("upgrade", help="apply migrations (idempotent)")
    upgrade.add_argument("--revision", default="head", help="target revision")
    add_settings_arguments(upgrade, DATABASE_SETTINGS)
    upgrade.set_defaults(handler=_upgrade)
    current = actions.add_parser("current", help="print the database's revision and the latest one")
    add_settings_arguments(current, DATABASE_SETTINGS)
    current.set_defaults(handler=_current)


def _upgrade(args: argparse.Namespace) -> int:
    from sqlalchemy.exc import OperationalError

    from app.db.migrations import upgrade

    url = settings_from_args(args).resolved_database_url
    try:
        upgrade(url, args.revision)
    except OperationalError as error:
        return _unreachable(url, error)
    print(f"database at {_safe(url)} upgraded to {args.revision}")
    return 0


def _current(args: argparse.Namespace) -> int:
    from sqlalchemy.exc import OperationalError

    from app.db import Database
    from app.db.migrations import current_revision, head_revision

    database = Database(settings_from_args(args).resolved_database_url)
    try:
        print(f"current: {current_revision(database.engine) or 'none'}  latest: {head_revision()}")
    except OperationalError as error:
        return _unreachable(database.url, error)
    finally:
        database.dispose()
    return 0


def _unreachable(url: str, error: Exception) -> int:
    """An unreachable or unopenable database is the user's to fix: one line, not a traceback."""
    reason = str(getattr(error, "orig", None) or error).splitlines()[0]
    return fail(f"cannot open the database at {_safe(url)}: {reason}")


def _safe(url: str) -> str:
    """The URL without its password, for printing."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
