"""API keys and scopes over real HTTP, on a real server that requires keys (SQLite and PostgreSQL): anonymous
writes answer 401 naming the scope and store nothing, bad and revoked keys 401 with `WWW-Authenticate`,
a read key 403 when writing, batches carry the key that started them and only it or an admin may cancel
them; `auth_reads` makes reads need a key, and the bootstrap admin hash works without a database row."""

import logging
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from conftest import README_CELL, TINY_CONFIG, LiveServer, backend_url, error_fields, service_settings
from sqlalchemy import func, select

from app.api.auth import auth_summary
from app.db import Database
from app.db.models import Job, Observation
from app.services.keys import Scope, create_key, new_token, revoke_key, token_sha256
from app.settings import Settings

WRITE_NEEDED = "this request needs an API key with scope 'write'"
KEYS = {"reader": Scope.READ, "alice": Scope.WRITE, "bob": Scope.WRITE, "root": Scope.ADMIN}
# Long enough (tiny cells, one worker) that a batch is still unfinished when the test cancels it.
LONG_BATCH = 100


@dataclass
class KeyedService:
    server: LiveServer
    database: Database
    tokens: dict[str, str]
    log: list[str]

    def headers(self, name: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.tokens[name]}"}

    def stored(self) -> tuple[int, int]:
        """How many batch jobs (score jobs included) and observations the database holds."""
        with self.database.read_session() as session:
            jobs = session.scalar(select(func.count()).select_from(Job))
            observations = session.scalar(select(func.count()).select_from(Observation))
        return int(jobs or 0), int(observations or 0)


class LogMessages(logging.Handler):
    def __init__(self) -> None:
        super().__init__(logging.INFO)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextmanager
def nasscore_log() -> Iterator[list[str]]:
    """The messages the `nasscore` logger writes at INFO and above meanwhile."""
    logger, handler = logging.getLogger("nasscore"), LogMessages()
    level = logger.level
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
    try:
        yield handler.messages
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def keyed(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[KeyedService]:
    """A server that requires keys, started without any; the keys of KEYS are created once it runs."""
    home = tmp_path_factory.mktemp(f"auth-{request.param}")
    url = backend_url(request, home)
    with nasscore_log() as log, LiveServer(service_settings(home, url, auth="on")) as server:
        database = Database(url)
        tokens = {name: create_key(database, name, scope).token for name, scope in KEYS.items()}
        yield KeyedService(server, database, tokens, log)
        database.dispose()


def test_the_start_up_log_says_keys_are_required_and_how_to_make_the_first(keyed: KeyedService) -> None:
    assert "auth: on (--auth on); reads are public" in keyed.log
    (warning,) = [line for line in keyed.log if "no admin key" in line]
    assert "`nasscore keys create --name admin --scope admin --database-url " in warning
    assert keyed.server.client.get("/readyz").json()["auth"] == "on"


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/v1/scores", {"arch": README_CELL, "config": TINY_CONFIG}),
        ("/v1/batches", {"sample": {"n": 2, "seed": 3}, "config": TINY_CONFIG}),
        ("/v1/observations", {"arch": README_CELL, "dataset": "cifar10", "accuracy": 0.0, "source": "anyone"}),
    ],
)
def test_anonymous_writes_answer_401_naming_the_scope_and_store_nothing(
    keyed: KeyedService, path: str, body: dict[str, Any]
) -> None:
    before = keyed.stored()
    response = keyed.server.client.post(path, json=body)
    assert response.status_code == 401
    assert error_fields(response) == {"authorization": WRITE_NEEDED}
    assert response.headers["www-authenticate"] == "Bearer"
    assert keyed.stored() == before


def test_bad_revoked_and_malformed_keys_answer_401(keyed: KeyedService) -> None:
    client = keyed.server.client
    temporary = create_key(keyed.database, "temporary", Scope.READ).token
    assert client.get("/v1/batches", headers={"Authorization": f"Bearer {temporary}"}).status_code == 200
    revoke_key(keyed.database, "temporary")
    for header in (f"Bearer {temporary}", f"Bearer {new_token()}"):
        response = client.get("/v1/batches", headers={"Authorization": header})
        assert response.status_code == 401
        assert error_fields(response) == {"authorization": "unknown or revoked API key"}
        assert response.headers["www-authenticate"] == "Bearer"
    malformed = client.get("/v1/batches", headers={"Authorization": f"Basic {keyed.tokens['alice']}"})
    assert malformed.status_code == 401
    assert error_fields(malformed) == {"authorization": "expected 'Authorization: Bearer <token>'"}


def test_a_read_key_cannot_write(keyed: KeyedService) -> None:
    before = keyed.stored()
    body = {"sample": {"n": 2, "seed": 4}, "config": TINY_CONFIG}
    response = keyed.server.client.post("/v1/batches", json=body, headers=keyed.headers("reader"))
    assert response.status_code == 403
    assert error_fields(response) == {"authorization": "this request needs scope 'write'; key 'reader' has 'read'"}
    assert keyed.stored() == before


def _start_batch(keyed: KeyedService, key: str, seed: int) -> dict[str, Any]:
    body = {"sample": {"n": LONG_BATCH, "seed": seed}, "config": TINY_CONFIG}
    response = keyed.server.client.post("/v1/batches", json=body, headers=keyed.headers(key))
    assert response.status_code == 202, response.text
    return response.json()


def test_only_the_owner_or_an_admin_cancels_a_batch(keyed: KeyedService) -> None:
    client = keyed.server.client
    started = _start_batch(keyed, "alice", seed=11)
    assert started["owner"] == "alice"
    with keyed.database.read_session() as session:
        assert session.get_one(Job, started["id"]).owner == "alice"
    url = started["url"]

    assert client.delete(url).status_code == 401
    refused = client.delete(url, headers=keyed.headers("bob"))
    assert refused.status_code == 403
    assert "key 'alice'" in error_fields(refused)["authorization"]
    assert client.get(url).json()["status"] in ("pending", "running")

    cancelled = client.delete(url, headers=keyed.headers("alice"))
    assert cancelled.status_code == 200
    assert cancelled.json()["status"] == "cancelled"

    other = _start_batch(keyed, "alice", seed=12)
    by_admin = client.delete(other["url"], headers=keyed.headers("root"))
    assert by_admin.status_code == 200
    assert by_admin.json()["status"] == "cancelled"


def test_without_cors_origins_a_browser_gets_no_cors_headers(keyed: KeyedService) -> None:
    preflight = keyed.server.client.options(
        "/v1/scores",
        headers={"origin": "https://lab.example", "access-control-request-method": "POST"},
    )
    assert "access-control-allow-origin" not in preflight.headers
    simple = keyed.server.client.get("/healthz", headers={"origin": "https://lab.example"})
    assert "access-control-allow-origin" not in simple.headers


def test_auth_reads_and_the_bootstrap_admin_hash(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'nasscore.db'}"
    bootstrap = new_token()
    settings = service_settings(tmp_path, url, auth="on", auth_reads=True, admin_key_sha256=token_sha256(bootstrap))
    database = Database(url)
    reader = create_key(database, "reader", Scope.READ).token
    with LiveServer(settings) as server:
        client = server.client
        for path in ("/v1/batches", "/v1/leaderboard", "/v1/datasets"):
            refused = client.get(path)
            assert refused.status_code == 401
            assert error_fields(refused) == {"authorization": "this request needs an API key with scope 'read'"}
        assert client.get("/v1/batches", headers={"Authorization": f"Bearer {reader}"}).status_code == 200
        assert client.get("/readyz").json()["auth"] == "on"  # health stays public

        admin = {"Authorization": f"Bearer {bootstrap}"}
        body = {"sample": {"n": LONG_BATCH, "seed": 5}, "config": TINY_CONFIG}
        started = client.post("/v1/batches", json=body, headers=admin)
        assert started.status_code == 202
        assert started.json()["owner"] == "bootstrap-admin"
        assert client.delete(started.json()["url"], headers=admin).json()["status"] == "cancelled"
    database.dispose()


@pytest.mark.parametrize(
    ("auth", "host", "enabled"),
    [
        ("auto", "0.0.0.0", True),
        ("auto", "192.168.1.20", True),
        ("auto", "127.0.0.1", False),
        ("auto", "::1", False),
        ("auto", "localhost", False),
        ("on", "127.0.0.1", True),
        ("off", "0.0.0.0", False),
    ],
)
def test_auto_requires_keys_unless_the_server_is_loopback_only(auth: str, host: str, enabled: bool) -> None:
    assert Settings(auth=auth, host=host).auth_enabled is enabled


@pytest.mark.parametrize(
    ("overrides", "summary"),
    [
        ({"host": "127.0.0.1"}, "auth: off (loopback-only server; `--auth on` to require keys)"),
        ({"host": "0.0.0.0"}, "auth: on (binds 0.0.0.0, not only loopback); reads are public"),
        (
            {"host": "0.0.0.0", "auth_reads": True},
            "auth: on (binds 0.0.0.0, not only loopback); reads need a 'read' key too (--auth-reads)",
        ),
        ({"auth": "on"}, "auth: on (--auth on); reads are public"),
        ({"auth": "off"}, "auth: off (--auth off)"),
        (
            {"auth": "off", "host": "0.0.0.0"},
            "auth: off (--auth off although it binds 0.0.0.0: every client that reaches it may write)",
        ),
    ],
)
def test_the_start_up_log_says_why_keys_are_or_are_not_required(overrides: dict[str, Any], summary: str) -> None:
    assert auth_summary(Settings(**overrides)) == summary
