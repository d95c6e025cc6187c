"""ORM rows -> response schemas."""

from sqlalchemy.orm import Session

from app.api.schemas import ArchitectureOut, BatchOut, ConfigurationOut, FailedItem, JobRef, ProxyScore
from app.db.models import Architecture, BatchJob, Score, ScoringConfig, SearchSpace
from app.services import jobs


def architecture_out(session: Session, architecture: Architecture) -> ArchitectureOut:
    return ArchitectureOut(
        id=architecture.id,
        space=session.get(SearchSpace, architecture.space_id).name,
        arch=architecture.arch,
        canonical_key=architecture.canonical_key,
        benchmark_index=architecture.benchmark_index,
    )


def configuration_out(config: ScoringConfig) -> ConfigurationOut:
    return ConfigurationOut(
        fingerprint=config.fingerprint,
        dataset=config.dataset,
        data_source=config.data_source,
        batch_size=config.batch_size,
        sampling=config.sampling,
        seed=config.seed,
        init=config.init,
        proxy_version=config.proxy_version,
        model=config.model_params,
    )


def proxy_score(score: Score) -> ProxyScore:
    return ProxyScore(value=score.value, seconds=score.seconds, device=score.device, error=score.error)


def batch_url(job_id: int) -> str:
    return f"/v1/batches/{job_id}"


def job_ref(job: BatchJob) -> JobRef:
    return JobRef(id=job.id, status=job.status, url=batch_url(job.id))


def batch_out(session: Session, job: BatchJob, *, resumed: bool = False) -> BatchOut:
    progress = jobs.job_progress(session, job)
    config = session.get(ScoringConfig, job.config_id)
    return BatchOut(
        id=job.id,
        url=batch_url(job.id),
        kind=job.kind,
        status=job.status,
        space=session.get(SearchSpace, job.space_id).name,
        dataset=config.dataset,
        configuration=config.fingerprint,
        proxies=list(job.proxies),
        total=progress.total,
        done=progress.done,
        failed=progress.failed,
        cancelled=progress.cancelled,
        pending=progress.pending,
        running=progress.running,
        rate_per_second=progress.rate_per_second,
        eta_seconds=progress.eta_seconds,
        created_at=job.created_at,
        started_at=job.started_at,
        finished_at=job.finished_at,
        errors=[FailedItem(**row) for row in jobs.failed_items(session, job)] if progress.failed else [],
        resumed=resumed,
    )
