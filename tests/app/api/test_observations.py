"""/v1/observations through the real service over real HTTP."""

import json

import pytest
from conftest import README_CELL, LiveServer, error_fields, nb201_slice


def test_observations_single_and_list(live_service: LiveServer) -> None:
    client = live_service.client
    archs = nb201_slice(3, offset=2000)
    index = 2000  # any free index: the service only checks the range and that no other cell holds it
    single = {"arch": archs[0], "dataset": "cifar10", "accuracy": 91.5, "benchmark_index": index}
    one = client.post("/v1/observations", json=single)
    assert one.status_code == 200 and one.json() == {"received": 1, "stored": 1}
    many = [
        {"arch": arch, "dataset": "cifar10", "accuracy": 80 + i, "epochs": 200, "source": "test"}
        for i, arch in enumerate(archs)
    ]
    assert client.post("/v1/observations", json=many).json() == {"received": 3, "stored": 3}
    [architecture] = client.get("/v1/architectures", params={"arch": archs[0]}).json()["items"]
    detail = client.get(f"/v1/architectures/{architecture['id']}").json()
    assert detail["benchmark_index"] == index
    assert [(o["dataset"], o["accuracy"], o["epochs"], o["source"]) for o in detail["observations"]] == [
        ("cifar10", 91.5, None, "api"),
        ("cifar10", 80.0, 200, "test"),
    ]
    on_cifar100 = {"dataset": "cifar100", "arch": archs[1]}
    assert client.get("/v1/architectures", params=on_cifar100).json()["total"] == 0
    client.post("/v1/observations", json={"arch": archs[1], "dataset": "cifar100", "accuracy": 60.0})
    assert [a["arch"] for a in client.get("/v1/architectures", params=on_cifar100).json()["items"]] == [archs[1]]


@pytest.mark.parametrize(
    ("payload", "field", "status"),
    [
        ({"arch": README_CELL, "dataset": "cifar10", "accuracy": 100.5}, "accuracy", 422),
        ({"arch": README_CELL, "dataset": "cifar10", "accuracy": -1}, "accuracy", 422),
        ({"arch": README_CELL, "dataset": "cifar10", "accuracy": "high"}, "accuracy", 422),
        ({"arch": README_CELL, "dataset": "mnist", "accuracy": 50}, "dataset", 422),
        ({"arch": "|bad|", "dataset": "cifar10", "accuracy": 50}, "arch", 422),
        (
            [{"arch": README_CELL, "dataset": "cifar10", "accuracy": 50}, {"arch": README_CELL, "dataset": "cifar10"}],
            "body[1].accuracy",
            422,
        ),
        ([{"arch": README_CELL, "dataset": "cifar10", "accuracy": 50}] * 101, "body", 413),
        ("just a string", "body", 422),
    ],
)
def test_bad_observations(live_service: LiveServer, payload: object, field: str, status: int) -> None:
    response = live_service.client.post("/v1/observations", json=payload)
    assert response.status_code == status, response.text
    assert field in error_fields(response), response.json()


def test_non_finite_accuracy_is_refused(live_service: LiveServer) -> None:
    raw = json.dumps({"arch": README_CELL, "dataset": "cifar10", "accuracy": float("nan")})
    response = live_service.client.post("/v1/observations", content=raw, headers={"content-type": "application/json"})
    assert response.status_code == 422 and "accuracy" in error_fields(response)
