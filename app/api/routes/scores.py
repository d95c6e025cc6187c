"""POST /v1/scores: one architecture's scores. Stored results come back at once; otherwise a priority job
is queued and the request waits a short, configurable time for it (200), else answers 202 with the job."""

import asyncio
from dataclasses import dataclass
from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.api.deps import RuntimeDep, SettingsDep
from app.api.schemas import ErrorResponse, ProxyScore, ScoreAccepted, ScoreRequest, ScoreResponse
from app.api.views import architecture_out, configuration_out, job_ref, proxy_score
from app.db.models import Architecture, BatchItem, JobKind, JobStatus, Score, ScoringConfig
from app.runtime import Runtime
from app.services import jobs
from app.services.configs import get_or_create_config, resolve_config, validate_dataset, validate_proxies
from app.services.scores import stored_scores
from app.services.spaces import ensure_space, get_or_create_architectures, normalise, space_module

router = APIRouter(prefix="/v1", tags=["scores"])
FIRST_POLL_SECONDS = 0.02
MAX_POLL_SECONDS = 0.25


@dataclass(frozen=True)
class _Queued:
    job_id: int
    architecture_id: int
    config_id: int
    proxies: tuple[str, ...]


@router.post(
    "/scores",
    response_model=ScoreResponse,
    responses={202: {"model": ScoreAccepted}, 400: {"model": ErrorResponse}, 422: {"model": ErrorResponse}},
)
async def post_score(
    body: ScoreRequest,
    runtime: RuntimeDep,
    settings: SettingsDep,
    wait: Annotated[
        float | None, Query(ge=0, description="Seconds to wait for a result (at most the server's sync wait)")
    ] = None,
) -> ScoreResponse | JSONResponse:
    outcome = await run_in_threadpool(_stored_or_queued, runtime, body)
    if isinstance(outcome, ScoreResponse):
        return outcome
    runtime.wake()
    loop = asyncio.get_running_loop()
    wait_seconds = settings.sync_wait_seconds if wait is None else min(wait, settings.sync_wait_seconds)
    deadline, delay = loop.time() + wait_seconds, FIRST_POLL_SECONDS
    while loop.time() < deadline:
        await asyncio.sleep(min(delay, max(0.0, deadline - loop.time())))
        delay = min(delay * 1.5, MAX_POLL_SECONDS)
        finished = await run_in_threadpool(_finished, runtime, outcome)
        if finished is not None:
            return finished
    accepted = await run_in_threadpool(_accepted, runtime, outcome.job_id)
    return JSONResponse(accepted.model_dump(), status_code=202, headers={"Location": accepted.job.url})


def _stored_or_queued(runtime: Runtime, body: ScoreRequest) -> ScoreResponse | _Queued:
    """Validate without touching the database, then answer from the store or queue a job."""
    normalise(space_module(body.space), body.arch, "arch")
    validate_dataset(body.dataset)
    proxies = validate_proxies(body.proxies)
    resolved = resolve_config(runtime.catalog, body.dataset, body.config.options())

    def answer_or_queue(session: Session) -> ScoreResponse | _Queued:
        space = ensure_space(session, body.space)
        [architecture] = get_or_create_architectures(session, space, [body.arch], "arch", indexed=False)
        config = get_or_create_config(session, resolved)
        stored = stored_scores(session, architecture.id, config.id, proxies)
        if len(stored) == len(proxies):
            return _response(session, architecture, config, stored, proxies, cached=True)
        job, _ = jobs.create_job(
            session, kind=JobKind.SCORE, space=space, config=config, proxies=proxies, architectures=[architecture]
        )
        return _Queued(job.id, architecture.id, config.id, proxies)

    return runtime.database.transact(answer_or_queue)


def _finished(runtime: Runtime, queued: _Queued) -> ScoreResponse | None:
    with runtime.database.read_session() as session:
        job = jobs.get_job(session, queued.job_id)
        if job.status != JobStatus.DONE:
            return None
        architecture = session.get(Architecture, queued.architecture_id)
        config = session.get(ScoringConfig, queued.config_id)
        stored = stored_scores(session, architecture.id, config.id, queued.proxies)
        item_error = session.execute(select(BatchItem.error).where(BatchItem.batch_id == job.id)).scalar()
        response = _response(
            session, architecture, config, stored, queued.proxies, cached=False, item_error=item_error
        )
        response.job = job_ref(job)
        return response


def _accepted(runtime: Runtime, job_id: int) -> ScoreAccepted:
    with runtime.database.read_session() as session:
        job = jobs.get_job(session, job_id)
        return ScoreAccepted(status=job.status, job=job_ref(job))


def _response(
    session: Session,
    architecture: Architecture,
    config: ScoringConfig,
    stored: dict[str, Score],
    proxies: tuple[str, ...],
    *,
    cached: bool,
    item_error: str | None = None,
) -> ScoreResponse:
    """Stored scores per proxy; a proxy whose computation raised (nothing stored) carries the item's error."""
    missing = ProxyScore(value=None, seconds=None, device="none", error=item_error or "not computed")
    return ScoreResponse(
        cached=cached,
        architecture=architecture_out(session, architecture),
        configuration=configuration_out(config),
        scores={proxy: proxy_score(stored[proxy]) if proxy in stored else missing for proxy in proxies},
    )
