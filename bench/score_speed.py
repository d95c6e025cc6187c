"""Per-proxy seconds per NAS-Bench-201 cell: our fused scorer against a reference-style baseline.

Both run on the same seeded cells, weights and CIFAR-10 batch, interleaved cell by cell so machine load
hits both alike; each cell is timed `--repeats` times and the fastest run kept. Totals are reported as
wall time and as process CPU time (steadier when other jobs share the cores). The baseline
(`bench/reference_style.py`) replays the zero-cost-nas procedure: a deep copy per measure and separate
passes. Also prints the largest relative difference between the two per proxy.

    python bench/score_speed.py [--cells 20] [--seed 0] [--batch-size 64] [--threads N] [--repeats 1]
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import torch

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from bench.reference_style import score_reference_style  # noqa: E402
from scorers import DEFAULT_PROXIES, score_model_detailed  # noqa: E402
from scorers.calibration import load_calibration_batch  # noqa: E402
from scorers.device import configure_cpu_threads  # noqa: E402
from search_spaces import nb201  # noqa: E402

DEFAULT_DATA = REPO_ROOT.parent / "shared" / "data" / "cifar10" / "cifar10_train_3805.npz"


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=20, help="number of seeded NB201 cells")
    parser.add_argument("--seed", type=int, default=0, help="seed for the cell sample and the weights")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--data", default=str(DEFAULT_DATA), help="calibration source (npz, CIFAR dir, synthetic)")
    parser.add_argument(
        "--threads", type=int, default=None, help="intra-op threads (default: the cores not already busy)"
    )
    parser.add_argument("--repeats", type=int, default=1, help="timed runs per cell and method; fastest kept")
    parser.add_argument("--no-gc", action="store_true", help="skip the baseline's gc.collect() after each measure")
    return parser.parse_args()


def sample_cells(count: int, seed: int) -> list[str]:
    archs = nb201.all_archs()
    return [archs[i] for i in np.random.default_rng(seed).choice(len(archs), size=count, replace=False)]


def timed(run) -> tuple[dict, float, float]:
    """run()'s result with its wall and process-CPU seconds."""
    wall, cpu = time.perf_counter(), time.process_time()
    result = run()
    return result, time.perf_counter() - wall, time.process_time() - cpu


def time_fused(model: torch.nn.Module, inputs: torch.Tensor, targets: torch.Tensor) -> tuple[dict, float, float]:
    results, wall, cpu = timed(lambda: score_model_detailed(model, inputs, targets, DEFAULT_PROXIES))
    return {name: (r.value, r.seconds) for name, r in results.items()}, wall, cpu


def time_reference(
    model: torch.nn.Module, inputs: torch.Tensor, targets: torch.Tensor, collect_garbage: bool
) -> tuple[dict, float, float]:
    return timed(lambda: score_reference_style(model, inputs, targets, collect_garbage=collect_garbage))


def fastest(run, repeats: int) -> tuple[dict, float, float]:
    return min((run() for _ in range(repeats)), key=lambda outcome: outcome[1])


def relative_error(ours: float, reference: float) -> float:
    return abs(ours - reference) / max(abs(reference), 1e-30)


def main() -> None:
    args = parse_args()
    threads = configure_cpu_threads(args.threads)
    batch = load_calibration_batch("cifar10", args.data, batch_size=args.batch_size, seed=args.seed)
    cells = sample_cells(args.cells, args.seed)
    print(
        f"{len(cells)} NB201 cells (seed {args.seed}), batch {len(batch.targets)} [{batch.description}], "
        f"{threads} thread(s), torch {torch.__version__}, best of {args.repeats}, "
        f"baseline {'without' if args.no_gc else 'with'} gc.collect() per measure"
    )
    warm = nb201.build_model(cells[0])
    time_fused(warm, batch.inputs, batch.targets)
    time_reference(warm, batch.inputs, batch.targets, not args.no_gc)

    seconds = {side: {name: 0.0 for name in DEFAULT_PROXIES} for side in ("reference", "fused")}
    totals = {side: {"wall": 0.0, "cpu": 0.0} for side in ("reference", "fused")}
    worst = {name: 0.0 for name in DEFAULT_PROXIES}
    for index, arch in enumerate(cells):
        torch.manual_seed(args.seed + index)
        model = nb201.build_model(arch)
        runs = {
            "reference": fastest(
                lambda model=model: time_reference(model, batch.inputs, batch.targets, not args.no_gc), args.repeats
            ),
            "fused": fastest(lambda model=model: time_fused(model, batch.inputs, batch.targets), args.repeats),
        }
        for side, (values, wall, cpu) in runs.items():
            totals[side]["wall"] += wall
            totals[side]["cpu"] += cpu
            for name in DEFAULT_PROXIES:
                seconds[side][name] += values[name][1]
        for name in DEFAULT_PROXIES:
            worst[name] = max(worst[name], relative_error(runs["fused"][0][name][0], runs["reference"][0][name][0]))
        reference_wall, fused_wall = runs["reference"][1], runs["fused"][1]
        speed_up = reference_wall / fused_wall
        print(f"  cell {index:2d} ref {reference_wall:6.3f}s fused {fused_wall:6.3f}s x{speed_up:4.2f} {arch}")
    print_summary(seconds, totals, worst, len(cells))


def print_summary(seconds: dict, totals: dict, worst: dict, count: int) -> None:
    print(f"\n{'proxy':<10}{'reference s/cell':>18}{'fused s/cell':>14}{'speed-up':>10}{'max rel err':>13}")
    for name in DEFAULT_PROXIES:
        ref, ours = seconds["reference"][name] / count, seconds["fused"][name] / count
        print(f"{name:<10}{ref:>18.4f}{ours:>14.4f}{ref / ours:>9.2f}x{worst[name]:>13.2e}")
    for clock in ("wall", "cpu"):
        ref, ours = totals["reference"][clock] / count, totals["fused"][clock] / count
        print(f"{'total ' + clock:<10}{ref:>18.4f}{ours:>14.4f}{ref / ours:>9.2f}x")


if __name__ == "__main__":
    main()
