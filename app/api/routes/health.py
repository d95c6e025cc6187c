"""Liveness (the process answers) and readiness (the database answers and the workers are up)."""

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from app.api import examples
from app.api.deps import RuntimeDep, SettingsDep
from app.api.schemas import Readiness
from app.runtime import display_url
from app.services.calibration import DatasetData, describe_datasets

router = APIRouter(tags=["health"])


@router.get(
    "/healthz",
    summary="Liveness",
    responses={200: examples.json_response("The process answers", examples.HEALTHY)},
)
def healthz() -> dict[str, str]:
    """Always `{"status": "ok"}` while the process serves HTTP; checks nothing else (see /readyz)."""
    return {"status": "ok"}


def _data_summary(data: DatasetData) -> str:
    if data.pool_digest is None:  # not data.real
        return "synthetic only"
    return f"{data.images} real images, sha256:{data.pool_digest[:12]} ({data.origin})"


@router.get(
    "/readyz",
    summary="Readiness",
    response_model=Readiness,
    responses={
        200: examples.json_response("Ready to score", examples.READY),
        503: {"model": Readiness, "description": "Database unreachable, or workers or dispatcher not running"},
    },
)
def readyz(runtime: RuntimeDep, settings: SettingsDep) -> JSONResponse:
    """Whether the service can take work: the database answers (with the calibration data stored per
    dataset), the worker pool is up (its health: workers, devices, queue, restarts) and the dispatcher
    thread runs. 200 when all are, else 503 with the same body naming what is not. `auth` says whether
    writes need an API key."""
    checks: dict[str, object] = {"database_url": display_url(runtime.database.url)}
    try:
        runtime.database.ping()
        checks["database"] = "ok"
        with runtime.database.read_session() as session:
            checks["data"] = {data.dataset: _data_summary(data) for data in describe_datasets(session)}
    except Exception as error:  # any failure to answer means "not ready", reported as such
        checks["database"] = f"unreachable: {type(error).__name__}"
    executor, dispatcher = runtime.executor, runtime.dispatcher
    workers_ok = executor is not None and executor.ready()
    checks["workers"] = executor.health() if executor is not None else "not started"
    checks["dispatcher"] = "ok" if dispatcher is not None and dispatcher.alive() else "not running"
    checks["auth"] = "on" if settings.auth_enabled else "off"
    ready = checks["database"] == "ok" and workers_ok and checks["dispatcher"] == "ok"
    return JSONResponse({"status": "ready" if ready else "not ready", **checks}, status_code=200 if ready else 503)
