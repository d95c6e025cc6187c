"""Jobs on a real database (SQLite file and PostgreSQL): identical requests resume the same job, stored
scores complete items at once, cancelling stops the pending items (and conflicts once the job is done), and
re-running a finished batch retries its failed items in place."""

from collections.abc import Iterator

import pytest
from conftest import queue_job

from app.db import Database
from app.db.migrations import upgrade
from app.queue import items as queue
from app.services import jobs
from app.services.errors import Conflict
from app.services.scores import record_scores
from scorers import ProxyResult
from search_spaces import nb201


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    upgrade(database_url)
    db = Database(database_url)
    yield db
    db.dispose()


def test_identical_requests_resume_and_stored_scores_complete_items(database: Database) -> None:
    archs = nb201.all_archs()[300:304]
    job_id, created, architecture_ids = queue_job(database, archs)
    again_id, again_created, _ = queue_job(database, list(reversed(archs)))
    assert created and not again_created and again_id == job_id
    assert queue_job(database, archs, resume=False)[0] != job_id
    with database.session() as session:
        job = jobs.get_job(session, job_id)
        record_scores(
            session,
            member_ids=architecture_ids[:2],
            computed_from_id=architecture_ids[0],
            config_id=job.config_id,
            outcomes={proxy: ProxyResult(1.5, 0.1) for proxy in job.proxies},
            device="cpu",
        )
        assert jobs.complete_cached_items(session, job) == 2
    fresh_id, _, _ = queue_job(database, archs[:2])
    with database.read_session() as session:
        assert jobs.job_progress(session, jobs.get_job(session, job_id)).done == 2
        fresh = jobs.get_job(session, fresh_id)
        assert fresh.status == "done" and jobs.job_progress(session, fresh).done == 2


def test_cancel_stops_pending_items_and_conflicts_once_done(database: Database) -> None:
    job_id, _, _ = queue_job(database, nb201.all_archs()[400:405])
    owner = queue.new_owner_id()
    with database.session() as session:
        [running] = queue.claim_items(session, owner, 1, lease_seconds=600)
        jobs.cancel_job(session, job_id)
    with database.session() as session:
        queue.finish_item(session, running, owner, failed=False, error=None)
        progress = jobs.job_progress(session, jobs.get_job(session, job_id))
        assert (jobs.get_job(session, job_id).status, progress.cancelled, progress.done) == ("cancelled", 4, 1)
        assert queue.claim_items(session, owner, 5, lease_seconds=600) == []
    done_id, _, _ = queue_job(database, nb201.all_archs()[500:501])
    with database.session() as session:
        [item] = queue.claim_items(session, owner, 1, lease_seconds=600)
        queue.finish_item(session, item, owner, failed=False, error=None)
    with pytest.raises(Conflict), database.session() as session:
        jobs.cancel_job(session, done_id)


def test_rerunning_a_finished_batch_retries_its_failed_items_in_place(database: Database) -> None:
    archs = nb201.all_archs()[800:803]
    job_id, created, _ = queue_job(database, archs)
    with database.session() as session:
        items = queue.claim_items(session, "worker", 3, lease_seconds=60)
        queue.finish_item(session, items[0], "worker", failed=True, error="RuntimeError: out of memory")
        for item in items[1:]:
            queue.finish_item(session, item, "worker", failed=False, error=None)
    with database.read_session() as session:
        assert jobs.get_job(session, job_id).status == "done"
    again_id, created_again, _ = queue_job(database, archs)
    assert created and not created_again and again_id == job_id
    with database.read_session() as session:
        job = jobs.get_job(session, job_id)
        progress = jobs.job_progress(session, job)
        assert job.status == "pending" and job.finished_at is None
        assert (progress.pending, progress.done, progress.failed) == (1, 2, 0)
    with database.session() as session:
        [retried] = queue.claim_items(session, "worker", 3, lease_seconds=60)
        assert retried.architecture_id == items[0].architecture_id and retried.attempts == 1
        queue.finish_item(session, retried, "worker", failed=False, error=None)
    third_id, created_third, _ = queue_job(database, archs)
    assert created_third and third_id != job_id  # nothing left to retry: a re-run is a new batch
