"""ORM rows -> response schemas."""

from urllib.parse import urlencode

from sqlalchemy.orm import Session

from app.api.schemas import (
    ArchitectureOut,
    BatchLinks,
    BatchOut,
    ConfigurationOut,
    DatasetOut,
    FailedItem,
    JobRef,
    ProxyScore,
)
from app.db.models import Architecture, BatchJob, Score, ScoringConfig, SearchSpace
from app.services import jobs
from app.services.calibration import DatasetData, add_command


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
        calibration_digest=config.calibration_digest,
        legacy=config.legacy,
        batch_size=config.batch_size,
        sampling=config.sampling,
        seed=config.seed,
        init=config.init,
        proxy_version=config.proxy_version,
        model=config.model_params,
    )


def proxy_score(score: Score) -> ProxyScore:
    return ProxyScore(
        value=score.value, seconds=score.seconds, device=score.device, torch_version=score.torch_version,
        error=score.error,
    )


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
        links=batch_links(session.get(SearchSpace, job.space_id).name, config),
    )


def batch_links(space: str, config: ScoringConfig) -> BatchLinks:
    query = urlencode({"space": space, "dataset": config.dataset, "config": config.fingerprint})
    return BatchLinks(
        leaderboard=f"/v1/leaderboard?{query}",
        correlations=f"/v1/correlations?{query}",
        correlation_plot=f"/v1/correlations/plot.png?{query}",
        export=f"/v1/export?{query}&format=csv",
    )


def dataset_out(data: DatasetData) -> DatasetOut:
    return DatasetOut(
        dataset=data.dataset, num_classes=data.num_classes, image_size=data.image_size, real_data=data.real,
        images=data.images, digest=data.pool_digest, origin=data.origin, builtin=data.builtin,
        add_command=None if data.real else add_command(data.dataset),
    )
