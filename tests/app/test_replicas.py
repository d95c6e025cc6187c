"""Several API processes on one PostgreSQL: two `nasscore serve` subprocesses (different ports, one worker
each, their own process groups) serve the same database, so a batch POSTed to one is claimed item by item by
both, and both report the same progress from the database. The first is then killed with SIGKILL, its whole
process group at once, while it holds a claimed item: the second finishes the batch, picking up the stranded
item once its lease expires. Every item ends done, with exactly one score per (architecture, configuration,
proxy), and nothing is left pending or running.

The test prints seconds per cell while two processes share the batch and while one is left, for quoting."""

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import (
    NASSCORE,
    READY_TIMEOUT_SECONDS,
    TINY_CONFIG,
    PostgresServer,
    ServerProcess,
    one_cell_per_class,
    print_figures,
    server_process_env,
    wait_for_batch,
    wait_until,
)
from sqlalchemy import func, select

from app.db import Database
from app.db.models import ItemStatus, JobItem, Score
from scorers import DEFAULT_PROXIES

pytestmark = pytest.mark.postgres

# One cell per isomorphism class, so every item is computed by whoever claims it (no item waits on a twin).
BATCH_SIZE = 24
# Short leases: the killed server's claimed item is requeued seconds after its renewals stop.
LEASE_SECONDS = 5
# Progress fields that say how much of the batch is finished; every server reads them from the one database.
COUNTS = ("done", "failed", "cancelled", "pending", "running")


@pytest.fixture
def shared_database(postgres_server: PostgresServer) -> Iterator[Database]:
    url = postgres_server.create_database()
    upgrade = [NASSCORE, "db", "upgrade"]
    subprocess.run(upgrade, env=os.environ | {"NASSCORE_DATABASE_URL": url}, check=True, capture_output=True)
    database = Database(url)
    yield database
    database.dispose()


@pytest.fixture
def replicas(shared_database: Database, tmp_path: Path) -> Iterator[list[tuple[ServerProcess, httpx.Client]]]:
    """Two servers on the shared database, both ready; any group a failed test left running is killed after."""
    started = []
    for name in ("first", "second"):
        env = server_process_env(shared_database.url, tmp_path / name, LEASE_SECONDS)
        client = httpx.Client(base_url=f"http://127.0.0.1:{env['NASSCORE_PORT']}", timeout=60)
        started.append((ServerProcess(env, tmp_path / f"{name}.log"), client))
    try:
        for server, client in started:
            _wait_serving(server, client)
        yield started
    finally:
        for server, client in started:
            client.close()
            if server.group():
                server.kill_group()


def _wait_serving(server: ServerProcess, client: httpx.Client) -> None:
    """Until /readyz answers 200; a server that exits meanwhile fails the test at once, with its log."""

    def ready() -> bool:
        if server.process.poll() is not None:
            pytest.fail(f"nasscore serve exited with status {server.process.returncode}:\n{server.output()[-4000:]}")
        try:
            return client.get("/readyz").status_code == 200
        except httpx.TransportError:
            return False

    wait_until(ready, READY_TIMEOUT_SECONDS, f"{client.base_url}/readyz", interval=0.2)


def _running_owners(database: Database, batch_id: int) -> dict[int, str]:
    """The batch's running items and the dispatcher holding each."""
    with database.read_session() as session:
        query = select(JobItem.id, JobItem.claimed_by).where(
            JobItem.job_id == batch_id, JobItem.status == ItemStatus.RUNNING
        )
        return {item_id: owner for item_id, owner in session.execute(query)}


def _attempts(database: Database, batch_id: int) -> dict[int, tuple[str, int]]:
    with database.read_session() as session:
        query = select(JobItem.id, JobItem.status, JobItem.attempts).where(JobItem.job_id == batch_id)
        return {item_id: (status, attempts) for item_id, status, attempts in session.execute(query)}


def _finish_times(database: Database, batch_id: int) -> dict[int, float]:
    with database.read_session() as session:
        query = select(JobItem.id, JobItem.finished_at).where(
            JobItem.job_id == batch_id, JobItem.finished_at.is_not(None)
        )
        return {item_id: finished_at.timestamp() for item_id, finished_at in session.execute(query)}


def _seconds_per_cell(finish_times: list[float]) -> float:
    """From the first completion to the last, so neither the workers' start nor a lease wait counts."""
    return (max(finish_times) - min(finish_times)) / max(len(finish_times) - 1, 1)


def _freeze_while_both_hold_items(server: ServerProcess, database: Database, batch_id: int) -> dict[int, str]:
    """SIGSTOP the server's group at a moment when each server holds a running item, and return the running
    items then (frozen, the first cannot finish its item between this look and the kill)."""

    def frozen_with_two_holders() -> dict[int, str] | None:
        os.killpg(server.process.pid, signal.SIGSTOP)
        running = _running_owners(database, batch_id)
        if len(set(running.values())) == 2:
            return running
        os.killpg(server.process.pid, signal.SIGCONT)
        return None

    return wait_until(frozen_with_two_holders, 120, "both servers to hold an item at once", interval=0.05)


def _same_progress(first: httpx.Client, second: httpx.Client, batch_id: int) -> None:
    """The batch read from the first, the second, then the first again: the same batch, and the second's
    counts lie between the first's two readings."""
    before, other, after = (client.get(f"/v1/batches/{batch_id}").json() for client in (first, second, first))
    assert _without_counts(other) == _without_counts(before)
    assert before["done"] <= other["done"] <= after["done"], (before, other, after)
    assert before["total"] == other["total"] == BATCH_SIZE


def _without_counts(batch: dict[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in batch.items() if key not in (*COUNTS, "rate_per_second", "eta_seconds")}


def test_two_api_processes_share_a_batch_and_the_survivor_finishes_it(
    replicas: list[tuple[ServerProcess, httpx.Client]],
    shared_database: Database,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    (first, first_client), (second, second_client) = replicas
    body = {"archs": one_cell_per_class(BATCH_SIZE, seed=12), "config": TINY_CONFIG}
    created = first_client.post("/v1/batches", json=body)
    assert created.status_code == 202, created.text
    batch_id = created.json()["id"]

    half = BATCH_SIZE // 2
    wait_until(lambda: second_client.get(f"/v1/batches/{batch_id}").json()["done"] >= half, 120, f"{half} items done")
    _same_progress(first_client, second_client, batch_id)
    running_at_kill = _freeze_while_both_hold_items(first, shared_database, batch_id)
    finished_before_kill = _finish_times(shared_database, batch_id)
    assert first.kill_group() >= 2, "the server and its worker process"

    final = wait_for_batch(second_client, batch_id, timeout=300)
    items = _attempts(shared_database, batch_id)
    finished_after_kill = {
        item_id: at
        for item_id, at in _finish_times(shared_database, batch_id).items()
        if item_id not in finished_before_kill and item_id not in running_at_kill
    }
    with shared_database.read_session() as session:
        duplicates = session.execute(
            select(Score.architecture_id, Score.config_id, Score.proxy)
            .group_by(Score.architecture_id, Score.config_id, Score.proxy)
            .having(func.count() > 1)
        ).all()
        scores_per_item = (
            session.execute(
                select(func.count(Score.id))
                .join(JobItem, JobItem.architecture_id == Score.architecture_id)
                .where(JobItem.job_id == batch_id)
                .group_by(JobItem.id)
            )
            .scalars()
            .all()
        )
    reread = second_client.get(f"/v1/batches/{batch_id}").json()
    assert second.stop() in (0, -signal.SIGTERM), "uvicorn re-raises SIGTERM after a clean shutdown"

    print_figures(
        request,
        f"replicas: {BATCH_SIZE} tiny cells, 1 worker per API process, one PostgreSQL: "
        f"{_seconds_per_cell(list(finished_before_kill.values())):.2f} s/cell while two API processes shared the "
        f"batch ({len(finished_before_kill)} cells), {_seconds_per_cell(list(finished_after_kill.values())):.2f} "
        f"s/cell for the survivor alone ({len(finished_after_kill)} cells; first to last completion in each phase)",
    )
    assert len(finished_before_kill) < BATCH_SIZE, "the kill struck before the batch was done"
    assert (final["status"], final["total"], final["done"]) == ("done", BATCH_SIZE, BATCH_SIZE), final
    assert [final[count] for count in COUNTS[1:]] == [0, 0, 0, 0], final
    assert reread == final, "the survivor reports the finished batch as it stands in the database"
    assert duplicates == []
    assert scores_per_item == [len(DEFAULT_PROXIES)] * BATCH_SIZE, "every cell has the default proxies once"
    stranded = [item_id for item_id in running_at_kill if items[item_id][1] >= 2]
    assert stranded, f"the killed server's claimed item was claimed again by the survivor: {running_at_kill}, {items}"
    assert all(attempts <= 2 for _, attempts in items.values()), items
    logs = (tmp_path / "first.log").read_text() + second.output()
    assert "Traceback" not in logs
