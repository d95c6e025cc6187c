"""The guards every request body passes before a route runs, probed over real HTTP on a server without keys
(where, unguarded, any client could write): bodies not declared JSON (a cross-site `text/plain` form POST)
answer 415, JSON nested too deeply answers 400, and neither stores anything; browsers get CORS headers
only for the configured origins."""

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from conftest import README_CELL, TINY_CONFIG, LiveServer, error_fields, service_settings
from sqlalchemy import func, select

from app.api.limits import MAX_JSON_DEPTH, json_depth
from app.db import Database
from app.db.models import Job, Observation

LISTED_ORIGIN = "https://lab.example"
OTHER_ORIGIN = "https://evil.example"
OBSERVATION = {"arch": README_CELL, "dataset": "cifar10", "accuracy": 91.5, "source": "request-guards"}
# One valid body per write route: each would be stored (or queue work) if it got through.
VALID_BODIES = {
    "/v1/scores": {"arch": README_CELL, "config": TINY_CONFIG},
    "/v1/batches": {"sample": {"n": 2, "seed": 7}, "config": TINY_CONFIG},
    "/v1/observations": OBSERVATION,
}
DEPTH_MESSAGE = f"JSON nested deeper than {MAX_JSON_DEPTH} levels"


class GuardedService:
    def __init__(self, server: LiveServer, database: Database) -> None:
        self.server = server
        self.client = server.client
        self.database = database

    def stored(self) -> tuple[int, int]:
        """How many batch jobs (score jobs included) and observations the database holds."""
        with self.database.read_session() as session:
            jobs = session.scalar(select(func.count()).select_from(Job))
            observations = session.scalar(select(func.count()).select_from(Observation))
        return int(jobs or 0), int(observations or 0)


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[GuardedService]:
    home: Path = tmp_path_factory.mktemp("guards")
    url = f"sqlite:///{home / 'nasscore.db'}"
    settings = service_settings(home, url, cors_origins=[LISTED_ORIGIN], max_body_bytes=1024 * 1024)
    assert not settings.auth_enabled  # a loopback server without keys: every client may write
    with LiveServer(settings) as server:
        database = Database(url)
        yield GuardedService(server, database)
        database.dispose()


@pytest.mark.parametrize("path", sorted(VALID_BODIES))
@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "text/plain;charset=UTF-8", "application/x-www-form-urlencoded", "multipart/form-data"],
)
def test_a_cross_site_simple_post_answers_415_and_stores_nothing(
    service: GuardedService, path: str, content_type: str
) -> None:
    before = service.stored()
    response = service.client.post(
        path,
        content=json.dumps(VALID_BODIES[path]),
        headers={"content-type": content_type, "origin": OTHER_ORIGIN},
    )
    assert response.status_code == 415
    media_type = content_type.split(";")[0].lower()
    assert error_fields(response) == {"content-type": f"expected 'application/json', got '{media_type}'"}
    assert "access-control-allow-origin" not in response.headers
    assert service.stored() == before


def test_a_body_without_a_content_type_answers_415(service: GuardedService) -> None:
    before = service.stored()
    request = service.client.build_request("POST", "/v1/observations", content=json.dumps(OBSERVATION))
    assert "content-type" not in request.headers
    response = service.client.send(request)
    assert response.status_code == 415
    assert error_fields(response) == {"content-type": "expected 'application/json', got no content type"}
    assert service.stored() == before


def test_json_with_a_charset_parameter_is_accepted(service: GuardedService) -> None:
    before_jobs, before_observations = service.stored()
    response = service.client.post(
        "/v1/observations",
        content=json.dumps(OBSERVATION),
        headers={"content-type": "Application/JSON; charset=utf-8"},
    )
    assert response.status_code == 200, response.text
    assert service.stored() == (before_jobs, before_observations + 1)


@pytest.mark.parametrize("path", sorted(VALID_BODIES))
def test_100000_nested_brackets_answer_400_naming_the_body(service: GuardedService, path: str) -> None:
    before = service.stored()
    response = service.client.post(path, content=b"[" * 100_000, headers={"content-type": "application/json"})
    assert response.status_code == 400
    assert error_fields(response) == {"body": DEPTH_MESSAGE}
    assert service.stored() == before


def test_the_depth_limit_is_exact(service: GuardedService) -> None:
    def post(depth: int) -> Any:
        body = "[" * depth + "]" * depth
        return service.client.post("/v1/observations", content=body, headers={"content-type": "application/json"})

    at_limit, past_limit = post(MAX_JSON_DEPTH), post(MAX_JSON_DEPTH + 1)
    assert at_limit.status_code == 422  # parsed: a list whose item is a list, not an observation
    assert list(error_fields(at_limit)) == ["body[0]"]
    assert past_limit.status_code == 400
    assert error_fields(past_limit) == {"body": DEPTH_MESSAGE}


@pytest.mark.parametrize(
    ("body", "depth"),
    [
        (b"93.5", 0),
        (b'"[[[["', 0),
        (b"[]", 1),
        (b'{"a": [{"b": [1, 2]}, []]}', 4),
        (b'["\\"[[[", "]]]"]', 1),  # an escaped quote does not end a string
        (b'["\\\\", [[1]]]', 3),  # an escaped backslash does not escape the closing quote
        (b'{"k\\u005b": "\\u005b[", "v": [[]]}', 3),
    ],
)
def test_json_depth_counts_structure_not_strings(body: bytes, depth: int) -> None:
    json.loads(body)  # every case is valid JSON, so its depth is exact
    assert json_depth(body) == depth


def test_preflight_from_a_listed_origin_is_allowed(service: GuardedService) -> None:
    response = service.client.options(
        "/v1/scores",
        headers={
            "origin": LISTED_ORIGIN,
            "access-control-request-method": "POST",
            "access-control-request-headers": "authorization, content-type",
        },
    )
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == LISTED_ORIGIN
    assert "POST" in response.headers["access-control-allow-methods"]
    assert "authorization" in response.headers["access-control-allow-headers"].lower()
    simple = service.client.get("/healthz", headers={"origin": LISTED_ORIGIN})
    assert simple.headers["access-control-allow-origin"] == LISTED_ORIGIN
    assert {"location", "retry-after"} <= set(simple.headers["access-control-expose-headers"].lower().split(", "))


def test_preflight_from_an_unlisted_origin_gets_no_allow_origin(service: GuardedService) -> None:
    response = service.client.options(
        "/v1/scores",
        headers={
            "origin": OTHER_ORIGIN,
            "access-control-request-method": "POST",
            "access-control-request-headers": "content-type",
        },
    )
    assert response.status_code >= 400
    assert "access-control-allow-origin" not in response.headers
    simple = service.client.get("/healthz", headers={"origin": OTHER_ORIGIN})
    assert "access-control-allow-origin" not in simple.headers
