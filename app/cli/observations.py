"""`nasscore observations import FILE.csv`: load observed accuracies (e.g. the NAS-Bench-201 table) into
the local database in one transaction, or POST them to a running service with `--server URL`;
`nasscore observations delete --source NAME`: remove one source's observations from the local database."""

import argparse
import csv
import time
from pathlib import Path
from typing import Any

from app.cli._common import add_settings_arguments, fail, server_client, settings_from_args

REMOTE_CHUNK = 5_000


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("observations", help="observed accuracies", description="Manage observations.")
    actions = parser.add_subparsers(dest="observations_command", required=True, metavar="ACTION")
    load = actions.add_parser(
        "import",
        help="import a CSV of observed accuracies",
        description="Import observed accuracies from a CSV file; re-importing replaces the earlier values.",
    )
    load.add_argument("file", type=Path, metavar="FILE.csv")
    load.add_argument("--dataset", required=True, help="dataset the accuracies were measured on, e.g. cifar10")
    load.add_argument("--arch-col", default="arch", help="column with the architecture string")
    load.add_argument("--acc-col", required=True, help="column with the accuracy in percent")
    load.add_argument(
        "--index-col", help="column with the benchmark index, recorded on the architecture (default: none)"
    )
    load.add_argument("--space", default="nb201", help="search space")
    load.add_argument("--metric", default="test_accuracy", help="what the accuracy measures")
    load.add_argument("--epochs", type=int, help="training epochs behind the accuracy (default: not recorded)")
    load.add_argument(
        "--source", help="provenance label: reports choose one source's accuracies (default: the file name)"
    )
    load.add_argument("--server", metavar="URL", help="POST to a running service instead (default: the local database)")
    add_settings_arguments(load, ("home", "database_url", "extra_metrics"))
    load.set_defaults(handler=_import)
    remove = actions.add_parser(
        "delete",
        help="delete one source's observations",
        description="Delete every observation of one source (e.g. a mistaken import) from the local database, "
        "in one transaction; DELETE /v1/observations?source=NAME does the same on a server (admin key).",
    )
    remove.add_argument("--source", required=True, help="the source whose observations to delete")
    remove.add_argument("--dataset", help="only its observations on this dataset (default: every dataset)")
    remove.add_argument("--metric", help="only its observations of this metric (default: every metric)")
    add_settings_arguments(remove, ("home", "database_url"))
    remove.set_defaults(handler=_delete)


class ImportProblem(Exception):
    """A problem with the file or the destination, already phrased for the user."""


def _import(args: argparse.Namespace) -> int:
    from app.services.errors import ServiceError

    started = time.perf_counter()
    try:
        rows = _read_rows(args)
        count = _post(args.server, rows) if args.server else _store_locally(args, rows)
    except (ServiceError, ImportProblem) as error:
        return fail(str(error))
    print(f"imported {count} observations from {args.file} in {time.perf_counter() - started:.1f} s")
    return 0


def _read_rows(args: argparse.Namespace) -> list[dict[str, Any]]:
    """CSV rows as observation fields; errors name the file, line and column."""
    try:
        with args.file.open(newline="") as stream:
            reader = csv.DictReader(stream)
            header = reader.fieldnames or []
            missing = [c for c in (args.arch_col, args.acc_col, args.index_col) if c and c not in header]
            if missing:
                raise ImportProblem(f"{args.file} has no column {', '.join(missing)}; it has {', '.join(header)}")
            return [_row(args, line, record) for line, record in enumerate(reader, start=2)]
    except OSError as error:
        raise ImportProblem(f"cannot read {args.file}: {error.strerror}") from None


def _row(args: argparse.Namespace, line: int, record: dict[str, str]) -> dict[str, Any]:
    def number(column: str, kind: type) -> Any:
        try:
            return kind(record[column])
        except (TypeError, ValueError):
            problem = f"{args.file.name}:{line}: column {column}: {record[column]!r} is not a number"
            raise ImportProblem(problem) from None

    return {
        "space": args.space,
        "arch": record[args.arch_col],
        "dataset": args.dataset,
        "accuracy": number(args.acc_col, float),
        "metric": args.metric,
        "epochs": args.epochs,
        "source": args.source or args.file.name,
        "benchmark_index": number(args.index_col, int) if args.index_col else None,
    }


def _store_locally(args: argparse.Namespace, rows: list[dict[str, Any]]) -> int:
    from app.db import Database
    from app.db.migrations import require_current
    from app.services.observations import ObservationInput, record_observations

    settings = settings_from_args(args)
    database = Database(settings.resolved_database_url)
    try:
        try:
            require_current(database.engine)
        except RuntimeError as error:
            raise ImportProblem(str(error)) from None
        inputs = [ObservationInput(**{k: v for k, v in row.items() if k != "space"}) for row in rows]
        prefixes = [f"{args.file.name}:{line}" for line in range(2, len(rows) + 2)]
        with database.session() as session:
            return record_observations(session, args.space, inputs, prefixes, extra_metrics=settings.extra_metrics)
    finally:
        database.dispose()


def _delete(args: argparse.Namespace) -> int:
    from app.db import Database
    from app.db.migrations import require_current
    from app.services.errors import ServiceError
    from app.services.observations import delete_observations

    database = Database(settings_from_args(args).resolved_database_url)
    try:
        require_current(database.engine)
        deleted = delete_observations(database, args.source, args.dataset, args.metric)
    except (RuntimeError, ServiceError) as error:
        return fail(str(error))
    finally:
        database.dispose()
    print(f"deleted {deleted} observations of source {args.source!r}")
    return 0


def _post(server: str, rows: list[dict[str, Any]]) -> int:
    import httpx

    stored = 0
    with server_client(server, timeout=300) as client:
        for start in range(0, len(rows), REMOTE_CHUNK):
            try:
                response = client.post("/v1/observations", json=rows[start : start + REMOTE_CHUNK])
            except httpx.HTTPError as error:
                raise ImportProblem(f"cannot reach {server}: {error}") from None
            if response.status_code != 200:
                answer = f"server answered {response.status_code}: {response.text}"
                raise ImportProblem(f"rows from line {start + 2}: {answer}")
            stored += response.json()["stored"]
    return stored
