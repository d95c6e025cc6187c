"""POST /v1/observations: one observed accuracy, or a list of them (bounded), stored idempotently under its
source; DELETE /v1/observations?source=NAME: an admin removes a source's observations in one call."""

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from pydantic import TypeAdapter, ValidationError

from app.api import examples
from app.api.auth import WriteAccess, require_admin
from app.api.deps import RuntimeDep, SettingsDep
from app.api.schemas import ObservationIn, ObservationsDeleted, ObservationsStored
from app.services.errors import InvalidInput, TooLarge
from app.services.keys import Principal
from app.services.observations import (
    MAX_DATASET_LENGTH,
    MAX_METRIC_LENGTH,
    MAX_SOURCE_LENGTH,
    ObservationInput,
    default_source,
    delete_observations,
    store_observations,
)

router = APIRouter(prefix="/v1/observations", tags=["observations"])
_ONE = TypeAdapter(ObservationIn)
_OBSERVATION_SCHEMA = _ONE.json_schema(ref_template="#/components/schemas/{model}")
_BODY_SCHEMA = {
    "oneOf": [_OBSERVATION_SCHEMA, {"type": "array", "items": _OBSERVATION_SCHEMA}],
    "description": "One observation, or a list of them",
}


@router.post(
    "",
    summary="Record observed accuracies",
    response_model=ObservationsStored,
    responses={
        200: examples.json_response("How many were received and stored", examples.OBSERVATIONS_STORED),
        **examples.error_responses(400, 409, 413, 422, *examples.WRITE_ERRORS),
    },
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": _BODY_SCHEMA, "examples": examples.OBSERVATION_REQUESTS}},
        }
    },
)
async def post_observations(
    request: Request, runtime: RuntimeDep, settings: SettingsDep, principal: WriteAccess
) -> ObservationsStored:
    """Stores accuracies observed for architectures (e.g. NAS-Bench-201's test accuracies, or your own
    training runs): one object, or a list of them in one transaction. They feed the `accuracy` column of the
    leaderboard and the correlation reports, which read one `source` at a time (by default the source with
    the most observations of the dataset and metric, e.g. the benchmark import).

    **Provenance**: each architecture, dataset, metric and `source` keeps its own value, recorded with the
    name of the key that posted it (`posted_by`) and the time. Posting the same source's value again
    replaces it (`stored` counts distinct rows written) only when the same key posts it, or an admin, or a
    client of a server without keys. Any other key gets **409** naming `source` and the key that owns it,
    and nothing of the request is stored: post under a source of your own instead (the default `source` is
    your key's name, `api` without a key), and both values are kept side by side.

    **Checks** (422 naming the field; for a list, the item, e.g. `body[3].accuracy`): `accuracy` in
    [0, 100]; `metric` one of `test_accuracy` (the default), `val_accuracy`, `train_accuracy` or the
    server's `extra_metrics`; `metric` and `source` printable, 1-64 and 1-128 characters; `epochs` in
    [0, 100,000]; `benchmark_index` in [0, size of the space), recorded on the architecture: an index
    belongs to one cell, and only an admin (a benchmark import) may move one or change a cell's stored
    index. 413 past the server's limit per request (20,000 by default)."""
    try:
        payload = json.loads(await request.body())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise InvalidInput("body", f"not valid JSON: {error}") from None
    items, prefixes = _validated(payload, settings.max_observations)
    spaces, inputs = [item.space for item in items], [_to_input(item, principal) for item in items]
    stored = await run_in_threadpool(
        lambda: store_observations(
            runtime.database, spaces, inputs, prefixes, author=principal, extra_metrics=settings.extra_metrics
        )
    )
    return ObservationsStored(received=len(items), stored=stored)


@router.delete(
    "",
    summary="Delete a source's observations",
    response_model=ObservationsDeleted,
    dependencies=[Depends(require_admin)],
    responses={
        200: examples.json_response("How many were deleted", examples.OBSERVATIONS_DELETED),
        **examples.error_responses(404, 422, *examples.WRITE_ERRORS),
    },
)
def delete_source(
    runtime: RuntimeDep,
    source: Annotated[str, Query(min_length=1, max_length=MAX_SOURCE_LENGTH, description="The source to delete")],
    dataset: Annotated[
        str | None,
        Query(min_length=1, max_length=MAX_DATASET_LENGTH, description="Only its observations on this dataset"),
    ] = None,
    metric: Annotated[
        str | None,
        Query(min_length=1, max_length=MAX_METRIC_LENGTH, description="Only its observations of this metric"),
    ] = None,
) -> ObservationsDeleted:
    """Removes every observation of one `source` (optionally only those of one `dataset` and/or `metric`) in
    one transaction, e.g. a poisoned or mistaken import; reports then no longer see it. Needs an admin key.
    404 naming `source` when no observation matches (it lists the stored sources)."""
    return ObservationsDeleted(deleted=delete_observations(runtime.database, source, dataset, metric))


def _validated(payload: Any, limit: int) -> tuple[list[ObservationIn], list[str]]:
    """Parse the single or list form, so errors point at `accuracy` or at `body[3].accuracy`."""
    if isinstance(payload, dict):
        return [_parse(payload, ())], [""]
    if not isinstance(payload, list):
        raise InvalidInput("body", "expected an observation object or a list of them")
    if len(payload) > limit:
        raise TooLarge("body", f"{len(payload)} observations exceed the limit of {limit} per request")
    items = [_parse(entry, (position,)) for position, entry in enumerate(payload)]
    return items, [f"body[{position}]" for position in range(len(payload))]


def _parse(entry: Any, location: tuple[int, ...]) -> ObservationIn:
    try:
        return _ONE.validate_python(entry)
    except ValidationError as error:
        raise RequestValidationError(
            [{**e, "loc": ("body", *location, *e["loc"])} for e in error.errors(include_url=False)]
        ) from None


def _to_input(item: ObservationIn, principal: Principal) -> ObservationInput:
    return ObservationInput(
        arch=item.arch,
        dataset=item.dataset,
        accuracy=item.accuracy,
        metric=item.metric,
        epochs=item.epochs,
        source=default_source(principal) if item.source is None else item.source,
        benchmark_index=item.benchmark_index,
    )
