"""`nasscore batch SPACE (--all | --sample N --seed S | --file ARCHS.txt)`: score many architectures with a
live progress bar. Locally (default) the command runs the worker pool itself against the local database;
with `--server URL` it submits to a running service and watches. Either way the batch lives in the
database, so Ctrl-C loses nothing and re-running the same command resumes the same unfinished batch."""

import argparse
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from app.cli._common import (
    EXIT_INTERRUPTED,
    NameList,
    add_settings_arguments,
    fail,
    server_client,
    settings_from_args,
    stops_cleanly,
)

if TYPE_CHECKING:
    from app.client.batches import BatchCounts

LOCAL_SETTINGS = ("home", "database_url", "data_dir", "workers", "device", "lease_seconds")
CONFIG_FLAGS = ("batch_size", "sampling", "data")
DEDICATED_OPTIONS = ("channels", "cells_per_stage")  # network options with flags of their own (NB201's)


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser(
        "batch",
        help="score many architectures (resumable, with a progress bar)",
        description="Score many architectures with a live progress bar (done/total, rate, ETA). Runs the "
        "worker pool locally against the local database, or submits to a running service with --server. "
        "Ctrl-C (or SIGTERM) is safe: re-running the same command resumes the same unfinished batch.",
    )
    parser.add_argument("space", help="search space, e.g. nb201")
    selection = parser.add_mutually_exclusive_group(required=True)
    selection.add_argument("--all", action="store_true", help="every architecture of the space")
    selection.add_argument("--sample", type=int, metavar="N", help="N distinct architectures drawn with --seed")
    selection.add_argument("--file", type=Path, metavar="ARCHS.txt", help="one architecture per line (# comments)")
    parser.add_argument("--seed", type=int, default=0, help="seed of --sample (default: 0)")
    parser.add_argument("--dataset", default="cifar10", help="dataset the calibration batch comes from")
    parser.add_argument(
        "--data",
        metavar="PATH|synthetic",
        help="calibration data: a CIFAR directory or .npz (local runs only; its batch is stored in the database, "
        "so a server on the same database can score it too), or 'synthetic'; default: the dataset's data in "
        "the database (`nasscore data list`)",
    )
    parser.add_argument(
        "--proxies",
        action=NameList,
        metavar="PROXY",
        help="proxies to score, e.g. snip,grasp,synflow (default: snip, grasp, synflow and the default vote's voters)",
    )
    parser.add_argument("--batch-size", type=int, default=64, help="calibration batch size (default: 64)")
    parser.add_argument(
        "--sampling",
        choices=("random", "grasp"),
        default="random",
        help="random: a seeded batch; grasp: k images per class",
    )
    parser.add_argument("--config-seed", type=int, default=0, help="seed of the calibration batch and model init")
    parser.add_argument("--channels", type=int, help="network option `channels` (NB201: model width C; default: 16)")
    parser.add_argument(
        "--cells-per-stage", type=int, help="network option `cells_per_stage` (NB201: cells per stage N; default: 5)"
    )
    parser.add_argument(
        "--model-option",
        action="append",
        metavar="NAME=VALUE",
        help="any other network option of the space (repeatable); default: the space's",
    )
    parser.add_argument("--server", metavar="URL", help="submit to a running service instead (default: score locally)")
    parser.add_argument(
        "--no-resume", action="store_true", help="start a new batch even if an identical one is unfinished"
    )
    add_settings_arguments(parser, LOCAL_SETTINGS)
    parser.set_defaults(handler=stops_cleanly(_batch))


def _batch(args: argparse.Namespace) -> int:
    from pydantic import ValidationError

    from app.services.configs import ConfigIn
    from app.services.errors import ServiceError

    try:
        config = ConfigIn.model_validate(
            {
                "batch_size": args.batch_size,
                "sampling": args.sampling,
                "seed": args.config_seed,
                "data": "synthetic" if args.data == "synthetic" else "real",
                **_model_options(args),
            }
        )
        archs = _read_file(args.file, args.space) if args.file else None
        if args.server:
            return _remote(args, config, archs)
        return _local(args, config, archs)
    except ValidationError as error:
        return fail("; ".join(f"{_flag(e['loc'][0])}: {e['msg']}" for e in error.errors()))
    except ServiceError as error:
        if error.field.startswith("config."):
            return fail(f"{_flag(error.field.removeprefix('config.'))}: {error.message}")
        return fail(str(error))


def _model_options(args: argparse.Namespace) -> dict[str, int]:
    """The network options given: --channels, --cells-per-stage and each --model-option NAME=VALUE."""
    from app.services.errors import InvalidInput

    options = {name: getattr(args, name) for name in DEDICATED_OPTIONS if getattr(args, name) is not None}
    for given in args.model_option or ():
        name, _, value = given.partition("=")
        try:
            options[name.strip()] = int(value)
        except ValueError:
            raise InvalidInput("--model-option", f"expected NAME=INTEGER, got {given!r}") from None
    return options


def _flag(config_field: object) -> str:
    """The command-line flag that sets a configuration field."""
    if config_field == "seed":
        return "--config-seed"
    if config_field in CONFIG_FLAGS or config_field in DEDICATED_OPTIONS:
        return f"--{str(config_field).replace('_', '-')}"
    return f"--model-option {config_field}"


def _read_file(path: Path, space: str) -> list[str]:
    """Normalised architectures, one per non-blank, non-comment line; errors name `file:line`."""
    from app.services.errors import InvalidInput
    from app.services.spaces import lookup_space, normalise

    try:
        lines = path.read_text().splitlines()
    except OSError as error:
        raise InvalidInput("--file", f"cannot read {path}: {error.strerror}") from None
    searched = lookup_space(space)
    archs = [
        normalise(searched, line.strip(), f"{path.name}:{number}")
        for number, line in enumerate(lines, start=1)
        if line.strip() and not line.strip().startswith("#")
    ]
    if not archs:
        raise InvalidInput("--file", f"{path} lists no architectures")
    return archs


def _local(args: argparse.Namespace, config: Any, archs: list[str] | None) -> int:
    from app.client.batches import follow
    from app.runtime import Runtime

    settings = settings_from_args(args)
    runtime = Runtime(settings)
    runtime.prepare()
    job_id, resumed = _create_local_job(runtime, args, config, archs)
    print(f"batch {job_id} ({'resumed' if resumed else 'new'}) on the local database; Ctrl-C stops, re-run resumes")
    runtime.start_workers()
    try:
        final = follow(f"batch {job_id}", lambda: _local_state(runtime, job_id), progress=True)
    except KeyboardInterrupt:
        print(f"\ninterrupted: batch {job_id} is saved; run the same command again to resume it")
        return EXIT_INTERRUPTED
    finally:
        runtime.stop()
    return _summary(final)


def _create_local_job(runtime: Any, args: argparse.Namespace, config: Any, archs: list[str] | None) -> tuple[int, bool]:
    from app.services.batches import ArchitectureSelection, BatchFields, BatchSpec, create_batch
    from app.services.calibration import read_operator_images

    images = None if args.data in (None, "synthetic") else read_operator_images(args.dataset, Path(args.data), "--data")
    selection = ArchitectureSelection(archs=archs, sample=args.sample, seed=args.seed, all=args.all)
    spec = BatchSpec(
        space=args.space,
        dataset=args.dataset,
        proxies=args.proxies,
        options=config.options(),
        selection=selection,
        resume=not args.no_resume,
        images=images,
    )
    state = create_batch(runtime, spec, fields=BatchFields(proxies="--proxies", archs="--file", sample="--sample"))
    return state.job.id, state.resumed


@dataclass(frozen=True)
class LocalState:
    """A local batch's progress, as the progress bar and the summary read it (a server's is its BatchOut)."""

    status: str
    total: int
    done: int
    failed: int
    cancelled: int


def _local_state(runtime: Any, job_id: int) -> LocalState:
    from app.services import jobs

    with runtime.database.read_session() as session:
        job = jobs.get_job(session, job_id)
        progress = jobs.job_progress(session, job)
        return LocalState(job.status, progress.total, progress.done, progress.failed, progress.cancelled)


def _remote(args: argparse.Namespace, config: Any, archs: list[str] | None) -> int:
    from app.client import NasscoreError

    if args.data not in (None, "synthetic"):
        return fail("--data PATH only works locally: a server scores with its operator's data (or 'synthetic')")
    with server_client(args.server, timeout=120) as client:
        try:
            batch = client.batch(
                archs,
                sample=args.sample,
                seed=args.seed,
                all_archs=args.all,
                space=args.space,
                dataset=args.dataset,
                proxies=args.proxies,
                config=config,
                resume=not args.no_resume,
            )
        except NasscoreError as error:
            return fail(str(error))
        print(f"batch {batch.id} ({'resumed' if batch.state.resumed else 'new'}) on {args.server}")
        try:
            final = batch.wait(progress=True)
        except NasscoreError as error:
            return fail(str(error))
        except KeyboardInterrupt:
            print(f"\nstopped watching; batch {batch.id} keeps running on the server (re-run to watch again)")
            return EXIT_INTERRUPTED
    return _summary(final)


def _summary(state: "BatchCounts") -> int:
    counts = f"{state.done} scored, {state.failed} failed, {state.cancelled} cancelled of {state.total}"
    print(f"{state.status}: {counts}")
    return 0 if state.status == "done" else 1
