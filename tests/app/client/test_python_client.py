"""The Python client (app.client) against the real service over real HTTP: one server that requires keys for
writes (reads public), on SQLite (the client only speaks HTTP, so the backend is the API tests' business).
Its sync wait is 0, so every score that is not stored yet answers 202 and the client's own wait (follow the
job, then ask again) is what returns the scores. Each test writes with a key of its own, so the per-key
quotas of one never meet another's work."""

import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pandas
import pytest
from conftest import (
    PNG_MAGIC,
    README_CELL,
    TINY_CONFIG,
    LiveServer,
    nb201_slice,
    one_cell_per_class,
    service_settings,
)

from app.api.schemas import BatchOut, LeaderboardOut, ScoreAccepted, ScoreResponse
from app.client import Client, Leaderboard, NasscoreError, PlainHttpKeyWarning
from app.db import Database
from app.services.keys import Scope, create_key
from search_spaces import nb201

KEYS = {"scorer": Scope.WRITE, "batcher": Scope.WRITE, "reporter": Scope.WRITE, "importer": Scope.WRITE}
SNIP = ["snip"]


@dataclass
class Service:
    server: LiveServer
    url: str
    tokens: dict[str, str]

    def client(self, key: str | None, **options: float) -> Client:
        return Client(self.url, api_key="" if key is None else self.tokens[key], **options)


@pytest.fixture(scope="module")
def service(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    home = tmp_path_factory.mktemp("client")
    url = f"sqlite:///{home / 'nasscore.db'}"
    settings = service_settings(home, url, auth="on", sync_wait_seconds=0, writes_per_minute=10_000)
    with LiveServer(settings) as server:
        database = Database(url)
        tokens = {name: create_key(database, name, scope).token for name, scope in KEYS.items()}
        tokens["admin"] = create_key(database, "admin", Scope.ADMIN).token
        database.dispose()
        yield Service(server, f"http://127.0.0.1:{server.port}", tokens)


@dataclass(frozen=True)
class Population:
    """A finished batch of cells, one per isomorphism class, with an observed accuracy for each; `accuracies`
    by the cells' canonical keys."""

    fingerprint: str
    cells: list[str]
    accuracies: dict[str, float]


@pytest.fixture(scope="module")
def population(service: Service) -> Population:
    cells = one_cell_per_class(12, seed=41)
    with service.client("reporter") as client:
        batch = client.batch(cells, config=TINY_CONFIG | {"seed": 41})
        assert batch.wait().status == "done"
        rows = [
            {"arch": cell, "dataset": "cifar10", "accuracy": 60.0 + position} for position, cell in enumerate(cells)
        ]
        stored = client.observations.add_many(rows[1:], chunk_rows=5)  # three requests
        assert (stored.received, stored.stored) == (11, 11)
        assert client.observations.add(cells[0], 60.0).stored == 1
    accuracies = {nb201.canonical_key(row["arch"]): row["accuracy"] for row in rows}
    return Population(batch.state.configuration, cells, accuracies)


def test_score_waits_for_the_scores_then_answers_from_the_store(service: Service) -> None:
    with service.client("scorer") as client:
        result = client.score(README_CELL, proxies=["snip", "synflow"], config=TINY_CONFIG)
        assert isinstance(result, ScoreResponse)
        assert result.cached is False  # computed for this request, by the job the client followed
        assert result.job is not None and result.job.status == "done"
        assert {"snip", "synflow"} <= set(result.scores)
        assert result.scores["snip"].value is not None and result.scores["snip"].value > 0
        assert result.architecture.arch == README_CELL
        assert result.vote.rank is None and "needs at least 20" in (result.vote.reason or "")

        again = client.score(README_CELL, proxies=["snip", "synflow"], config=TINY_CONFIG, wait=False)
        assert isinstance(again, ScoreResponse) and again.cached is True
        assert again.scores["snip"].value == result.scores["snip"].value

        other = nb201_slice(1, offset=7100)[0]
        accepted = client.score(other, proxies=SNIP, config=TINY_CONFIG, wait=False)
        assert isinstance(accepted, ScoreAccepted) and accepted.status in ("pending", "running")
        assert client.get_batch(accepted.job.id).wait().status == "done"
        assert client.score(other, proxies=SNIP, config=TINY_CONFIG).cached is True


def test_batch_wait_shows_progress_and_cancel_stops_it(service: Service, capsys: pytest.CaptureFixture) -> None:
    with service.client("batcher") as client:
        batch = client.batch(sample=6, seed=11, config=TINY_CONFIG | {"seed": 11}, proxies=SNIP)
        assert isinstance(batch.state, BatchOut) and batch.state.total == 6 and not batch.state.resumed
        final = batch.wait(progress=True, poll_seconds=0.1)
        assert (final.status, final.done, final.failed) == ("done", 6, 0)
        assert batch.finished and batch.refresh().finished_at is not None
        bar = capsys.readouterr().err
        assert f"batch {batch.id}" in bar and "6/6" in bar and "cell/s" in bar

        repeated = client.batch(sample=6, seed=11, config=TINY_CONFIG | {"seed": 11}, proxies=SNIP)
        assert repeated.id != batch.id and repeated.state.done == 6  # every score stored: done at once

        large = client.batch(sample=150, seed=12, config=TINY_CONFIG | {"seed": 12}, proxies=SNIP)
        cancelled = large.cancel()
        assert cancelled.status == "cancelled" and cancelled.pending == 0 and cancelled.cancelled > 0
        assert large.wait().status == "cancelled"
        assert client.batches(status="cancelled").items[0].id == large.id

        with pytest.raises(NasscoreError) as finished:
            batch.cancel()
        assert (finished.value.status, finished.value.field) == (409, "id")

        with pytest.raises(NasscoreError) as unknown:
            client.get_batch(987654)
        assert (unknown.value.status, unknown.value.field) == (404, "id")


def test_leaderboard_is_the_apis_answer_and_a_dataframe(service: Service, population: Population) -> None:
    query = {"config": population.fingerprint, "source": "reporter", "expand": "cells", "limit": 5, "offset": 2}
    with service.client(None) as client:  # reads are public
        board = client.leaderboard(**query)
    assert isinstance(board, Leaderboard) and isinstance(board, LeaderboardOut)
    raw = httpx.get(f"{service.url}/v1/leaderboard", params=query).json()
    assert board.model_dump(mode="json") == raw

    with service.client(None) as client:
        cells = client.leaderboard(config=population.fingerprint, source="reporter", expand="cells", limit=None)
        classes = client.leaderboard(config=population.fingerprint, source="reporter", limit=None)
    assert cells.total == len(cells.items) > len(population.cells)  # every member of the scored classes
    assert [item.arch for item in cells.items[2:7]] == [item.arch for item in board.items]
    assert classes.total == len(classes.items) == len(population.cells)

    frame = classes.to_pandas()
    assert isinstance(frame, pandas.DataFrame) and len(frame) == len(population.cells)
    assert set(classes.population.proxies) <= set(frame.columns)
    assert frame["vote_rank"].is_monotonic_increasing
    assert dict(zip(frame["canonical_key"], frame["accuracy"], strict=True)) == population.accuracies
    assert frame["members"].sum() == cells.total
    assert frame.iloc[0]["snip"] == classes.items[0].scores["snip"]


def test_correlations_plot_and_export(service: Service, population: Population, tmp_path: Path) -> None:
    with service.client(None) as client:
        report = client.correlations(config=population.fingerprint, source="reporter", bootstrap=50, seed=1)
        plot = client.correlation_plot(config=population.fingerprint)
        csv_export = client.export(config=population.fingerprint)
        naslib = client.export(config=population.fingerprint, format="naslib")

    assert report.observed == report.observed_cells == len(population.cells)
    table = report.to_pandas()
    assert "vote" in table.index and table.loc["vote", "kind"] == "vote"
    assert table.loc["vote", "n"] == table.loc["vote", "cell_n"] == len(population.cells)
    assert -1 <= table.loc["vote", "spearman_rho"] <= 1
    assert plot.startswith(PNG_MAGIC)

    cells = csv_export.to_pandas()
    assert set(population.cells) <= set(cells["arch"]) and len(cells) == report.population.size
    assert csv_export.filename.endswith(".csv") and population.fingerprint[:12] in csv_export.filename
    saved = csv_export.save(tmp_path)
    assert saved == tmp_path / csv_export.filename and saved.read_bytes() == csv_export.content
    assert "cifar10" in naslib.json()
    with pytest.raises(ValueError, match="format='csv'"):
        naslib.to_pandas()


def test_observations_import_csv_names_the_file_and_line(service: Service, tmp_path: Path) -> None:
    cells = nb201_slice(3, offset=7200)
    table = tmp_path / "bench.csv"
    table.write_text("index,arch,acc\n" + "".join(f"{7200 + i},{cell},{70.5 + i}\n" for i, cell in enumerate(cells)))
    with service.client("importer") as client:
        stored = client.observations.import_csv(table, "cifar10", "acc", index_column="index", chunk_rows=2)
        assert (stored.received, stored.stored) == (3, 3)
        detail = client.architectures(arch=cells[1]).items[0]
        assert detail.benchmark_index == 7201
        observations = client.architecture(detail.id).observations
        assert [(o.source, o.accuracy, o.posted_by) for o in observations] == [("bench.csv", 71.5, "importer")]

        wrong = tmp_path / "wrong.csv"
        wrong.write_text(f"arch,acc\n{cells[0]},50\n{cells[1]},50\n{cells[2]},150\n")
        with pytest.raises(NasscoreError) as refused:
            client.observations.import_csv(wrong, "cifar10", "acc", chunk_rows=2)  # row 3 is in the second chunk
        assert (refused.value.status, refused.value.field) == (422, "wrong.csv:4.accuracy")
        assert str(refused.value).startswith("wrong.csv:4.accuracy: ")

        wrong.write_text(f"arch,acc\n{cells[0]},about 50\n")
        with pytest.raises(NasscoreError) as unreadable:
            client.observations.import_csv(wrong, "cifar10", "acc")
        assert unreadable.value.status is None
        assert str(unreadable.value) == "wrong.csv:2: column acc: 'about 50' is not a number"

        with pytest.raises(NasscoreError) as forbidden:
            client.observations.delete("bench.csv")
        assert (forbidden.value.status, forbidden.value.field) == (403, "authorization")
    with service.client("admin") as admin:
        assert admin.observations.delete("bench.csv").deleted == 3


def test_client_errors_carry_the_status_and_the_field(service: Service) -> None:
    with service.client("scorer") as client:
        with pytest.raises(NasscoreError) as bad_arch:
            client.score("|bogus~0|+|none~0|none~1|+|none~0|none~1|none~2|", config=TINY_CONFIG)
        error = bad_arch.value
        assert (error.status, error.field) == (422, "arch") and "bogus" in error.message
        assert str(error) == f"arch: {error.message}" and [e.field for e in error.errors] == ["arch"]

        with pytest.raises(NasscoreError) as bad_config:
            client.batch(sample=2, config={"batch_size": 0})
        assert (bad_config.value.status, bad_config.value.field) == (422, "config.batch_size")

        with pytest.raises(NasscoreError) as no_selection:
            client.batch()
        assert no_selection.value.status == 422 and "exactly one of archs, sample or all" in str(no_selection.value)

        with pytest.raises(NasscoreError) as unknown_config:
            client.leaderboard(config="0123456789ab")
        assert (unknown_config.value.status, unknown_config.value.field) == (404, "config")


def test_writes_need_a_key_and_reads_do_not(service: Service, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("NASSCORE_API_KEY", raising=False)
    cell = nb201_slice(1, offset=7300)[0]
    with service.client(None) as anonymous:
        assert anonymous.readiness().auth == "on"
        assert any(dataset.dataset == "cifar10" for dataset in anonymous.datasets())
        with pytest.raises(NasscoreError) as refused:
            anonymous.score(cell, proxies=SNIP, config=TINY_CONFIG)
        assert (refused.value.status, refused.value.field) == (401, "authorization")
    with Client(service.url, api_key="nsk_not-a-key") as forged, pytest.raises(NasscoreError) as unknown:
        forged.batch([cell], config=TINY_CONFIG)
    assert unknown.value.status == 401

    monkeypatch.setenv("NASSCORE_API_KEY", service.tokens["scorer"])
    with Client(service.url) as from_environment:  # no api_key: $NASSCORE_API_KEY
        assert from_environment.score(cell, proxies=SNIP, config=TINY_CONFIG).scores["snip"].value is not None


def test_a_key_over_plain_http_to_another_machine_is_warned_about(recwarn: pytest.WarningsRecorder) -> None:
    with pytest.warns(PlainHttpKeyWarning, match=r"sending the API key to http://10\.1\.2\.3:8000 over plain HTTP"):
        Client("http://10.1.2.3:8000", api_key="nsk_example").close()
    for quiet in ("http://127.0.0.1:8000", "http://localhost:8000", "https://10.1.2.3"):
        Client(quiet, api_key="nsk_example").close()
    Client("http://10.1.2.3:8000", api_key="").close()
    assert not [w for w in recwarn if issubclass(w.category, PlainHttpKeyWarning)]


def test_pandas_missing_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    from app.client.results import Export

    monkeypatch.setitem(sys.modules, "pandas", None)  # `import pandas` fails as if it were not installed
    with pytest.raises(ImportError, match=r"pip install 'nasscore\[client\]'"):
        Export(b"arch\n|none~0|\n", "text/csv", "x.csv").to_pandas()
