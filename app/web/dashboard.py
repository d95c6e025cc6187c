"""Installs the dashboard on the app: its pages, its static files and the page shown when reads need a key."""

from fastapi import FastAPI, Request
from fastapi.staticfiles import StaticFiles
from starlette.responses import Response

from app.services.errors import Unauthenticated
from app.web.routes import ReadsNeedKey, page_router, router
from app.web.templating import STATIC_DIR, render

READS_NEED_KEY = Unauthenticated(
    "authorization",
    "this server requires an API key for every read (--auth-reads), which a browser page cannot send; "
    "the dashboard serves public reads only, so use the JSON API under /v1 with your key",
)


def install_dashboard(app: FastAPI) -> None:
    app.include_router(page_router)
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    app.add_exception_handler(ReadsNeedKey, _reads_need_key)


async def _reads_need_key(request: Request, _: Exception) -> Response:
    return render(request, "error.html", {"active": None, "error": READS_NEED_KEY}, status_code=401)
