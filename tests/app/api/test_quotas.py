"""Quotas and the write rate limit. Over real HTTP on a real server that requires keys (SQLite and
PostgreSQL): a burst of batches past a key's quota answers 429 with Retry-After naming `batches`, queued
items past it 429 naming the selection field (or `arch` for a score job), concurrent requests cannot both
take the last place, and nothing beyond the quota is stored. In-process on both databases (no workers, so
queued items stay queued): anonymous clients share one quota, keys have their own, and Retry-After follows
the rate at which the owner's items finish. The write rate limit counts per key, and per client address
without one, and leaves reads alone."""

import math
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import httpx
import pytest
from conftest import TINY_CONFIG, LiveServer, backend_url, error_fields, service_settings
from sqlalchemy import func, select, update

from app.api.rate_limit import SlidingWindowLimiter
from app.db import Database
from app.db.models import ItemStatus, Job, JobItem, utcnow
from app.runtime import Runtime
from app.services import batches
from app.services.batches import ArchitectureSelection, BatchSpec
from app.services.configs import ConfigOptions
from app.services.errors import TooManyRequests
from app.services.keys import Scope, create_key
from app.services.quotas import DEFAULT_RETRY_SECONDS, Quota, ServerLimits
from search_spaces import nb201

MAX_BATCHES = 2
MAX_ITEMS = 40
# Queued ahead of every test's batches by a local run (no owner, no limits): while it has pending items, the
# single worker claims nothing else, so the batches the tests start stay unfinished.
BLOCKER = {"data": "synthetic", "batch_size": 32, "channels": 16, "cells_per_stage": 2, "seed": 99}
BLOCKER_CELLS = 2000
TINY_OPTIONS = ConfigOptions(**TINY_CONFIG)
SNIP = ["snip"]


@dataclass
class QuotaService:
    server: LiveServer
    database: Database
    tokens: dict[str, str]

    def post(self, key: str, path: str, body: dict[str, Any]) -> httpx.Response:
        return self.server.client.post(path, json=body, headers={"Authorization": f"Bearer {self.tokens[key]}"})

    def unfinished(self, owner: str) -> tuple[int, int]:
        """The owner's jobs, and its unfinished items across them."""
        with self.database.read_session() as session:
            jobs = session.scalar(select(func.count()).select_from(Job).where(Job.owner == owner))
            items = session.scalar(
                select(func.count())
                .select_from(JobItem)
                .join(Job, Job.id == JobItem.job_id)
                .where(Job.owner == owner, JobItem.status.in_((ItemStatus.PENDING, ItemStatus.RUNNING)))
            )
        return int(jobs or 0), int(items or 0)


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def quota_service(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[QuotaService]:
    home = tmp_path_factory.mktemp(f"quotas-{request.param}")
    url = backend_url(request, home)
    limits = {"max_running_batches_per_key": MAX_BATCHES, "max_queued_items_per_key": MAX_ITEMS}
    settings = service_settings(home, url, auth="on", writes_per_minute=10_000, **limits)
    with LiveServer(settings) as server:
        database = Database(url)
        local = Runtime(settings)
        blocker = _local_batch(local, None, BLOCKER_CELLS, seed=0, options=ConfigOptions(**BLOCKER), proxies=None)
        local.database.dispose()
        tokens = {name: create_key(database, name, Scope.WRITE).token for name in ("alice", "bob", "carol")}
        yield QuotaService(server, database, tokens)
        batches.cancel_batch(database, blocker)
        database.dispose()


def _local_batch(
    runtime: Runtime,
    owner: str | None,
    cells: int,
    seed: int,
    limits: ServerLimits | None = None,
    options: ConfigOptions = TINY_OPTIONS,
    proxies: list[str] | None = SNIP,
) -> int:
    spec = BatchSpec("nb201", "cifar10", proxies, options, ArchitectureSelection(sample=cells, seed=seed), owner=owner)
    return batches.create_batch(runtime, spec, limits=limits).job.id


def _sample(cells: int, seed: int) -> dict[str, Any]:
    return {"sample": {"n": cells, "seed": seed}, "config": TINY_CONFIG, "proxies": ["snip"]}


def test_a_burst_of_batches_past_the_quota_answers_429_and_stores_nothing_more(quota_service: QuotaService) -> None:
    statuses = [quota_service.post("alice", "/v1/batches", _sample(5, seed)) for seed in range(4)]
    assert [r.status_code for r in statuses] == [202, 202, 429, 429], [r.text for r in statuses]
    refused = statuses[2]
    assert error_fields(refused) == {
        "batches": f"key 'alice' has {MAX_BATCHES} unfinished batches, the most allowed; retry when one finishes"
    }
    assert int(refused.headers["retry-after"]) == DEFAULT_RETRY_SECONDS  # none of alice's items finished yet
    assert quota_service.unfinished("alice") == (MAX_BATCHES, 10)

    resumed = quota_service.post("alice", "/v1/batches", _sample(5, 0))
    assert resumed.status_code == 202 and resumed.json()["resumed"] is True  # an identical batch costs nothing
    assert quota_service.post("bob", "/v1/batches", _sample(5, 50)).status_code == 202  # bob has his own quota


def test_concurrent_requests_cannot_both_take_the_last_place(quota_service: QuotaService) -> None:
    headers = {"Authorization": f"Bearer {quota_service.tokens['carol']}"}
    statuses: list[int] = []
    start = threading.Barrier(6)

    def post(seed: int) -> None:
        with httpx.Client(base_url=quota_service.server.client.base_url, timeout=60) as client:
            start.wait()
            statuses.append(client.post("/v1/batches", json=_sample(3, 100 + seed), headers=headers).status_code)

    threads = [threading.Thread(target=post, args=(seed,)) for seed in range(6)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(statuses) == [202] * MAX_BATCHES + [429] * (6 - MAX_BATCHES)
    assert quota_service.unfinished("carol") == (MAX_BATCHES, 3 * MAX_BATCHES)


def test_queued_items_past_the_quota_name_the_selection_and_score_jobs_count(quota_service: QuotaService) -> None:
    token = create_key(quota_service.database, "dave", Scope.WRITE).token
    quota_service.tokens["dave"] = token
    assert quota_service.post("dave", "/v1/batches", _sample(30, 1)).status_code == 202

    too_many = quota_service.post("dave", "/v1/batches", _sample(15, 2))
    assert too_many.status_code == 429
    assert error_fields(too_many) == {
        "sample.n": f"15 more unfinished items would leave key 'dave' with 45 queued, over the limit of {MAX_ITEMS}; "
        "retry when fewer are queued, or ask for fewer"
    }
    assert int(too_many.headers["retry-after"]) >= 1
    listed = quota_service.post("dave", "/v1/batches", {"archs": nb201.all_archs()[:11], "config": TINY_CONFIG})
    assert listed.status_code == 429 and "archs" in error_fields(listed)
    assert quota_service.post("dave", "/v1/batches", _sample(10, 3)).status_code == 202  # exactly the quota
    assert quota_service.unfinished("dave") == (2, MAX_ITEMS)

    fresh_cell = nb201.all_archs()[-1]
    scored = quota_service.post("dave", "/v1/scores", {"arch": fresh_cell, "config": TINY_CONFIG, "proxies": ["snip"]})
    assert scored.status_code == 429
    assert set(error_fields(scored)) == {"arch"}
    assert quota_service.unfinished("dave") == (2, MAX_ITEMS)


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def runtime(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Runtime]:
    """The service layer on each database, without workers: queued items stay queued."""
    home = tmp_path_factory.mktemp(f"quotas-in-process-{request.param}")
    url = backend_url(request, home)
    runtime = Runtime(service_settings(home, url))
    yield runtime
    runtime.database.dispose()


def _limits(batches_allowed: int, items_allowed: int) -> ServerLimits:
    return ServerLimits(max_batch_items=20_000, max_model_memory_mb=4096, quota=Quota(batches_allowed, items_allowed))


def test_anonymous_clients_share_one_quota_and_each_key_has_its_own(runtime: Runtime) -> None:
    limits = _limits(batches_allowed=1, items_allowed=1000)
    _local_batch(runtime, None, 4, seed=10, limits=limits)
    with pytest.raises(TooManyRequests) as refused:
        _local_batch(runtime, None, 4, seed=11, limits=limits)
    assert (refused.value.field, refused.value.retry_after) == ("batches", DEFAULT_RETRY_SECONDS)
    assert "clients without a key (together) have 1 unfinished batches" in refused.value.message
    _local_batch(runtime, "erin", 4, seed=11, limits=limits)
    with runtime.database.read_session() as session:
        assert session.scalar(select(func.count()).select_from(Job).where(Job.owner.is_(None))) == 1


def test_concurrent_batches_of_one_owner_in_process(runtime: Runtime) -> None:
    limits = _limits(batches_allowed=3, items_allowed=1000)
    outcomes: list[str] = []
    start = threading.Barrier(8)

    def create(seed: int) -> None:
        start.wait()
        try:
            _local_batch(runtime, "frank", 2, seed=200 + seed, limits=limits)
            outcomes.append("created")
        except TooManyRequests as error:
            outcomes.append(error.field)

    threads = [threading.Thread(target=create, args=(seed,)) for seed in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(outcomes) == ["batches"] * 5 + ["created"] * 3
    with runtime.database.read_session() as session:
        assert session.scalar(select(func.count()).select_from(Job).where(Job.owner == "frank")) == 3


def test_retry_after_follows_the_rate_at_which_the_owners_items_finish(runtime: Runtime) -> None:
    limits = _limits(batches_allowed=10, items_allowed=20)
    job_id = _local_batch(runtime, "grace", 20, seed=300, limits=limits)
    started = utcnow() - timedelta(seconds=100)
    with runtime.database.session() as session:  # 10 of its items finished since it started
        session.execute(update(Job).where(Job.id == job_id).values(started_at=started))
        done = select(JobItem.id).where(JobItem.job_id == job_id).limit(10).scalar_subquery()
        session.execute(
            update(JobItem).where(JobItem.id.in_(done)).values(status=ItemStatus.DONE, finished_at=utcnow())
        )
    elapsed_before = (utcnow() - started).total_seconds()
    with pytest.raises(TooManyRequests) as refused:
        _local_batch(runtime, "grace", 16, seed=301, limits=limits)
    elapsed_after = (utcnow() - started).total_seconds()
    # 26 queued against 20 allowed: 6 items, at 10 items per elapsed time.
    assert refused.value.field == "sample.n"
    backlog, finished = 6, 10
    low, high = (math.ceil(backlog * elapsed / finished) for elapsed in (elapsed_before, elapsed_after))
    assert 60 <= low <= refused.value.retry_after <= high


def test_sliding_window_admits_the_limit_per_client_then_says_when_to_retry() -> None:
    now = [1000.0]
    limiter = SlidingWindowLimiter(3, window=60, clock=lambda: now[0])
    assert [limiter.admit("a") for _ in range(3)] == [None, None, None]
    now[0] += 20
    assert limiter.admit("a") == pytest.approx(40)  # the first admission leaves the window in 40 s
    assert limiter.admit("b") is None  # another client counts on its own
    now[0] += 40  # the three admissions at t=1000 leave the window; the refused one never counted
    assert [limiter.admit("a") for _ in range(3)] == [None, None, None]
    assert limiter.admit("a") == pytest.approx(60)


@pytest.fixture(scope="module")
def rate_limited(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, dict[str, str]]]:
    """A server without required keys (any client may write) allowing 3 writes a minute."""
    home = tmp_path_factory.mktemp("rate-limit")
    url = f"sqlite:///{home / 'nasscore.db'}"
    with LiveServer(service_settings(home, url, writes_per_minute=3)) as server:
        database = Database(url)
        tokens = {name: create_key(database, name, Scope.WRITE).token for name in ("alice", "bob")}
        database.dispose()
        yield server, tokens


def test_the_write_rate_is_counted_per_key(rate_limited: tuple[LiveServer, dict[str, str]]) -> None:
    server, tokens = rate_limited
    alice, bob = ({"Authorization": f"Bearer {tokens[name]}"} for name in ("alice", "bob"))
    assert [server.client.delete("/v1/batches/999", headers=alice).status_code for _ in range(3)] == [404] * 3
    refused = server.client.post(
        "/v1/scores", json={"arch": nb201.all_archs()[0], "config": TINY_CONFIG}, headers=alice
    )
    assert refused.status_code == 429
    assert error_fields(refused) == {
        "authorization": "key 'alice' made 3 write requests in the last minute, the most allowed "
        "(writes_per_minute); retry after the Retry-After seconds"
    }
    assert 1 <= int(refused.headers["retry-after"]) <= 60
    assert server.client.get("/v1/batches", headers=alice).json()["total"] == 0  # nothing was queued
    assert server.client.delete("/v1/batches/999", headers=bob).status_code == 404


def test_the_write_rate_without_a_key_is_counted_per_client_address(
    rate_limited: tuple[LiveServer, dict[str, str]],
) -> None:
    server, _ = rate_limited
    assert [server.client.delete("/v1/batches/999").status_code for _ in range(3)] == [404] * 3
    refused = server.client.delete("/v1/batches/999")
    assert refused.status_code == 429
    assert set(error_fields(refused)) == {"client"}
    assert "client 127.0.0.1 made 3 write requests" in error_fields(refused)["client"]
    assert server.client.get("/v1/batches").status_code == 200  # reads are not limited
