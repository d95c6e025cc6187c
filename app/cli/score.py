"""`nasscore score ARCH`: score one architecture locally, without the service or its database."""

import argparse
import json
import time


def register(subparsers: argparse._SubParsersAction) -> None:
    parser = subparsers.add_parser("score", help="score one architecture with zero-cost proxies")
    parser.add_argument("arch", help="cell string, e.g. '|nor_conv_3x3~0|+|nor_conv_3x3~0|none~1|+|...|'")
    parser.add_argument("--space", default="nb201", help="search space (default: nb201)")
    parser.add_argument("--dataset", default="cifar10", help="cifar10, cifar100 or imagenet16-120")
    parser.add_argument(
        "--data", default="synthetic", help="calibration data: 'synthetic', a CIFAR python-format dir or an .npz"
    )
    parser.add_argument(
        "--proxies", help="comma-separated proxy names (default: snip, grasp, synflow and the default vote's voters)"
    )
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--sampling", default="random", choices=("random", "grasp"))
    parser.add_argument("--seed", type=int, default=0, help="seeds both the weights and the batch")
    parser.add_argument("--device", default="auto", help="auto, cpu, cuda or cuda:N")
    parser.add_argument("--json", action="store_true", help="print JSON instead of a table")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from app.scoring import score_architecture
    from scorers import DEFAULT_PROXIES
    from scorers.calibration import DATASETS, load_calibration_batch
    from scorers.device import configure_cpu_threads, resolve_device
    from search_spaces import SPACES

    if args.space not in SPACES:
        raise SystemExit(f"error: unknown --space {args.space!r}; known: {', '.join(SPACES)}")
    space = SPACES[args.space]
    try:
        cell = space.parse(args.arch)
        device = resolve_device(args.device)
        batch = load_calibration_batch(
            args.dataset, args.data, batch_size=args.batch_size, sampling=args.sampling, seed=args.seed
        )
    except ValueError as error:
        raise SystemExit(f"error: {error}") from None
    proxies = [name.strip() for name in args.proxies.split(",") if name.strip()] if args.proxies else DEFAULT_PROXIES
    if device.type == "cpu":
        configure_cpu_threads()
    started = time.perf_counter()
    try:
        results = score_architecture(
            args.space, cell.arch_str, batch.inputs, batch.targets, proxies, seed=args.seed, device=device,
            model_params={"num_classes": DATASETS[args.dataset.lower()].num_classes},
        )
    except (KeyError, ValueError) as error:
        raise SystemExit(f"error: {error}") from None
    total = time.perf_counter() - started
    if args.json:
        print(json.dumps(_as_json(cell.arch_str, args, device, batch.description, results, total), indent=2))
    else:
        _print_table(cell.arch_str, device, batch.description, results, total)
    return 0


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
        print(f"{name:<20}{result.value:>16.6g}{result.seconds:>10.3f}" + (f"  ({result.error})" if result.error else ""))
    print(f"{'total':<20}{'':>16}{total:>10.3f}")
