"""`nasscore score ARCH`: score one architecture locally, without the service; when the local database holds
architectures scored under the same configuration, also print where the architecture ranks among them."""

import argparse
import json
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

from app.cli._common import NameList, fail

if TYPE_CHECKING:
    from app.services.leaderboard import VoteStanding
    from scorers.calibration import ImageSet


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("score", help="score one architecture with zero-cost proxies")
    parser.add_argument(
        "arch",
        help="architecture as `nasscore spaces SPACE` prints it, e.g. '|nor_conv_3x3~0|+|nor_conv_3x3~0|none~1|+|...|' "
        "(with --space onnx: the path of an ONNX file)",
    )
    parser.add_argument("--space", default="nb201", help="search space, e.g. nb201 or nats_sss (default: nb201)")
    parser.add_argument("--dataset", default="cifar10", help="cifar10, cifar100 or imagenet16-120")
    parser.add_argument(
        "--data",
        help="calibration data: 'builtin' (the real CIFAR-10 set shipped with nasscore), 'synthetic', a CIFAR "
        "python-format dir or an .npz (default: builtin for cifar10, else synthetic)",
    )
    parser.add_argument(
        "--proxies",
        action=NameList,
        metavar="PROXY",
        help="proxies to score, e.g. snip,grasp,synflow (default: snip, grasp, synflow and the default vote's voters)",
    )
    parser.add_argument("--batch-size", type=int, default=64, help="calibration batch size")
    parser.add_argument(
        "--sampling",
        default="random",
        choices=("random", "grasp"),
        help="random: a seeded batch; grasp: k images per class",
    )
    parser.add_argument("--seed", type=int, default=0, help="seeds both the weights and the batch")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from app.services.configs import ConfigOptions, model_params, validate_proxies
    from app.services.errors import ServiceError
    from app.workers.scoring import score_architecture
    from scorers.calibration import BUILTIN_SETS, load_calibration_batch
    from scorers.device import configure_cpu_threads, resolve_device, use_tf32
    from search_spaces import SPACES

    if args.space not in SPACES:
        return fail(f"unknown --space {args.space!r}; known: {', '.join(SPACES)}")
    space = SPACES[args.space]
    try:
        arch = space.parse(_onnx_file(args.arch) if args.space == "onnx" else args.arch)
        # The space's default network, as the service's default configuration builds it.
        params = model_params(args.space, args.dataset.lower(), ConfigOptions())
        proxies = validate_proxies(args.proxies, "--proxies", args.space)
        device = resolve_device(args.device)
        data = args.data or ("builtin" if args.dataset.lower() in BUILTIN_SETS else "synthetic")
        batch = load_calibration_batch(
            args.dataset, data, batch_size=args.batch_size, sampling=args.sampling, seed=args.seed
        )
    except (ValueError, ServiceError) as error:
        return fail(str(error))
    if device.type == "cpu":
        configure_cpu_threads()
    else:
        use_tf32(False)  # the service's default: GPU values agree with CPU ones to float32 rounding
    started = time.perf_counter()
    try:
        results = score_architecture(
            args.space, arch, batch.inputs, batch.targets, proxies, seed=args.seed, device=device, model_params=params
        )
    except (KeyError, ValueError) as error:
        return fail(str(error))
    total = time.perf_counter() - started
    standing = _local_standing(args, data, arch, results)
    if args.json:
        report = _as_json(arch, args, device, batch.description, results, total)
        print(json.dumps(report | ({"vote": _vote_json(*standing)} if standing else {}), indent=2))
    else:
        _print_table(arch, device, batch.description, results, total)
        if standing:
            print(_vote_line(*standing))
    return 0


def _onnx_file(path: str) -> bytes:
    """The ONNX file an `onnx` architecture is read from (the text alone names a network only the service has)."""
    try:
        return Path(path).read_bytes()
    except OSError as error:
        raise ValueError(f"cannot read the ONNX file {path!r}: {error.strerror}") from None


def _local_standing(args: argparse.Namespace, data: str, arch: str, results: dict) -> "tuple[str, VoteStanding] | None":
    """(configuration fingerprint, VoteStanding) of the architecture among the classes the local database
    (NASSCORE_HOME, or NASSCORE_DATABASE_URL) stores under this run's configuration; None without a
    database or such a population. The fingerprint comes from the service's own `resolve_config`, given
    the same space, options and images, and the space's default network is the one `run` built: a match
    means the stored scores were computed exactly as these were."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import SQLAlchemyError

    from app.db import Database
    from app.services.calibration import CalibrationStore
    from app.services.configs import SYNTHETIC, ConfigOptions, resolve_config
    from app.services.leaderboard import candidate_standing
    from app.settings import Settings
    from search_spaces import SPACES

    url = Settings().resolved_database_url
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite" and not Path(parsed.database or "").is_file():
        return None
    dataset = args.dataset.lower()
    images = _real_images(dataset, data)
    options = ConfigOptions(
        batch_size=args.batch_size, sampling=args.sampling, seed=args.seed, data=SYNTHETIC if images is None else "real"
    )
    scores = {name: result.value for name, result in results.items() if result.error is None}
    database = Database(url)
    try:
        with database.read_session() as session:
            resolved = resolve_config(session, CalibrationStore(), dataset, options, images, space=args.space)
            fingerprint = resolved.fingerprint
            key = SPACES[args.space].canonical_key(arch)
            standing = candidate_standing(session, args.space, dataset, fingerprint, key, scores)
    except SQLAlchemyError as error:
        print(f"nasscore: note: not ranked, the local database cannot be read: {error}", file=sys.stderr)
        return None
    finally:
        database.dispose()
    return None if standing is None else (fingerprint, standing)


def _real_images(dataset: str, data: str) -> "ImageSet | None":
    """The real images this run's batch was drawn from (None: synthetic), read again: a configuration's
    identity is the digest of the batch drawn from them, which `resolve_config` recomputes."""
    from scorers.calibration import SYNTHETIC, builtin_image_set, read_image_set

    if data == SYNTHETIC:
        return None
    return builtin_image_set(dataset) if data == "builtin" else read_image_set(dataset, Path(data))


def _vote_json(fingerprint: str, standing: "VoteStanding") -> dict:
    return {
        "configuration": fingerprint,
        "preset": standing.choice.preset,
        "method": standing.choice.method,
        "voters": list(standing.choice.voters),
        "rank": standing.rank,
        "percentile": standing.percentile,
        "population": standing.population,
        "reason": standing.reason,
    }


def _vote_line(fingerprint: str, standing: "VoteStanding") -> str:
    choice = standing.choice
    vote = f"{choice.preset or ', '.join(choice.voters)} ({choice.method}), configuration {fingerprint[:12]}"
    if standing.rank is None:
        return f"\nvote:   not ranked: {standing.reason}; {vote}"
    return (
        f"\nvote:   rank {standing.rank} of {standing.population} isomorphism classes, "
        f"percentile {standing.percentile:.3f}; {vote}"
    )


def _as_json(arch, args, device, data, results, total) -> dict:
    return {
        "arch": arch,
        "dataset": args.dataset,
        "data": data,
        "device": str(device),
        "seconds": round(total, 4),
        "scores": {
            name: {"value": r.value, "seconds": round(r.seconds, 4), "error": r.error} for name, r in results.items()
        },
    }


def _print_table(arch, device, data, results, total) -> None:
    print(f"arch:   {arch}\ndata:   {data}\ndevice: {device}\n")
    print(f"{'proxy':<20}{'value':>16}{'seconds':>10}")
    for name, result in results.items():
        print(
            f"{name:<20}{result.value:>16.6g}{result.seconds:>10.3f}" + (f"  ({result.error})" if result.error else "")
        )
    print(f"{'total':<20}{'':>16}{total:>10.3f}")
