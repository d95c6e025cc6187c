"""How the local pool lays its worker processes out on a host: N CPU processes, or --workers-per-gpu processes
on every GPU used. The plan takes the number of visible GPUs, so a GPU host's plan is checked on any machine;
the test that starts processes on real GPUs skips without CUDA."""

import math

import pytest
import torch
from conftest import TINY_CONFIG, wait_until

from app.settings import Settings
from app.workers.base import CalibrationInput, ScoringTask
from app.workers.local import LocalPool, plan_devices, visible_cuda_devices


@pytest.mark.parametrize(
    ("device", "workers_per_gpu", "visible_gpus", "plan"),
    [
        ("auto", 1, 2, ["cuda:0", "cuda:1"]),
        ("auto", 3, 2, ["cuda:0", "cuda:0", "cuda:0", "cuda:1", "cuda:1", "cuda:1"]),
        ("cuda", 2, 1, ["cuda:0", "cuda:0"]),
        ("CUDA:1", 2, 4, ["cuda:1", "cuda:1"]),
        (" cuda:0 ", 1, 1, ["cuda:0"]),
        # Without GPUs, auto means CPU workers, and workers_per_gpu has nothing to share.
        ("auto", 4, 0, ["cpu", "cpu"]),
        ("cpu", 4, 8, ["cpu", "cpu"]),
    ],
)
def test_the_plan_puts_workers_per_gpu_processes_on_each_gpu_used(
    device: str, workers_per_gpu: int, visible_gpus: int, plan: list[str]
) -> None:
    assert plan_devices(device, 2, workers_per_gpu, visible_gpus) == plan


@pytest.mark.parametrize(
    ("device", "visible_gpus", "message"),
    [
        ("cuda", 0, "CUDA is not available here"),
        ("cuda:0", 0, "does not exist: 0 CUDA device"),
        ("cuda:2", 2, "does not exist: 2 CUDA device"),
        ("cuda:x", 1, "unknown device 'cuda:x'"),
        ("tpu", 1, "unknown device 'tpu'"),
    ],
)
def test_a_device_the_host_lacks_is_refused_by_name(device: str, visible_gpus: int, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        plan_devices(device, 1, 2, visible_gpus)


def test_cells_per_worker_is_a_setting_of_at_least_one() -> None:
    assert Settings().cells_per_worker == 1
    assert Settings(cells_per_worker=4).cells_per_worker == 4
    with pytest.raises(ValueError, match="cells_per_worker"):
        Settings(cells_per_worker=0)
    with pytest.raises(ValueError, match="cells_per_worker must be at least 1"):
        LocalPool(["cpu"], cells_per_worker=0)


def test_workers_per_gpu_is_a_setting_of_at_least_one() -> None:
    assert Settings().workers_per_gpu == 1
    assert Settings(workers_per_gpu=4).workers_per_gpu == 4
    with pytest.raises(ValueError, match="workers_per_gpu"):
        Settings(workers_per_gpu=0)


def test_without_a_count_the_plan_uses_the_gpus_torch_sees_here() -> None:
    gpus = torch.cuda.device_count() if torch.cuda.is_available() else 0
    assert visible_cuda_devices() == gpus
    expected = [f"cuda:{index}" for index in range(gpus) for _ in range(2)] if gpus else ["cpu", "cpu", "cpu"]
    assert plan_devices("auto", 3, 2) == expected


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_two_worker_processes_share_each_gpu_and_score_on_it() -> None:
    devices = plan_devices("cuda", 1, workers_per_gpu=2)
    assert devices == [f"cuda:{index}" for index in range(torch.cuda.device_count()) for _ in range(2)]
    pool = LocalPool(devices)
    try:
        wait_until(pool.ready, 300, "the GPU workers")
        health = pool.health()
        assert (health["alive"], health["devices"]) == (len(devices), devices)
        assert len(set(health["pids"])) == len(devices), "one process per planned worker"
        calibration = CalibrationInput(
            dataset="cifar10",
            key="synthetic-gpu-share",
            count=TINY_CONFIG["batch_size"],
            batch_size=TINY_CONFIG["batch_size"],
            sampling="random",
            seed=0,
        )
        model = {"num_classes": 10, "channels": TINY_CONFIG["channels"], "cells_per_stage": 1}
        task = ScoringTask(
            space="nb201",
            arch="|nor_conv_3x3~0|+|nor_conv_1x1~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|",
            proxies=("snip", "synflow"),
            calibration=calibration,
            seed=0,
            init="default",
            model_params=model,
        )
        results = [future.result(timeout=300) for future in [pool.submit(task) for _ in range(2 * len(devices))]]
        assert {result.device for result in results} <= set(devices)
        assert all(o.error is None and math.isfinite(o.value) for r in results for o in r.outcomes.values())
    finally:
        pool.shutdown()
