"""The persistent job queue on a real database (SQLite file and PostgreSQL): concurrent claims never
share an item, abandoned items are requeued (dead owner or expired lease) while live ones are left alone,
identical requests resume the same job, stored scores complete items at once, and a stale owner cannot
overwrite an item it lost."""

import socket
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest
from sqlalchemy import select

from app.db import Database
from app.db.migrations import upgrade
from app.db.models import BatchItem, JobKind, SearchSpace
from app.services import jobs
from app.services.calibration import CalibrationStore
from app.services.configs import ConfigOptions, get_or_create_config, resolve_config
from app.services.errors import Conflict
from app.services.scores import record_scores
from app.services.spaces import ensure_space, get_or_create_architectures
from app.workers.base import ProxyOutcome
from search_spaces import nb201

PROXIES = ("snip", "synflow")


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    upgrade(database_url)
    db = Database(database_url)
    yield db
    db.dispose()


def _synthetic_config(database: Database):
    with database.read_session() as session:
        return resolve_config(session, CalibrationStore(), "cifar10", ConfigOptions(data="synthetic", batch_size=4))


def _job(database: Database, tmp_path, archs: list[str], resume: bool = True) -> tuple[int, bool, list[int]]:
    resolved = _synthetic_config(database)
    with database.session() as session:
        space = ensure_space(session, "nb201")
        architectures = get_or_create_architectures(session, space, archs)
        config = get_or_create_config(session, resolved)
        job, created = jobs.create_job(
            session,
            kind=JobKind.BATCH,
            space=space,
            config=config,
            proxies=PROXIES,
            architectures=architectures,
            resume=resume,
        )
        return job.id, created, [a.id for a in architectures]


def _claim_all(database: Database, owner: str, claimed: list[int]) -> None:
    while True:
        with database.session() as session:
            batch = jobs.claim_items(session, owner, 3, lease_seconds=60)
        if not batch:
            return
        claimed.extend(item.item_id for item in batch)


def test_concurrent_claims_never_share_an_item(database: Database, tmp_path) -> None:
    job_id, _, _ = _job(database, tmp_path, nb201.all_archs()[:60])
    claims: dict[str, list[int]] = {"a": [], "b": []}
    threads = [threading.Thread(target=_claim_all, args=(database, owner, claims[owner])) for owner in claims]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not set(claims["a"]) & set(claims["b"])
    assert len(claims["a"]) + len(claims["b"]) == 60
    with database.read_session() as session:
        progress = jobs.job_progress(session, jobs.get_job(session, job_id))
        assert (progress.running, progress.pending) == (60, 0)
        assert jobs.get_job(session, job_id).status == "running"


def _dead_owner() -> str:
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return f"{socket.gethostname()}/{finished.stdout.strip()}/gone"


def test_requeue_takes_back_only_abandoned_items(database: Database, tmp_path) -> None:
    _job(database, tmp_path, nb201.all_archs()[100:106])
    live, dead, expired = jobs.new_owner_id(), _dead_owner(), jobs.new_owner_id()
    with database.session() as session:
        mine = jobs.claim_items(session, live, 2, lease_seconds=600)
        lost = jobs.claim_items(session, dead, 2, lease_seconds=600)
        stale = jobs.claim_items(session, expired, 2, lease_seconds=-1)
    with database.session() as session:
        assert jobs.requeue_abandoned(session) == 4
    with database.read_session() as session:
        statuses = dict(session.execute(select(BatchItem.id, BatchItem.status)).all())
    assert {statuses[i.item_id] for i in mine} == {"running"}
    assert {statuses[i.item_id] for i in lost + stale} == {"pending"}


def test_a_stale_owner_cannot_finish_an_item_it_lost(database: Database, tmp_path) -> None:
    _job(database, tmp_path, nb201.all_archs()[200:201])
    first, second = jobs.new_owner_id(), jobs.new_owner_id()
    with database.session() as session:
        [lost] = jobs.claim_items(session, first, 1, lease_seconds=-1)
    with database.session() as session:
        jobs.requeue_abandoned(session)
        [taken] = jobs.claim_items(session, second, 1, lease_seconds=600)
    with database.session() as session:
        jobs.finish_item(session, lost, first, failed=True, error="late and wrong")
    with database.read_session() as session:
        item = session.get(BatchItem, taken.item_id)
        assert (item.status, item.claimed_by, item.attempts, item.error) == ("running", second, 2, None)


def test_identical_requests_resume_and_stored_scores_complete_items(database: Database, tmp_path) -> None:
    archs = nb201.all_archs()[300:304]
    job_id, created, architecture_ids = _job(database, tmp_path, archs)
    again_id, again_created, _ = _job(database, tmp_path, list(reversed(archs)))
    assert created and not again_created and again_id == job_id
    assert _job(database, tmp_path, archs, resume=False)[0] != job_id
    with database.session() as session:
        job = jobs.get_job(session, job_id)
        outcomes = {proxy: ProxyOutcome(1.5, 0.1) for proxy in PROXIES}
        record_scores(
            session,
            member_ids=architecture_ids[:2],
            computed_from_id=architecture_ids[0],
            config_id=job.config_id,
            outcomes=outcomes,
            device="cpu",
        )
        assert jobs.complete_cached_items(session, job) == 2
    fresh_id, _, _ = _job(database, tmp_path, archs[:2])
    with database.read_session() as session:
        assert jobs.job_progress(session, jobs.get_job(session, job_id)).done == 2
        fresh = jobs.get_job(session, fresh_id)
        assert fresh.status == "done" and jobs.job_progress(session, fresh).done == 2


def test_cancel_stops_pending_items_and_conflicts_once_done(database: Database, tmp_path) -> None:
    job_id, _, _ = _job(database, tmp_path, nb201.all_archs()[400:405])
    owner = jobs.new_owner_id()
    with database.session() as session:
        [running] = jobs.claim_items(session, owner, 1, lease_seconds=600)
        jobs.cancel_job(session, job_id)
    with database.session() as session:
        jobs.finish_item(session, running, owner, failed=False, error=None)
        progress = jobs.job_progress(session, jobs.get_job(session, job_id))
        assert (jobs.get_job(session, job_id).status, progress.cancelled, progress.done) == ("cancelled", 4, 1)
        assert jobs.claim_items(session, owner, 5, lease_seconds=600) == []
    done_id, _, _ = _job(database, tmp_path, nb201.all_archs()[500:501])
    with database.session() as session:
        [item] = jobs.claim_items(session, owner, 1, lease_seconds=600)
        jobs.finish_item(session, item, owner, failed=False, error=None)
    with pytest.raises(Conflict), database.session() as session:
        jobs.cancel_job(session, done_id)


def test_priority_jobs_are_claimed_first(database: Database, tmp_path) -> None:
    _job(database, tmp_path, nb201.all_archs()[600:610])
    resolved = _synthetic_config(database)
    with database.session() as session:
        space = session.execute(select(SearchSpace)).scalar_one()
        [architecture] = get_or_create_architectures(session, space, [nb201.all_archs()[700]])
        urgent, _ = jobs.create_job(
            session,
            kind=JobKind.SCORE,
            space=space,
            config=get_or_create_config(session, resolved),
            proxies=PROXIES,
            architectures=[architecture],
        )
    with database.session() as session:
        [first] = jobs.claim_items(session, jobs.new_owner_id(), 5, lease_seconds=60)
        assert first.batch_id == urgent.id and first.arch == nb201.all_archs()[700]


def test_lease_renewal_keeps_only_the_named_items(database: Database, tmp_path) -> None:
    _job(database, tmp_path, nb201.all_archs()[800:802])
    owner = jobs.new_owner_id()
    with database.session() as session:
        kept, forgotten = jobs.claim_items(session, owner, 2, lease_seconds=-1)
        jobs.renew_leases(session, owner, [kept.item_id], lease_seconds=600)
    with database.session() as session:
        assert jobs.requeue_abandoned(session) == 1
    with database.read_session() as session:
        assert session.get(BatchItem, kept.item_id).status == "running"
        assert session.get(BatchItem, forgotten.item_id).status == "pending"


def test_rerunning_a_finished_batch_retries_its_failed_items_in_place(database: Database, tmp_path) -> None:
    archs = nb201.all_archs()[800:803]
    job_id, created, _ = _job(database, tmp_path, archs)
    with database.session() as session:
        items = jobs.claim_items(session, "worker", 3, lease_seconds=60)
        jobs.finish_item(session, items[0], "worker", failed=True, error="RuntimeError: out of memory")
        for item in items[1:]:
            jobs.finish_item(session, item, "worker", failed=False, error=None)
    with database.read_session() as session:
        assert jobs.get_job(session, job_id).status == "done"
    again_id, created_again, _ = _job(database, tmp_path, archs)
    assert created and not created_again and again_id == job_id
    with database.read_session() as session:
        job = jobs.get_job(session, job_id)
        progress = jobs.job_progress(session, job)
        assert job.status == "pending" and job.finished_at is None
        assert (progress.pending, progress.done, progress.failed) == (1, 2, 0)
    with database.session() as session:
        [retried] = jobs.claim_items(session, "worker", 3, lease_seconds=60)
        assert retried.architecture_id == items[0].architecture_id and retried.attempts == 1
        jobs.finish_item(session, retried, "worker", failed=False, error=None)
    third_id, created_third, _ = _job(database, tmp_path, archs)
    assert created_third and third_id != job_id  # nothing left to retry: a re-run is a new batch
