"""Crash safety under repeated faults. The server runs as a real subprocess (`nasscore serve`, its own process
group: the server and its worker processes), scoring a batch of tiny cells. Round after round it is killed
with SIGKILL, the whole group at once, at a seeded random moment of the batch, and started again; the batch
resumes each time. At the end every item must be done exactly once: none lost (each done, none failed),
none duplicated (one score per architecture, configuration and proxy; nothing finished before a kill
computed again), none stuck (no item left pending or running, the job closed with consistent counts). On
SQLite and on PostgreSQL; and on PostgreSQL once more with the database server itself restarted mid-batch.

Each test prints its figures (rounds, processes killed, items, lost, duplicated, stuck) for quoting."""

import random
import signal
import subprocess
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
from conftest import (
    NASSCORE,
    TINY_CONFIG,
    PostgresServer,
    ServerProcess,
    print_figures,
    server_process_env,
    wait_for_batch,
    wait_ready,
    wait_until,
)
from sqlalchemy import func, select

from app.db import Database
from app.db.models import ItemStatus, Job, JobItem, Score
from scorers import DEFAULT_PROXIES

SEED = 20261129
ROUNDS = 5
BATCH_SIZE = 48
# A kill lands within this many seconds after the batch has reached the round's (seeded) progress target,
# so it can strike while an item is claimed, while a worker computes, or while scores are being written.
KILL_JITTER_SECONDS = 1.5
# Short leases, so that an item whose holder vanished is requeued within seconds, not a minute.
LEASE_SECONDS = 10


@dataclass
class Figures:
    """What a fault-injection run did and found, printed for quoting."""

    name: str
    rounds: int = 0
    kills: int = 0
    processes_killed: int = 0
    interrupted_items: int = 0
    # How many items of the batch were done at each fault.
    done_at_faults: list[int] = field(default_factory=list)
    faults: list[str] = field(default_factory=list)
    items: int = 0
    lost: int = 0
    duplicated: int = 0
    stuck: int = 0
    recomputed: int = 0
    claims: int = 0

    def summary(self) -> str:
        faults = [*self.faults]
        if self.kills:
            faults.append(
                f"{self.kills} kill -9 of the server's process group ({self.processes_killed} processes, "
                f"{self.interrupted_items} items running when killed)"
            )
        return (
            f"fault injection ({self.name}): {self.rounds} server runs, {'; '.join(faults)}, with "
            f"{self.done_at_faults} of {self.items} items done; {self.lost} lost, {self.duplicated} duplicated, "
            f"{self.stuck} stuck, {self.recomputed} finished items recomputed, {self.claims} claims in all"
        )


@pytest.fixture
def server_env(database_url: str, tmp_path: Path) -> dict[str, str]:
    env = server_process_env(database_url, tmp_path / "home", LEASE_SECONDS)
    subprocess.run([NASSCORE, "db", "upgrade"], env=env, check=True, capture_output=True)
    return env


@pytest.fixture
def launch(server_env: dict[str, str], tmp_path: Path) -> Iterator[Callable[[], ServerProcess]]:
    """Starts `nasscore serve` (log: server-N.log); any group a failed test left running is killed after it."""
    groups: list[ServerProcess] = []

    def start() -> ServerProcess:
        groups.append(ServerProcess(server_env, tmp_path / f"server-{len(groups) + 1}.log"))
        return groups[-1]

    yield start
    for group in groups:
        if group.group():
            group.kill_group()


@pytest.fixture
def client(server_env: dict[str, str]) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=f"http://127.0.0.1:{server_env['NASSCORE_PORT']}", timeout=60) as http:
        yield http


@pytest.fixture
def database(server_env: dict[str, str]) -> Iterator[Database]:
    database = Database(server_env["NASSCORE_DATABASE_URL"])
    yield database
    database.dispose()


def _start_batch(client: httpx.Client, expected_id: int | None) -> dict[str, Any]:
    """POST the batch: the first time it is created, after a restart the same one is resumed."""
    response = client.post("/v1/batches", json={"sample": {"n": BATCH_SIZE, "seed": 3}, "config": TINY_CONFIG})
    assert response.status_code == 202, response.text
    batch = response.json()
    if expected_id is not None:
        assert (batch["id"], batch["resumed"]) == (expected_id, True)
    return batch


def _progress(client: httpx.Client, batch_id: int) -> dict[str, Any]:
    return client.get(f"/v1/batches/{batch_id}").json()


ItemState = tuple[str, int, datetime | None]
ScoreRow = tuple[int, int, str, float | None, datetime]


def _items(database: Database, batch_id: int) -> dict[int, ItemState]:
    with database.read_session() as session:
        query = select(JobItem.id, JobItem.status, JobItem.attempts, JobItem.finished_at)
        return {row[0]: (row[1], row[2], row[3]) for row in session.execute(query.where(JobItem.job_id == batch_id))}


def _scores(database: Database) -> dict[int, ScoreRow]:
    with database.read_session() as session:
        query = select(Score.id, Score.architecture_id, Score.config_id, Score.proxy, Score.value, Score.created_at)
        return {row[0]: tuple(row[1:]) for row in session.execute(query)}  # type: ignore[misc]


def count_outcome(
    database: Database,
    batch_id: int,
    finished_before: dict[int, ItemState],
    stored_before: dict[int, ScoreRow],
    figures: Figures,
) -> None:
    """Fill in the figures from the database once the batch is over: `finished_before` and `stored_before`
    are the items that had finished and the scores that were stored before the faults."""
    items = _items(database, batch_id)
    scores = _scores(database)
    with database.read_session() as session:
        job = session.get_one(Job, batch_id)
        batch_archs = set(session.execute(select(JobItem.architecture_id).where(JobItem.job_id == batch_id)).scalars())
        duplicates = session.execute(
            select(func.count())
            .select_from(Score)
            .group_by(Score.architecture_id, Score.config_id, Score.proxy)
            .having(func.count() > 1)
        ).scalars()
        extra_copies = sum(count - 1 for count in duplicates)
    per_arch = Counter(
        arch for arch, config, _, _, _ in scores.values() if config == job.config_id and arch in batch_archs
    )
    expected = len(DEFAULT_PROXIES)
    figures.items = len(items)
    figures.lost = sum(1 for status, _, _ in items.values() if status != ItemStatus.DONE) + sum(
        1 for arch in batch_archs if per_arch[arch] < expected
    )
    figures.duplicated = extra_copies + sum(1 for arch in batch_archs if per_arch[arch] > expected)
    figures.stuck = sum(1 for status, _, _ in items.values() if status in (ItemStatus.PENDING, ItemStatus.RUNNING))
    figures.recomputed = sum(1 for i, state in finished_before.items() if items[i] != state) + sum(
        1 for score_id, row in stored_before.items() if scores.get(score_id) != row
    )
    figures.claims = sum(attempts for _, attempts, _ in items.values())


class KilledBatch:
    """One batch scored through repeated kills: remembers what had finished before each kill, to check that
    no later run touches it again."""

    def __init__(self, launch: Callable[[], ServerProcess], client: httpx.Client, database: Database) -> None:
        self.launch, self.client, self.database = launch, client, database
        self.batch_id: int | None = None
        self.finished: dict[int, ItemState] = {}
        self.stored: dict[int, ScoreRow] = {}
        self.starts = 0

    def start(self) -> ServerProcess:
        self.starts += 1
        server = self.launch()
        wait_ready(self.client)
        self.batch_id = _start_batch(self.client, self.batch_id)["id"]
        return server

    def kill_after(self, server: ServerProcess, target_done: int, delay: float, figures: Figures) -> None:
        """Let the batch reach `target_done` finished items, wait `delay` seconds more, then SIGKILL the
        server's whole process group, and note what had finished."""
        assert self.batch_id is not None
        batch_id = self.batch_id
        wait_until(lambda: _progress(self.client, batch_id)["done"] >= target_done, 300, f"{target_done} items done")
        time.sleep(delay)
        figures.processes_killed += server.kill_group()
        figures.kills += 1
        items = _items(self.database, batch_id)
        figures.interrupted_items += sum(1 for status, _, _ in items.values() if status == ItemStatus.RUNNING)
        figures.done_at_faults.append(sum(1 for status, _, _ in items.values() if status == ItemStatus.DONE))
        self._remember(items)

    def _remember(self, items: dict[int, ItemState]) -> None:
        self.finished |= {i: state for i, state in items.items() if state[0] in (ItemStatus.DONE, ItemStatus.FAILED)}
        self.stored = _scores(self.database)

    def finish(self, figures: Figures) -> dict[str, Any]:
        """Start once more, let the batch complete, and fill in the figures."""
        server = self.start()
        try:
            assert self.batch_id is not None
            final = wait_for_batch(self.client, self.batch_id, timeout=600)
        finally:
            assert server.stop() in (0, -signal.SIGTERM), "uvicorn re-raises SIGTERM after a clean shutdown"
        figures.rounds = self.starts
        assert self.batch_id is not None
        count_outcome(self.database, self.batch_id, self.finished, self.stored, figures)
        return final


def _assert_clean(final: dict[str, Any], figures: Figures) -> None:
    assert (final["status"], final["total"], final["done"]) == ("done", BATCH_SIZE, BATCH_SIZE), final
    assert (final["failed"], final["cancelled"], final["pending"], final["running"]) == (0, 0, 0, 0), final
    assert (figures.items, figures.lost, figures.duplicated, figures.stuck, figures.recomputed) == (
        BATCH_SIZE,
        0,
        0,
        0,
        0,
    ), figures.summary()
    assert final["finished_at"] is not None


def test_repeated_kill_9_of_server_and_workers_loses_and_duplicates_nothing(
    launch: Callable[[], ServerProcess],
    client: httpx.Client,
    database: Database,
    database_url: str,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    rng = random.Random(SEED)
    backend = database_url.partition(":")[0].partition("+")[0]
    figures = Figures(f"{backend}, seed {SEED}")
    batch = KilledBatch(launch, client, database)
    for round_number in range(ROUNDS):
        server = batch.start()
        # Spread the kills over the batch: round r strikes somewhere in the r-th slice of its items.
        low, high = BATCH_SIZE * round_number // (ROUNDS + 1), BATCH_SIZE * (round_number + 1) // (ROUNDS + 1)
        batch.kill_after(server, rng.randint(low, high), rng.uniform(0, KILL_JITTER_SECONDS), figures)
    final = batch.finish(figures)
    print_figures(request, figures.summary())
    assert figures.kills == ROUNDS and figures.processes_killed >= 2 * ROUNDS, "each kill took a server and a worker"
    assert all(done < BATCH_SIZE for done in figures.done_at_faults), "every kill struck before the batch was done"
    _assert_clean(final, figures)
    assert "Traceback" not in "".join(log.read_text() for log in tmp_path.glob("server-*.log"))


@pytest.mark.postgres
@pytest.mark.parametrize("database_url", ["postgresql"], indirect=True)
def test_a_postgresql_restart_mid_batch_loses_and_duplicates_nothing(
    postgres_server: PostgresServer,
    launch: Callable[[], ServerProcess],
    client: httpx.Client,
    database: Database,
    tmp_path: Path,
    request: pytest.FixtureRequest,
) -> None:
    """The database goes away under a running server (every connection cut, as in a crash) and comes back
    two seconds later: the server must reconnect, and its dispatcher finish the batch."""
    figures = Figures("postgresql server restarted mid-batch")
    server = launch()
    try:
        wait_ready(client)
        batch_id = _start_batch(client, None)["id"]
        wait_until(lambda: _progress(client, batch_id)["done"] >= BATCH_SIZE // 4, 300, "a quarter of the batch done")
        finished_before = {i: state for i, state in _items(database, batch_id).items() if state[0] == ItemStatus.DONE}
        stored_before = _scores(database)
        figures.done_at_faults.append(len(finished_before))
        postgres_server.restart(down_seconds=2)
        figures.faults.append("1 PostgreSQL restart (-m immediate, down 2 s)")
        final = wait_for_batch(client, batch_id, timeout=600)
        ready = client.get("/readyz").status_code
    finally:
        assert server.stop() in (0, -signal.SIGTERM), "uvicorn re-raises SIGTERM after a clean shutdown"
    figures.rounds = 1
    count_outcome(database, batch_id, finished_before, stored_before, figures)
    print_figures(request, figures.summary())
    assert ready == 200, "the server is ready again once its database is back"
    assert figures.done_at_faults[0] < BATCH_SIZE, "the restart struck before the batch was done"
    assert "dispatcher iteration failed; retrying" in (tmp_path / "server-1.log").read_text(), "it felt the outage"
    _assert_clean(final, figures)
