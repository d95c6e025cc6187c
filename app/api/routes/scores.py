"""POST /v1/scores: one architecture's scores and its zero-cost score, the vote's rank and percentile among
the isomorphism classes stored under the same configuration. Stored results come back at once; otherwise
a priority job is queued and the request waits a short, configurable time for it (200), else answers 202
with the job."""

import asyncio
from dataclasses import dataclass
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Body, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from sqlalchemy import select
from sqlalchemy.orm import Session

from app.api import examples
from app.api.deps import RuntimeDep, SettingsDep
from app.api.schemas import (
    ProxyScore,
    ScoreAccepted,
    ScoreRequest,
    ScoreResponse,
    VoteIn,
    VoteStandingOut,
)
from app.api.views import architecture_out, configuration_out, job_ref, proxy_score
from app.db.models import Architecture, BatchItem, JobKind, JobStatus, ScoringConfig
from app.runtime import Runtime
from app.services import jobs
from app.services.configs import get_or_create_config, validate_dataset, validate_proxies
from app.services.leaderboard import VoteRequest, VoteStanding, checked_vote_request, stored_standing, with_named_voters
from app.services.scores import stored_scores
from app.services.spaces import ensure_space, get_or_create_architectures, normalise, space_module

router = APIRouter(prefix="/v1", tags=["scores"])
FIRST_POLL_SECONDS = 0.02
MAX_POLL_SECONDS = 0.25
LEADERBOARD_PAGE = 100


@dataclass(frozen=True)
class _Scoring:
    """What a request scores and how it is voted; `job_id` is None when every score was already stored."""

    architecture_id: int
    config_id: int
    proxies: tuple[str, ...]
    vote: VoteRequest
    job_id: int | None = None


@router.post(
    "/scores",
    summary="Score one architecture",
    response_model=ScoreResponse,
    responses={
        200: examples.json_response("Every requested score, and the vote's rank", examples.SCORE_DONE),
        202: {
            "model": ScoreAccepted,
            **examples.json_response(
                "Still computing: follow the job", examples.SCORE_ACCEPTED, headers=examples.LOCATION
            ),
        },
        **examples.error_responses(400, 413, 422),
    },
)
async def post_score(
    body: Annotated[ScoreRequest, Body(openapi_examples=examples.SCORE_REQUESTS)],
    runtime: RuntimeDep,
    settings: SettingsDep,
    wait: Annotated[
        float | None, Query(ge=0, description="Seconds to wait for a result (at most the server's sync wait)")
    ] = None,
) -> ScoreResponse | JSONResponse:
    """Computes the zero-cost proxies of one architecture (a cell string or its six op names) under one
    configuration, and its **zero-cost score**: the vote's rank and percentile among the isomorphism classes
    already scored under the same space and configuration, with the leaderboard page that lists it.

    - **200**: every score was stored already (`cached: true`, at once), or the priority job computing the
      missing ones finished within `wait` seconds (default and maximum: the server's sync wait; `cached:
      false`, `job` names it).
    - **202**: the job is still running; GET the `Location` (`/v1/batches/{id}`) until it is `done`, then POST
      again for the stored scores.

    Without `proxies`, the `mission` three (snip, grasp, synflow) and the default preset's voters are
    computed; the voters named by `vote` are always computed too. `vote.rank` is null, with `reason`, while
    fewer than 20 classes are scored. Isomorphic cells share their class's scores. A proxy that raised has a
    null `value` and its `error`. 400: no real calibration data on the server for the dataset (ask for
    `config.data = "synthetic"`); 422 names the invalid field."""
    scoring = await run_in_threadpool(_stored_or_queued, runtime, body)
    if scoring.job_id is None:
        return await run_in_threadpool(_stored, runtime, scoring)
    runtime.wake()
    loop = asyncio.get_running_loop()
    wait_seconds = settings.sync_wait_seconds if wait is None else min(wait, settings.sync_wait_seconds)
    deadline, delay = loop.time() + wait_seconds, FIRST_POLL_SECONDS
    while loop.time() < deadline:
        await asyncio.sleep(min(delay, max(0.0, deadline - loop.time())))
        delay = min(delay * 1.5, MAX_POLL_SECONDS)
        finished = await run_in_threadpool(_finished, runtime, scoring)
        if finished is not None:
            return finished
    accepted = await run_in_threadpool(_accepted, runtime, scoring.job_id)
    return JSONResponse(accepted.model_dump(), status_code=202, headers={"Location": accepted.job.url})


def _stored_or_queued(runtime: Runtime, body: ScoreRequest) -> _Scoring:
    """Validate without touching the database, then find every score stored or queue a job for them."""
    normalise(space_module(body.space), body.arch, "arch")
    validate_dataset(body.dataset)
    vote = checked_vote_request(_vote_request(body.vote), "vote")
    proxies = with_named_voters(validate_proxies(body.proxies), vote)
    resolved = runtime.resolve(body.dataset, body.config.options())

    def find_or_queue(session: Session) -> _Scoring:
        space = ensure_space(session, body.space)
        [architecture] = get_or_create_architectures(session, space, [body.arch], "arch", indexed=False)
        config = get_or_create_config(session, resolved)
        scoring = _Scoring(architecture.id, config.id, proxies, vote)
        if len(stored_scores(session, architecture.id, config.id, proxies)) == len(proxies):
            return scoring
        job, _ = jobs.create_job(
            session, kind=JobKind.SCORE, space=space, config=config, proxies=proxies, architectures=[architecture]
        )
        return _Scoring(architecture.id, config.id, proxies, vote, job.id)

    return runtime.database.transact(find_or_queue)


def _vote_request(vote: VoteIn) -> VoteRequest:
    return VoteRequest(proxies=vote.proxies, preset=vote.preset, method=vote.method)


def _stored(runtime: Runtime, scoring: _Scoring) -> ScoreResponse:
    """The stored scores, voted in a read session after the lookup committed (a population load never holds
    the write lock)."""
    with runtime.database.read_session() as session:
        return _response(session, scoring, cached=True)


def _finished(runtime: Runtime, scoring: _Scoring) -> ScoreResponse | None:
    with runtime.database.read_session() as session:
        job = jobs.get_job(session, scoring.job_id)
        if job.status != JobStatus.DONE:
            return None
        item_error = session.execute(select(BatchItem.error).where(BatchItem.batch_id == job.id)).scalar()
        response = _response(session, scoring, cached=False, item_error=item_error)
        response.job = job_ref(job)
        return response


def _accepted(runtime: Runtime, job_id: int) -> ScoreAccepted:
    with runtime.database.read_session() as session:
        job = jobs.get_job(session, job_id)
        return ScoreAccepted(status=job.status, job=job_ref(job))


def _response(session: Session, scoring: _Scoring, *, cached: bool, item_error: str | None = None) -> ScoreResponse:
    """Stored scores per proxy (a proxy whose computation raised, so nothing is stored, carries the item's
    error) and the vote of the stored scores."""
    architecture = session.get(Architecture, scoring.architecture_id)
    config = session.get(ScoringConfig, scoring.config_id)
    stored = stored_scores(session, architecture.id, config.id, scoring.proxies)
    missing = ProxyScore(value=None, seconds=None, device="none", error=item_error or "not computed")
    architecture_view = architecture_out(session, architecture)
    standing = stored_standing(
        session, architecture_view.space, config.dataset, config.fingerprint, architecture.canonical_key, scoring.vote
    )
    return ScoreResponse(
        cached=cached,
        architecture=architecture_view,
        configuration=configuration_out(config),
        scores={proxy: proxy_score(stored[proxy]) if proxy in stored else missing for proxy in scoring.proxies},
        vote=_standing_out(standing, architecture_view.space, config),
    )


def _standing_out(standing: VoteStanding, space: str, config: ScoringConfig) -> VoteStandingOut:
    choice = standing.choice
    return VoteStandingOut(
        preset=choice.preset,
        method=choice.method,
        voters=list(choice.voters),
        rank=standing.rank,
        percentile=standing.percentile,
        population=standing.population,
        leaderboard_url=None if standing.position is None else _leaderboard_url(standing, space, config),
        reason=standing.reason,
    )


def _leaderboard_url(standing: VoteStanding, space: str, config: ScoringConfig) -> str:
    """GET /v1/leaderboard with this vote, on the page of LEADERBOARD_PAGE rows that lists the class."""
    choice = standing.choice
    voters = {"preset": choice.preset} if choice.preset is not None else {"proxies": ",".join(choice.voters)}
    offset = standing.position - standing.position % LEADERBOARD_PAGE
    query = {"space": space, "dataset": config.dataset, "config": config.fingerprint, **voters,
             "method": choice.method, "limit": LEADERBOARD_PAGE, "offset": offset}
    return f"/v1/leaderboard?{urlencode(query)}"
