"""`nasscore serve` flags for the authentication surface: list settings read the one list syntax, `--auth-reads`
is a plain switch, and a real server started with them says in its log whether keys are required (and how to
make the first one) and behaves accordingly."""

import os
import signal
import subprocess
from pathlib import Path

import httpx
import pytest
from conftest import NASSCORE, free_port, wait_ready

from app.cli import build_parser
from app.cli._common import settings_from_args
from app.settings import Settings


def _serve_settings(*flags: str) -> Settings:
    return settings_from_args(build_parser().parse_args(["serve", *flags]))


def test_cors_origins_read_comma_separated_and_repeated_flags() -> None:
    settings = _serve_settings(
        "--cors-origins", "https://a.example,https://b.example", "--cors-origins", "https://c.example"
    )
    assert settings.cors_origins == ["https://a.example", "https://b.example", "https://c.example"]
    assert _serve_settings().cors_origins == []


def test_auth_reads_is_a_switch_that_leaves_the_environment_alone_when_absent(monkeypatch: pytest.MonkeyPatch) -> None:
    assert _serve_settings("--auth-reads").auth_reads is True
    assert _serve_settings().auth_reads is False
    monkeypatch.setenv("NASSCORE_AUTH_READS", "true")
    assert _serve_settings().auth_reads is True


def test_serve_with_keys_required_logs_why_and_the_command_for_a_first_admin_key(tmp_path: Path) -> None:
    port = free_port()
    env = {name: value for name, value in os.environ.items() if not name.startswith("NASSCORE_")}
    command = [
        NASSCORE,
        "serve",
        "--home",
        str(tmp_path / "home"),
        "--port",
        str(port),
        "--workers",
        "1",
        "--auth",
        "on",
        "--auth-reads",
        "--cors-origins",
        "https://a.example,https://b.example",
    ]
    log_path = tmp_path / "serve.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, env=env, stdout=log, stderr=subprocess.STDOUT)
        try:
            with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=60) as client:
                wait_ready(client)
                assert client.get("/readyz").json()["auth"] == "on"
                refused = client.get("/v1/leaderboard")
                assert refused.status_code == 401  # --auth-reads took effect
                allowed = client.options(
                    "/v1/scores",
                    headers={"origin": "https://b.example", "access-control-request-method": "POST"},
                )
                assert allowed.headers["access-control-allow-origin"] == "https://b.example"
        finally:
            process.send_signal(signal.SIGTERM)
            process.wait(timeout=120)
    output = log_path.read_text()
    assert "nasscore: auth: on (--auth on); reads need a 'read' key too (--auth-reads)" in output
    expected = f"`nasscore keys create --name admin --scope admin --home {tmp_path / 'home'}`"
    assert expected in output and "WARNING" in output
