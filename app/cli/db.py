"""`nasscore db upgrade|current`: apply or inspect the Alembic migrations (the only source of the schema)."""

import argparse

from app.cli._common import add_settings_arguments, settings_from_args

DATABASE_SETTINGS = ("home", "database_url")


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("db", help="database migrations", description="Manage the database schema.")
    actions = parser.add_subparsers(dest="db_command", required=True, metavar="ACTION")
    upgrade = actions.add_parser("upgrade", help="apply migrations (idempotent)")
    upgrade.add_argument("--revision", default="head", help="target revision (default: head)")
    add_settings_arguments(upgrade, DATABASE_SETTINGS)
    upgrade.set_defaults(handler=_upgrade)
    current = actions.add_parser("current", help="print the database's revision and the latest one")
    add_settings_arguments(current, DATABASE_SETTINGS)
    current.set_defaults(handler=_current)


def _upgrade(args: argparse.Namespace) -> int:
    from app.db.migrations import upgrade

    settings = settings_from_args(args)
    upgrade(settings.resolved_database_url, args.revision)
    print(f"database at {_safe(settings.resolved_database_url)} upgraded to {args.revision}")
    return 0


def _current(args: argparse.Namespace) -> int:
    from app.db import Database
    from app.db.migrations import current_revision, head_revision

    database = Database(settings_from_args(args).resolved_database_url)
    try:
        print(f"current: {current_revision(database.engine) or 'none'}  latest: {head_revision()}")
    finally:
        database.dispose()
    return 0


def _safe(url: str) -> str:
    """The URL without its password, for printing."""
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)
