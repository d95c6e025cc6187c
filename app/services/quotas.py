"""Per-key quotas on queued work: a key (or all anonymous clients together) may have at most so many batches
open and so many items unfinished across its jobs, so one client cannot fill the queue for everyone.

The check runs in the transaction that creates the job, after the job and its items exist: what counts is
what would stay queued (a resumed identical job, or one whose scores are all stored, adds nothing), and a
refusal rolls the new job back, so nothing beyond the quota is ever stored. Concurrent requests of one
owner are serialised first (SQLite's writer lock does it already; on PostgreSQL a transaction-scoped
advisory lock per owner), so two of them cannot both see room for one more."""

import hashlib
import math
from dataclasses import dataclass

from sqlalchemy import ColumnElement, func, select, text
from sqlalchemy.orm import Session

from app.db.models import ItemStatus, Job, JobItem, JobKind, utcnow
from app.services.errors import TooManyRequests
from app.services.jobs import OPEN_JOB_STATUSES, UNFINISHED_ITEM_STATUSES
from app.settings import Settings

BATCHES_FIELD = "batches"
# Before any of the owner's items has finished there is no rate to extrapolate from.
DEFAULT_RETRY_SECONDS = 30
MAX_RETRY_SECONDS = 3600


@dataclass(frozen=True)
class Quota:
    """What one owner may have queued: open batches (jobs of kind batch) and unfinished items of any job."""

    max_open_batches: int
    max_queued_items: int


@dataclass(frozen=True)
class ServerLimits:
    """What a server allows one request and one key; a local run (`nasscore batch` without a server) has no
    limits, its size being the operator's call."""

    max_batch_items: int
    max_model_memory_mb: int
    quota: Quota


def server_limits(settings: Settings) -> ServerLimits:
    return ServerLimits(
        max_batch_items=settings.max_batch_items,
        max_model_memory_mb=settings.max_model_memory_mb,
        quota=Quota(settings.max_running_batches_per_key, settings.max_queued_items_per_key),
    )


def lock_owner(session: Session, owner: str | None) -> None:
    """Serialise quota checks of one owner until the transaction ends. PostgreSQL only: on SQLite a write
    transaction already holds the database's single writer lock."""
    if session.get_bind().dialect.name != "postgresql":
        return
    digest = hashlib.sha256(f"nasscore-quota:{owner}".encode()).digest()
    session.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": int.from_bytes(digest[:8], "big", signed=True)})


def enforce_quota(session: Session, job: Job, quota: Quota, items_field: str) -> None:
    """Refuse (429) the just-created `job` when it leaves its owner over the quota; the caller's transaction
    then rolls it back. `items_field` is the request field that chose the job's architectures."""
    owner = job.owner
    new_items = _unfinished_items(session, Job.id == job.id)
    if job.kind == JobKind.BATCH and job.status in OPEN_JOB_STATUSES:
        open_batches = _open_batches(session, owner)
        if len(open_batches) > quota.max_open_batches:
            oldest_backlog = _unfinished_items(session, Job.id == open_batches[0])
            has = "has" if owner is not None else "have"
            raise TooManyRequests(
                BATCHES_FIELD,
                f"{_who(owner)} {has} {quota.max_open_batches} unfinished batches, the most allowed; "
                "retry when one finishes",
                _retry_after(session, owner, oldest_backlog),
            )
    if new_items:
        queued = _unfinished_items(session, _owned_by(owner))
        if queued > quota.max_queued_items:
            raise TooManyRequests(
                items_field,
                f"{new_items} more unfinished items would leave {_who(owner)} with {queued} queued, over the "
                f"limit of {quota.max_queued_items}; retry when fewer are queued, or ask for fewer",
                _retry_after(session, owner, queued - quota.max_queued_items),
            )


def _who(owner: str | None) -> str:
    return f"key {owner!r}" if owner is not None else "clients without a key (together)"


def _owned_by(owner: str | None) -> ColumnElement[bool]:
    return Job.owner.is_(None) if owner is None else Job.owner == owner


def _open_batches(session: Session, owner: str | None) -> list[int]:
    """Ids of the owner's pending or running batches, oldest first (the queue serves them in that order)."""
    query = select(Job.id).where(_owned_by(owner), Job.kind == JobKind.BATCH, Job.status.in_(OPEN_JOB_STATUSES))
    return list(session.scalars(query.order_by(Job.id)))


def _unfinished_items(session: Session, jobs: ColumnElement[bool]) -> int:
    query = (
        select(func.count())
        .select_from(JobItem)
        .join(Job, Job.id == JobItem.job_id)
        .where(jobs, Job.status.in_(OPEN_JOB_STATUSES), JobItem.status.in_(UNFINISHED_ITEM_STATUSES))
    )
    return session.execute(query).scalar_one()


def _retry_after(session: Session, owner: str | None, backlog: int) -> int:
    """Seconds until `backlog` of the owner's items should be done, at the rate its open jobs have finished
    items since they started (1 s to an hour)."""
    started, finished = session.execute(
        select(func.min(Job.started_at), func.count(JobItem.id))
        .select_from(Job)
        .outerjoin(
            JobItem,
            (JobItem.job_id == Job.id)
            & JobItem.status.in_((ItemStatus.DONE, ItemStatus.FAILED))
            & (JobItem.finished_at >= Job.started_at),
        )
        .where(_owned_by(owner), Job.status.in_(OPEN_JOB_STATUSES))
    ).one()
    elapsed = (utcnow() - started).total_seconds() if started is not None else 0.0
    if not finished or elapsed <= 0:
        return DEFAULT_RETRY_SECONDS
    return min(MAX_RETRY_SECONDS, max(1, math.ceil(backlog * elapsed / finished)))
