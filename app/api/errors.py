"""Every client mistake becomes a 4xx whose body names the field and the problem:
`{"detail": "<field>: <problem>", "errors": [{"field": ..., "message": ...}]}`. Only the service's own
input errors count as client mistakes (ServiceError, request validation, HTTP errors); any other exception
is a server bug and answers 500 with a body of the same shape, logged, and without its details."""

import logging
from collections.abc import Sequence
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.base import BaseHTTPMiddleware, RequestResponseEndpoint
from starlette.responses import Response
from starlette.routing import Match

from app.services.errors import ServiceError, TooManyRequests, Unauthenticated

log = logging.getLogger("nasscore.api")
LOCATION_PREFIXES = ("body", "query", "path", "header")
INTERNAL_ERROR = "internal server error"
HTTP_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


def error_response(
    status_code: int, errors: Sequence[tuple[str, str]], headers: dict[str, str] | None = None
) -> JSONResponse:
    detail = "; ".join(f"{field}: {message}" if field else message for field, message in errors)
    body = {"detail": detail, "errors": [{"field": field, "message": message} for field, message in errors]}
    return JSONResponse(body, status_code=status_code, headers=headers)


def field_path(location: Sequence[Any]) -> str:
    """('body', 'observations', 3, 'accuracy') -> 'observations[3].accuracy'; a list body is 'body[3]...'."""
    parts = list(location)
    if len(parts) > 1 and parts[0] in LOCATION_PREFIXES and not isinstance(parts[1], int):
        parts = parts[1:]
    path = ""
    for part in parts:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or "body"


def _validation_message(error: dict[str, Any]) -> str:
    message = str(error.get("msg", "invalid value"))
    return message.removeprefix("Value error, ")


async def _on_validation_error(_: Request, error: RequestValidationError) -> JSONResponse:
    return error_response(422, [(field_path(e.get("loc", ())), _validation_message(e)) for e in error.errors()])


async def _on_service_error(_: Request, error: ServiceError) -> JSONResponse:
    headers = None
    if isinstance(error, Unauthenticated):
        headers = {"WWW-Authenticate": "Bearer"}
    elif isinstance(error, TooManyRequests):
        headers = {"Retry-After": str(error.retry_after)}
    return error_response(error.status_code, [(error.field, error.message)], headers=headers)


async def _on_http_error(request: Request, error: StarletteHTTPException) -> JSONResponse:
    headers = getattr(error, "headers", None)
    if error.status_code == 405:
        headers = {**(headers or {}), "Allow": ", ".join(_allowed_methods(request))}
    return error_response(error.status_code, [("", str(error.detail))], headers=headers)


def _allowed_methods(request: Request) -> list[str]:
    """Every method of the resource, as RFC 9110 asks of a 405: Starlette's `Allow` names only the first
    route matching the path, and a resource like /v1/batches has one route per method."""
    routes = request.app.router.routes
    return [
        method
        for method in HTTP_METHODS
        if any(route.matches({**request.scope, "method": method})[0] is Match.FULL for route in routes)
    ]


async def _answer_internal_errors(request: Request, call_next: RequestResponseEndpoint) -> Response:
    """A bug, not the request's fault: its traceback goes to the log, never into the body. Answered here
    rather than by an exception handler, which Starlette follows by re-raising (and, under load, by the
    server dropping the connection before the client has read the 500)."""
    try:
        return await call_next(request)
    except Exception as error:
        kind = type(error).__name__
        log.exception("internal error answering %s %s: %s: %s", request.method, request.url.path, kind, error)
        return error_response(500, [("", INTERNAL_ERROR)])


def install_error_handlers(app: FastAPI) -> None:
    # Starlette types every handler as taking any Exception; each of these only gets its own class.
    app.add_exception_handler(RequestValidationError, _on_validation_error)  # type: ignore[arg-type]
    app.add_exception_handler(ServiceError, _on_service_error)  # type: ignore[arg-type]
    app.add_exception_handler(StarletteHTTPException, _on_http_error)  # type: ignore[arg-type]
    app.add_middleware(BaseHTTPMiddleware, dispatch=_answer_internal_errors)
