"""`nasscore keys create|list|revoke|hash`: the API keys clients send as `Authorization: Bearer <token>`.
They live in the database the server reads, so these commands work on it directly (no server, no key
needed): whoever can open the database already controls the service. `keys hash` makes the token of a first
admin key for a container without a shell: the server accepts it through NASSCORE_ADMIN_KEY_SHA256."""

import argparse
import functools
import sys
from collections.abc import Callable
from datetime import datetime
from typing import TYPE_CHECKING, TypeVar

from app.cli._common import (
    API_KEY_VARIABLE,
    Handler,
    add_settings_arguments,
    fail,
    format_table,
    settings_from_args,
)

if TYPE_CHECKING:  # imported where used at run time, to keep the CLI's start-up light
    from app.db import Database

T = TypeVar("T")

DATABASE_SETTINGS = ("home", "database_url")
SCOPES = ("read", "write", "admin")
TIME_FORMAT = "%Y-%m-%d %H:%M:%S UTC"


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "keys",
        help="create, list or revoke API keys",
        description="Manage the API keys of the service's database. A key has one scope: read (reports, when "
        "the server runs with --auth-reads), write (score, start and cancel its own batches, post "
        "observations) or admin (everything, e.g. cancel any batch). Tokens are stored only as their SHA-256.",
    )
    actions = parser.add_subparsers(dest="keys_command", required=True, metavar="ACTION")

    create = actions.add_parser(
        "create",
        help="create a key and print its token (shown only this once)",
        description="Create a key and print its token on stdout (the notice goes to stderr, so "
        "`TOKEN=$(nasscore keys create ...)` captures only the token). Names are never reused.",
    )
    create.add_argument("--name", required=True, help="who the key is for, e.g. alice or ci (1-64 characters)")
    create.add_argument("--scope", required=True, choices=SCOPES, help="what the key may do")
    add_settings_arguments(create, DATABASE_SETTINGS)
    create.set_defaults(handler=_reporting(_create))

    listing = actions.add_parser("list", help="every key: name, scope, token prefix, created, revoked")
    add_settings_arguments(listing, DATABASE_SETTINGS)
    listing.set_defaults(handler=_reporting(_list))

    revoke = actions.add_parser("revoke", help="revoke a key: its requests answer 401 from now on")
    revoke.add_argument("name", help="the key's name")
    add_settings_arguments(revoke, DATABASE_SETTINGS)
    revoke.set_defaults(handler=_reporting(_revoke))

    hashing = actions.add_parser(
        "hash",
        help="the SHA-256 of a token (from stdin), for NASSCORE_ADMIN_KEY_SHA256",
        description="Print the SHA-256 of the token read from stdin, or with --new make a token and print it "
        "with its SHA-256. A server started with NASSCORE_ADMIN_KEY_SHA256=<that hash> accepts the token as an "
        "admin key without any database row: the first key of a container. Needs no database.",
    )
    hashing.add_argument("--new", action="store_true", help="make a new random token instead of reading one")
    hashing.set_defaults(handler=_hash)


def _create(args: argparse.Namespace) -> int:
    from app.services.keys import Scope, create_key

    new = _on_database(args, lambda database: create_key(database, args.name, Scope.parse(args.scope)))
    print(new.token)
    print(
        f"created key {new.name!r} (scope {new.scope.label}); its token above is shown only now: give it to the "
        f"client, which sends it as `Authorization: Bearer <token>` (the nasscore CLI reads {API_KEY_VARIABLE})",
        file=sys.stderr,
    )
    return 0


def _list(args: argparse.Namespace) -> int:
    from app.services.keys import list_keys

    def rows(database: "Database") -> list[list[str]]:
        with database.read_session() as session:
            return [
                [
                    key.name,
                    key.scope,
                    f"{key.prefix}...",
                    _time(key.created_at),
                    _time(key.revoked_at),
                ]
                for key in list_keys(session)
            ]

    table = _on_database(args, rows)
    if not table:
        print("no keys (create one with `nasscore keys create --name NAME --scope read|write|admin`)")
        return 0
    headers = ["name", "scope", "prefix", "created", "revoked"]
    print(format_table(headers, table, left=headers))
    return 0


def _revoke(args: argparse.Namespace) -> int:
    from app.services.keys import revoke_key

    key = _on_database(args, lambda database: revoke_key(database, args.name))
    print(f"key {key.name!r} revoked at {_time(key.revoked_at)}: its requests now answer 401")
    return 0


def _hash(args: argparse.Namespace) -> int:
    from app.services.keys import new_token, token_sha256

    if args.new:
        token = new_token()
        print(f"token:  {token}")
        print(f"sha256: {token_sha256(token)}")
        print(
            f"the token is shown only now: start the server with NASSCORE_ADMIN_KEY_SHA256=<sha256> and give the "
            f"token to the administrator ({API_KEY_VARIABLE} for the nasscore CLI)",
            file=sys.stderr,
        )
        return 0
    token = sys.stdin.readline().strip()
    if not token:
        return fail("no token on stdin (pipe one in, or use --new to make one)")
    print(token_sha256(token))
    return 0


def _time(moment: datetime | None) -> str:
    return "-" if moment is None else moment.strftime(TIME_FORMAT)


class DatabaseProblem(Exception):
    """The database cannot be opened or is not migrated; already phrased for the user."""


def _reporting(handler: Handler) -> Handler:
    """A command whose client errors (a taken name, an unknown key, no database) end as one line."""

    @functools.wraps(handler)
    def run(args: argparse.Namespace) -> int:
        from app.services.errors import ServiceError

        try:
            return handler(args)
        except (ServiceError, DatabaseProblem) as error:
            return fail(str(error))

    return run


def _on_database(args: argparse.Namespace, action: Callable[["Database"], T]) -> T:
    """`action(database)` on the configured database; the embedded SQLite one is created or upgraded first,
    as `nasscore serve` does, so a first key can be made before the server ever ran."""
    from sqlalchemy.exc import OperationalError

    from app.db import Database
    from app.db.migrations import require_current, upgrade
    from app.runtime import display_url

    database = Database(settings_from_args(args).resolved_database_url)
    try:
        if database.is_sqlite:
            upgrade(database.url)
        try:
            require_current(database.engine)
        except RuntimeError as error:  # an old PostgreSQL schema: the message names `nasscore db upgrade`
            raise DatabaseProblem(str(error)) from None
        return action(database)
    except OperationalError as error:
        reason = str(getattr(error, "orig", None) or error).splitlines()[0]
        raise DatabaseProblem(f"cannot open the database at {display_url(database.url)}: {reason}") from None
    finally:
        database.dispose()
