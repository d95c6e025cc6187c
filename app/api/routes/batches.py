"""Batches: many architectures scored in the background, persisted so they survive restarts."""

from typing import Annotated

from fastapi import APIRouter, Query
from fastapi.responses import JSONResponse
from sqlalchemy.orm import Session

from app.api.deps import PageDep, ReadSession, RuntimeDep, SettingsDep
from app.api.schemas import BatchOut, BatchRequest, ErrorResponse, Page
from app.api.views import batch_out
from app.db.models import Architecture, JobKind, JobStatus, SearchSpace
from app.services import jobs
from app.services.configs import get_or_create_config, resolve_config, validate_dataset, validate_proxies
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
ERRORS = {404: {"model": ErrorResponse}, 413: {"model": ErrorResponse}, 422: {"model": ErrorResponse}}


@router.post("", status_code=202, response_model=BatchOut, responses=ERRORS)
def create_batch(body: BatchRequest, runtime: RuntimeDep, settings: SettingsDep) -> JSONResponse:
    space_module(body.space)
    validate_dataset(body.dataset)
    proxies = validate_proxies(body.proxies)
    _check_size(body, settings)
    resolved = resolve_config(runtime.catalog, body.dataset, body.config.options())

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


@router.get("", response_model=Page[BatchOut])
def list_batches(
    session: ReadSession,
    page: PageDep,
    status: Annotated[JobStatus | None, Query(description="Only batches in this state")] = None,
) -> Page[BatchOut]:
    found, total = jobs.list_jobs(session, status, page.limit, page.offset)
    return Page(items=[batch_out(session, job) for job in found], total=total, limit=page.limit, offset=page.offset)


@router.get("/{batch_id}", response_model=BatchOut, responses=ERRORS)
def get_batch(batch_id: int, session: ReadSession) -> BatchOut:
    return batch_out(session, jobs.get_job(session, batch_id))


@router.delete("/{batch_id}", response_model=BatchOut, responses={409: {"model": ErrorResponse}, **ERRORS})
def cancel_batch(batch_id: int, runtime: RuntimeDep) -> BatchOut:
    def cancel(session: Session) -> BatchOut:
        job = jobs.cancel_job(session, batch_id)
        session.flush()
        return batch_out(session, job)

    return runtime.database.transact(cancel)
