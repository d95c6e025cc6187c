"""`nasscore observations import FILE.csv`: load observed accuracies (e.g. the NAS-Bench-201 table) into
the local database in one transaction, or POST them to a running service with `--server URL`;
`nasscore observations delete --source NAME`: remove one source's observations from the local database."""

import argparse
import time
from pathlib import Path
from typing import TYPE_CHECKING

from app.cli._common import add_settings_arguments, fail, server_client, settings_from_args

if TYPE_CHECKING:
    from app.client.observations import CsvColumns


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


def _import(args: argparse.Namespace) -> int:
    from app.client import NasscoreError
    from app.services.errors import ServiceError

    started = time.perf_counter()
    try:
        count = _post(args) if args.server else _store_locally(args)
    except (ServiceError, NasscoreError) as error:
        return fail(str(error))
    print(f"imported {count} observations from {args.file} in {time.perf_counter() - started:.1f} s")
    return 0


def _columns(args: argparse.Namespace) -> "CsvColumns":
    from app.client.observations import CsvColumns

    return CsvColumns(
        dataset=args.dataset,
        accuracy=args.acc_col,
        arch=args.arch_col,
        index=args.index_col,
        space=args.space,
        metric=args.metric,
        epochs=args.epochs,
        source=args.source,
    )


def _store_locally(args: argparse.Namespace) -> int:
    """The file's rows (read as a server import reads them) in one transaction on the local database."""
    from app.client import NasscoreError
    from app.client.observations import read_observations_csv
    from app.db import Database
    from app.db.migrations import require_current
    from app.services.observations import ObservationInput, record_observations

    rows = read_observations_csv(args.file, _columns(args))
    settings = settings_from_args(args)
    database = Database(settings.resolved_database_url)
    try:
        try:
            require_current(database.engine)
        except RuntimeError as error:
            raise NasscoreError(str(error)) from None
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


def _post(args: argparse.Namespace) -> int:
    with server_client(args.server, timeout=300) as client:
        stored = client.observations.import_csv(
            args.file,
            args.dataset,
            args.acc_col,
            arch_column=args.arch_col,
            index_column=args.index_col,
            space=args.space,
            metric=args.metric,
            epochs=args.epochs,
            source=args.source,
        )
    return stored.stored
