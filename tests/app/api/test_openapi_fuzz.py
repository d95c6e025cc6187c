"""The published OpenAPI document, fuzzed. Schemathesis reads /openapi.json from the live server (uvicorn on a
real SQLite file, real HTTP) and runs its phases against every operation: the documented examples, the
coverage phase (each boundary and each constraint broken in turn: out-of-range integers, wrong types,
missing fields, unsupported methods) and seeded random requests, valid and invalid. Every answer must be a
documented status code with a body and headers matching what is documented (error bodies included), and
none a 5xx. A second run against a server with API keys on sends the write operations without a key: each
must be refused with the documented 401, and nothing may be stored.

Seeded and deterministic (the same requests every run, so a failure reproduces), and bounded to a few
minutes on a 2-core machine. Each run prints its figures (requests, 5xx, failed checks) for quoting.

The runs go through schemathesis' engine, the runner behind `schemathesis run`, with all of its phases and
checks: its pytest decorator needs the schema at import time (before the live server exists) or, through
`schemathesis.pytest.from_fixture`, a pytest older than 9.2 (it sets `Node._nodeid`, which 9.2 removed)."""

from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from conftest import LiveServer, error_fields, print_figures, service_settings
from schemathesis.engine import events, from_schema
from schemathesis.engine.recorder import ScenarioRecorder
from sqlalchemy import func, select

from app.db import Database
from app.db.models import Job, Observation

SEED = 11
# Random requests per operation in the fuzzing phase (the examples and coverage phases add their own,
# bounded by the schema): 3,700 requests, about a minute and a half on 2 cores.
MAX_EXAMPLES = 200
LOCKED_MAX_EXAMPLES = 20
WRITE_METHODS = ["POST", "DELETE"]
# Every write operation and the scope it needs.
WRITE_SCOPES = {
    "POST /v1/scores": "write",
    "POST /v1/batches": "write",
    "DELETE /v1/batches/{batch_id}": "write",
    "POST /v1/observations": "write",
    "POST /v1/architectures/onnx": "write",
    "DELETE /v1/observations": "admin",
}


def _config(max_examples: int) -> schemathesis.Config:
    """Every check schemathesis has except `positive_data_acceptance`: a schema-valid request may still
    name an architecture, batch or population that does not exist (404) or a string that is no cell (422).
    No stateful phase (the requests are independent, which keeps the run bounded) and no cache of earlier
    runs, so that every run sends the same requests."""
    return schemathesis.Config.from_dict(
        {
            "seed": SEED,
            "cache": {"enabled": False},
            "request-timeout": 60,
            "generation": {
                "mode": "all",
                "max-examples": max_examples,
                "deterministic": True,
                "no-shrink": True,
                "database": "none",
            },
            "phases": {"stateful": {"enabled": False}},
            "checks": {"positive_data_acceptance": {"enabled": False}},
        }
    )


@dataclass
class FuzzRun:
    """What one schemathesis run sent and got back."""

    name: str
    requests: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    # One entry per distinct (operation, check, problem), with the curl command that reproduces it.
    failures: dict[tuple[str, str, str], str] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    exchanges: list[tuple[schemathesis.Case, schemathesis.Response]] = field(default_factory=list)

    @property
    def server_errors(self) -> int:
        return sum(count for status, count in self.statuses.items() if status >= 500)

    def summary(self) -> str:
        codes = ", ".join(f"{status}: {count}" for status, count in sorted(self.statuses.items()))
        return (
            f"schemathesis ({self.name}): {self.requests} requests, {self.server_errors} server errors (5xx), "
            f"{len(self.failures)} distinct check failures, {len(self.errors)} errors; status codes: {codes}"
        )

    def report(self) -> str:
        lines = [f"{label} - {check}: {problem}\n    {curl}" for (label, check, problem), curl in self.failures.items()]
        return "\n".join([self.summary(), *lines, *self.errors])

    def record(self, recorder: ScenarioRecorder) -> None:
        for case_id, interaction in recorder.interactions.items():
            if interaction.response is None:
                continue
            self.requests += 1
            self.statuses[interaction.response.status_code] += 1
            self.exchanges.append((recorder.cases[case_id].value, interaction.response))
        for checks in recorder.checks.values():
            for check in checks:
                if check.failure_info is not None:
                    failure = check.failure_info.failure
                    problem = f"{failure.title}: {failure.message}".strip()
                    self.failures.setdefault((recorder.label, check.name, problem), check.failure_info.code_sample)


def fuzz(server: LiveServer, name: str, max_examples: int, methods: list[str] | None = None) -> FuzzRun:
    """Run schemathesis against the server's live /openapi.json (only `methods`, when given)."""
    schema = schemathesis.openapi.from_url(f"{server.client.base_url}/openapi.json", config=_config(max_examples))
    if methods is not None:
        schema = schema.include(method=methods)
    run = FuzzRun(name)
    for event in from_schema(schema).execute():
        if isinstance(event, events.ScenarioFinished):
            run.record(event.recorder)
        elif isinstance(event, events.NonFatalError):
            run.errors.append(f"{event.label}: {event.info.format()}")
        elif isinstance(event, events.FatalError):
            run.errors.append(f"fatal: {event.exception!r}")
    return run


def _server(home: Path, **overrides: Any) -> LiveServer:
    """A live service on its own SQLite file with small limits, like the other API tests. Scores answer at
    once (202 with the job) instead of waiting for the work, few items may queue, and there is no write
    rate limit, so that the fuzzer reaches the validation behind it rather than a wall of 429s."""
    settings = service_settings(
        home,
        f"sqlite:///{home / 'nasscore.db'}",
        max_body_bytes=256 * 1024,
        max_batch_items=200,
        max_observations=100,
        max_queued_items_per_key=400,
        writes_per_minute=1_000_000,
        sync_wait_seconds=0,
        **overrides,
    )
    return LiveServer(settings)


@pytest.fixture(scope="module")
def open_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with _server(tmp_path_factory.mktemp("fuzz-open"), auth="off") as server:
        yield server


@pytest.fixture(scope="module")
def locked_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    with _server(tmp_path_factory.mktemp("fuzz-locked"), auth="on") as server:
        yield server


def test_fuzzing_every_operation_finds_no_server_error_and_no_undocumented_answer(
    open_server: LiveServer, request: pytest.FixtureRequest
) -> None:
    run = fuzz(open_server, "auth off, every operation", MAX_EXAMPLES)
    print_figures(request, run.report())
    assert run.statuses[422] > 0 and run.statuses[200] > 0, "the fuzzer reached neither validation nor a success"
    assert run.server_errors == 0
    assert not run.failures and not run.errors, run.report()
    assert open_server.client.get("/readyz").status_code == 200, "the server and its workers survived the run"


def test_fuzzing_writes_without_a_key_gets_401_and_stores_nothing(
    locked_server: LiveServer, request: pytest.FixtureRequest
) -> None:
    run = fuzz(locked_server, "auth on, no key, write operations", LOCKED_MAX_EXAMPLES, methods=WRITE_METHODS)
    print_figures(request, run.report())
    assert not run.failures and not run.errors, run.report()
    valid = [(case, response) for case, response in run.exchanges if _is_valid_write(case)]
    assert valid, "no schema-valid write request was sent"
    assert {case.operation.label for case, _ in valid} == set(WRITE_SCOPES)
    wrong = [
        (case.as_curl_command(), response.status_code, response.text)
        for case, response in valid
        if response.status_code != 401 or error_fields(response) != _needs_key(case.operation.label)
    ]
    assert wrong == []
    assert _stored(locked_server) == {"batches": 0, "observations": 0}


def test_a_405_names_every_method_of_the_resource(open_server: LiveServer) -> None:
    """/v1/batches has one route for GET and one for POST; the `Allow` of a 405 must list both."""
    response = open_server.client.put("/v1/batches", json={})
    assert response.status_code == 405
    assert response.headers["allow"] == "GET, POST"
    assert response.json()["errors"] == [{"field": "", "message": "Method Not Allowed"}]


def _needs_key(label: str) -> dict[str, str]:
    return {"authorization": f"this request needs an API key with scope '{WRITE_SCOPES[label]}'"}


def _is_valid_write(case: schemathesis.Case) -> bool:
    """A request of a write operation, generated to match its schema (not one of the negative ones, which
    may be refused for their own fault before the key is asked for)."""
    return (
        case.method.upper() in WRITE_METHODS
        and case.meta is not None
        and case.meta.generation.mode.is_positive
        and not any(component.mode.is_negative for component in case.meta.components.values())
    )


def _stored(server: LiveServer) -> dict[str, int | None]:
    database = Database(server.settings.resolved_database_url)
    try:
        with database.read_session() as session:
            return {
                "batches": session.scalar(select(func.count()).select_from(Job)),
                "observations": session.scalar(select(func.count()).select_from(Observation)),
            }
    finally:
        database.dispose()
