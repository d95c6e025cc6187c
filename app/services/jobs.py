"""Persistent jobs. A job and its items live in the database, so a killed server loses nothing: items
are claimed with a conditional UPDATE (safe with several dispatchers on either backend), carry a lease
their dispatcher keeps renewing, and go back to pending when their owner is gone. Finished items are
never touched again, so nothing is recomputed."""

import hashlib
import json
import os
import socket
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any, cast

from sqlalchemy import CursorResult, Executable, func, insert, select, update
from sqlalchemy.orm import Session

from app.db.models import (
    Architecture,
    BatchItem,
    BatchJob,
    ItemStatus,
    JobKind,
    JobStatus,
    Score,
    ScoringConfig,
    SearchSpace,
    utcnow,
)
from app.services.errors import Conflict, NotFound

OPEN_JOB_STATUSES = (JobStatus.PENDING, JobStatus.RUNNING)
UNFINISHED_ITEM_STATUSES = (ItemStatus.PENDING, ItemStatus.RUNNING)
INTERACTIVE_PRIORITY = 10
NON_FINITE_NOTE = "a stored score for this architecture is not a finite number (see its scores)"


@dataclass(frozen=True)
class ClaimedItem:
    """Everything a dispatcher needs to run one item without another query."""

    item_id: int
    batch_id: int
    attempts: int
    architecture_id: int
    arch: str
    canonical_key: str
    space_id: int
    space_name: str
    config: ScoringConfig
    proxies: tuple[str, ...]


@dataclass(frozen=True)
class JobProgress:
    total: int
    pending: int
    running: int
    done: int
    failed: int
    cancelled: int
    rate_per_second: float | None
    eta_seconds: float | None


def new_owner_id() -> str:
    """host/pid/token: lets a restarted server on the same host see at once that an owner is dead."""
    return f"{socket.gethostname()}/{os.getpid()}/{os.urandom(4).hex()}"


def owner_is_dead_here(owner: str) -> bool:
    """True when `owner` ran on this host in a process that no longer exists."""
    host, _, rest = owner.partition("/")
    pid_text = rest.partition("/")[0]
    if host != socket.gethostname() or not pid_text.isdigit():
        return False
    try:
        os.kill(int(pid_text), 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def spec_key(kind: str, space_id: int, config_id: int, proxies: Sequence[str], architecture_ids: Iterable[int]) -> str:
    """Identifies identical requests, so re-submitting one resumes the unfinished job instead of copying it."""
    identity = [kind, space_id, config_id, sorted(proxies), sorted(set(architecture_ids))]
    return hashlib.sha256(json.dumps(identity).encode()).hexdigest()


def create_job(
    session: Session,
    *,
    kind: JobKind,
    space: SearchSpace,
    config: ScoringConfig,
    proxies: Sequence[str],
    architectures: Sequence[Architecture],
    resume: bool = True,
    owner: str | None = None,
) -> tuple[BatchJob, bool]:
    """The job for this request: with `resume`, an identical unfinished one, or an identical finished one
    whose failed items go back to the queue (so re-running a batch retries its failures in place); else a
    new one. Items whose scores are already stored are completed at once. Returns (job, created)."""
    architecture_ids = [a.id for a in architectures]
    key = spec_key(kind, space.id, config.id, proxies, architecture_ids)
    if resume:
        existing = _resumable_job(session, key)
        if existing is not None:
            return existing, False
    job = BatchJob(
        kind=kind,
        space_id=space.id,
        config_id=config.id,
        proxies=list(proxies),
        spec_key=key,
        priority=INTERACTIVE_PRIORITY if kind == JobKind.SCORE else 0,
        total=len(set(architecture_ids)),
        owner=owner,
    )
    session.add(job)
    session.flush()
    rows = [
        {"batch_id": job.id, "architecture_id": architecture_id, "status": ItemStatus.PENDING, "attempts": 0}
        for architecture_id in dict.fromkeys(architecture_ids)
    ]
    if rows:
        session.execute(insert(BatchItem), rows)
    complete_cached_items(session, job)
    finalize_job(session, job)
    return job, True


def _resumable_job(session: Session, key: str) -> BatchJob | None:
    latest = select(BatchJob).where(BatchJob.spec_key == key).order_by(BatchJob.id.desc()).limit(1)
    open_job = session.execute(latest.where(BatchJob.status.in_(OPEN_JOB_STATUSES))).scalar_one_or_none()
    if open_job is not None:
        return open_job
    done = session.execute(latest.where(BatchJob.status == JobStatus.DONE)).scalar_one_or_none()
    if done is not None and retry_failed_items(session, done):
        return done
    return None


def retry_failed_items(session: Session, job: BatchJob) -> int:
    """Put a finished job's failed items back to pending with fresh attempts and reopen the job."""
    result = _execute_dml(
        session,
        update(BatchItem)
        .where(BatchItem.batch_id == job.id, BatchItem.status == ItemStatus.FAILED)
        .values(status=ItemStatus.PENDING, attempts=0, error=None, finished_at=None, claimed_by=None, lease_until=None)
        .execution_options(synchronize_session=False),
    )
    retried = max(result.rowcount, 0)
    if retried:
        job.status = JobStatus.PENDING
        job.finished_at = None
        complete_cached_items(session, job)
        finalize_job(session, job)
    return retried


def complete_cached_items(session: Session, job: BatchJob, architecture_ids: Sequence[int] | None = None) -> int:
    """Finish pending items whose every requested proxy is already stored (for example by an isomorphic
    cell or an earlier job) as done, noting when a stored score is not a finite number. Returns how many."""
    finished = 0
    now = utcnow()
    for non_finite in (False, True):
        satisfied = (
            select(Score.architecture_id)
            .where(Score.config_id == job.config_id, Score.proxy.in_(job.proxies))
            .group_by(Score.architecture_id)
            .having(func.count() == len(set(job.proxies)))
            .having((func.count(Score.error) > 0) if non_finite else (func.count(Score.error) == 0))
        )
        if architecture_ids is not None:
            satisfied = satisfied.where(Score.architecture_id.in_(architecture_ids))
        result = _execute_dml(
            session,
            update(BatchItem)
            .where(
                BatchItem.batch_id == job.id,
                BatchItem.status == ItemStatus.PENDING,
                BatchItem.architecture_id.in_(satisfied),
            )
            .values(status=ItemStatus.DONE, error=NON_FINITE_NOTE if non_finite else None, finished_at=now)
            .execution_options(synchronize_session=False),
        )
        finished += max(result.rowcount, 0)
    return finished


def complete_cached_items_everywhere(session: Session, config_id: int, architecture_ids: Sequence[int]) -> None:
    """After new scores land, finish the pending items of every open job they satisfy."""
    job_ids = select(BatchItem.batch_id).where(
        BatchItem.architecture_id.in_(architecture_ids), BatchItem.status == ItemStatus.PENDING
    )
    jobs = session.execute(
        select(BatchJob).where(
            BatchJob.config_id == config_id, BatchJob.id.in_(job_ids), BatchJob.status.in_(OPEN_JOB_STATUSES)
        )
    ).scalars()
    for job in jobs:
        if complete_cached_items(session, job, architecture_ids):
            finalize_job(session, job)


def finalize_job(session: Session, job: BatchJob) -> None:
    """Close a job once none of its items is pending or running (a cancelled job stays cancelled)."""
    if job.status not in OPEN_JOB_STATUSES:
        return
    unfinished = session.execute(
        select(func.count()).where(BatchItem.batch_id == job.id, BatchItem.status.in_(UNFINISHED_ITEM_STATUSES))
    ).scalar_one()
    if unfinished == 0:
        now = utcnow()
        job.status = JobStatus.DONE
        job.started_at = job.started_at or now
        job.finished_at = now


def _next_open_job(session: Session) -> BatchJob | None:
    has_pending = (
        select(BatchItem.id).where(BatchItem.batch_id == BatchJob.id, BatchItem.status == ItemStatus.PENDING).exists()
    )
    query = (
        select(BatchJob)
        .where(BatchJob.status.in_(OPEN_JOB_STATUSES), has_pending)
        .order_by(BatchJob.priority.desc(), BatchJob.id)
        .limit(1)
    )
    return session.execute(query).scalar_one_or_none()


def claim_items(session: Session, owner: str, limit: int, lease_seconds: float) -> list[ClaimedItem]:
    """Atomically move up to `limit` pending items of the most urgent open job to running for `owner`."""
    job = _next_open_job(session)
    if job is None or limit <= 0:
        return []
    candidate_ids = (
        session.execute(
            select(BatchItem.id)
            .where(BatchItem.batch_id == job.id, BatchItem.status == ItemStatus.PENDING)
            .order_by(BatchItem.id)
            .limit(limit)
        )
        .scalars()
        .all()
    )
    now = utcnow()
    claimed_ids = [item_id for item_id in candidate_ids if _claim_one(session, item_id, owner, now, lease_seconds)]
    if claimed_ids and job.status == JobStatus.PENDING:
        job.status = JobStatus.RUNNING
        job.started_at = job.started_at or now
    return _claimed_details(session, job, claimed_ids)


def _claim_one(session: Session, item_id: int, owner: str, now: datetime, lease_seconds: float) -> bool:
    result = _execute_dml(
        session,
        update(BatchItem)
        .where(BatchItem.id == item_id, BatchItem.status == ItemStatus.PENDING)
        .values(
            status=ItemStatus.RUNNING,
            attempts=BatchItem.attempts + 1,
            claimed_by=owner,
            lease_until=now + timedelta(seconds=lease_seconds),
            started_at=now,
        )
        .execution_options(synchronize_session=False),
    )
    return result.rowcount == 1


def _claimed_details(session: Session, job: BatchJob, item_ids: Sequence[int]) -> list[ClaimedItem]:
    if not item_ids:
        return []
    rows = session.execute(
        select(BatchItem.id, BatchItem.attempts, Architecture)
        .join(Architecture, Architecture.id == BatchItem.architecture_id)
        .where(BatchItem.id.in_(item_ids))
        .order_by(BatchItem.id)
    ).all()
    space_name = session.get_one(SearchSpace, job.space_id).name
    config = session.get_one(ScoringConfig, job.config_id)
    return [
        ClaimedItem(
            item_id=item_id,
            batch_id=job.id,
            attempts=attempts,
            architecture_id=architecture.id,
            arch=architecture.arch,
            canonical_key=architecture.canonical_key,
            space_id=job.space_id,
            space_name=space_name,
            config=config,
            proxies=tuple(job.proxies),
        )
        for item_id, attempts, architecture in rows
    ]


def renew_leases(session: Session, owner: str, item_ids: Sequence[int], lease_seconds: float) -> None:
    """Extend the leases of the items `owner` is actually working on (anything else it lost track of is
    left to expire and be requeued)."""
    session.execute(
        update(BatchItem)
        .where(BatchItem.id.in_(item_ids), BatchItem.claimed_by == owner, BatchItem.status == ItemStatus.RUNNING)
        .values(lease_until=utcnow() + timedelta(seconds=lease_seconds))
        .execution_options(synchronize_session=False)
    )


def requeue_abandoned(session: Session, is_dead: Callable[[str], bool] = owner_is_dead_here) -> int:
    """Put running items back to pending when their lease expired or their owner process is gone."""
    now = utcnow()
    running = select(BatchItem.claimed_by).where(BatchItem.status == ItemStatus.RUNNING).distinct()
    owners = session.execute(running).scalars()
    dead = [owner for owner in owners if owner is not None and is_dead(owner)]
    abandoned = (BatchItem.lease_until < now) | BatchItem.claimed_by.in_(dead) | BatchItem.claimed_by.is_(None)
    result = _execute_dml(
        session,
        update(BatchItem)
        .where(BatchItem.status == ItemStatus.RUNNING, abandoned)
        .values(status=ItemStatus.PENDING, claimed_by=None, lease_until=None)
        .execution_options(synchronize_session=False),
    )
    return max(result.rowcount, 0)


def finish_item(session: Session, item: ClaimedItem, owner: str, *, failed: bool, error: str | None) -> None:
    """Record an item's end (only if `owner` still holds it) and close its job when it was the last."""
    session.execute(
        update(BatchItem)
        .where(BatchItem.id == item.item_id, BatchItem.status == ItemStatus.RUNNING, BatchItem.claimed_by == owner)
        .values(
            status=ItemStatus.FAILED if failed else ItemStatus.DONE,
            error=error,
            finished_at=utcnow(),
            lease_until=None,
        )
        .execution_options(synchronize_session=False)
    )
    finalize_job(session, session.get_one(BatchJob, item.batch_id))


def release_item(session: Session, item: ClaimedItem, owner: str, error: str, max_attempts: int) -> None:
    """The item's worker died: try again later, or fail it once it has used up its attempts."""
    if item.attempts >= max_attempts:
        finish_item(session, item, owner, failed=True, error=f"{error} (after {item.attempts} attempts)")
        return
    session.execute(
        update(BatchItem)
        .where(BatchItem.id == item.item_id, BatchItem.status == ItemStatus.RUNNING, BatchItem.claimed_by == owner)
        .values(status=ItemStatus.PENDING, claimed_by=None, lease_until=None, error=error)
        .execution_options(synchronize_session=False)
    )


def return_item(session: Session, item: ClaimedItem, owner: str) -> None:
    """Hand a claimed item back untouched (its claim does not count as an attempt)."""
    _unclaim(session, (BatchItem.id == item.item_id) & (BatchItem.claimed_by == owner))


def release_owned(session: Session, owner: str) -> int:
    """On a clean stop: every item `owner` still holds goes straight back to pending."""
    return _unclaim(session, BatchItem.claimed_by == owner)


def _unclaim(session: Session, condition: Any) -> int:
    result = _execute_dml(
        session,
        update(BatchItem)
        .where(condition, BatchItem.status == ItemStatus.RUNNING)
        .values(status=ItemStatus.PENDING, claimed_by=None, lease_until=None, attempts=BatchItem.attempts - 1)
        .execution_options(synchronize_session=False),
    )
    return max(result.rowcount, 0)


def get_job(session: Session, job_id: int) -> BatchJob:
    job = session.get(BatchJob, job_id)
    if job is None:
        raise NotFound("id", f"no batch with id {job_id}")
    return job


def cancel_job(session: Session, job_id: int) -> BatchJob:
    """Stop handing out the job's pending items; items already running still finish and are recorded.
    Items are updated before the job row, the order every other writer uses, so writers never deadlock."""
    job = get_job(session, job_id)
    if job.status == JobStatus.DONE:
        raise Conflict("id", f"batch {job_id} already finished; there is nothing to cancel")
    now = utcnow()
    session.execute(
        update(BatchItem)
        .where(BatchItem.batch_id == job.id, BatchItem.status == ItemStatus.PENDING)
        .values(status=ItemStatus.CANCELLED, finished_at=now)
        .execution_options(synchronize_session=False)
    )
    if job.status != JobStatus.CANCELLED:
        job.status = JobStatus.CANCELLED
        job.finished_at = now
    return job


def job_progress(session: Session, job: BatchJob) -> JobProgress:
    counts = dict(
        session.execute(
            select(BatchItem.status, func.count()).where(BatchItem.batch_id == job.id).group_by(BatchItem.status)
        ).all()
    )
    finished = counts.get(ItemStatus.DONE, 0) + counts.get(ItemStatus.FAILED, 0)
    remaining = counts.get(ItemStatus.PENDING, 0) + counts.get(ItemStatus.RUNNING, 0)
    rate = _rate(session, job)
    return JobProgress(
        total=job.total,
        pending=counts.get(ItemStatus.PENDING, 0),
        running=counts.get(ItemStatus.RUNNING, 0),
        done=counts.get(ItemStatus.DONE, 0),
        failed=counts.get(ItemStatus.FAILED, 0),
        cancelled=counts.get(ItemStatus.CANCELLED, 0),
        rate_per_second=rate,
        eta_seconds=(remaining / rate) if rate and remaining else (0.0 if finished and not remaining else None),
    )


def _rate(session: Session, job: BatchJob) -> float | None:
    """Items finished per second since the job started (items that were already cached do not count)."""
    if job.started_at is None:
        return None
    worked = session.execute(
        select(func.count()).where(
            BatchItem.batch_id == job.id,
            BatchItem.status.in_((ItemStatus.DONE, ItemStatus.FAILED)),
            BatchItem.finished_at >= job.started_at,
        )
    ).scalar_one()
    elapsed = ((job.finished_at or utcnow()) - job.started_at).total_seconds()
    return worked / elapsed if worked and elapsed > 0 else None


def list_jobs(session: Session, status: str | None, limit: int, offset: int) -> tuple[list[BatchJob], int]:
    query = select(BatchJob)
    if status is not None:
        query = query.where(BatchJob.status == status)
    total = session.execute(select(func.count()).select_from(query.subquery())).scalar_one()
    jobs = session.execute(query.order_by(BatchJob.id.desc()).limit(limit).offset(offset)).scalars().all()
    return list(jobs), total


def failed_items(session: Session, job: BatchJob, limit: int = 10) -> list[dict[str, Any]]:
    rows = session.execute(
        select(Architecture.arch, BatchItem.error)
        .join(Architecture, Architecture.id == BatchItem.architecture_id)
        .where(BatchItem.batch_id == job.id, BatchItem.status == ItemStatus.FAILED)
        .order_by(BatchItem.id)
        .limit(limit)
    ).all()
    return [{"arch": arch, "error": error} for arch, error in rows]


def _execute_dml(session: Session, statement: Executable) -> CursorResult[Any]:
    """Execute an INSERT/UPDATE/DELETE; its result is a CursorResult, which has the `rowcount` read here."""
    return cast(CursorResult[Any], session.execute(statement))
