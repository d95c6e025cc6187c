"""Worker memory over a long run: does a worker's resident memory stay flat while it scores cell after cell?

A sweep's RSS rises for a reason that is not a leak: freed memory is kept for reuse (so no page faults per
cell) and follows the largest network a worker has scored, and later NB201 indices hold larger networks. So
this bench removes that effect: one `WorkerState` (what every pool worker and Ray actor scores through)
scores a fixed, seeded set of `--distinct` NB201 cells over and over, `--cells` in all, with the default
configuration (the shipped CIFAR-10 set, batch 64, C=16, N=5) and the default proxy set. After the first
pass every network has been seen once, so any growth from there on is memory that outlives its cell.

It reports RSS after the first pass and at the end (growth in %, target < 5 %), the peak, a trace at every
tenth of the run, and the live tensors, modules and autograd nodes after the first pass and at the end.

    .venv/bin/python -m bench.worker_memory --cells 2000 --distinct 50 --seed 0
"""

from __future__ import annotations

import argparse
import gc
import sys
import time
from collections import Counter
from pathlib import Path

import numpy as np
from tqdm import tqdm

REPO_ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO_ROOT))

from app.workers.base import CalibrationInput, ScoringTask  # noqa: E402
from app.workers.process import WorkerState  # noqa: E402
from scorers import DEFAULT_PROXIES  # noqa: E402
from scorers.calibration import builtin_image_set  # noqa: E402
from search_spaces import nb201  # noqa: E402

MODEL = {"num_classes": 10, "channels": 16, "cells_per_stage": 5}
BATCH_SIZE = 64
TARGET_GROWTH_PERCENT = 5.0


def rss_mib() -> float:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise RuntimeError("no VmRSS in /proc/self/status")


def live_objects() -> Counter[str]:
    """Live tensors, modules and autograd graph nodes (what a leak between cells would leave behind)."""
    import torch
    from torch import nn

    gc.collect()
    counts: Counter[str] = Counter()
    for kind in map(type, gc.get_objects()):
        if issubclass(kind, torch.Tensor):
            counts["tensors"] += 1
        elif issubclass(kind, nn.Module):
            counts["modules"] += 1
        elif kind.__name__.endswith("Backward0"):
            counts["autograd nodes"] += 1
    return counts


def calibration(seed: int) -> CalibrationInput:
    """The default configuration's batch: 64 random images of the shipped CIFAR-10 set."""
    images = builtin_image_set("cifar10")
    if images is None:
        raise SystemExit("no CIFAR-10 set is shipped with the package")
    batch = images.select(BATCH_SIZE, "random", seed)
    pixels, labels = batch.buffers()
    return CalibrationInput("cifar10", batch.digest, len(batch), BATCH_SIZE, "random", seed, pixels, labels)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cells", type=int, default=2000, help="cells scored in all")
    parser.add_argument("--distinct", type=int, default=50, help="size of the fixed set scored over and over")
    parser.add_argument("--seed", type=int, default=0, help="seed of the cell set, the batch and the weights")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    if not 0 < args.distinct <= args.cells:
        parser.error("--distinct must be between 1 and --cells")

    archs = nb201.all_archs()
    chosen = np.random.default_rng(args.seed).choice(len(archs), size=args.distinct, replace=False)
    cells = [archs[index] for index in chosen]
    state = WorkerState("memory-bench", "cpu", threads=args.threads)
    data = calibration(args.seed)
    trace: list[tuple[int, float]] = []
    checkpoints = {max(args.distinct, round(args.cells * tenth / 10)) for tenth in range(1, 11)}
    started = time.perf_counter()
    first_pass: tuple[float, Counter[str]] | None = None
    peak = 0.0
    for done in tqdm(range(1, args.cells + 1), desc="cells", unit="cell"):
        arch = cells[(done - 1) % args.distinct]
        task = ScoringTask("nb201", arch, DEFAULT_PROXIES, data, args.seed, "default", MODEL)
        failed = {name: r.error for name, r in state.run(task).outcomes.items() if r.error is not None}
        if failed:
            raise SystemExit(f"{arch}: {failed}")
        peak = max(peak, rss_mib())
        if done == args.distinct:
            first_pass = (rss_mib(), live_objects())
        if done in checkpoints:
            trace.append((done, rss_mib()))
    assert first_pass is not None
    report(args, first_pass, (rss_mib(), live_objects()), peak, trace, time.perf_counter() - started)


def report(
    args: argparse.Namespace,
    first_pass: tuple[float, Counter[str]],
    end: tuple[float, Counter[str]],
    peak: float,
    trace: list[tuple[int, float]],
    seconds: float,
) -> None:
    growth = (end[0] - first_pass[0]) / first_pass[0] * 100
    verdict = "within" if growth < TARGET_GROWTH_PERCENT else "OVER"
    print(
        f"\n{args.cells} cells ({args.distinct} distinct NB201 cells, seed {args.seed}, scored in turn), default "
        f"proxies, batch {BATCH_SIZE}, {args.threads} thread(s), {seconds:.0f} s"
    )
    print(f"RSS after the first pass ({args.distinct} cells): {first_pass[0]:.1f} MiB")
    print(f"RSS at the end ({args.cells} cells):   {end[0]:.1f} MiB")
    print(f"growth: {growth:+.2f} % ({verdict} the {TARGET_GROWTH_PERCENT:.0f} % target); peak {peak:.1f} MiB")
    print("trace: " + ", ".join(f"{done}: {mib:.1f}" for done, mib in trace))
    for kind in ("tensors", "modules", "autograd nodes"):
        print(f"live {kind}: {first_pass[1][kind]} after the first pass, {end[1][kind]} at the end")


if __name__ == "__main__":
    main()
