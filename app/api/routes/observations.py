"""POST /v1/observations: one observed accuracy, or a list of them (bounded), stored idempotently."""

import json
from typing import Any

from fastapi import APIRouter, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from pydantic import TypeAdapter, ValidationError

from app.api import examples
from app.api.auth import WriteAccess
from app.api.deps import RuntimeDep, SettingsDep
from app.api.schemas import ObservationIn, ObservationsStored
from app.services.errors import InvalidInput, TooLarge
from app.services.observations import ObservationInput, store_observations

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
        **examples.error_responses(413, 422, *examples.WRITE_ERRORS),
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
    leaderboard and the correlation reports. Idempotent: one value per architecture, dataset and metric, so
    posting it again replaces the accuracy, epochs and source (`stored` counts distinct rows written).
    `benchmark_index` records the architecture's index in its benchmark. 413 past the server's limit per
    request (20,000 by default); a 422 for a list names the item, e.g. `body[3].accuracy`."""
    try:
        payload = json.loads(await request.body())
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise InvalidInput("body", f"not valid JSON: {error}") from None
    items, prefixes = _validated(payload, settings.max_observations)
    spaces, inputs = [item.space for item in items], [_to_input(item) for item in items]
    stored = await run_in_threadpool(store_observations, runtime.database, spaces, inputs, prefixes)
    return ObservationsStored(received=len(items), stored=stored)


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


def _to_input(item: ObservationIn) -> ObservationInput:
    return ObservationInput(
        arch=item.arch,
        dataset=item.dataset,
        accuracy=item.accuracy,
        metric=item.metric,
        epochs=item.epochs,
        source=item.source,
        benchmark_index=item.benchmark_index,
    )
