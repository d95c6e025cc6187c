"""`nasscore batch SPACE (--all | --sample N --seed S | --file ARCHS.txt)`: score many architectures with a
live progress bar. Locally (default) the command runs the worker pool itself against the local database;
with `--server URL` it submits to a running service and watches. Either way the batch lives in the
database, so Ctrl-C loses nothing and re-running the same command resumes the same unfinished batch."""

import argparse
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from app.cli._common import (
    EXIT_INTERRUPTED,
    NameList,
    add_settings_arguments,
    fail,
    server_client,
    settings_from_args,
    stops_cleanly,
)

LOCAL_SETTINGS = ("home", "database_url", "data_dir", "workers", "device", "lease_seconds")
POLL_SECONDS = 0.5
FINAL_STATUSES = ("done", "cancelled")


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
    parser.add_argument("--channels", type=int, default=16, help="model width C (default: 16)")
    parser.add_argument("--cells-per-stage", type=int, default=5, help="cells per stage N (default: 5)")
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
        config = ConfigIn(
            batch_size=args.batch_size,
            sampling=args.sampling,
            seed=args.config_seed,
            data="synthetic" if args.data == "synthetic" else "real",
            channels=args.channels,
            cells_per_stage=args.cells_per_stage,
        )
        archs = _read_file(args.file, args.space) if args.file else None
        if args.server:
            return _remote(args, config, archs)
        return _local(args, config, archs)
    except ValidationError as error:
        return fail("; ".join(f"{_flag(e['loc'][0])}: {e['msg']}" for e in error.errors()))
    except ServiceError as error:
        return fail(str(error))


def _flag(config_field: object) -> str:
    """The command-line flag that sets a configuration field."""
    return "--config-seed" if config_field == "seed" else f"--{str(config_field).replace('_', '-')}"


def _read_file(path: Path, space: str) -> list[str]:
    """Normalised architectures, one per non-blank, non-comment line; errors name `file:line`."""
    from app.services.errors import InvalidInput
    from app.services.spaces import normalise, space_module

    try:
        lines = path.read_text().splitlines()
    except OSError as error:
        raise InvalidInput("--file", f"cannot read {path}: {error.strerror}") from None
    module = space_module(space)
    archs = [
        normalise(module, line.strip(), f"{path.name}:{number}")
        for number, line in enumerate(lines, start=1)
        if line.strip() and not line.strip().startswith("#")
    ]
    if not archs:
        raise InvalidInput("--file", f"{path} lists no architectures")
    return archs


def _local(args: argparse.Namespace, config: Any, archs: list[str] | None) -> int:
    from app.runtime import Runtime

    settings = settings_from_args(args)
    runtime = Runtime(settings)
    runtime.prepare()
    job_id, resumed = _create_local_job(runtime, args, config, archs)
    print(f"batch {job_id} ({'resumed' if resumed else 'new'}) on the local database; Ctrl-C stops, re-run resumes")
    runtime.start_workers()
    try:
        final = _watch(job_id, lambda: _local_state(runtime, job_id))
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


def _local_state(runtime: Any, job_id: int) -> dict[str, Any]:
    from app.services import jobs

    with runtime.database.read_session() as session:
        job = jobs.get_job(session, job_id)
        progress = jobs.job_progress(session, job)
        return {"status": job.status, **vars(progress)}


def _remote(args: argparse.Namespace, config: Any, archs: list[str] | None) -> int:
    import httpx

    if args.data not in (None, "synthetic"):
        return fail("--data PATH only works locally: a server scores with its operator's data (or 'synthetic')")
    body: dict[str, Any] = {
        "space": args.space,
        "dataset": args.dataset,
        "proxies": args.proxies,
        "config": config.model_dump(),
        "resume": not args.no_resume,
    }
    if archs is not None:
        body["archs"] = archs
    elif args.all:
        body["all"] = True
    else:
        body["sample"] = {"n": args.sample, "seed": args.seed}
    with server_client(args.server, timeout=120) as client:
        try:
            created = _checked(client.post("/v1/batches", json=body))
            print(f"batch {created['id']} ({'resumed' if created['resumed'] else 'new'}) on {args.server}")
            final = _watch(created["id"], lambda: _checked(client.get(f"/v1/batches/{created['id']}")))
        except httpx.HTTPError as error:
            return fail(f"cannot reach {args.server}: {error}")
        except RemoteError as error:
            return fail(str(error))
        except KeyboardInterrupt:
            print(f"\nstopped watching; batch {created['id']} keeps running on the server (re-run to watch again)")
            return EXIT_INTERRUPTED
    return _summary(final)


class RemoteError(Exception):
    pass


def _checked(response: Any) -> dict[str, Any]:
    if response.status_code >= 400:
        try:
            detail = response.json().get("detail", response.text)
        except ValueError:
            detail = response.text
        raise RemoteError(f"server answered {response.status_code}: {detail}")
    return response.json()


def _watch(job_id: int, poll: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Show done/total, rate and ETA until the batch is finished; returns its final state."""
    from tqdm import tqdm

    state = poll()
    bar_options = {"unit": "cell", "desc": f"batch {job_id}", "dynamic_ncols": True}
    with tqdm(total=state["total"], initial=_finished(state), **bar_options) as bar:
        while True:
            bar.set_postfix(failed=state["failed"], refresh=False)
            bar.update(_finished(state) - bar.n)
            if state["status"] in FINAL_STATUSES:
                return state
            time.sleep(POLL_SECONDS)
            state = poll()


def _finished(state: dict[str, Any]) -> int:
    return state["done"] + state["failed"] + state["cancelled"]


def _summary(state: dict[str, Any]) -> int:
    counts = f"{state['done']} scored, {state['failed']} failed, {state['cancelled']} cancelled of {state['total']}"
    print(f"{state['status']}: {counts}")
    return 0 if state["status"] == "done" else 1
