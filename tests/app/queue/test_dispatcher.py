"""The dispatcher with a real local pool (spawned processes, real NB201 models) on a real SQLite file: a bad
item in a batch is recorded as failed while the rest completes, each class scored with every requested
proxy; the leases of items it is computing are renewed, so a task longer than a lease is never taken from
it; and the work of a pool whose supervisor failed goes back to the queue instead of being held forever."""

import time
from collections.abc import Iterator

import pytest
from conftest import TINY_CONFIG, wait_until
from sqlalchemy import select

from app.db import Database
from app.db.migrations import upgrade
from app.db.models import Architecture, JobItem, JobKind, Score
from app.queue.dispatcher import Dispatcher
from app.services import jobs
from app.services.calibration import CalibrationStore
from app.services.configs import ConfigOptions, get_or_create_config, resolve_config
from app.services.spaces import ensure_space, get_or_create_architectures
from app.workers.base import CalibrationInput, ScoringTask
from app.workers.local import LocalPool
from search_spaces import nb201

ARCH = "|nor_conv_3x3~0|+|nor_conv_1x1~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
PROXIES = ("snip", "grasp", "synflow")
# A network that takes a worker seconds, not milliseconds, to score: longer than the short lease below.
SLOW_CONFIG = TINY_CONFIG | {"batch_size": 64, "channels": 32, "cells_per_stage": 3}
SHORT_LEASE_SECONDS = 1.5


@pytest.fixture
def database(sqlite_url: str) -> Iterator[Database]:
    upgrade(sqlite_url)
    db = Database(sqlite_url)
    yield db
    db.dispose()


@pytest.fixture(scope="module")
def pool() -> Iterator[LocalPool]:
    executor = LocalPool(["cpu"], threads=1)
    wait_until(executor.ready, 180, "the worker to start")
    yield executor
    executor.shutdown()


@pytest.fixture
def running(database: Database) -> Iterator[list[Dispatcher]]:
    """Dispatchers a test starts; each is stopped after it."""
    started: list[Dispatcher] = []
    yield started
    for dispatcher in started:
        dispatcher.stop()


def _start(running: list[Dispatcher], dispatcher: Dispatcher) -> Dispatcher:
    dispatcher.start()
    running.append(dispatcher)
    return dispatcher


def _batch_job(database: Database, archs: list[str], config: dict[str, object], broken: bool = False) -> int:
    """A batch of `archs` (plus, when `broken`, a cell no worker can build, in the middle); returns its id."""
    with database.read_session() as session:
        resolved = resolve_config(session, CalibrationStore(), "cifar10", ConfigOptions(**config))
    with database.session() as session:
        space = ensure_space(session, "nb201")
        architectures = get_or_create_architectures(session, space, archs)
        if broken:
            bad = Architecture(space_id=space.id, arch="|broken~0|", canonical_key="broken")
            session.add(bad)
            session.flush()
            architectures.insert(len(architectures) // 2, bad)
        job, _ = jobs.create_job(
            session,
            kind=JobKind.BATCH,
            space=space,
            config=get_or_create_config(session, resolved),
            proxies=PROXIES,
            architectures=architectures,
        )
        return job.id


def _finished(database: Database, job_id: int) -> bool:
    with database.read_session() as session:
        return jobs.get_job(session, job_id).status == "done"


def _item_states(database: Database, job_id: int) -> list[tuple[str, str | None, object, str | None, int]]:
    """(status, claimed_by, lease_until, error, attempts) of each of the batch's items."""
    with database.read_session() as session:
        query = select(JobItem.status, JobItem.claimed_by, JobItem.lease_until, JobItem.error, JobItem.attempts)
        return [tuple(row) for row in session.execute(query.where(JobItem.job_id == job_id))]


def test_dispatcher_records_a_bad_item_and_finishes_the_batch(
    database: Database, pool: LocalPool, running: list[Dispatcher]
) -> None:
    job_id = _batch_job(database, nb201.all_archs()[3000:3004], TINY_CONFIG, broken=True)
    _start(running, Dispatcher(database, pool, CalibrationStore(), poll_seconds=0.05))
    wait_until(lambda: _finished(database, job_id), 300, "the batch")
    with database.read_session() as session:
        progress = jobs.job_progress(session, jobs.get_job(session, job_id))
        assert (progress.done, progress.failed, progress.total) == (4, 1, 5)
        [error] = session.execute(select(JobItem.error).where(JobItem.status == "failed")).scalars()
        assert "broken" in error
        scored = select(Architecture.arch, Score.proxy).join(Score, Score.architecture_id == Architecture.id)
        proxies_by_arch: dict[str, list[str]] = {}
        for arch, proxy in session.execute(scored):
            proxies_by_arch.setdefault(arch, []).append(proxy)
        assert {arch: sorted(proxies) for arch, proxies in proxies_by_arch.items()} == {
            arch: sorted(PROXIES) for arch in nb201.all_archs()[3000:3004]
        }


def test_the_leases_of_items_being_computed_are_renewed(
    database: Database, pool: LocalPool, running: list[Dispatcher]
) -> None:
    """Every task here outlasts the lease: without renewals the dispatcher's own requeue would take the item
    back and claim it again (a second attempt)."""
    job_id = _batch_job(database, [ARCH], SLOW_CONFIG)
    dispatcher = Dispatcher(database, pool, CalibrationStore(), poll_seconds=0.05, lease_seconds=SHORT_LEASE_SECONDS)
    _start(running, dispatcher)
    wait_until(lambda: _item_states(database, job_id)[0][0] == "running", 60, "the dispatcher to claim the item")
    first_lease = _item_states(database, job_id)[0][2]

    def renewed() -> bool:
        status, _, lease, _, _ = _item_states(database, job_id)[0]
        return status == "running" and lease != first_lease

    wait_until(renewed, 60, "the lease of the running item to be renewed")
    wait_until(lambda: _finished(database, job_id), 300, "the batch")
    [(status, owner, lease, error, attempts)] = _item_states(database, job_id)
    assert (status, owner, lease, error, attempts) == ("done", dispatcher.owner, None, None, 1)


def _fail_supervisor(pool: LocalPool, monkeypatch: pytest.MonkeyPatch) -> None:
    """Make the pool's supervisor loop raise at its next iteration, as a bug in it would."""

    def assign_tasks() -> None:
        raise RuntimeError("injected supervisor fault")

    monkeypatch.setattr(pool, "_assign_tasks", assign_tasks)


def test_dispatcher_hands_back_the_work_of_a_broken_pool(
    database: Database, running: list[Dispatcher], monkeypatch: pytest.MonkeyPatch
) -> None:
    job_id = _batch_job(database, [ARCH], TINY_CONFIG)
    executor = LocalPool(["cpu"], threads=1)
    try:
        monkeypatch.setattr(executor, "_assign_tasks", lambda: None)  # holds the task queued, never started
        dispatcher = _start(running, Dispatcher(database, executor, CalibrationStore(), poll_seconds=0.05))
        wait_until(lambda: _item_states(database, job_id)[0][0] == "running", 60, "the dispatcher to claim the item")
        _fail_supervisor(executor, monkeypatch)
        executor.submit(  # wakes the supervisor, which then fails
            ScoringTask(
                space="nb201",
                arch=ARCH,
                proxies=("snip",),
                calibration=CalibrationInput("cifar10", "synthetic-wake", 8, 8, "random", 0),
                seed=0,
                init="default",
                model_params={},
            )
        )

        def handed_back() -> bool:
            status, owner, lease, _, _ = _item_states(database, job_id)[0]
            return status == "pending" and owner is None and lease is None

        wait_until(handed_back, 60, "the item to go back to pending")
        assert "supervisor failed" in str(_item_states(database, job_id)[0][3])
        wait_until(lambda: not executor.alive(), 10, "the pool to report itself dead")
        dispatcher.wake()
        time.sleep(0.5)  # ten polls: a dispatcher with a broken executor claims nothing
        assert _item_states(database, job_id)[0][:3] == ("pending", None, None)
    finally:
        executor.shutdown()
