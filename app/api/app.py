"""`create_app(settings)`: the FastAPI application. Its lifespan starts the runtime (database check,
worker pool, dispatcher thread) and stops it on shutdown; scoring never runs on the event loop."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool

from app.api.errors import install_error_handlers
from app.api.limits import BodySizeLimit
from app.api.routes import include_all
from app.runtime import Runtime
from app.settings import Settings


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = Runtime(settings)
        app.state.runtime = runtime
        await run_in_threadpool(runtime.start)
        try:
            yield
        finally:
            await run_in_threadpool(runtime.stop)

    app = FastAPI(
        title="nasscore",
        summary="Training-free NAS scoring: zero-cost proxies for NAS-Bench-201 cells, as a shared service.",
        version="0.1.0",
        lifespan=lifespan,
    )
    app.state.settings = settings
    install_error_handlers(app)
    include_all(app)
    app.add_middleware(BodySizeLimit, max_body_bytes=settings.max_body_bytes)
    return app
