"""POST /v1/scores: one architecture's scores and its zero-cost score, the vote's rank and percentile among
the isomorphism classes stored under the same configuration. Stored results come back at once; otherwise
a priority job is queued and the request waits a short, configurable time for it (200), else answers 202
with the job."""

import asyncio
from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Body, Query
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse

from app.api import examples
from app.api.auth import WriteAccess
from app.api.deps import RuntimeDep, SettingsDep
from app.api.schemas import ProxyScore, ScoreAccepted, ScoreRequest, ScoreResponse, VoteStandingOut
from app.api.views import architecture_out, configuration_out, job_ref, proxy_score
from app.db.models import ScoringConfig
from app.services.leaderboard import VoteStanding
from app.services.quotas import server_limits
from app.services.score_requests import ScoreResult, ScoreSpec, score_result, submit_score
from app.services.votes import VoteRequest

router = APIRouter(prefix="/v1", tags=["scores"])
FIRST_POLL_SECONDS = 0.02
MAX_POLL_SECONDS = 0.25
LEADERBOARD_PAGE = 100
NOT_COMPUTED = "not computed"


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
        **examples.error_responses(400, 413, 422, *examples.WRITE_ERRORS),
    },
)
async def post_score(
    body: Annotated[ScoreRequest, Body(openapi_examples=examples.SCORE_REQUESTS)],
    runtime: RuntimeDep,
    settings: SettingsDep,
    principal: WriteAccess,
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
    `config.data = "synthetic"`); 422 names the invalid field, including a network too large for the server's
    model memory budget; 429: a new job would leave the key (or all anonymous clients) with more queued items
    than its quota, or its write rate is spent."""
    spec = _score_spec(body, principal.name)
    submitted = await run_in_threadpool(submit_score, runtime, spec, server_limits(settings))
    if submitted.job_id is None:
        return _score_response(await run_in_threadpool(score_result, runtime.database, submitted))
    loop = asyncio.get_running_loop()
    wait_seconds = settings.sync_wait_seconds if wait is None else min(wait, settings.sync_wait_seconds)
    deadline, delay = loop.time() + wait_seconds, FIRST_POLL_SECONDS
    while loop.time() < deadline:
        await asyncio.sleep(min(delay, max(0.0, deadline - loop.time())))
        delay = min(delay * 1.5, MAX_POLL_SECONDS)
        result = await run_in_threadpool(score_result, runtime.database, submitted)
        if result.scored is not None:
            return _score_response(result)
    job = (await run_in_threadpool(score_result, runtime.database, submitted)).job
    assert job is not None  # submitted.job_id is set: a job computes the missing scores
    accepted = ScoreAccepted(status=job.status, job=job_ref(job))
    return JSONResponse(accepted.model_dump(), status_code=202, headers={"Location": accepted.job.url})


def _score_spec(body: ScoreRequest, owner: str | None) -> ScoreSpec:
    vote = VoteRequest(proxies=body.vote.proxies, preset=body.vote.preset, method=body.vote.method)
    return ScoreSpec(body.space, body.arch, body.dataset, body.proxies, body.config.options(), vote, owner)


def _score_response(result: ScoreResult) -> ScoreResponse:
    """Stored scores per proxy (a proxy whose computation raised, so nothing is stored, carries the job
    item's error) and the vote of the stored scores."""
    scored = result.scored
    assert scored is not None  # answered only once every score is stored
    missing = ProxyScore(value=None, seconds=None, device="none", error=scored.job_error or NOT_COMPUTED)
    stored = scored.scores
    return ScoreResponse(
        cached=result.job is None,
        architecture=architecture_out(scored.architecture, scored.space),
        configuration=configuration_out(scored.config),
        scores={proxy: proxy_score(stored[proxy]) if proxy in stored else missing for proxy in scored.proxies},
        vote=_standing_out(scored.standing, scored.space, scored.config),
        job=None if result.job is None else job_ref(result.job),
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
        leaderboard_url=None
        if standing.position is None
        else _leaderboard_url(standing, standing.position, space, config),
        reason=standing.reason,
    )


def _leaderboard_url(standing: VoteStanding, position: int, space: str, config: ScoringConfig) -> str:
    """GET /v1/leaderboard with this vote, on the page of LEADERBOARD_PAGE rows that lists the class."""
    choice = standing.choice
    voters = {"preset": choice.preset} if choice.preset is not None else {"proxies": ",".join(choice.voters)}
    offset = position - position % LEADERBOARD_PAGE
    query = {
        "space": space,
        "dataset": config.dataset,
        "config": config.fingerprint,
        **voters,
        "method": choice.method,
        "limit": LEADERBOARD_PAGE,
        "offset": offset,
    }
    return f"/v1/leaderboard?{urlencode(query)}"
