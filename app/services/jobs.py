"""Jobs: a request to score architectures (kind `score`, one cell asked for interactively, or `batch`) and
its items, one per architecture, stored in the database so that a killed server loses nothing. This
module creates, resumes, retries, cancels, closes and reports on jobs; how dispatchers share out and hand
back the items is the queue's business (app/queue/items.py). Finished items are never touched again, so
nothing is recomputed."""

import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import func, insert, select, update
from sqlalchemy.orm import Session

from app.db.models import (
    Architecture,
    ItemStatus,
    Job,
    JobItem,
    JobKind,
    JobStatus,
    Score,
    ScoringConfig,
    SearchSpace,
    utcnow,
)
from app.db.upsert import rows_changed
from app.services.errors import Conflict, NotFound

OPEN_JOB_STATUSES = (JobStatus.PENDING, JobStatus.RUNNING)
UNFINISHED_ITEM_STATUSES = (ItemStatus.PENDING, ItemStatus.RUNNING)
INTERACTIVE_PRIORITY = 10
NON_FINITE_NOTE = "a stored score for this architecture is not a finite number (see its scores)"


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
) -> tuple[Job, bool]:
    """The job for this request: with `resume`, an identical unfinished one, or an identical finished one
    whose failed items go back to the queue (so re-running a batch retries its failures in place); else a
    new one. Items whose scores are already stored are completed at once. Returns (job, created)."""
    architecture_ids = [a.id for a in architectures]
    key = spec_key(kind, space.id, config.id, proxies, architecture_ids)
    if resume:
        existing = _resumable_job(session, key)
        if existing is not None:
            return existing, False
    job = Job(
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
        {"job_id": job.id, "architecture_id": architecture_id, "status": ItemStatus.PENDING, "attempts": 0}
        for architecture_id in dict.fromkeys(architecture_ids)
    ]
    if rows:
        session.execute(insert(JobItem), rows)
    complete_cached_items(session, job)
    finalize_job(session, job)
    return job, True


def _resumable_job(session: Session, key: str) -> Job | None:
    latest = select(Job).where(Job.spec_key == key).order_by(Job.id.desc()).limit(1)
    open_job = session.execute(latest.where(Job.status.in_(OPEN_JOB_STATUSES))).scalar_one_or_none()
    if open_job is not None:
        return open_job
    done = session.execute(latest.where(Job.status == JobStatus.DONE)).scalar_one_or_none()
    if done is not None and retry_failed_items(session, done):
        return done
    return None


def retry_failed_items(session: Session, job: Job) -> int:
    """Put a finished job's failed items back to pending with fresh attempts and reopen the job."""
    retried = rows_changed(
        session,
        update(JobItem)
        .where(JobItem.job_id == job.id, JobItem.status == ItemStatus.FAILED)
        .values(status=ItemStatus.PENDING, attempts=0, error=None, finished_at=None, claimed_by=None, lease_until=None)
        .execution_options(synchronize_session=False),
    )
    if retried:
        job.status = JobStatus.PENDING
        job.finished_at = None
        complete_cached_items(session, job)
        finalize_job(session, job)
    return retried


def complete_cached_items(session: Session, job: Job, architecture_ids: Sequence[int] | None = None) -> int:
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
        finished += rows_changed(
            session,
            update(JobItem)
            .where(
                JobItem.job_id == job.id,
                JobItem.status == ItemStatus.PENDING,
                JobItem.architecture_id.in_(satisfied),
            )
            .values(status=ItemStatus.DONE, error=NON_FINITE_NOTE if non_finite else None, finished_at=now)
            .execution_options(synchronize_session=False),
        )
    return finished


def complete_cached_items_everywhere(session: Session, config_id: int, architecture_ids: Sequence[int]) -> None:
    """After new scores land, finish the pending items of every open job they satisfy."""
    job_ids = select(JobItem.job_id).where(
        JobItem.architecture_id.in_(architecture_ids), JobItem.status == ItemStatus.PENDING
    )
    jobs = session.execute(
        select(Job).where(Job.config_id == config_id, Job.id.in_(job_ids), Job.status.in_(OPEN_JOB_STATUSES))
    ).scalars()
    for job in jobs:
        if complete_cached_items(session, job, architecture_ids):
            finalize_job(session, job)


def finalize_job(session: Session, job: Job) -> None:
    """Close a job once none of its items is pending or running (a cancelled job stays cancelled)."""
    if job.status not in OPEN_JOB_STATUSES:
        return
    unfinished = session.execute(
        select(func.count()).where(JobItem.job_id == job.id, JobItem.status.in_(UNFINISHED_ITEM_STATUSES))
    ).scalar_one()
    if unfinished == 0:
        now = utcnow()
        job.status = JobStatus.DONE
        job.started_at = job.started_at or now
        job.finished_at = now


def get_job(session: Session, job_id: int) -> Job:
    job = session.get(Job, job_id)
    if job is None:
        raise NotFound("id", f"no batch with id {job_id}")
    return job


def cancel_job(session: Session, job_id: int) -> Job:
    """Stop handing out the job's pending items; items already running still finish and are recorded.
    Items are updated before the job row, the order every other writer uses, so writers never deadlock."""
    job = get_job(session, job_id)
    if job.status == JobStatus.DONE:
        raise Conflict("id", f"batch {job_id} already finished; there is nothing to cancel")
    now = utcnow()
    session.execute(
        update(JobItem)
        .where(JobItem.job_id == job.id, JobItem.status == ItemStatus.PENDING)
        .values(status=ItemStatus.CANCELLED, finished_at=now)
        .execution_options(synchronize_session=False)
    )
    if job.status != JobStatus.CANCELLED:
        job.status = JobStatus.CANCELLED
        job.finished_at = now
    return job


def job_progress(session: Session, job: Job) -> JobProgress:
    counts = dict(
        session.execute(
            select(JobItem.status, func.count()).where(JobItem.job_id == job.id).group_by(JobItem.status)
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


def _rate(session: Session, job: Job) -> float | None:
    """Items finished per second since the job started (items that were already cached do not count)."""
    if job.started_at is None:
        return None
    worked = session.execute(
        select(func.count()).where(
            JobItem.job_id == job.id,
            JobItem.status.in_((ItemStatus.DONE, ItemStatus.FAILED)),
            JobItem.finished_at >= job.started_at,
        )
    ).scalar_one()
    elapsed = ((job.finished_at or utcnow()) - job.started_at).total_seconds()
    return worked / elapsed if worked and elapsed > 0 else None


def list_jobs(session: Session, status: str | None, limit: int, offset: int) -> tuple[list[Job], int]:
    query = select(Job)
    if status is not None:
        query = query.where(Job.status == status)
    total = session.execute(select(func.count()).select_from(query.subquery())).scalar_one()
    jobs = session.execute(query.order_by(Job.id.desc()).limit(limit).offset(offset)).scalars().all()
    return list(jobs), total


def failed_items(session: Session, job: Job, limit: int = 10) -> list[dict[str, Any]]:
    rows = session.execute(
        select(Architecture.arch, JobItem.error)
        .join(Architecture, Architecture.id == JobItem.architecture_id)
        .where(JobItem.job_id == job.id, JobItem.status == ItemStatus.FAILED)
        .order_by(JobItem.id)
        .limit(limit)
    ).all()
    return [{"arch": arch, "error": error} for arch, error in rows]
