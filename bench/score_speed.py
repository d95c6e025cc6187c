"""Per-proxy seconds per NAS-Bench-201 cell: our fused scorer against a baseline, on the same cells.

Two comparisons (`--proxies`):
- `mission` (default): SNIP + GraSP + SynFlow against a reference-style re-implementation
  (`bench/reference_style.py`: the zero-cost-nas procedure, a deep copy and separate passes per measure),
  with the largest relative difference of each value from the reference's and, with `--exact`, of both
  from the exact value (the reference procedure in float64 on a float64 copy of the network and batch).
- `default`: the default proxy set (the mission's three and the default vote's voters) scored together
  against the sum of each proxy scored alone through the same scorer, with each proxy's seconds in both
  (its own time plus its share of the passes it shared, `ProxyResult.seconds`): what sharing saves.
  Values must be equal either way; the largest difference is printed.

Both sides run on the same seeded cells, weights and CIFAR-10 batch, interleaved cell by cell (their order
alternating between repeats) so machine load hits both alike; each cell is timed `--repeats` times per side
and the fastest run kept. Totals are wall time and process CPU time (steadier when other jobs share the
cores); the load average is printed before and after.

    python -m bench.score_speed [--proxies mission|default] [--cells 20] [--seed 0] [--batch-size 64]
        [--threads 1] [--repeats 3] [--exact] [--retain-freed-memory] [--no-gc]
"""

from __future__ import annotations

import argparse
import copy
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from bench.reference_style import MEASURES, score_reference_style  # noqa: E402
from scorers import DEFAULT_PROXIES, score_model_detailed  # noqa: E402
from scorers.calibration import load_calibration_batch  # noqa: E402
from scorers.device import configure_cpu_threads, retain_freed_memory  # noqa: E402
from search_spaces import nb201  # noqa: E402

DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data" / "cifar10" / "cifar10_train_3805.npz"
MISSION = tuple(MEASURES)
# One side's run of one cell: {proxy: (value, seconds)}, wall seconds, CPU seconds.
Run = tuple[dict[str, tuple[float, float]], float, float]


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--proxies", choices=("mission", "default"), default="mission", help="what to compare")
    parser.add_argument("--cells", type=int, default=20, help="number of seeded NB201 cells")
    parser.add_argument("--seed", type=int, default=0, help="seed for the cell sample and the weights")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--data", default=str(DEFAULT_DATA), help="calibration source (npz, CIFAR dir, synthetic)")
    parser.add_argument(
        "--threads", type=int, default=None, help="intra-op threads (default: the cores not already busy)"
    )
    parser.add_argument("--repeats", type=int, default=1, help="timed runs per cell and side; fastest kept")
    parser.add_argument("--exact", action="store_true", help="mission: also compare both with float64 values")
    parser.add_argument(
        "--retain-freed-memory",
        action="store_true",
        help="keep freed memory in the process for reuse (scorers.device.retain_freed_memory), for both sides",
    )
    parser.add_argument("--no-gc", action="store_true", help="skip the baseline's gc.collect() after each measure")
    return parser.parse_args()


def sample_cells(count: int, seed: int) -> list[str]:
    archs = nb201.all_archs()
    return [archs[i] for i in np.random.default_rng(seed).choice(len(archs), size=count, replace=False)]


def timed(run: Callable[[], dict[str, tuple[float, float]]]) -> Run:
    """run()'s result with its wall and process-CPU seconds."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = run()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def fused(model: torch.nn.Module, inputs: torch.Tensor, targets: torch.Tensor, proxies: tuple[str, ...]) -> Run:
    def run() -> dict[str, tuple[float, float]]:
        results = score_model_detailed(model, inputs, targets, proxies)
        return {name: (result.value, result.seconds) for name, result in results.items()}

    return timed(run)


def one_by_one(model: torch.nn.Module, inputs: torch.Tensor, targets: torch.Tensor, proxies: tuple[str, ...]) -> Run:
    def run() -> dict[str, tuple[float, float]]:
        values = {}
        for name in proxies:
            result = score_model_detailed(model, inputs, targets, (name,))[name]
            values[name] = (result.value, result.seconds)
        return values

    return timed(run)


def reference(model: torch.nn.Module, inputs: torch.Tensor, targets: torch.Tensor, collect_garbage: bool) -> Run:
    return timed(lambda: score_reference_style(model, inputs, targets, collect_garbage=collect_garbage))


def fastest_interleaved(sides: dict[str, Callable[[], Run]], repeats: int) -> dict[str, Run]:
    """Each side run `repeats` times, alternating which goes first; the fastest run of each."""
    runs: dict[str, list[Run]] = {name: [] for name in sides}
    names = list(sides)
    for repeat in range(repeats):
        for name in names if repeat % 2 == 0 else reversed(names):
            runs[name].append(sides[name]())
    return {name: min(outcomes, key=lambda outcome: outcome[1]) for name, outcomes in runs.items()}


def exact_values(model: torch.nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> dict[str, float]:
    """The reference procedure in float64: the value float32 rounding is measured against."""
    values = score_reference_style(copy.deepcopy(model).double(), inputs.double(), targets)
    return {name: value for name, (value, _) in values.items()}


def relative_error(value: float, expected: float) -> float:
    if value == expected:
        return 0.0
    return abs(value - expected) / max(abs(expected), 1e-30)


def load_average() -> str:
    return "load average " + " ".join(f"{load:.2f}" for load in os.getloadavg())


def comparison(
    args: argparse.Namespace, inputs: torch.Tensor, targets: torch.Tensor
) -> tuple[tuple[str, ...], str, Callable[[torch.nn.Module], Run], Callable[[torch.nn.Module], Run], str]:
    """The proxies, the baseline's name, how each side scores a model, and what the baseline is."""
    if args.proxies == "mission":

        def reference_side(model: torch.nn.Module) -> Run:
            return reference(model, inputs, targets, not args.no_gc)

        note = f"reference-style baseline {'without' if args.no_gc else 'with'} gc.collect() per measure"
        proxies, baseline_name, baseline = MISSION, "reference", reference_side
    else:

        def alone_side(model: torch.nn.Module) -> Run:
            return one_by_one(model, inputs, targets, DEFAULT_PROXIES)

        note = "baseline: each proxy scored alone through the same scorer"
        proxies, baseline_name, baseline = DEFAULT_PROXIES, "alone", alone_side

    def fused_side(model: torch.nn.Module) -> Run:
        return fused(model, inputs, targets, proxies)

    return proxies, baseline_name, baseline, fused_side, note


def main() -> None:
    args = parse_args()
    retained = retain_freed_memory() if args.retain_freed_memory else False
    threads = configure_cpu_threads(args.threads)
    batch = load_calibration_batch("cifar10", args.data, batch_size=args.batch_size, seed=args.seed)
    cells = sample_cells(args.cells, args.seed)
    proxies, baseline_name, baseline, ours, baseline_note = comparison(args, batch.inputs, batch.targets)
    ours_name = "fused"
    print(
        f"{len(cells)} NB201 cells (seed {args.seed}), batch {len(batch.targets)} [{batch.description}], "
        f"{threads} thread(s), torch {torch.__version__}, best of {args.repeats}, {baseline_note}, "
        f"freed memory {'retained' if retained else 'returned to the system (glibc default)'}; {load_average()}"
    )
    warm = nb201.build_model(cells[0])
    baseline(warm)
    ours(warm)

    sides = (baseline_name, ours_name)
    seconds = {side: dict.fromkeys(proxies, 0.0) for side in sides}
    totals = {side: {"wall": 0.0, "cpu": 0.0} for side in sides}
    worst = {key: dict.fromkeys(proxies, 0.0) for key in ("difference", "baseline_exact", "ours_exact")}
    for index, arch in enumerate(cells):
        torch.manual_seed(args.seed + index)
        model = nb201.build_model(arch)
        runs = fastest_interleaved(
            {baseline_name: lambda model=model: baseline(model), ours_name: lambda model=model: ours(model)},
            args.repeats,
        )
        exact = exact_values(model, batch.inputs, batch.targets) if args.exact and args.proxies == "mission" else {}
        for side, (values, wall, cpu) in runs.items():
            totals[side]["wall"] += wall
            totals[side]["cpu"] += cpu
            for name in proxies:
                seconds[side][name] += values[name][1]
        for name in proxies:
            ours_value, baseline_value = runs[ours_name][0][name][0], runs[baseline_name][0][name][0]
            worst["difference"][name] = max(worst["difference"][name], relative_error(ours_value, baseline_value))
            if name in exact:
                worst["ours_exact"][name] = max(worst["ours_exact"][name], relative_error(ours_value, exact[name]))
                worst["baseline_exact"][name] = max(
                    worst["baseline_exact"][name], relative_error(baseline_value, exact[name])
                )
        baseline_wall, ours_wall = runs[baseline_name][1], runs[ours_name][1]
        print(
            f"  cell {index:2d} {baseline_name} {baseline_wall:6.3f}s {ours_name} {ours_wall:6.3f}s "
            f"x{baseline_wall / ours_wall:5.2f} {arch}",
            flush=True,
        )
    print_summary(seconds, totals, worst, len(cells), sides, bool(args.exact and args.proxies == "mission"))
    print(load_average())


def print_summary(
    seconds: dict[str, dict[str, float]],
    totals: dict[str, dict[str, float]],
    worst: dict[str, dict[str, float]],
    count: int,
    sides: tuple[str, str],
    exact: bool,
) -> None:
    baseline, ours = sides
    header = f"\n{'proxy':<18}{baseline + ' s/cell':>16}{ours + ' s/cell':>14}{'speed-up':>10}{'max rel diff':>14}"
    if exact:
        header += f"{baseline + ' vs f64':>18}{ours + ' vs f64':>16}"
    print(header)
    for name in seconds[ours]:
        reference_seconds, our_seconds = seconds[baseline][name] / count, seconds[ours][name] / count
        line = (
            f"{name:<18}{reference_seconds:>16.4f}{our_seconds:>14.4f}{reference_seconds / our_seconds:>9.2f}x"
            f"{worst['difference'][name]:>14.2e}"
        )
        if exact:
            line += f"{worst['baseline_exact'][name]:>18.2e}{worst['ours_exact'][name]:>16.2e}"
        print(line)
    for clock in ("wall", "cpu"):
        base, our = totals[baseline][clock] / count, totals[ours][clock] / count
        print(f"{'total ' + clock:<18}{base:>16.4f}{our:>14.4f}{base / our:>9.2f}x")


if __name__ == "__main__":
    main()
