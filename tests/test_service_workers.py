"""The local worker pool and the dispatcher with real spawned processes and real NB201 models: results
come back, a task that raises fails only itself, a killed worker fails only its task and is replaced,
and a bad item in a batch is recorded as failed while the rest of the batch completes."""

import math
import os
import signal
from collections.abc import Iterator
from concurrent.futures import Future

import pytest
import torch
from conftest import TINY_CONFIG, wait_until
from sqlalchemy import func, select

from app.db import Database
from app.db.migrations import upgrade
from app.db.models import Architecture, BatchItem, JobKind, Score
from app.services import jobs
from app.services.calibration import CalibrationStore
from app.services.configs import ConfigOptions, get_or_create_config, resolve_config
from app.services.spaces import ensure_space, get_or_create_architectures
from app.workers.base import CalibrationInput, ScoringTask, TaskError, WorkerDied
from app.workers.dispatcher import Dispatcher
from app.workers.local import LocalPool, plan_devices, threads_per_worker
from search_spaces import nb201

ARCH = "|nor_conv_3x3~0|+|nor_conv_1x1~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
MODEL = {"num_classes": 10, "channels": TINY_CONFIG["channels"], "cells_per_stage": TINY_CONFIG["cells_per_stage"]}


def _synthetic_input(seed: int = 0) -> CalibrationInput:
    batch_size = TINY_CONFIG["batch_size"]
    return CalibrationInput(
        dataset="cifar10", key=f"synthetic-test-{seed}", count=batch_size, batch_size=batch_size, sampling="random",
        seed=seed,
    )


def _task(arch: str = ARCH, **changes: object) -> ScoringTask:
    values = dict(
        space="nb201", arch=arch, proxies=("snip", "synflow"), calibration=_synthetic_input(),
        seed=0, init="default", model_params=MODEL,
    )
    return ScoringTask(**(values | changes))


@pytest.fixture(scope="module")
def pool() -> Iterator[LocalPool]:
    executor = LocalPool(["cpu"], threads=1)
    wait_until(executor.ready, 180, "the worker to start")
    yield executor
    executor.shutdown()


def _busy_pid(pool: LocalPool) -> int:
    """The pid of the pool's only worker once it is running a task."""
    wait_until(lambda: pool.health()["busy"] == 1, 60, "the worker to start the task")
    return pool.health()["pids"][0]


def test_pool_scores_a_task_deterministically(pool: LocalPool) -> None:
    first = pool.submit(_task()).result(timeout=120)
    again = pool.submit(_task()).result(timeout=120)
    assert first.device == "cpu" and set(first.outcomes) == {"snip", "synflow"}
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
    big_batch = CalibrationInput(dataset="cifar10", key="synthetic-64", count=64, batch_size=64, sampling="random", seed=0)
    doomed: Future = pool.submit(_task(model_params=MODEL | {"channels": 32, "cells_per_stage": 3}, calibration=big_batch))
    os.kill(_busy_pid(pool), signal.SIGKILL)
    with pytest.raises(WorkerDied, match="exit code -9"):
        doomed.result(timeout=120)
    wait_until(pool.ready, 180, "the replacement worker")
    assert pool.health()["restarts"] == restarts + 1
    assert pool.submit(_task()).result(timeout=120).outcomes["synflow"].value > 0


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


def test_dispatcher_records_a_bad_item_and_finishes_the_batch(pool: LocalPool, sqlite_url: str, tmp_path) -> None:
    upgrade(sqlite_url)
    database = Database(sqlite_url)
    store = CalibrationStore()
    with database.read_session() as session:
        resolved = resolve_config(session, store, "cifar10", ConfigOptions(**TINY_CONFIG))
    good = nb201.all_archs()[3000:3004]
    with database.session() as session:
        space = ensure_space(session, "nb201")
        architectures = get_or_create_architectures(session, space, good)
        broken = Architecture(space_id=space.id, arch="|broken~0|", canonical_key="broken")
        session.add(broken)
        session.flush()
        config = get_or_create_config(session, resolved)
        job, _ = jobs.create_job(
            session, kind=JobKind.BATCH, space=space, config=config, proxies=("snip", "grasp", "synflow"),
            architectures=[*architectures[:2], broken, *architectures[2:]],
        )
    dispatcher = Dispatcher(database, pool, store, poll_seconds=0.05)
    dispatcher.start()
    try:
        def finished() -> bool:
            with database.read_session() as session:
                return jobs.get_job(session, job.id).status == "done"

        wait_until(finished, 300, "the batch")
    finally:
        dispatcher.stop()
    with database.read_session() as session:
        progress = jobs.job_progress(session, jobs.get_job(session, job.id))
        assert (progress.done, progress.failed, progress.total) == (4, 1, 5)
        [error] = session.execute(select(BatchItem.error).where(BatchItem.status == "failed")).scalars()
        assert "broken" in error
        assert session.execute(select(func.count()).where(Score.architecture_id == broken.id)).scalar_one() == 0
        for architecture in architectures:
            proxies = session.execute(select(Score.proxy).where(Score.architecture_id == architecture.id)).scalars()
            assert sorted(proxies) == ["grasp", "snip", "synflow"]
    database.dispose()


def test_cpu_workers_split_the_cores() -> None:
    assert plan_devices("cpu", 3) == ["cpu", "cpu", "cpu"]
    cores = len(os.sched_getaffinity(0))
    assert threads_per_worker(["cpu"]) == cores
    assert threads_per_worker(["cpu"] * (cores + 1)) == 1
    with pytest.raises(ValueError, match="device"):
        plan_devices("tpu", 1)


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
