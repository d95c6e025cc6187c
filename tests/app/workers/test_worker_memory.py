"""A worker scores thousands of cells in one process, so nothing of one cell may outlive it: no model, no
autograd graph, no hook left on a module, no tensor a proxy kept. Counted with the garbage collector, which
is exact where RSS (allocator caches, fragmentation) is not; the RSS figure over a long run is
bench/sweep.py's."""

import gc
from collections import Counter

import torch
from conftest import TINY_CONFIG, nb201_slice
from torch import nn

from app.workers.base import CalibrationInput, ScoringTask
from app.workers.process import WorkerState
from scorers import DEFAULT_PROXIES

MODEL = {"num_classes": 10, "channels": TINY_CONFIG["channels"], "cells_per_stage": TINY_CONFIG["cells_per_stage"]}
WARM_UP_CELLS = 4
MEASURED_CELLS = 12


def _task(arch: str) -> ScoringTask:
    batch_size = TINY_CONFIG["batch_size"]
    calibration = CalibrationInput("cifar10", "synthetic-memory", batch_size, batch_size, "random", 0)
    return ScoringTask("nb201", arch, DEFAULT_PROXIES, calibration, 0, "default", MODEL)


def _live_objects() -> Counter[str]:
    """Live tensors, modules and autograd graph nodes, by kind."""
    gc.collect()
    counts: Counter[str] = Counter()
    for kind in map(type, gc.get_objects()):  # type(), not isinstance: some objects warn when asked __class__
        if issubclass(kind, torch.Tensor):
            counts["tensor"] += 1
        elif issubclass(kind, nn.Module):
            counts[f"module {kind.__name__}"] += 1
        elif kind.__name__.endswith("Backward0"):
            counts["autograd node"] += 1
    return counts


def test_nothing_of_a_scored_cell_outlives_it() -> None:
    state = WorkerState("memory-test", "cpu", threads=1)
    cells = nb201_slice(WARM_UP_CELLS + MEASURED_CELLS, offset=321)
    for arch in cells[:WARM_UP_CELLS]:  # imports, caches and the calibration batch settle here
        assert all(result.error is None for result in state.run(_task(arch)).outcomes.values())
    before = _live_objects()
    for arch in cells[WARM_UP_CELLS:]:
        results = state.run(_task(arch)).outcomes
        assert all(result.error is None for result in results.values()), results
    del results
    assert _live_objects() == before
