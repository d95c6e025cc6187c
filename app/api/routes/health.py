"""Liveness (the process answers) and readiness (the database answers and the workers are up)."""

from fastapi import APIRouter
from fastapi.responses import JSONResponse

from app.api.deps import RuntimeDep

router = APIRouter(tags=["health"])


@router.get("/healthz")
def healthz() -> dict[str, str]:
    return {"status": "ok"}


@router.get("/readyz", responses={503: {"description": "Database unreachable or workers not running"}})
def readyz(runtime: RuntimeDep) -> JSONResponse:
    checks: dict[str, object] = {}
    try:
        runtime.database.ping()
        checks["database"] = "ok"
    except Exception as error:  # any failure to answer means "not ready", reported as such
        checks["database"] = f"unreachable: {type(error).__name__}"
    executor, dispatcher = runtime.executor, runtime.dispatcher
    workers_ok = executor is not None and executor.ready()
    checks["workers"] = executor.health() if executor is not None else "not started"
    checks["dispatcher"] = "ok" if dispatcher is not None and dispatcher.alive() else "not running"
    ready = checks["database"] == "ok" and workers_ok and checks["dispatcher"] == "ok"
    return JSONResponse({"status": "ready" if ready else "not ready", **checks}, status_code=200 if ready else 503)
