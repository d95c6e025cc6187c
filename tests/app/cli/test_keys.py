"""`nasscore keys` as an operator runs it (real subprocesses on a real database), and the CLI's `--server`
modes against a server that requires keys: they send NASSCORE_API_KEY, and without it print the server's
401 with the usual error prefix."""

import hashlib
import os
import subprocess
from pathlib import Path

from conftest import (
    NASSCORE,
    README_CELL,
    TINY_SYNTHETIC_FLAGS,
    LiveServer,
    free_port,
    nasscore,
    service_settings,
)
from sqlalchemy import select

from app.db import Database
from app.db.models import ApiKey, Job, Observation


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    """A user's environment on the embedded database under `tmp_path/home`, without an API key."""
    env = {
        name: value for name, value in os.environ.items() if name not in ("NASSCORE_DATABASE_URL", "NASSCORE_API_KEY")
    }
    return env | {"NASSCORE_HOME": str(tmp_path / "home"), **extra}


def test_keys_create_list_revoke_round_trip(tmp_path: Path) -> None:
    env = _env(tmp_path)
    empty = nasscore("keys", "list", env=env)
    assert empty.returncode == 0, empty.stderr
    assert empty.stdout.startswith("no keys")

    created = nasscore("keys", "create", "--name", "alice", "--scope", "write", env=env)
    assert created.returncode == 0, created.stderr
    token = created.stdout.strip()
    assert token.startswith("nsk_") and len(token) > 40
    assert "shown only now" in created.stderr
    assert nasscore("keys", "create", "--name", "root", "--scope", "admin", env=env).returncode == 0

    taken = nasscore("keys", "create", "--name", "alice", "--scope", "read", env=env)
    assert taken.returncode == 1
    assert taken.stderr.startswith("nasscore: error: name: a key named 'alice' exists")

    digest = hashlib.sha256(token.encode()).hexdigest()
    listed = nasscore("keys", "list", env=env)
    assert listed.returncode == 0
    assert token not in listed.stdout and digest not in listed.stdout
    assert _table(listed.stdout)[0] == ["name", "scope", "prefix", "created", "revoked"]
    alice, root = _table(listed.stdout)[2:]
    assert alice[:3] == ["alice", "write", f"{token[:10]}..."] and alice[-1] == "-"
    assert root[:2] == ["root", "admin"] and root[-1] == "-"

    revoked = nasscore("keys", "revoke", "alice", env=env)
    assert revoked.returncode == 0, revoked.stderr
    assert revoked.stdout.startswith("key 'alice' revoked at ")
    alice, root = _table(nasscore("keys", "list", env=env).stdout)[2:]
    assert alice[-1].endswith("UTC") and root[-1] == "-"
    unknown = nasscore("keys", "revoke", "bob", env=env)
    assert (unknown.returncode, unknown.stderr.strip()) == (1, "nasscore: error: name: no key named 'bob'")

    database = Database(f"sqlite:///{tmp_path / 'home' / 'nasscore.db'}")
    try:
        with database.read_session() as session:
            alice = session.scalars(select(ApiKey).where(ApiKey.name == "alice")).one()
            assert alice.token_sha256 == digest and alice.revoked_at is not None
    finally:
        database.dispose()


def _table(text: str) -> list[list[str]]:
    """An aligned table's rows as cells (columns are two spaces apart; a time has single spaces)."""
    return [[cell.strip() for cell in line.split("  ") if cell.strip()] for line in text.splitlines()]


def test_keys_hash_for_a_first_admin_key_without_a_database(tmp_path: Path) -> None:
    env = _env(tmp_path)
    made = nasscore("keys", "hash", "--new", env=env)
    assert made.returncode == 0, made.stderr
    lines = dict(line.split(":", 1) for line in made.stdout.splitlines())
    token, digest = lines["token"].strip(), lines["sha256"].strip()
    assert hashlib.sha256(token.encode()).hexdigest() == digest
    piped = subprocess.run([NASSCORE, "keys", "hash"], input=f"{token}\n", env=env, capture_output=True, text=True)
    assert (piped.returncode, piped.stdout.strip()) == (0, digest)
    nothing = subprocess.run([NASSCORE, "keys", "hash"], input="", env=env, capture_output=True, text=True)
    assert nothing.returncode == 1 and nothing.stderr.startswith("nasscore: error: no token on stdin")
    assert not (tmp_path / "home").exists()


def test_server_modes_send_nasscore_api_key(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'nasscore.db'}"
    env = _env(tmp_path, NASSCORE_DATABASE_URL=url)
    created = nasscore("keys", "create", "--name", "ci", "--scope", "write", env=env)
    assert created.returncode == 0, created.stderr
    with_key = env | {"NASSCORE_API_KEY": created.stdout.strip()}
    csv_file = tmp_path / "accuracies.csv"
    csv_file.write_text(f"arch,acc\n{README_CELL},91.25\n")

    with LiveServer(service_settings(tmp_path, url, auth="on", auth_reads=True)) as server:
        address = str(server.client.base_url)
        batch = ["batch", "nb201", "--sample", "2", "--seed", "1", *TINY_SYNTHETIC_FLAGS, "--server", address]
        refused = nasscore(*batch, env=env)
        assert refused.returncode == 1
        assert "nasscore: error: " in refused.stderr
        assert "this request needs an API key with scope 'write'" in refused.stderr

        scored = nasscore(*batch, env=with_key)
        assert scored.returncode == 0, scored.stderr
        assert "done: 2 scored" in scored.stdout
        assert "warning" not in scored.stderr  # a loopback server: the key does not leave the machine

        board = ["leaderboard", "--server", address]
        unread = nasscore(*board, env=env)
        assert unread.returncode == 1
        assert (
            unread.stderr.strip() == "nasscore: error: authorization: this request needs an API key with scope 'read'"
        )
        read = nasscore(*board, env=with_key)
        assert read.returncode == 0, read.stderr
        assert "rows 1-" in read.stdout

        load = [
            "observations",
            "import",
            str(csv_file),
            "--dataset",
            "cifar10",
            "--acc-col",
            "acc",
            "--server",
            address,
        ]
        assert nasscore(*load, env=env).returncode == 1
        imported = nasscore(*load, env=with_key)
        assert imported.returncode == 0, imported.stderr

    database = Database(url)
    try:
        with database.read_session() as session:
            assert session.scalars(select(Job.owner)).all() == ["ci"]
            assert len(session.scalars(select(Observation)).all()) == 1
    finally:
        database.dispose()


def test_a_key_sent_over_plain_http_to_another_address_is_warned_about(tmp_path: Path) -> None:
    server = f"http://0.0.0.0:{free_port()}"  # not loopback, yet refused at once: nothing listens there
    result = nasscore("leaderboard", "--server", server, env=_env(tmp_path, NASSCORE_API_KEY="nsk_example"))
    assert result.returncode == 1
    assert f"nasscore: warning: sending NASSCORE_API_KEY to {server} over plain HTTP" in result.stderr
    assert f"nasscore: error: cannot reach {server}" in result.stderr
