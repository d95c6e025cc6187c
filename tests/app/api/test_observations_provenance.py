"""Observations with provenance through the real service over real HTTP, with keys required: a source's value
belongs to the key that posted it, each source is kept beside the others, reports read one source, every
observation is checked before anything is stored, and an admin deletes a source in one call.
tests/app/services/test_observation_rules.py checks the same rules in-process."""

import csv
import io
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from conftest import LiveServer, backend_url, error_fields, one_cell_per_class, service_settings, store_classes

from app.db import Database
from app.services.keys import Scope, create_key

BENCH = "nb201_cifar10_test_acc.csv"
BENCH_INDEX = 5000  # the first imported cell's benchmark index; the others follow
KEYS = {"curator": Scope.ADMIN, "alice": Scope.WRITE, "bob": Scope.WRITE}
CLASSES = 12


@dataclass(frozen=True)
class Service:
    """A keyed server whose CLASSES single-cell classes are scored under `fingerprint` and carry the
    benchmark's accuracy (`bench[cell]`), imported by the admin key `curator` under the source BENCH."""

    server: LiveServer
    tokens: dict[str, str]
    cells: list[str]
    fingerprint: str
    bench: dict[str, float]

    def request(self, key: str | None, method: str, path: str, **options: Any) -> httpx.Response:
        headers = {} if key is None else {"Authorization": f"Bearer {self.tokens[key]}"}
        return self.server.client.request(method, path, headers=headers, **options)

    def post(self, key: str | None, body: object) -> httpx.Response:
        return self.request(key, "POST", "/v1/observations", json=body)

    def observations(self, cell: str) -> dict[str, tuple[float, str | None]]:
        """The cell's test accuracies on CIFAR-10 by source, with who posted each."""
        [architecture] = self.server.client.get("/v1/architectures", params={"arch": cell}).json()["items"]
        detail = self.server.client.get(f"/v1/architectures/{architecture['id']}").json()
        return {
            o["source"]: (o["accuracy"], o["posted_by"])
            for o in detail["observations"]
            if (o["dataset"], o["metric"]) == ("cifar10", "test_accuracy")
        }

    def report(self, path: str, **params: Any) -> httpx.Response:
        return self.server.client.get(path, params={"config": self.fingerprint, **params})


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def service(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    home = tmp_path_factory.mktemp(f"provenance-{request.param}")
    url = backend_url(request, home)
    settings = service_settings(home, url, auth="on")
    database = Database(url)
    try:
        tokens = {name: create_key(database, name, scope).token for name, scope in KEYS.items()}
        cells = one_cell_per_class(CLASSES, seed=51)
        stored = store_classes(
            database, 51, [[cell] for cell in cells], [{"synflow": float(i)} for i in range(CLASSES)]
        )
    finally:
        database.dispose()
    with LiveServer(settings) as server:
        service = Service(server, tokens, cells, stored.fingerprint, {cell: 80.0 + i for i, cell in enumerate(cells)})
        imported = [
            {"arch": cell, "dataset": "cifar10", "accuracy": accuracy, "source": BENCH}
            | {"benchmark_index": BENCH_INDEX + position}
            for position, (cell, accuracy) in enumerate(service.bench.items())
        ]
        response = service.post("curator", imported)
        assert response.json() == {"received": CLASSES, "stored": CLASSES}, response.text
        yield service


def test_another_key_cannot_overwrite_the_benchmark(service: Service) -> None:
    first, second, third = service.cells[:3]
    overwrite = service.post("alice", {"arch": first, "dataset": "cifar10", "accuracy": 0.0, "source": BENCH})
    assert overwrite.status_code == 409, overwrite.text
    assert "'curator'" in error_fields(overwrite)["source"]
    mixed = [
        {"arch": second, "dataset": "cifar10", "accuracy": 1.0},
        {"arch": third, "dataset": "cifar10", "accuracy": 0.0, "source": BENCH},
    ]
    refused = service.post("alice", mixed)
    assert refused.status_code == 409 and set(error_fields(refused)) == {"body[1].source"}
    for cell in (first, second, third):
        assert service.observations(cell) == {BENCH: (service.bench[cell], "curator")}


def test_each_source_is_kept_and_reports_choose_one(service: Service) -> None:
    mine = {cell: 50.0 + i for i, cell in enumerate(service.cells[3:6])}
    posted = service.post("alice", [{"arch": cell, "dataset": "cifar10", "accuracy": a} for cell, a in mine.items()])
    assert posted.json() == {"received": 3, "stored": 3}, posted.text
    first = next(iter(mine))
    assert service.observations(first) == {BENCH: (service.bench[first], "curator"), "alice": (50.0, "alice")}
    assert service.post("alice", {"arch": first, "dataset": "cifar10", "accuracy": 49.0}).status_code == 200
    mine[first] = 49.0
    taken = service.post("bob", {"arch": first, "dataset": "cifar10", "accuracy": 1.0, "source": "alice"})
    assert taken.status_code == 409 and "'alice'" in error_fields(taken)["source"]

    board = service.report("/v1/leaderboard", limit=1000).json()
    assert board["population"]["source"] == BENCH
    assert board["population"]["sources"] == [
        {"source": BENCH, "observations": CLASSES},
        {"source": "alice", "observations": 3},
    ]
    assert {row["arch"]: row["accuracy"] for row in board["items"]} == service.bench
    chosen = service.report("/v1/leaderboard", limit=1000, source="alice").json()
    assert chosen["population"]["source"] == "alice"
    assert {row["arch"]: row["accuracy"] for row in chosen["items"] if row["accuracy"] is not None} == mine
    report = service.report("/v1/correlations", source="alice", bootstrap=0).json()
    assert report["population"]["source"] == "alice" and report["observed"] == 3
    assert service.report("/v1/correlations", bootstrap=0).json()["observed"] == CLASSES
    exported = csv.DictReader(io.StringIO(service.report("/v1/export", source="alice").text))
    assert {row["arch"]: float(row["accuracy"]) for row in exported if row["accuracy"]} == mine
    unknown = service.report("/v1/leaderboard", source="nobody")
    assert unknown.status_code == 404 and "source" in error_fields(unknown)
    unprintable = service.report("/v1/leaderboard", source="nul\x00byte")
    assert unprintable.status_code == 422 and "source" in error_fields(unprintable)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"benchmark_index": 15_625}, "benchmark_index"),
        ({"benchmark_index": 2**63}, "benchmark_index"),
        ({"benchmark_index": "the wrong one"}, "benchmark_index"),
        ({"metric": "top1"}, "metric"),
        ({"source": "tab\there"}, "source"),
        ({"source": ""}, "source"),
        ({"epochs": 100_001}, "epochs"),
    ],
)
def test_bad_observations_name_the_field_and_store_nothing(service: Service, change: dict, field: str) -> None:
    good, bad = service.cells[6:8]
    if change.get("benchmark_index") == "the wrong one":
        change = {"benchmark_index": BENCH_INDEX + service.cells.index(good)}  # the index `good` holds
    body = [
        {"arch": good, "dataset": "cifar10", "accuracy": 10.0, "source": "checked"},
        {"arch": bad, "dataset": "cifar10", "accuracy": 10.0, "source": "checked"} | change,
    ]
    response = service.post("alice", body)
    assert response.status_code == 422, response.text
    assert f"body[1].{field}" in error_fields(response)
    for cell in (good, bad):
        assert service.observations(cell) == {BENCH: (service.bench[cell], "curator")}


def test_an_admin_deletes_a_source_in_one_call(service: Service) -> None:
    poisoned = service.cells[8:11]
    body = [{"arch": cell, "dataset": "cifar10", "accuracy": 0.0, "source": "poison"} for cell in poisoned]
    assert service.post("bob", body).status_code == 200
    assert service.report("/v1/leaderboard", source="poison").status_code == 200
    delete = {"source": "poison"}
    anonymous = service.request(None, "DELETE", "/v1/observations", params=delete)
    assert anonymous.status_code == 401 and "authorization" in error_fields(anonymous)
    writer = service.request("bob", "DELETE", "/v1/observations", params=delete)
    assert writer.status_code == 403 and "'admin'" in error_fields(writer)["authorization"]
    assert service.observations(poisoned[0])["poison"] == (0.0, "bob")

    deleted = service.request("curator", "DELETE", "/v1/observations", params=delete)
    assert deleted.status_code == 200 and deleted.json() == {"deleted": 3}
    assert "poison" not in service.observations(poisoned[0])
    gone = service.report("/v1/leaderboard", source="poison")
    assert gone.status_code == 404 and "source" in error_fields(gone)
    sources = service.report("/v1/leaderboard").json()["population"]["sources"]
    assert "poison" not in {entry["source"] for entry in sources}
    again = service.request("curator", "DELETE", "/v1/observations", params=delete)
    assert again.status_code == 404 and "source" in error_fields(again)
