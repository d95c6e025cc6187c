"""Durability: the server runs as a real subprocess (`nasscore serve`), is killed with SIGKILL in the
middle of a batch, and is started again. The restarted server takes back the items the killed one held once
their leases expire (nothing else tells it they were abandoned). The batch must complete with exactly one
score per (architecture, configuration, proxy), and nothing finished before the kill may be computed again."""

import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from conftest import (
    NASSCORE,
    TINY_CONFIG,
    ServerProcess,
    process_stats,
    server_process_env,
    wait_for_batch,
    wait_ready,
    wait_until,
)
from sqlalchemy import func, select

from app.db import Database
from app.db.models import JobItem, Score
from scorers import DEFAULT_PROXIES

BATCH_SIZE = 30
# Short leases, so that the items the killed server held are requeued within seconds, not a minute.
LEASE_SECONDS = 10


def _children(pid: int) -> set[int]:
    """Direct children of `pid`, read from /proc (the pool's worker processes)."""
    return {child for child, fields in process_stats() if int(fields[1]) == pid}


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


@pytest.fixture
def server_env(database_url: str, tmp_path: Path) -> Iterator[dict[str, str]]:
    env = server_process_env(database_url, tmp_path / "home", LEASE_SECONDS)
    subprocess.run([NASSCORE, "db", "upgrade"], env=env, check=True, capture_output=True)
    yield env


def _snapshot(database: Database, batch_id: int) -> tuple[dict[int, tuple], dict[int, tuple]]:
    with database.read_session() as session:
        items = {
            item.id: (item.status, item.attempts, item.finished_at)
            for item in session.execute(select(JobItem).where(JobItem.job_id == batch_id)).scalars()
        }
        scores = {
            s.id: (s.architecture_id, s.proxy, s.value, s.created_at) for s in session.execute(select(Score)).scalars()
        }
    return items, scores


def test_kill_9_mid_batch_then_restart_completes_without_recomputation(
    server_env: dict[str, str], tmp_path: Path
) -> None:
    client = httpx.Client(base_url=f"http://127.0.0.1:{server_env['NASSCORE_PORT']}", timeout=60)
    database = Database(server_env["NASSCORE_DATABASE_URL"])
    first = ServerProcess(server_env, tmp_path / "first.log")
    try:
        wait_ready(client)
        body = {"sample": {"n": BATCH_SIZE, "seed": 5}, "config": TINY_CONFIG}
        created = client.post("/v1/batches", json=body).json()
        wait_until(lambda: client.get(f"/v1/batches/{created['id']}").json()["done"] >= 5, 300, "some finished items")
        workers = _children(first.process.pid)
        first.process.kill()
        first.process.wait(timeout=60)
    finally:
        first.stop()
    wait_until(lambda: not any(_alive(pid) for pid in workers), 60, "the orphaned workers to exit by themselves")
    items_before, scores_before = _snapshot(database, created["id"])
    finished_before = {i: v for i, v in items_before.items() if v[0] in ("done", "failed")}
    assert 5 <= len(finished_before) < BATCH_SIZE, "the kill must land in the middle of the batch"

    second = ServerProcess(server_env, tmp_path / "second.log")
    try:
        wait_ready(client)
        final = wait_for_batch(client, created["id"], timeout=600)
    finally:
        assert second.stop() in (0, -signal.SIGTERM), "uvicorn re-raises SIGTERM after a clean shutdown"
        client.close()
    assert "Traceback" not in first.output() + second.output()
    items_after, scores_after = _snapshot(database, created["id"])
    with database.read_session() as session:
        duplicates = session.execute(
            select(Score.architecture_id, Score.config_id, Score.proxy)
            .group_by(Score.architecture_id, Score.config_id, Score.proxy)
            .having(func.count() > 1)
        ).all()
        per_arch = (
            session.execute(
                select(func.count(Score.id))
                .join(JobItem, JobItem.architecture_id == Score.architecture_id)
                .where(JobItem.job_id == created["id"])
                .group_by(Score.architecture_id)
            )
            .scalars()
            .all()
        )
    database.dispose()

    assert (final["status"], final["done"], final["failed"]) == ("done", BATCH_SIZE, 0)
    assert duplicates == []
    assert per_arch == [len(DEFAULT_PROXIES)] * BATCH_SIZE, "every cell has the default proxies once"
    assert all(items_after[i] == state for i, state in finished_before.items()), "finished items were touched again"
    assert all(attempts <= 1 for _, attempts, _ in finished_before.values())
    assert all(scores_after[i] == row for i, row in scores_before.items()), "stored scores changed"
    running_at_kill = sum(1 for status, _, _ in items_before.values() if status == "running")
    assert sum(attempts for _, attempts, _ in items_after.values()) <= BATCH_SIZE + running_at_kill
