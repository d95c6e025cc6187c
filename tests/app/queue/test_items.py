"""The queue mechanics on a real database (SQLite file and PostgreSQL): concurrent claimers never share an
item, and on PostgreSQL one never waits for another's open claim (SKIP LOCKED); items are claimed most
urgent first across jobs; abandoned items are found by expired leases only (whatever became of the owner's
process), while renewed ones are left alone; a stale owner cannot overwrite an item it lost; a clean stop
hands items back without counting the attempt."""

import socket
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest
from conftest import queue_job
from sqlalchemy import select, text

from app.db import Database
from app.db.migrations import upgrade
from app.db.models import JobItem
from app.queue import items as queue
from app.services import jobs
from search_spaces import nb201


@pytest.fixture
def database(database_url: str) -> Iterator[Database]:
    upgrade(database_url)
    db = Database(database_url)
    yield db
    db.dispose()


def _statuses(database: Database) -> dict[int, str]:
    with database.read_session() as session:
        return dict(session.execute(select(JobItem.id, JobItem.status)).all())


def _claim_all(database: Database, owner: str, claimed: list[int]) -> None:
    while True:
        with database.session() as session:
            batch = queue.claim_items(session, owner, 3, lease_seconds=60)
        if not batch:
            return
        claimed.extend(item.item_id for item in batch)


def test_concurrent_claims_never_share_an_item(database: Database) -> None:
    job_id, _, _ = queue_job(database, nb201.all_archs()[:60])
    claims: dict[str, list[int]] = {"a": [], "b": [], "c": []}
    threads = [threading.Thread(target=_claim_all, args=(database, owner, claims[owner])) for owner in claims]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    claimed = [item_id for owned in claims.values() for item_id in owned]
    assert len(claimed) == len(set(claimed)) == 60
    with database.read_session() as session:
        progress = jobs.job_progress(session, jobs.get_job(session, job_id))
        assert (progress.running, progress.pending) == (60, 0)
        assert jobs.get_job(session, job_id).status == "running"


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_claimer_skips_the_items_another_is_claiming_instead_of_waiting(database: Database) -> None:
    """One claim's transaction stays open while a second claimer runs: with SKIP LOCKED the second takes the
    next items at once (without it, it would wait on the first's row locks: the lock timeout turns that
    wait into a failure instead of a hang)."""
    queue_job(database, nb201.all_archs()[900:906])
    with database.session() as session:
        queue.claim_items(session, "warm-up", 1, lease_seconds=60)  # the job is running from here on
    with database.session() as first:
        held = queue.claim_items(first, "first", 2, lease_seconds=60)
        with database.session() as second:
            second.execute(text("SET LOCAL lock_timeout = '20s'"))
            taken = queue.claim_items(second, "second", 5, lease_seconds=60)
    assert len(held) == 2 and len(taken) == 3
    assert not {item.item_id for item in held} & {item.item_id for item in taken}
    assert set(_statuses(database).values()) == {"running"}


def test_items_are_claimed_by_priority_then_job_age_then_order(database: Database) -> None:
    older, _, older_archs = queue_job(database, nb201.all_archs()[600:603])
    newer, _, _ = queue_job(database, nb201.all_archs()[603:606])
    urgent, _, _ = queue_job(database, [nb201.all_archs()[700]], kind="score")
    with database.session() as session:
        claimed = queue.claim_items(session, queue.new_owner_id(), 5, lease_seconds=60)
    assert [item.job_id for item in claimed] == [urgent, older, older, older, newer]
    assert [item.architecture_id for item in claimed[1:4]] == older_archs
    assert claimed[0].arch == nb201.all_archs()[700] and claimed[0].proxies == ("snip", "synflow")
    assert {item.attempts for item in claimed} == {1}


def _finished_process_owner() -> str:
    """An owner id naming a process of this host that has exited."""
    finished = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    return f"{socket.gethostname()}/{finished.stdout.strip()}/gone"


def test_only_expired_leases_are_requeued_whatever_became_of_the_owner(database: Database) -> None:
    queue_job(database, nb201.all_archs()[100:106])
    with database.session() as session:
        live = queue.claim_items(session, queue.new_owner_id(), 2, lease_seconds=600)
        exited = queue.claim_items(session, _finished_process_owner(), 2, lease_seconds=600)
        expired = queue.claim_items(session, queue.new_owner_id(), 2, lease_seconds=-1)
    with database.session() as session:
        assert queue.requeue_expired(session) == 2
    statuses = _statuses(database)
    assert {statuses[i.item_id] for i in live + exited} == {"running"}, "a live lease is kept, wherever its owner"
    assert {statuses[i.item_id] for i in expired} == {"pending"}


def test_a_stale_owner_cannot_finish_an_item_it_lost(database: Database) -> None:
    queue_job(database, nb201.all_archs()[200:201])
    first, second = queue.new_owner_id(), queue.new_owner_id()
    with database.session() as session:
        [lost] = queue.claim_items(session, first, 1, lease_seconds=-1)
    with database.session() as session:
        queue.requeue_expired(session)
        [taken] = queue.claim_items(session, second, 1, lease_seconds=600)
    with database.session() as session:
        queue.finish_item(session, lost, first, failed=True, error="late and wrong")
    with database.read_session() as session:
        item = session.get_one(JobItem, taken.item_id)
        assert (item.status, item.claimed_by, item.attempts, item.error) == ("running", second, 2, None)


def test_lease_renewal_keeps_only_the_named_items(database: Database) -> None:
    queue_job(database, nb201.all_archs()[800:802])
    owner = queue.new_owner_id()
    with database.session() as session:
        kept, forgotten = queue.claim_items(session, owner, 2, lease_seconds=-1)
        queue.renew_leases(session, owner, [kept.item_id], lease_seconds=600)
    with database.session() as session:
        assert queue.requeue_expired(session) == 1
    statuses = _statuses(database)
    assert (statuses[kept.item_id], statuses[forgotten.item_id]) == ("running", "pending")


def test_a_clean_stop_hands_back_only_its_own_items_without_counting_the_attempt(database: Database) -> None:
    queue_job(database, nb201.all_archs()[850:854])
    stopping, other = queue.new_owner_id(), queue.new_owner_id()
    with database.session() as session:
        mine = queue.claim_items(session, stopping, 2, lease_seconds=600)
        theirs = queue.claim_items(session, other, 2, lease_seconds=600)
        assert queue.release_owned(session, stopping) == 2
    with database.read_session() as session:
        for item in mine:
            row = session.get_one(JobItem, item.item_id)
            assert (row.status, row.claimed_by, row.lease_until, row.attempts) == ("pending", None, None, 0)
        assert {session.get_one(JobItem, item.item_id).status for item in theirs} == {"running"}
