"""The client's retries against real servers: a real 429 (a key's quota on queued items, whose Retry-After
estimates when the key's earlier batch will be done) is waited out for exactly the Retry-After the server
sent, then the request succeeds; with retries off it is the error, with its status, field and Retry-After.
Connection failures are retried with backoff: until a server that was still starting answers, or until
the retries are spent."""

import logging
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import TINY_CONFIG, LiveServer, free_port, service_settings, wait_until

from app.client import Client, NasscoreError
from app.db import Database
from app.services.keys import Scope, create_key

QUEUED_ITEMS = 40
SNIP = ["snip"]
RETRY_LOGGER = "nasscore.client"


@pytest.fixture(scope="module")
def quota_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[LiveServer, str]]:
    home = tmp_path_factory.mktemp("client-retries")
    url = f"sqlite:///{home / 'nasscore.db'}"
    settings = service_settings(home, url, auth="on", max_queued_items_per_key=QUEUED_ITEMS)
    with LiveServer(settings) as server:
        database = Database(url)
        token = create_key(database, "patient", Scope.WRITE).token
        database.dispose()
        yield server, token


def _retries(caplog: pytest.LogCaptureFixture) -> list[logging.LogRecord]:
    return [record for record in caplog.records if record.name == RETRY_LOGGER]


def test_a_429_is_retried_after_the_servers_retry_after(
    quota_server: tuple[LiveServer, str], caplog: pytest.LogCaptureFixture
) -> None:
    server, token = quota_server
    url = f"http://127.0.0.1:{server.port}"
    caplog.set_level(logging.INFO, logger=RETRY_LOGGER)
    with Client(url, api_key=token, retries=0) as impatient, Client(url, api_key=token, retries=8) as patient:
        first = impatient.batch(sample=QUEUED_ITEMS, seed=1, config=TINY_CONFIG | {"seed": 1}, proxies=SNIP)
        # Once some items are finished, the server's Retry-After follows the rate at which they finish.
        wait_until(lambda: first.refresh().done >= 5, 120, "the first items of the first batch")
        second = {"sample": QUEUED_ITEMS, "seed": 2, "config": TINY_CONFIG | {"seed": 2}, "proxies": SNIP}

        with pytest.raises(NasscoreError) as refused:
            impatient.batch(**second)  # the first batch's unfinished items + 40 are over the quota of 40
        assert (refused.value.status, refused.value.field) == (429, "sample.n")
        assert refused.value.retry_after is not None and refused.value.retry_after >= 1
        assert not _retries(caplog)

        accepted = patient.batch(**second)
        assert accepted.state.total == QUEUED_ITEMS
        assert first.wait().done == QUEUED_ITEMS  # the room the server said to wait for
        accepted.cancel()

    retried = _retries(caplog)
    assert retried, "the second batch was accepted without a 429: the first batch finished too early"
    for record in retried:
        assert record.status == 429
        assert record.wait_seconds == record.retry_after >= 1


def test_a_refused_connection_is_retried_until_the_retries_are_spent(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=RETRY_LOGGER)
    url = f"http://127.0.0.1:{free_port()}"  # nothing listens there
    with Client(url, retries=2, backoff=0.01) as client, pytest.raises(NasscoreError) as unreachable:
        client.batch(sample=1)  # a POST too: a refused connection never reached a server
    assert unreachable.value.status is None and str(unreachable.value).startswith(f"cannot reach {url}: ")
    waits = [record.wait_seconds for record in _retries(caplog)]
    assert waits == [0.01, 0.02]  # exponential backoff


def test_a_server_that_is_still_starting_is_waited_for(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=RETRY_LOGGER)
    server = LiveServer(service_settings(tmp_path, f"sqlite:///{tmp_path / 'nasscore.db'}"))
    answers: list[object] = []

    def ask() -> None:
        with Client(f"http://127.0.0.1:{server.port}", retries=30, backoff=0.1) as client:
            try:
                answers.append(client.datasets())
            except NasscoreError as error:
                answers.append(error)

    asking = threading.Thread(target=ask)
    asking.start()  # before the server listens: its first connections are refused
    with server:
        asking.join(timeout=120)
    assert len(answers) == 1 and isinstance(answers[0], list), answers
    assert "cifar10" in {dataset.dataset for dataset in answers[0]}
    assert any(record.status is None for record in _retries(caplog))
