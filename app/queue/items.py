"""The queue mechanics: how dispatchers — threads of one process, several API processes, hosts of a cluster —
share the items of open jobs through the database without ever running one twice at the same time.

An item is *claimed* (pending → running, for an owner, with a lease), its lease is *renewed* while its owner
works on it (the heartbeat), and then it is *finished* (done or failed), *released* (its worker died: it is
tried again until it runs out of attempts) or *returned* untouched. An owner that stops renewing — killed,
its host lost, cut off from the database — loses its items once their leases run out (`requeue_expired`);
one that stops cleanly hands them back at once (`release_owned`). Expiry is the only way abandoned work is
found, so it does not matter which host the owner ran on. Every change to a running item is conditional on
its owner still holding it, so a stale owner cannot overwrite work another one took over."""

import os
import socket
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import func, literal, select, update
from sqlalchemy.orm import Session

from app.db.models import (
    Architecture,
    ItemStatus,
    Job,
    JobItem,
    JobStatus,
    ScoringConfig,
    SearchSpace,
    UtcDateTime,
    utcnow,
)
from app.db.upsert import rows_changed
from app.services.jobs import OPEN_JOB_STATUSES, finalize_job


@dataclass(frozen=True)
class ClaimedItem:
    """Everything a dispatcher needs to run one item without another query."""

    item_id: int
    job_id: int
    attempts: int
    architecture_id: int
    arch: str
    canonical_key: str
    space_id: int
    space_name: str
    config: ScoringConfig
    proxies: tuple[str, ...]


def new_owner_id() -> str:
    """host/pid/token: names a dispatcher for operators reading `claimed_by`; the token keeps two runs of
    one process apart. Nothing reads the host or the pid back: leases alone decide what is abandoned."""
    return f"{socket.gethostname()}/{os.getpid()}/{os.urandom(4).hex()}"


def lease_clock(session: Session) -> datetime:
    """The time leases are written and compared in: the database server's clock on PostgreSQL, so that
    dispatchers on hosts whose clocks disagree still agree on when a lease has run out; a SQLite file is
    only ever shared by processes of one host, whose clock it is."""
    if session.get_bind().dialect.name == "postgresql":
        return session.execute(select(func.now())).scalar_one().astimezone(UTC)
    return utcnow()


def claim_items(session: Session, owner: str, limit: int, lease_seconds: float) -> list[ClaimedItem]:
    """Move up to `limit` pending items to running for `owner`, the most urgent first: the open job of highest
    priority, then the oldest, in item order; the next job's items only when that one runs short. Their
    jobs are marked running.

    Claiming from a job is one UPDATE of the items a materialised sub-select picks (through the index on
    job, status and id, so a claim costs the same however many items are queued): on PostgreSQL the
    sub-select locks them `FOR UPDATE SKIP LOCKED`, so concurrent claimers take different items without
    waiting on one another; on SQLite it runs inside the write transaction (BEGIN IMMEDIATE) that
    serialises writers."""
    if limit <= 0:
        return []
    has_pending = select(JobItem.id).where(JobItem.job_id == Job.id, JobItem.status == ItemStatus.PENDING).exists()
    job_ids = (
        session.execute(
            select(Job.id).where(Job.status.in_(OPEN_JOB_STATUSES), has_pending).order_by(Job.priority.desc(), Job.id)
        )
        .scalars()
        .all()
    )
    if not job_ids:
        return []
    now = lease_clock(session)
    claimed: dict[int, list[int]] = {}  # job id -> its items claimed
    for job_id in job_ids:
        wanted = limit - sum(map(len, claimed.values()))
        if wanted == 0:
            break
        claimed[job_id] = _claim_from_job(session, job_id, owner, wanted, now, lease_seconds)
    item_ids = [item_id for items in claimed.values() for item_id in items]
    if not item_ids:
        return []
    session.execute(
        update(Job)
        .where(
            Job.id.in_([job_id for job_id, items in claimed.items() if items]),
            Job.status == JobStatus.PENDING,
        )
        .values(status=JobStatus.RUNNING, started_at=func.coalesce(Job.started_at, literal(now, UtcDateTime)))
        .execution_options(synchronize_session="fetch")
    )
    return _claimed_details(session, item_ids)


def _claim_from_job(
    session: Session, job_id: int, owner: str, limit: int, now: datetime, lease_seconds: float
) -> list[int]:
    claimable = (
        select(JobItem.id)
        .where(JobItem.job_id == job_id, JobItem.status == ItemStatus.PENDING)
        .order_by(JobItem.id)
        .limit(limit)
        .with_for_update(skip_locked=True)
        .cte("claimable")
        .prefix_with("MATERIALIZED", dialect="postgresql")
    )
    claimed = session.execute(
        update(JobItem)
        .where(JobItem.id.in_(select(claimable.c.id)), JobItem.status == ItemStatus.PENDING)
        .values(
            status=ItemStatus.RUNNING,
            attempts=JobItem.attempts + 1,
            claimed_by=owner,
            lease_until=now + timedelta(seconds=lease_seconds),
            started_at=now,
        )
        .returning(JobItem.id)
        .execution_options(synchronize_session=False)
    )
    return list(claimed.scalars())


def _claimed_details(session: Session, item_ids: Sequence[int]) -> list[ClaimedItem]:
    rows = session.execute(
        select(JobItem.id, JobItem.attempts, Job, Architecture)
        .join(Job, Job.id == JobItem.job_id)
        .join(Architecture, Architecture.id == JobItem.architecture_id)
        .where(JobItem.id.in_(item_ids))
        .order_by(Job.priority.desc(), Job.id, JobItem.id)
    ).all()
    return [
        ClaimedItem(
            item_id=item_id,
            job_id=job.id,
            attempts=attempts,
            architecture_id=architecture.id,
            arch=architecture.arch,
            canonical_key=architecture.canonical_key,
            space_id=job.space_id,
            space_name=session.get_one(SearchSpace, job.space_id).name,
            config=session.get_one(ScoringConfig, job.config_id),
            proxies=tuple(job.proxies),
        )
        for item_id, attempts, job, architecture in rows
    ]


def renew_leases(session: Session, owner: str, item_ids: Sequence[int], lease_seconds: float) -> None:
    """The heartbeat: extend the leases of the items `owner` is actually working on (anything else it lost
    track of is left to expire and be requeued)."""
    session.execute(
        update(JobItem)
        .where(JobItem.id.in_(item_ids), JobItem.claimed_by == owner, JobItem.status == ItemStatus.RUNNING)
        .values(lease_until=lease_clock(session) + timedelta(seconds=lease_seconds))
        .execution_options(synchronize_session=False)
    )


def requeue_expired(session: Session) -> int:
    """Put running items whose lease has run out back to pending (their attempts still count). Returns how
    many."""
    expired = (JobItem.lease_until < lease_clock(session)) | JobItem.lease_until.is_(None)
    return rows_changed(
        session,
        update(JobItem)
        .where(JobItem.status == ItemStatus.RUNNING, expired)
        .values(status=ItemStatus.PENDING, claimed_by=None, lease_until=None)
        .execution_options(synchronize_session=False),
    )


def finish_item(session: Session, item: ClaimedItem, owner: str, *, failed: bool, error: str | None) -> None:
    """Record an item's end (only if `owner` still holds it) and close its job when it was the last."""
    session.execute(
        update(JobItem)
        .where(JobItem.id == item.item_id, JobItem.status == ItemStatus.RUNNING, JobItem.claimed_by == owner)
        .values(
            status=ItemStatus.FAILED if failed else ItemStatus.DONE,
            error=error,
            finished_at=utcnow(),
            lease_until=None,
        )
        .execution_options(synchronize_session=False)
    )
    finalize_job(session, session.get_one(Job, item.job_id))


def release_item(session: Session, item: ClaimedItem, owner: str, error: str, max_attempts: int) -> None:
    """The item's worker died: try again later, or fail it once it has used up its attempts."""
    if item.attempts >= max_attempts:
        finish_item(session, item, owner, failed=True, error=f"{error} (after {item.attempts} attempts)")
        return
    session.execute(
        update(JobItem)
        .where(JobItem.id == item.item_id, JobItem.status == ItemStatus.RUNNING, JobItem.claimed_by == owner)
        .values(status=ItemStatus.PENDING, claimed_by=None, lease_until=None, error=error)
        .execution_options(synchronize_session=False)
    )


def return_item(session: Session, item: ClaimedItem, owner: str) -> None:
    """Hand a claimed item back untouched (its claim does not count as an attempt)."""
    _unclaim(session, (JobItem.id == item.item_id) & (JobItem.claimed_by == owner))


def release_owned(session: Session, owner: str) -> int:
    """On a clean stop: every item `owner` still holds goes straight back to pending."""
    return _unclaim(session, JobItem.claimed_by == owner)


def _unclaim(session: Session, condition: Any) -> int:
    return rows_changed(
        session,
        update(JobItem)
        .where(condition, JobItem.status == ItemStatus.RUNNING)
        .values(status=ItemStatus.PENDING, claimed_by=None, lease_until=None, attempts=JobItem.attempts - 1)
        .execution_options(synchronize_session=False),
    )
