"""Batches: many architectures scored in the background, persisted so they survive restarts."""

from typing import Annotated

from fastapi import APIRouter, Body, Query
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from app.api import examples
from app.api.deps import PageDep, ReadSession, RuntimeDep, SettingsDep
from app.api.schemas import BatchOut, BatchRequest, Page
from app.api.views import batch_out
from app.db.models import Architecture, JobKind, JobStatus, SearchSpace
from app.services import jobs
from app.services.configs import get_or_create_config, validate_dataset, validate_proxies
from app.services.errors import TooLarge
from app.services.spaces import (
    all_architectures,
    architectures_for_strings,
    ensure_space,
    enumerate_space,
    get_or_create_architectures,
    sample_architectures,
    space_module,
)
from app.settings import Settings

router = APIRouter(prefix="/v1/batches", tags=["batches"])


@router.post(
    "",
    summary="Start a batch",
    status_code=202,
    response_model=BatchOut,
    responses={
        202: examples.json_response("The batch, queued", examples.BATCH_ACCEPTED, headers=examples.LOCATION),
        **examples.error_responses(400, 413, 422),
    },
)
def create_batch(
    body: Annotated[BatchRequest, Body(openapi_examples=examples.BATCH_REQUESTS)],
    runtime: RuntimeDep,
    settings: SettingsDep,
) -> JSONResponse:
    """Queues many architectures for scoring in the background, chosen by exactly one of `archs` (a list),
    `sample` (`n` distinct cells drawn with `seed`) or `all` (the whole space), under one configuration.
    Always 202: follow progress, rate and ETA at the `Location`; the batch survives restarts, and its `links`
    lead to the population's leaderboard, correlations, plot and export.

    With `resume` (the default), an identical batch (same architectures, configuration and proxies) is
    returned instead of starting another (`resumed: true`): the unfinished one, or the finished one with its
    failed items queued again. Items whose scores are already stored complete at once. 413: more
    architectures than the server's batch limit; 400: no real calibration data for the dataset."""
    space_module(body.space)
    validate_dataset(body.dataset)
    proxies = validate_proxies(body.proxies)
    _check_size(body, settings)
    resolved = runtime.resolve(body.dataset, body.config.options())

    def create(session: Session) -> BatchOut:
        space = ensure_space(session, body.space)
        job, created = jobs.create_job(
            session,
            kind=JobKind.BATCH,
            space=space,
            config=get_or_create_config(session, resolved),
            proxies=proxies,
            architectures=_selected_architectures(session, space, body),
            resume=body.resume,
        )
        return batch_out(session, job, resumed=not created)

    out = runtime.database.transact(create)
    runtime.wake()
    return JSONResponse(out.model_dump(mode="json"), status_code=202, headers={"Location": out.url})


def _check_size(body: BatchRequest, settings: Settings) -> None:
    limit = settings.max_batch_items
    if body.archs is not None and len(body.archs) > limit:
        raise TooLarge("archs", f"{len(body.archs)} architectures exceed the batch limit of {limit}")
    if body.sample is not None and body.sample.n > limit:
        raise TooLarge("sample.n", f"{body.sample.n} architectures exceed the batch limit of {limit}")
    if body.all and len(enumerate_space(body.space, "all")) > limit:
        raise TooLarge("all", f"the whole {body.space} space exceeds the batch limit of {limit}")


def _selected_architectures(session: Session, space: SearchSpace, body: BatchRequest) -> list[Architecture]:
    if body.archs is not None:
        return get_or_create_architectures(session, space, body.archs, "archs")
    if body.all:
        return all_architectures(session, space)
    chosen = sample_architectures(space.name, body.sample.n, body.sample.seed)
    return architectures_for_strings(session, space, chosen)


@router.get(
    "",
    summary="List batches",
    response_model=Page[BatchOut],
    responses={200: examples.json_response("A page of batches", examples.BATCH_PAGE), **examples.error_responses(422)},
)
def list_batches(
    session: ReadSession,
    page: PageDep,
    status: Annotated[JobStatus | None, Query(description="Only batches in this state")] = None,
) -> Page[BatchOut]:
    """Every job, newest first: the batches and the jobs POST /v1/scores queues (`kind: "score"`), with
    their progress; filter by `status`."""
    found, total = jobs.list_jobs(session, status, page.limit, page.offset)
    return Page(items=[batch_out(session, job) for job in found], total=total, limit=page.limit, offset=page.offset)


@router.get(
    "/{batch_id}",
    summary="Get a batch's progress",
    response_model=BatchOut,
    responses={
        200: examples.json_response("The batch and its progress", examples.BATCH_RUNNING),
        **examples.error_responses(404, 422),
    },
)
def get_batch(batch_id: int, session: ReadSession) -> BatchOut:
    """The batch's state and counts of its items (done, failed, cancelled, pending, running), its rate and
    ETA, up to 10 failed items with their errors, and the links to its population's reports. Poll it until
    `status` is `done` or `cancelled`."""
    return batch_out(session, jobs.get_job(session, batch_id))


@router.delete(
    "/{batch_id}",
    summary="Cancel a batch",
    response_model=BatchOut,
    responses={
        200: examples.json_response("The batch, cancelled", examples.BATCH_CANCELLED),
        **examples.error_responses(404, 409, 422),
    },
)
def cancel_batch(batch_id: int, runtime: RuntimeDep) -> BatchOut:
    """Cancels the batch's pending items; the scores already computed stay stored. 409 when the batch has
    already finished."""
    def cancel(session: Session) -> BatchOut:
        job = jobs.cancel_job(session, batch_id)
        session.flush()
        return batch_out(session, job)

    return runtime.database.transact(cancel)
