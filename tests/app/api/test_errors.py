"""Error answers over real HTTP: the service's own input errors keep their 4xx status, while any other
exception — a ValueError included — is a server bug that answers a logged 500 of the same JSON shape,
without leaking what went wrong."""

import logging
import threading
from collections.abc import Iterator
from contextlib import contextmanager

import httpx
import pytest
import uvicorn
from conftest import free_port, wait_until
from fastapi import FastAPI

from app.api.errors import install_error_handlers
from app.services.errors import InvalidInput, NotFound

INTERNAL = {"detail": "internal server error", "errors": [{"field": "", "message": "internal server error"}]}
SECRET = "private detail of the bug"


def _app_with_failing_routes() -> FastAPI:
    app = FastAPI()
    install_error_handlers(app)

    @app.get("/bug/value-error")
    def value_error() -> None:
        raise ValueError(SECRET)

    @app.get("/bug/runtime-error")
    def runtime_error() -> None:
        raise RuntimeError(SECRET)

    @app.get("/missing")
    def missing() -> None:
        raise NotFound("id", "no thing with id 7")

    @app.get("/invalid")
    def invalid() -> None:
        raise InvalidInput("limit", "must be positive")

    @app.get("/typed")
    def typed(limit: int) -> dict[str, int]:
        return {"limit": limit}

    return app


@contextmanager
def _served(app: FastAPI) -> Iterator[httpx.Client]:
    """`app` under uvicorn in a background thread on a free 127.0.0.1 port, with a client for it."""
    port = free_port()
    server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="critical"))
    thread = threading.Thread(target=server.run, name="uvicorn-errors", daemon=True)
    thread.start()
    try:
        wait_until(lambda: server.started, 30, "uvicorn to start")
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=30) as client:
            yield client
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@pytest.fixture(scope="module")
def client() -> Iterator[httpx.Client]:
    with _served(_app_with_failing_routes()) as served:
        yield served


@pytest.mark.parametrize("path", ["/bug/value-error", "/bug/runtime-error"])
def test_an_unexpected_exception_is_a_logged_500_without_details(
    client: httpx.Client, path: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.ERROR, logger="nasscore.api"):
        response = client.get(path)
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/json"
    assert response.json() == INTERNAL
    assert SECRET not in response.text
    [record] = [r for r in caplog.records if r.name == "nasscore.api"]
    assert f"GET {path}" in record.getMessage() and SECRET in record.getMessage()


@pytest.mark.parametrize(
    ("path", "status", "field", "message"),
    [
        ("/missing", 404, "id", "no thing with id 7"),
        ("/invalid", 422, "limit", "must be positive"),
        ("/typed?limit=many", 422, "limit", "Input should be a valid integer, unable to parse string as an integer"),
        ("/no-such-route", 404, "", "Not Found"),
    ],
)
def test_client_errors_keep_their_status_and_name_the_field(
    client: httpx.Client, path: str, status: int, field: str, message: str
) -> None:
    response = client.get(path)
    assert response.status_code == status
    assert response.json()["errors"] == [{"field": field, "message": message}]
