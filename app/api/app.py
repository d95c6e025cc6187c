"""`create_app(settings)`: the FastAPI application. Its lifespan starts the runtime (database check,
worker pool, dispatcher thread) and stops it on shutdown; scoring never runs on the event loop. Request
bodies pass the guards of app.api.limits before any route; browsers may call it cross-origin only from the
configured `cors_origins`."""

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.concurrency import run_in_threadpool
from fastapi.middleware.cors import CORSMiddleware

from app.api.auth import log_auth
from app.api.errors import install_error_handlers
from app.api.limits import BodySizeLimit, JsonContentType, JsonDepthLimit
from app.api.routes import include_all
from app.runtime import Runtime
from app.settings import Settings
from app.web.dashboard import install_dashboard


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        runtime = Runtime(settings)
        app.state.runtime = runtime
        await run_in_threadpool(runtime.start)
        try:
            await run_in_threadpool(log_auth, settings, runtime.database)
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
    install_dashboard(app)  # the web pages at / (the JSON API stays under /v1)
    # The last added runs first: CORS (answering preflights), then the body guards outside-in.
    app.add_middleware(JsonDepthLimit)
    app.add_middleware(BodySizeLimit, max_body_bytes=settings.max_body_bytes)
    app.add_middleware(JsonContentType)
    if settings.cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=settings.cors_origins,
            allow_methods=["GET", "POST", "DELETE"],
            allow_headers=["Authorization", "Content-Type"],
            expose_headers=["Location", "Retry-After"],  # a 202's job URL; how long a 429 asks to wait
        )
    return app
