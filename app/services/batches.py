"""Batches: many architectures of one space scored in the background under one configuration, persisted as
a job (app.services.jobs) so they survive restarts. POST /v1/batches and `nasscore batch` both start them
here, so they select the same architectures, resume the same batch and refuse the same input; only the
names errors give the input differ (the API's body fields, the command's flags)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from sqlalchemy.orm import Session

from app.db import Database
from app.db.models import Architecture, Job, JobKind, ScoringConfig, SearchSpace
from app.services import jobs, quotas
from app.services.configs import (
    ConfigOptions,
    check_model_memory,
    get_or_create_config,
    model_options,
    validate_proxies,
    validate_space_dataset,
)
from app.services.errors import Forbidden, TooLarge
from app.services.keys import ANONYMOUS, Principal, Scope
from app.services.onnx_models import check_onnx_request
from app.services.quotas import ServerLimits
from app.services.spaces import (
    all_architectures,
    architectures_for_strings,
    check_sample_size,
    ensure_space,
    enumerate_space,
    get_or_create_architectures,
    sample_architectures,
    seed_architectures,
)
from scorers.calibration import ImageSet

if TYPE_CHECKING:
    from app.runtime import Runtime


@dataclass(frozen=True)
class ArchitectureSelection:
    """Exactly one of: `archs` (in any accepted spelling), `sample` distinct cells drawn with `seed`, or
    `all` of the space."""

    archs: Sequence[object] | None = None
    sample: int | None = None
    seed: int = 0
    all: bool = False


@dataclass(frozen=True)
class BatchFields:
    """What errors call the parts of a batch request: POST /v1/batches's body fields by default."""

    proxies: str = "proxies"
    archs: str = "archs"
    sample: str = "sample.n"
    all: str = "all"

    def chosen_by(self, selection: ArchitectureSelection) -> str:
        """The field that selected the architectures."""
        if selection.archs is not None:
            return self.archs
        return self.all if selection.all else self.sample


@dataclass(frozen=True)
class BatchSpec:
    """A batch as asked for; `images` are a local file's real images (`nasscore batch --data`), None to draw
    the calibration batch from the dataset's data in the database."""

    space: str
    dataset: str
    proxies: Sequence[str] | None
    options: ConfigOptions
    selection: ArchitectureSelection
    resume: bool = True
    images: ImageSet | None = None
    owner: str | None = None


@dataclass(frozen=True)
class BatchState:
    """A job and everything its progress report shows, read in one session."""

    job: Job
    space: str
    config: ScoringConfig
    progress: jobs.JobProgress
    failures: list[dict[str, Any]]
    resumed: bool = False


def create_batch(
    runtime: Runtime, spec: BatchSpec, *, limits: ServerLimits | None = None, fields: BatchFields = BatchFields()
) -> BatchState:
    """Queue the batch (or, with `spec.resume`, return the identical one, its failed items queued again) and
    wake the dispatcher. What needs no database is checked first, so a bad request costs nothing. `limits`
    are the server's (batch size 413, model memory 422, the owner's quota 429), None for a local run."""
    validate_space_dataset(spec.space, spec.dataset)
    model_options(spec.space, spec.options)
    proxies = validate_proxies(spec.proxies, fields.proxies, spec.space)
    if spec.selection.sample is not None:  # before the batch limit, which would misname a sample too large
        check_sample_size(spec.space, spec.selection.sample, fields.sample)
    if limits is not None:
        _check_size(spec.space, spec.selection, limits.max_batch_items, fields)
    archs = spec.selection.archs
    network = (
        None if archs is None else check_onnx_request(runtime.database, spec.space, archs, spec.dataset, fields.archs)
    )
    if limits is not None:
        check_model_memory(spec.dataset, spec.options, proxies, limits.max_model_memory_mb, spec.space, network)
    resolved = runtime.resolve(spec.dataset, spec.options, spec.images, space=spec.space)

    def create(session: Session) -> BatchState:
        if limits is not None:
            quotas.lock_owner(session, spec.owner)
        space = ensure_space(session, spec.space)
        job, created = jobs.create_job(
            session,
            kind=JobKind.BATCH,
            space=space,
            config=get_or_create_config(session, resolved),
            proxies=proxies,
            architectures=select_architectures(session, space, spec.selection, fields),
            resume=spec.resume,
            owner=spec.owner,
        )
        if created and limits is not None:
            quotas.enforce_quota(session, job, limits.quota, fields.chosen_by(spec.selection))
        return batch_state(session, job, resumed=not created)

    state = runtime.database.transact(create)
    runtime.wake()
    return state


def select_architectures(
    session: Session, space: SearchSpace, selection: ArchitectureSelection, fields: BatchFields = BatchFields()
) -> list[Architecture]:
    """The stored rows of the selected architectures (unknown ones of a list or sample are added; `all`
    stores the rest of a space that is not stored whole at start-up)."""
    if selection.archs is not None:
        return get_or_create_architectures(session, space, selection.archs, fields.archs)
    if selection.all:
        enumerate_space(space.name, fields.all)
        seed_architectures(session, space)
        return all_architectures(session, space)
    assert selection.sample is not None  # exactly one of archs, sample and all is given
    chosen = sample_architectures(space.name, selection.sample, selection.seed, fields.sample)
    return architectures_for_strings(session, space, chosen)


def batch_state(session: Session, job: Job, *, resumed: bool = False) -> BatchState:
    progress = jobs.job_progress(session, job)
    return BatchState(
        job=job,
        space=session.get_one(SearchSpace, job.space_id).name,
        config=session.get_one(ScoringConfig, job.config_id),
        progress=progress,
        failures=jobs.failed_items(session, job) if progress.failed else [],
        resumed=resumed,
    )


def describe_batch(session: Session, batch_id: int) -> BatchState:
    return batch_state(session, jobs.get_job(session, batch_id))


def list_batches(session: Session, status: str | None, limit: int, offset: int) -> tuple[list[BatchState], int]:
    """A page of every job, newest first (batches and the jobs POST /v1/scores queues), and their count."""
    found, total = jobs.list_jobs(session, status, limit, offset)
    return [batch_state(session, job) for job in found], total


def cancel_batch(database: Database, batch_id: int, principal: Principal = ANONYMOUS) -> BatchState:
    """Cancel the job's pending items, reporting its state as the same transaction leaves it. Only the key
    that started the job, or an admin, may cancel it."""

    def cancel(session: Session) -> BatchState:
        owner = jobs.get_job(session, batch_id).owner
        if principal.scope < Scope.ADMIN and owner != principal.name:
            started_by = f"key {owner!r}" if owner else "an anonymous client"
            raise Forbidden(
                "authorization", f"batch {batch_id} was started by {started_by}; only it or an admin may cancel it"
            )
        job = jobs.cancel_job(session, batch_id)
        session.flush()
        return batch_state(session, job)

    return database.transact(cancel)


def _check_size(space: str, selection: ArchitectureSelection, limit: int, fields: BatchFields) -> None:
    if selection.archs is not None and len(selection.archs) > limit:
        raise TooLarge(fields.archs, f"{len(selection.archs)} architectures exceed the batch limit of {limit}")
    if selection.sample is not None and selection.sample > limit:
        raise TooLarge(fields.sample, f"{selection.sample} architectures exceed the batch limit of {limit}")
    if selection.all and len(enumerate_space(space, fields.all)) > limit:
        raise TooLarge(fields.all, f"the whole {space} space exceeds the batch limit of {limit}")
