"""`nasscore leaderboard`: the leaderboard as an aligned table, read from the local database (default) or
asked of a running service with `--server URL`; both print the same answer, the API's JSON."""

import argparse
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from app.cli._common import (
    NameList,
    add_settings_arguments,
    fail,
    format_table,
    number,
    server_client,
    settings_from_args,
)

if TYPE_CHECKING:
    from app.client import Client

LOCAL_SETTINGS = ("home", "database_url")
FINGERPRINT_SHOWN = 12
UNIT_NAMES = {"class": "isomorphism classes", "cell": "cells"}


class CommandError(Exception):
    """A problem already phrased for the user (unreachable server, refused request, old schema)."""


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "leaderboard",
        help="rank a scored population by the rank vote or by one proxy",
        description="Rank all architectures scored under one configuration by the rank vote (or one proxy) and "
        "print them as a table with every proxy score, the vote, its rank and the observed accuracy: one row per "
        "isomorphism class (its lowest-id member, its member count, their mean accuracy) unless --expand cells.",
    )
    add_population_arguments(parser)
    parser.add_argument("--rank-by", default="vote", help="'vote' or a proxy name")
    parser.add_argument(
        "--expand", metavar="cells", help="'cells': list every cell (default: one row per isomorphism class)"
    )
    parser.add_argument("--limit", type=int, default=20, help="rows to print, at most 1000")
    parser.add_argument("--offset", type=int, default=0, help="rows to skip")
    parser.set_defaults(handler=_leaderboard)


def add_population_arguments(parser: argparse.ArgumentParser) -> None:
    """Flags that pick the population and the vote, shared with `nasscore correlate`."""
    parser.add_argument("--space", default="nb201", help="search space")
    parser.add_argument("--dataset", default="cifar10", help="dataset of the scores and accuracies")
    voters = parser.add_mutually_exclusive_group()
    voters.add_argument(
        "--preset", help="vote preset, see `nasscore presets` (default: best where scored, else mission)"
    )
    voters.add_argument(
        "--proxies",
        action=NameList,
        metavar="PROXY",
        help="voting proxies instead of a preset, e.g. meco,nwot (default: the preset's voters)",
    )
    parser.add_argument(
        "--method", help="mean_rank, log_rank or majority (default: the preset's; mean_rank for --proxies)"
    )
    parser.add_argument("--config", metavar="FINGERPRINT", help="configuration (default: the one with most scores)")
    parser.add_argument("--metric", default="test_accuracy", help="observation metric")
    parser.add_argument(
        "--server", metavar="URL", help="ask a running service instead (default: read the local database)"
    )
    add_settings_arguments(parser, LOCAL_SETTINGS)


def population_params(args: argparse.Namespace) -> dict[str, Any]:
    """The population and vote flags as the arguments of the client's reports (`Client.leaderboard`, ...)."""
    return {
        "space": args.space,
        "dataset": args.dataset,
        "metric": args.metric,
        "config": args.config,
        "preset": args.preset,
        "method": args.method,
        "proxies": args.proxies,
    }


def query_fields(args: argparse.Namespace) -> dict[str, Any]:
    """The population and vote fields of the services' LeaderboardQuery and ReportQuery."""
    from app.services.votes import VoteRequest

    vote = VoteRequest(proxies=args.proxies, preset=args.preset, method=args.method)
    return {"space": args.space, "dataset": args.dataset, "config": args.config, "metric": args.metric, "vote": vote}


def vote_line(vote: dict[str, Any]) -> str:
    """`vote: preset best (log_rank) over az_expressivity, ...` as printed above a table."""
    source = f"preset {vote['preset']}" if vote["preset"] else "custom"
    return f"vote: {source} ({vote['method']}) over {', '.join(vote['voters'])}"


def fetch(args: argparse.Namespace, remote: Callable[["Client"], Any], local: Callable[[Any], Any]) -> Any:
    """`remote(client)` asked of `--server`, else `local(session)` on the local database."""
    if args.server:
        return _ask_server(args.server, remote)
    from app.db import Database
    from app.db.migrations import require_current

    database = Database(settings_from_args(args).resolved_database_url)
    try:
        try:
            require_current(database.engine)
        except RuntimeError as error:
            raise CommandError(str(error)) from None
        with database.read_session() as session:
            return local(session)
    finally:
        database.dispose()


def run_reporting(command: Callable[[], int]) -> int:
    """Run a report command, turning a client error into a one-line message and exit status 1."""
    from app.services.errors import ServiceError

    try:
        return command()
    except (ServiceError, CommandError) as error:
        return fail(str(error))


def population_lines(population: dict[str, Any]) -> list[str]:
    """Which space, dataset, configuration and how many architectures a report covers."""
    config = population["configuration"]
    how = "as requested" if population["selected_by"] == "request" else "the one with the most scores"
    lines = [
        f"{population['space']} on {population['dataset']}: configuration {config['fingerprint'][:FINGERPRINT_SHOWN]} "
        f"({how}): {population['size']:,} architectures in {population['classes']:,} isomorphism classes, "
        f"{population['scores']:,} scores of "
        f"{', '.join(population['proxies'])}",
        f"  data {config['data_source']}, batch {config['batch_size']} ({config['sampling']}), seed {config['seed']}, "
        f"model {config['model']}",
    ]
    for other in population["alternatives"]:
        lines.append(
            f"  also scored: configuration {other['fingerprint'][:FINGERPRINT_SHOWN]} "
            f"({other['architectures']:,} architectures, {other['scores']:,} scores)"
        )
    return lines


def _leaderboard(args: argparse.Namespace) -> int:
    return run_reporting(lambda: _print_leaderboard(args))


def _print_leaderboard(args: argparse.Namespace) -> int:
    params = population_params(args) | {
        "rank_by": args.rank_by,
        "limit": args.limit,
        "offset": args.offset,
        "expand": args.expand,
    }
    board = fetch(
        args,
        lambda client: client.leaderboard(**params).model_dump(mode="json"),
        lambda session: _local_leaderboard(session, args),
    )
    print("\n".join(population_lines(board["population"])))
    first = board["offset"] + 1
    last = board["offset"] + len(board["items"])
    print(
        f"{vote_line(board['vote'])}; ranked by {board['rank_by']}; "
        f"rows {first}-{last} of {board['total']:,} {UNIT_NAMES[board['unit']]}"
    )
    print(format_table(*_leaderboard_table(board), left=("arch",)))
    return 0


def _local_leaderboard(session: Any, args: argparse.Namespace) -> dict[str, Any]:
    from app.api.views import leaderboard_out
    from app.services.errors import InvalidInput
    from app.services.leaderboard import LeaderboardQuery, leaderboard

    if not 1 <= args.limit <= 1000 or args.offset < 0:
        raise InvalidInput("--limit", "must be between 1 and 1000 (and --offset at least 0)")
    query = LeaderboardQuery(
        **query_fields(args), rank_by=args.rank_by, limit=args.limit, offset=args.offset, expand=args.expand
    )
    return leaderboard_out(leaderboard(session, query)).model_dump(mode="json")


def _leaderboard_table(board: dict[str, Any]) -> tuple[list[str], list[list[str]]]:
    proxies = board["population"]["proxies"]
    headers = ["rank", "vote_rank", "vote", "percentile", *proxies, "accuracy", "members", "id", "arch"]
    rows = [
        [
            number(item["rank"], "d"),
            number(item["vote_rank"], "d"),
            number(item["vote"], ".4f"),
            number(item["percentile"], ".4f"),
            *(number(item["scores"].get(proxy), ".4g") for proxy in proxies),
            number(item["accuracy"], ".2f"),
            str(item["members"]),
            str(item["id"]),
            item["arch"],
        ]
        for item in board["items"]
    ]
    return headers, rows


def _ask_server(server: str, remote: Callable[["Client"], Any]) -> Any:
    from app.client import NasscoreError

    try:
        with server_client(server, timeout=300) as client:
            return remote(client)
    except NasscoreError as error:
        raise CommandError(str(error)) from None
