"""/v1/batches through the real service over real HTTP: lifecycle, resume, cancel, bad requests, unknown ids."""

import pytest
from conftest import README_CELL, TINY_CONFIG, LiveServer, error_fields, nb201_slice, wait_for_batch, wait_until


def test_batch_lifecycle_and_listing(live_service: LiveServer) -> None:
    client = live_service.client
    archs = nb201_slice(5, offset=1000)
    body = {"archs": archs, "dataset": "cifar10", "config": TINY_CONFIG}
    created = client.post("/v1/batches", json=body)
    assert created.status_code == 202, created.text
    assert created.headers["location"] == created.json()["url"]
    assert created.json()["total"] == 5 and created.json()["resumed"] is False
    finished = wait_for_batch(client, created.json()["id"])
    assert (finished["status"], finished["done"], finished["failed"], finished["pending"]) == ("done", 5, 0, 0), (
        finished
    )
    assert finished["finished_at"] is not None and finished["eta_seconds"] == 0
    listed = client.get("/v1/batches", params={"status": "done", "limit": 1000}).json()
    assert created.json()["id"] in {b["id"] for b in listed["items"]}
    repeat = client.post("/v1/batches", json=body).json()
    assert repeat["id"] != created.json()["id"] and repeat["status"] == "done" and repeat["done"] == 5


def test_identical_unfinished_batch_is_resumed_not_duplicated(live_service: LiveServer) -> None:
    client = live_service.client
    body = {"sample": {"n": 40, "seed": 7}, "dataset": "cifar10", "config": TINY_CONFIG | {"seed": 7}}
    first = client.post("/v1/batches", json=body).json()
    second = client.post("/v1/batches", json=body).json()
    assert second["id"] == first["id"] and second["resumed"] is True
    client.delete(f"/v1/batches/{first['id']}")


def test_batch_cancel(live_service: LiveServer) -> None:
    client = live_service.client
    created = client.post(
        "/v1/batches", json={"sample": {"n": 150, "seed": 3}, "dataset": "cifar10", "config": TINY_CONFIG | {"seed": 3}}
    ).json()
    cancelled = client.delete(f"/v1/batches/{created['id']}")
    assert cancelled.status_code == 200 and cancelled.json()["status"] == "cancelled"
    assert cancelled.json()["pending"] == 0 and cancelled.json()["cancelled"] > 0
    settled = wait_until(
        lambda: (b := client.get(f"/v1/batches/{created['id']}").json())["running"] == 0 and b, 120, "running items"
    )
    assert settled["status"] == "cancelled"
    assert settled["done"] + settled["failed"] + settled["cancelled"] == 150
    assert client.delete(f"/v1/batches/{created['id']}").status_code == 200
    assert client.delete("/v1/batches/987654").status_code == 404


def test_cancelling_a_finished_batch_conflicts(live_service: LiveServer) -> None:
    created = live_service.client.post(
        "/v1/batches", json={"archs": [README_CELL], "dataset": "cifar10", "config": TINY_CONFIG}
    ).json()
    wait_for_batch(live_service.client, created["id"])
    conflict = live_service.client.delete(f"/v1/batches/{created['id']}")
    assert conflict.status_code == 409 and "id" in error_fields(conflict)


@pytest.mark.parametrize(
    ("body", "field", "status"),
    [
        ({}, "body", 422),
        ({"archs": [README_CELL], "all": True}, "body", 422),
        ({"archs": []}, "body", 422),
        ({"archs": [README_CELL, README_CELL, "|oops|"]}, "archs[2]", 422),
        ({"sample": {"n": 0}}, "sample.n", 422),
        ({"archs": [README_CELL] * 201}, "archs", 413),
        ({"sample": {"n": 201}}, "sample.n", 413),
        ({"all": True}, "all", 413),
    ],
)
def test_bad_batch_requests(live_service: LiveServer, body: dict, field: str, status: int) -> None:
    response = live_service.client.post("/v1/batches", json={"dataset": "cifar10", "config": TINY_CONFIG} | body)
    assert response.status_code == status, response.text
    assert field in error_fields(response), response.json()


def test_unknown_ids_are_404(live_service: LiveServer) -> None:
    for path in ("/v1/batches/987654", "/v1/architectures/987654"):
        response = live_service.client.get(path)
        assert response.status_code == 404 and "id" in error_fields(response)
    assert live_service.client.get("/v1/no-such-thing").status_code == 404
