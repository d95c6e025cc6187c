"""The local worker pool with real spawned processes and real NB201 models: results come back (each proxy's
`ProxyResult` as the scorer returned it), a task that raises fails only itself, a killed worker fails only
its tasks and is replaced, a worker scoring several cells at once gives the values it gives one at a time,
and a failed supervisor breaks the pool visibly and fails its tasks."""

import math
import os
import signal
from collections.abc import Iterator
from concurrent.futures import Future

import pytest
import torch
from conftest import TINY_CONFIG, wait_until

from app.workers.base import CalibrationInput, ScoringTask, TaskError, TaskResult, WorkerDied
from app.workers.local import LocalPool, plan_devices, threads_per_worker
from scorers import ProxyResult

ARCH = "|nor_conv_3x3~0|+|nor_conv_1x1~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
MODEL = {"num_classes": 10, "channels": TINY_CONFIG["channels"], "cells_per_stage": TINY_CONFIG["cells_per_stage"]}


def _synthetic_input(seed: int = 0) -> CalibrationInput:
    batch_size = TINY_CONFIG["batch_size"]
    return CalibrationInput(
        dataset="cifar10",
        key=f"synthetic-test-{seed}",
        count=batch_size,
        batch_size=batch_size,
        sampling="random",
        seed=seed,
    )


def _task(arch: str = ARCH, **changes: object) -> ScoringTask:
    values = dict(
        space="nb201",
        arch=arch,
        proxies=("snip", "synflow"),
        calibration=_synthetic_input(),
        seed=0,
        init="default",
        model_params=MODEL,
    )
    return ScoringTask(**(values | changes))


@pytest.fixture(scope="module")
def pool() -> Iterator[LocalPool]:
    executor = LocalPool(["cpu"], threads=1)
    wait_until(executor.ready, 180, "the worker to start")
    yield executor
    executor.shutdown()


@pytest.fixture(scope="module")
def two_lane_pool() -> Iterator[LocalPool]:
    executor = LocalPool(["cpu"], threads=1, cells_per_worker=2)
    wait_until(executor.ready, 180, "the worker to start")
    yield executor
    executor.shutdown()


def _values(result: TaskResult) -> dict[str, float]:
    return {proxy: outcome.value for proxy, outcome in result.outcomes.items()}


def _slow_task(seed: int = 0, arch: str = ARCH) -> ScoringTask:
    """A task that runs for seconds rather than a fraction of one: a wider, deeper network on 64 images."""
    big_batch = CalibrationInput(
        dataset="cifar10", key="synthetic-64", count=64, batch_size=64, sampling="random", seed=0
    )
    big_model = MODEL | {"channels": 32, "cells_per_stage": 3}
    return _task(arch=arch, model_params=big_model, calibration=big_batch, seed=seed)


def _busy_pid(pool: LocalPool) -> int:
    """The pid of the pool's only worker once it is running a task."""
    wait_until(lambda: pool.health()["busy"] == 1, 60, "the worker to start the task")
    return pool.health()["pids"][0]


def test_pool_scores_a_task_deterministically(pool: LocalPool) -> None:
    first = pool.submit(_task()).result(timeout=120)
    again = pool.submit(_task()).result(timeout=120)
    assert first.device == "cpu" and set(first.outcomes) == {"snip", "synflow"}
    assert {type(outcome) for outcome in first.outcomes.values()} == {ProxyResult}
    assert all(math.isfinite(o.value) and o.error is None for o in first.outcomes.values())
    assert {p: o.value for p, o in first.outcomes.items()} == {p: o.value for p, o in again.outcomes.items()}
    other_seed = pool.submit(_task(seed=1)).result(timeout=120)
    assert other_seed.outcomes["snip"].value != first.outcomes["snip"].value


def test_a_failing_task_fails_alone(pool: LocalPool) -> None:
    failing = pool.submit(_task(arch="|not_an_op~0|"))
    with pytest.raises(TaskError, match="not_an_op"):
        failing.result(timeout=120)
    assert pool.submit(_task()).result(timeout=120).outcomes["snip"].value > 0
    assert pool.health()["restarts"] == 0


def test_a_killed_worker_fails_its_task_and_is_replaced(pool: LocalPool) -> None:
    restarts = pool.health()["restarts"]
    doomed: Future = pool.submit(_slow_task())
    os.kill(_busy_pid(pool), signal.SIGKILL)
    with pytest.raises(WorkerDied, match="exit code -9"):
        doomed.result(timeout=120)
    wait_until(pool.ready, 180, "the replacement worker")
    assert pool.health()["restarts"] == restarts + 1
    assert pool.submit(_task()).result(timeout=120).outcomes["synflow"].value > 0


def test_a_worker_scoring_two_cells_at_once_gives_the_values_of_one_at_a_time(
    pool: LocalPool, two_lane_pool: LocalPool
) -> None:
    """Each lane builds its model from the seed under the worker's one global generator, so concurrency must
    not change a single weight, let alone a value."""
    other = "|avg_pool_3x3~0|+|nor_conv_3x3~0|skip_connect~1|+|nor_conv_1x1~0|none~1|nor_conv_3x3~2|"
    tasks = [_slow_task(seed) for seed in range(2)] + [_slow_task(arch=other), _slow_task(5, arch=other)]
    one_at_a_time = [_values(pool.submit(task).result(timeout=120)) for task in tasks]
    futures = [two_lane_pool.submit(task) for task in tasks]
    assert two_lane_pool.capacity == 2 and two_lane_pool.health()["cells_per_worker"] == 2
    wait_until(lambda: two_lane_pool.health()["busy"] == 2, 60, "two tasks in the one worker at once")
    assert [_values(future.result(timeout=240)) for future in futures] == one_at_a_time


def test_a_killed_worker_fails_every_task_it_held(two_lane_pool: LocalPool) -> None:
    restarts = two_lane_pool.health()["restarts"]
    doomed = [two_lane_pool.submit(_slow_task(seed)) for seed in (0, 1)]
    wait_until(lambda: two_lane_pool.health()["busy"] == 2, 60, "the worker to take both tasks")
    os.kill(two_lane_pool.health()["pids"][0], signal.SIGKILL)
    for future in doomed:
        with pytest.raises(WorkerDied, match="exit code -9"):
            future.result(timeout=120)
    wait_until(two_lane_pool.ready, 180, "the replacement worker")
    assert two_lane_pool.health()["restarts"] == restarts + 1
    assert two_lane_pool.submit(_task()).result(timeout=120).outcomes["synflow"].value > 0


def test_a_task_with_an_unknown_init_scheme_fails_naming_it(pool: LocalPool) -> None:
    with pytest.raises(TaskError, match="unknown init scheme 'xavier'"):
        pool.submit(_task(init="xavier")).result(timeout=120)


def _fail_supervisor(pool: LocalPool, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the pool's supervisor loop raise at its next iteration, as a bug in it would."""

    def assign_tasks() -> None:
        raise RuntimeError("injected supervisor fault")

    monkeypatch.setattr(pool, "_assign_tasks", assign_tasks)


def test_a_failed_supervisor_breaks_the_pool_and_fails_its_tasks(monkeypatch: pytest.MonkeyPatch) -> None:
    executor = LocalPool(["cpu"], threads=1)
    try:
        wait_until(executor.ready, 180, "the worker to start")
        running = executor.submit(_task(model_params=MODEL | {"channels": 32, "cells_per_stage": 3}))
        _busy_pid(executor)
        _fail_supervisor(executor, monkeypatch)
        queued = executor.submit(_task())  # wakes the supervisor, which then fails
        for future in (running, queued):
            with pytest.raises(WorkerDied, match="supervisor failed .*injected supervisor fault"):
                future.result(timeout=60)
        assert not executor.running() and not executor.alive() and not executor.ready()
        assert executor.health()["supervisor"].startswith("failed: the worker pool's supervisor failed")
        wait_until(lambda: executor.health()["alive"] == 0, 30, "the broken pool to stop its worker")
        with pytest.raises(WorkerDied, match="supervisor failed"):
            executor.submit(_task()).result(timeout=1)
    finally:
        executor.shutdown()


def test_shutdown_fails_unfinished_work() -> None:
    executor = LocalPool(["cpu"], threads=1)
    queued = [executor.submit(_task()) for _ in range(3)]
    executor.shutdown()
    assert not executor.alive()
    for future in queued:
        with pytest.raises(WorkerDied):
            future.result(timeout=10)
    with pytest.raises(RuntimeError, match="shut down"):
        executor.submit(_task())


def test_cpu_workers_split_the_cores() -> None:
    cores = len(os.sched_getaffinity(0))
    assert threads_per_worker(["cpu"]) == cores
    assert threads_per_worker(["cpu"] * (cores + 1)) == 1


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_one_worker_per_cuda_device_each_pinned_to_it() -> None:
    devices = plan_devices("auto", workers=5)
    assert devices == [f"cuda:{index}" for index in range(torch.cuda.device_count())]
    executor = LocalPool(devices)
    try:
        wait_until(executor.ready, 300, "the GPU workers")
        futures = [executor.submit(_task()) for _ in devices]
        assert sorted(future.result(timeout=300).device for future in futures) == sorted(devices)
    finally:
        executor.shutdown()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
@pytest.mark.parametrize("tf32", [False, True])
def test_gpu_workers_use_tf32_only_when_asked(tf32: bool) -> None:
    """TF32 off by default, even for cuDNN convolutions where PyTorch allows it; opted in, results say so."""
    executor = LocalPool(["cuda:0"], tf32=tf32)
    try:
        wait_until(executor.ready, 300, "the GPU worker")
        result = executor.submit(_task()).result(timeout=300)
        assert result.device == ("cuda:0+tf32" if tf32 else "cuda:0")
    finally:
        executor.shutdown()


def test_tf32_changes_nothing_on_cpu() -> None:
    executor = LocalPool(["cpu"], threads=1, tf32=True)
    try:
        wait_until(executor.ready, 120, "the worker")
        assert executor.submit(_task()).result(timeout=120).device == "cpu"
    finally:
        executor.shutdown()


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")
def test_cells_at_once_on_a_gpu_each_on_its_stream_give_the_values_of_one_at_a_time() -> None:
    tasks = [_slow_task(seed) for seed in range(4)]
    values = {}
    for lanes in (1, 4):
        executor = LocalPool(["cuda:0"], cells_per_worker=lanes)
        try:
            wait_until(executor.ready, 300, "the GPU worker")
            futures = [executor.submit(task) for task in tasks]
            values[lanes] = [_values(future.result(timeout=300)) for future in futures]
        finally:
            executor.shutdown()
    for alone, together in zip(values[1], values[4], strict=True):
        assert together == pytest.approx(alone, rel=1e-4)
