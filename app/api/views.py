"""ORM rows and service results -> response schemas. Kept out of the route modules because `nasscore
leaderboard` and `nasscore correlate` print, from the local database, the very JSON the API answers."""

import math
from typing import Any
from urllib.parse import urlencode

from app.api.schemas import (
    ArchitectureOut,
    BatchLinks,
    BatchOut,
    ConfigurationCount,
    ConfigurationOut,
    CorrelationFigures,
    CorrelationOut,
    CorrelationsOut,
    DatasetOut,
    FailedItem,
    JobRef,
    LeaderboardOut,
    LeaderboardRow,
    PopulationOut,
    ProxyScore,
    SourceCountOut,
    VoteOut,
)
from app.db.models import Architecture, CalibrationKind, Job, Score, ScoringConfig
from app.services.batches import BatchState
from app.services.calibration import DatasetData, add_command
from app.services.leaderboard import Leaderboard
from app.services.population import ConfigCount, ScoredPopulation, class_population
from app.services.reports import Correlation, CorrelationSummary
from app.services.votes import VoteChoice


def architecture_out(architecture: Architecture, space: str) -> ArchitectureOut:
    return ArchitectureOut(
        id=architecture.id,
        space=space,
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
        legacy=config.calibration_kind == CalibrationKind.LEGACY,
        batch_size=config.batch_size,
        sampling=config.sampling,
        seed=config.seed,
        init=config.init,
        proxy_version=config.proxy_version,
        model=config.model_params,
    )


def proxy_score(score: Score) -> ProxyScore:
    return ProxyScore(
        value=score.value,
        seconds=score.seconds,
        device=score.device,
        torch_version=score.torch_version,
        error=score.error,
    )


def batch_url(job_id: int) -> str:
    return f"/v1/batches/{job_id}"


def job_ref(job: Job) -> JobRef:
    return JobRef(id=job.id, status=job.status, url=batch_url(job.id))


def batch_out(state: BatchState) -> BatchOut:
    job, progress = state.job, state.progress
    return BatchOut(
        id=job.id,
        url=batch_url(job.id),
        kind=job.kind,
        status=job.status,
        space=state.space,
        dataset=state.config.dataset,
        configuration=state.config.fingerprint,
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
        errors=[FailedItem(**row) for row in state.failures],
        resumed=state.resumed,
        owner=job.owner,
        links=batch_links(state.space, state.config),
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
        dataset=data.dataset,
        num_classes=data.num_classes,
        image_size=data.image_size,
        real_data=data.real,
        images=data.images,
        digest=data.pool_digest,
        origin=data.origin,
        builtin=data.builtin,
        add_command=None if data.real else add_command(data.dataset),
    )


def vote_out(choice: VoteChoice) -> VoteOut:
    return VoteOut(voters=list(choice.voters), method=choice.method, preset=choice.preset)


def population_out(scored: ScoredPopulation) -> PopulationOut:
    selection = scored.selection
    return PopulationOut(
        space=scored.space,
        dataset=scored.dataset,
        metric=scored.metric,
        source=scored.source,
        sources=[SourceCountOut(source=count.source, observations=count.observations) for count in scored.sources],
        configuration=configuration_out(selection.config),
        selected_by=selection.selected_by,
        size=scored.population.size,
        classes=class_population(scored.population).size,
        scores=selection.counts.scores,
        proxies=list(scored.population.proxies),
        alternatives=[_count_out(count) for count in selection.alternatives],
    )


def leaderboard_out(board: Leaderboard) -> LeaderboardOut:
    return LeaderboardOut(
        population=population_out(board.scored),
        vote=vote_out(board.choice),
        rank_by=board.rank_by,
        unit=board.unit,
        total=board.total,
        limit=board.limit,
        offset=board.offset,
        items=[
            LeaderboardRow(
                id=row.architecture_id,
                arch=row.arch,
                canonical_key=row.canonical_key,
                members=row.members,
                members_url=class_members_url(board.scored.space, row.canonical_key),
                scores=row.scores,
                vote=row.vote,
                percentile=row.percentile,
                vote_rank=row.vote_rank,
                rank=row.rank,
                accuracy=row.accuracy,
            )
            for row in board.rows
        ],
    )


def class_members_url(space: str, canonical_key: str) -> str:
    """GET /v1/architectures filtered to one isomorphism class."""
    return f"/v1/architectures?{urlencode({'space': space, 'canonical': canonical_key})}"


def correlations_out(summary: CorrelationSummary) -> CorrelationsOut:
    return CorrelationsOut(
        population=population_out(summary.scored),
        vote=vote_out(summary.choice),
        observed=summary.observed_classes,
        observed_cells=summary.observed_cells,
        correlations=[_correlation_out(entry) for entry in summary.correlations],
    )


def _count_out(count: ConfigCount) -> ConfigurationCount:
    return ConfigurationCount(fingerprint=count.fingerprint, scores=count.scores, architectures=count.architectures)


def _correlation_out(entry: Correlation) -> CorrelationOut:
    return CorrelationOut(
        name=entry.name,
        kind=entry.kind,
        higher_is_better=entry.higher_is_better,
        **_figures(entry.per_class),
        per_cell=CorrelationFigures(**_figures(entry.per_cell)),
    )


def _figures(report: dict[str, Any]) -> dict[str, Any]:
    return {key: _json_safe(value) for key, value in report.items()}


def _json_safe(value: Any) -> Any:
    """Strict JSON has no NaN: a non-finite figure is reported as null."""
    return None if isinstance(value, float) and not math.isfinite(value) else value
