"""One architecture scored on request (POST /v1/scores): every score found stored under the configuration,
or a priority job queued for the missing ones; then the stored scores read back with the vote standing of
the architecture's isomorphism class among the classes scored under the same configuration."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from sqlalchemy import select
from sqlalchemy.orm import Session

from app.db import Database
from app.db.models import Architecture, Job, JobItem, JobKind, JobStatus, Score, ScoringConfig
from app.services import jobs, quotas
from app.services.configs import (
    ConfigOptions,
    check_model_memory,
    check_supported_proxies,
    get_or_create_config,
    model_options,
    validate_proxies,
    validate_space_dataset,
)
from app.services.leaderboard import VoteStanding, stored_standing
from app.services.onnx_models import check_onnx_request
from app.services.quotas import ServerLimits
from app.services.scores import stored_scores
from app.services.spaces import ensure_space, get_or_create_architectures, lookup_space, normalise
from app.services.votes import VoteRequest, checked_vote_request, with_named_voters

if TYPE_CHECKING:
    from app.runtime import Runtime


@dataclass(frozen=True)
class ScoreSpec:
    """What a request asks to score: `proxies` None for the default set; named voters are computed too."""

    space: str
    arch: object
    dataset: str
    proxies: Sequence[str] | None
    options: ConfigOptions
    vote: VoteRequest
    owner: str | None = None


@dataclass(frozen=True)
class SubmittedScore:
    """What a request scores and how it is voted; `job_id` is None when every score was already stored."""

    architecture_id: int
    config_id: int
    proxies: tuple[str, ...]
    vote: VoteRequest
    job_id: int | None = None


@dataclass(frozen=True)
class ScoredArchitecture:
    """The stored scores of the requested `proxies` (a proxy whose computation raised has none; `job_error`
    is its job item's error) and the vote standing of the stored scores."""

    architecture: Architecture
    space: str
    config: ScoringConfig
    proxies: tuple[str, ...]
    scores: dict[str, Score]
    job_error: str | None
    standing: VoteStanding


@dataclass(frozen=True)
class ScoreResult:
    """`job` computed the missing scores (None: every score was stored); `scored` is None while it runs."""

    job: Job | None
    scored: ScoredArchitecture | None


def submit_score(runtime: Runtime, spec: ScoreSpec, limits: ServerLimits | None = None) -> SubmittedScore:
    """Validate without touching the database, then find every score stored or queue a job for the missing
    ones (and wake the dispatcher for it). `limits` are the server's: the model's memory (422) and the
    owner's quota of queued items (429), which a job counts toward like a batch."""
    normalise(lookup_space(spec.space), spec.arch, "arch")
    validate_space_dataset(spec.space, spec.dataset)
    network = check_onnx_request(runtime.database, spec.space, [spec.arch], spec.dataset, "arch", indexed=False)
    model_options(spec.space, spec.options)
    vote = checked_vote_request(spec.vote, "vote")
    proxies = with_named_voters(validate_proxies(spec.proxies, space=spec.space), vote)
    check_supported_proxies(proxies, spec.space, "vote", indexed=False)  # the voters the vote names
    if limits is not None:
        check_model_memory(spec.dataset, spec.options, proxies, limits.max_model_memory_mb, spec.space, network)
    resolved = runtime.resolve(spec.dataset, spec.options, space=spec.space)

    def find_or_queue(session: Session) -> SubmittedScore:
        if limits is not None:
            quotas.lock_owner(session, spec.owner)
        space = ensure_space(session, spec.space)
        [architecture] = get_or_create_architectures(session, space, [spec.arch], "arch", indexed=False)
        config = get_or_create_config(session, resolved)
        if len(stored_scores(session, architecture.id, config.id, proxies)) == len(proxies):
            return SubmittedScore(architecture.id, config.id, proxies, vote)
        job, created = jobs.create_job(
            session,
            kind=JobKind.SCORE,
            space=space,
            config=config,
            proxies=proxies,
            architectures=[architecture],
            owner=spec.owner,
        )
        if created and limits is not None:
            quotas.enforce_quota(session, job, limits.quota, "arch")
        return SubmittedScore(architecture.id, config.id, proxies, vote, job.id)

    submitted = runtime.database.transact(find_or_queue)
    if submitted.job_id is not None:
        runtime.wake()
    return submitted


def score_result(database: Database, submitted: SubmittedScore) -> ScoreResult:
    """The stored scores and their standing, read in a read session after the submission committed (a
    population load never holds the write lock); only the job's state while it is unfinished."""
    with database.read_session() as session:
        if submitted.job_id is None:
            return ScoreResult(None, _scored(session, submitted, job_error=None))
        job = jobs.get_job(session, submitted.job_id)
        if job.status != JobStatus.DONE:
            return ScoreResult(job, None)
        job_error = session.execute(select(JobItem.error).where(JobItem.job_id == job.id)).scalar()
        return ScoreResult(job, _scored(session, submitted, job_error))


def _scored(session: Session, submitted: SubmittedScore, job_error: str | None) -> ScoredArchitecture:
    architecture = session.get_one(Architecture, submitted.architecture_id)
    config = session.get_one(ScoringConfig, submitted.config_id)
    scores = stored_scores(session, architecture.id, config.id, submitted.proxies)
    space = architecture.space.name
    standing = stored_standing(
        session, space, config.dataset, config.fingerprint, architecture.canonical_key, submitted.vote
    )
    return ScoredArchitecture(architecture, space, config, submitted.proxies, scores, job_error, standing)
