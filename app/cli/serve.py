"""`nasscore serve`: the HTTP API with its local worker pool (uvicorn)."""

import argparse

from app.cli._common import add_settings_arguments, fail, settings_from_args


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "serve",
        help="run the scoring service (HTTP API + worker pool)",
        description="Run the scoring service. Every setting can also come from a NASSCORE_* environment "
        "variable. The embedded SQLite database is created and upgraded at start-up; a PostgreSQL database "
        "is upgraded explicitly with `nasscore db upgrade`. Writes need an API key (`nasscore keys`) whenever "
        "--host is not a loopback address, unless --auth says otherwise; the start-up log says which applies.",
    )
    add_settings_arguments(parser)
    parser.set_defaults(handler=_serve)


def _serve(args: argparse.Namespace) -> int:
    import logging

    import uvicorn

    from app.api.app import create_app
    from app.db import Database
    from app.db.migrations import require_current
    from app.workers.local import plan_devices
    from app.workers.ray_executor import RayUnavailable, require_ray

    settings = settings_from_args(args)
    logging.basicConfig(level=settings.log_level.upper(), format="%(levelname)s:     %(name)s: %(message)s")
    try:
        if settings.executor == "local":  # a Ray cluster's GPUs are counted when the executor joins it
            plan_devices(settings.device, settings.workers, settings.workers_per_gpu)
        else:
            require_ray()
    except ValueError as error:
        return fail(f"--device: {error}")
    except RayUnavailable as error:
        return fail(str(error))
    database = Database(settings.resolved_database_url)
    try:
        if not database.is_sqlite:
            require_current(database.engine)
    except RuntimeError as error:
        return fail(str(error))
    finally:
        database.dispose()
    uvicorn.run(create_app(settings), host=settings.host, port=settings.port, log_level=settings.log_level)
    return 0
