"""Bounds over real HTTP on SQLite and PostgreSQL: every integer in a path, query or body is checked against
what its database column holds (a 32-bit integer on PostgreSQL), so out-of-range values answer 422 naming
the field and never reach the database (where they used to answer 500); the largest in-range ids and
offsets do reach it. A sample larger than the space and a network larger than the server's model memory
budget are 422s naming their field, and the correlation report's bootstrap is bounded, by a maximum and by
its work on the population. Nothing is stored by a refused request."""

from collections.abc import Iterator
from dataclasses import replace
from typing import Any

import pytest
from conftest import README_CELL, TINY_CONFIG, LiveServer, error_fields, one_cell_per_class, store_classes
from sqlalchemy import insert, select

from app.db import Database
from app.db.models import Architecture, Observation
from app.services.configs import ConfigOptions, check_model_memory
from app.services.errors import InvalidInput
from app.services.reports import ReportQuery, correlations
from app.services.votes import VoteRequest

INT32_MAX = 2**31 - 1
BEYOND_SQLITE = 2**63  # past even SQLite's 64-bit integers


@pytest.mark.parametrize(
    ("method", "path", "params", "field"),
    [
        ("GET", f"/v1/architectures/{BEYOND_SQLITE}", {}, "architecture_id"),
        ("GET", f"/v1/architectures/{INT32_MAX + 1}", {}, "architecture_id"),
        ("GET", "/v1/architectures/0", {}, "architecture_id"),
        ("GET", f"/v1/batches/{INT32_MAX + 1}", {}, "batch_id"),
        ("DELETE", f"/v1/batches/{BEYOND_SQLITE}", {}, "batch_id"),
        ("GET", "/v1/architectures", {"offset": BEYOND_SQLITE}, "offset"),
        ("GET", "/v1/batches", {"offset": INT32_MAX + 1}, "offset"),
        ("GET", "/v1/leaderboard", {"offset": INT32_MAX + 1}, "offset"),
        ("GET", "/v1/correlations", {"seed": BEYOND_SQLITE}, "seed"),
        ("GET", "/v1/correlations", {"bootstrap": 2001}, "bootstrap"),
    ],
)
def test_out_of_range_integers_in_paths_and_queries_are_422_naming_the_field(
    live_service: LiveServer, method: str, path: str, params: dict[str, Any], field: str
) -> None:
    response = live_service.client.request(method, path, params=params)
    assert response.status_code == 422, response.text
    assert set(error_fields(response)) == {field}


def test_the_largest_ids_and_offsets_reach_the_database(live_service: LiveServer) -> None:
    client = live_service.client
    for path in (f"/v1/architectures/{INT32_MAX}", f"/v1/batches/{INT32_MAX}"):
        missing = client.get(path)
        assert missing.status_code == 404 and "id" in error_fields(missing)
    for path in ("/v1/architectures", "/v1/batches"):
        page = client.get(path, params={"offset": INT32_MAX})
        assert page.status_code == 200 and page.json()["items"] == []


@pytest.mark.parametrize(
    ("path", "body", "field"),
    [
        ("/v1/batches", {"sample": {"n": 5, "seed": BEYOND_SQLITE}}, "sample.seed"),
        ("/v1/batches", {"sample": {"n": BEYOND_SQLITE}}, "sample.n"),
        ("/v1/batches", {"sample": {"n": 15_626}}, "sample.n"),
        ("/v1/scores", {"arch": README_CELL, "config": TINY_CONFIG | {"seed": BEYOND_SQLITE}}, "config.seed"),
        (
            "/v1/scores",
            {"arch": README_CELL, "config": TINY_CONFIG | {"batch_size": INT32_MAX + 1}},
            "config.batch_size",
        ),
        ("/v1/scores", {"arch": README_CELL, "config": {"data": "synthetic", "batch_size": 1024}}, "config.batch_size"),
        (
            "/v1/batches",
            {"sample": {"n": 2}, "config": {"data": "synthetic", "channels": 128, "cells_per_stage": 10}},
            "config.channels",
        ),
        (
            "/v1/batches",
            {"archs": [README_CELL], "config": {"data": "synthetic", "channels": 24, "cells_per_stage": 10}},
            "config.cells_per_stage",
        ),
    ],
)
def test_out_of_range_bodies_and_too_large_models_are_422_naming_the_field_and_store_nothing(
    live_service: LiveServer, path: str, body: dict[str, Any], field: str
) -> None:
    client = live_service.client
    before = client.get("/v1/batches", params={"limit": 1}).json()["total"]
    response = client.post(path, json=body)
    assert response.status_code == 422, response.text
    assert set(error_fields(response)) == {field}
    assert client.get("/v1/batches", params={"limit": 1}).json()["total"] == before


def test_a_too_large_model_is_refused_with_the_largest_value_that_fits(live_service: LiveServer) -> None:
    body = {"arch": README_CELL, "config": {"data": "synthetic", "batch_size": 1024}, "proxies": ["snip"]}
    message = error_fields(live_service.client.post("/v1/scores", json=body))["config.batch_size"]
    assert "over this server's budget of 4,096 MB per model" in message
    largest = int(message.rpartition("batch_size may be at most ")[2])
    options = ConfigOptions(data="synthetic", batch_size=largest)
    check_model_memory("cifar10", options, ["snip"], live_service.settings.max_model_memory_mb)  # fits
    with pytest.raises(InvalidInput):
        check_model_memory("cifar10", replace(options, batch_size=largest + 1), ["snip"], 4096)


def test_a_sample_larger_than_the_space_names_its_size(live_service: LiveServer) -> None:
    response = live_service.client.post("/v1/batches", json={"sample": {"n": 15_626}})
    assert error_fields(response) == {"sample.n": "must be between 1 and 15625 (the size of nb201), got 15626"}


@pytest.fixture(scope="module")
def observed_population(sqlite_database: Database) -> Iterator[str]:
    """30 isomorphism classes of one cell each, scored by two proxies and each with an observed accuracy."""
    cells = one_cell_per_class(30, seed=5)
    values = [{"snip": float(i), "synflow": float(30 - i)} for i in range(30)]
    stored = store_classes(sqlite_database, seed=5, cells=[[cell] for cell in cells], values=values)
    with sqlite_database.session() as session:
        ids = session.scalars(select(Architecture.id).where(Architecture.arch.in_(cells))).all()
        rows = [
            {
                "architecture_id": i,
                "dataset": "cifar10",
                "metric": "test_accuracy",
                "accuracy": 50.0 + i % 40,
                "source": "t",
            }
            for i in ids
        ]
        session.execute(insert(Observation), rows)
    yield stored.fingerprint


def test_a_reports_bootstrap_work_is_bounded_by_its_population(
    sqlite_database: Database, observed_population: str
) -> None:
    # 30 classes + 30 cells observed, for the two proxies and the vote: 180 units per resample.
    bound = 180 * 100
    query = ReportQuery(config=observed_population, vote=VoteRequest(proxies=["snip", "synflow"]), bootstrap=101)
    with sqlite_database.read_session() as session, pytest.raises(InvalidInput) as refused:
        correlations(session, query, max_bootstrap_work=bound)
    assert refused.value.field == "bootstrap"
    assert "ask for at most 100 (or 0: no intervals)" in refused.value.message
    with sqlite_database.read_session() as session:
        allowed = correlations(session, ReportQuery(**{**query.__dict__, "bootstrap": 100}), max_bootstrap_work=bound)
        unbounded = correlations(session, query)  # a local run has no bound
    assert allowed.correlations[-1].per_class["spearman_ci_low"] is not None
    assert unbounded.correlations[-1].per_class["n"] == 30
