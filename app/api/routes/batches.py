"""Batches: many architectures scored in the background, persisted so they survive restarts."""

from typing import Annotated

from fastapi import APIRouter, Body, Query
from fastapi.responses import JSONResponse

from app.api import examples
from app.api.auth import ReadAccess, WriteAccess
from app.api.deps import PageDep, ReadSession, RowId, RuntimeDep, SettingsDep
from app.api.schemas import BatchOut, BatchRequest, Page
from app.api.views import batch_out
from app.db.models import JobStatus
from app.services import batches
from app.services.batches import ArchitectureSelection, BatchSpec
from app.services.quotas import server_limits

router = APIRouter(prefix="/v1/batches", tags=["batches"])


@router.post(
    "",
    summary="Start a batch",
    status_code=202,
    response_model=BatchOut,
    responses={
        202: examples.json_response("The batch, queued", examples.BATCH_ACCEPTED, headers=examples.LOCATION),
        **examples.error_responses(400, 413, 422, *examples.WRITE_ERRORS),
    },
)
def create_batch(
    body: Annotated[BatchRequest, Body(openapi_examples=examples.BATCH_REQUESTS)],
    runtime: RuntimeDep,
    settings: SettingsDep,
    principal: WriteAccess,
) -> JSONResponse:
    """Queues many architectures for scoring in the background, chosen by exactly one of `archs` (a list),
    `sample` (`n` distinct cells drawn with `seed`) or `all` (the whole space), under one configuration.
    Always 202: follow progress, rate and ETA at the `Location`; the batch survives restarts, and its `links`
    lead to the population's leaderboard, correlations, plot and export.

    With `resume` (the default), an identical batch (same architectures, configuration and proxies) is
    returned instead of starting another (`resumed: true`): the unfinished one, or the finished one with its
    failed items queued again. Items whose scores are already stored complete at once. 413: more
    architectures than the server's batch limit; 400: no real calibration data for the dataset; 422: a
    sample larger than the space, or a network too large for the server's model memory budget (naming the
    `config` field to lower); 429: the key (or, without one, all anonymous clients together) already has
    `max_running_batches_per_key` batches unfinished (`batches`) or this batch would leave more than
    `max_queued_items_per_key` items queued (the selection field), or its write rate is spent; nothing is
    stored then, and `Retry-After` estimates when there will be room."""
    spec = _batch_spec(body, principal.name)
    out = batch_out(batches.create_batch(runtime, spec, limits=server_limits(settings)))
    return JSONResponse(out.model_dump(mode="json"), status_code=202, headers={"Location": out.url})


def _batch_spec(body: BatchRequest, owner: str | None) -> BatchSpec:
    return BatchSpec(
        space=body.space,
        dataset=body.dataset,
        proxies=body.proxies,
        options=body.config.options(),
        selection=_selection(body),
        resume=body.resume,
        owner=owner,
    )


def _selection(body: BatchRequest) -> ArchitectureSelection:
    if body.sample is not None:
        return ArchitectureSelection(sample=body.sample.n, seed=body.sample.seed)
    return ArchitectureSelection(archs=body.archs, all=body.all)


@router.get(
    "",
    summary="List batches",
    response_model=Page[BatchOut],
    responses={
        200: examples.json_response("A page of batches", examples.BATCH_PAGE),
        **examples.error_responses(422, *examples.READ_ERRORS),
    },
)
def list_batches(
    session: ReadSession,
    _: ReadAccess,
    page: PageDep,
    status: Annotated[JobStatus | None, Query(description="Only batches in this state")] = None,
) -> Page[BatchOut]:
    """Every job, newest first: the batches and the jobs POST /v1/scores queues (`kind: "score"`), with
    their progress; filter by `status`."""
    states, total = batches.list_batches(session, status, page.limit, page.offset)
    return Page(items=[batch_out(state) for state in states], total=total, limit=page.limit, offset=page.offset)


@router.get(
    "/{batch_id}",
    summary="Get a batch's progress",
    response_model=BatchOut,
    responses={
        200: examples.json_response("The batch and its progress", examples.BATCH_RUNNING),
        **examples.error_responses(404, 422, *examples.READ_ERRORS),
    },
)
def get_batch(batch_id: RowId, session: ReadSession, _: ReadAccess) -> BatchOut:
    """The batch's state and counts of its items (done, failed, cancelled, pending, running), its rate and
    ETA, up to 10 failed items with their errors, and the links to its population's reports. Poll it until
    `status` is `done` or `cancelled`."""
    return batch_out(batches.describe_batch(session, batch_id))


@router.delete(
    "/{batch_id}",
    summary="Cancel a batch",
    response_model=BatchOut,
    responses={
        200: examples.json_response("The batch, cancelled", examples.BATCH_CANCELLED),
        **examples.error_responses(404, 409, 422, *examples.WRITE_ERRORS),
    },
)
def cancel_batch(batch_id: RowId, runtime: RuntimeDep, principal: WriteAccess) -> BatchOut:
    """Cancels the batch's pending items; the scores already computed stay stored. Only the key that started
    it, or an admin key, may cancel it (403). 409 when the batch has already finished."""
    return batch_out(batches.cancel_batch(runtime.database, batch_id, principal))
