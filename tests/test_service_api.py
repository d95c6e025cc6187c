"""The HTTP API through the real app under uvicorn, with real worker processes scoring real NB201 cells,
against a real SQLite file and a real PostgreSQL server (every test runs on both)."""

import json
import math

import httpx
import pytest
import torch
from conftest import TINY_CONFIG, LiveServer, wait_for_batch, wait_until

from scorers import DEFAULT_PROXIES
from scorers.calibration import read_image_set
from search_spaces import SPACES, nb201

ARCH = "|nor_conv_3x3~0|+|nor_conv_3x3~0|avg_pool_3x3~1|+|skip_connect~0|nor_conv_3x3~1|skip_connect~2|"
# Node 1 feeds nothing that reaches the output, so its input op does not matter: an isomorphic pair.
DEAD_EDGE_TWINS = (
    "|nor_conv_3x3~0|+|nor_conv_1x1~0|none~1|+|skip_connect~0|none~1|nor_conv_3x3~2|",
    "|avg_pool_3x3~0|+|nor_conv_1x1~0|none~1|+|skip_connect~0|none~1|nor_conv_3x3~2|",
)


def _archs(count: int, offset: int) -> list[str]:
    """Distinct cells no other test in this module uses (each test takes its own slice)."""
    return nb201.all_archs()[offset : offset + count]


def _errors(response: httpx.Response) -> dict[str, str]:
    body = response.json()
    assert body["detail"], body
    return {error["field"]: error["message"] for error in body["errors"]}


def _score(client: httpx.Client, arch: object, **extra: object) -> httpx.Response:
    body = {"arch": arch, "dataset": "cifar10", "config": TINY_CONFIG} | extra
    return client.post("/v1/scores", json=body)


def test_health_readiness_and_docs(live_service: LiveServer) -> None:
    client = live_service.client
    assert client.get("/healthz").json() == {"status": "ok"}
    ready = client.get("/readyz")
    assert ready.status_code == 200
    assert ready.json()["database"] == "ok"
    assert ready.json()["workers"]["alive"] == ready.json()["workers"]["workers"] == 1
    assert client.get("/docs").status_code == 200
    paths = client.get("/openapi.json").json()["paths"]
    expected = {"/v1/scores", "/v1/batches", "/v1/batches/{batch_id}", "/v1/architectures", "/v1/observations"}
    assert expected <= set(paths)


@pytest.mark.parametrize(
    ("body", "field", "status"),
    [
        ({"arch": "|nor_conv_9x9~0|+|none~0|none~1|+|none~0|none~1|none~2|"}, "arch", 422),
        ({"arch": ["none", "skip_connect"]}, "arch", 422),
        ({"arch": 42}, "arch", 422),
        ({}, "arch", 422),
        ({"arch": ARCH, "dataset": "mnist"}, "dataset", 422),
        ({"arch": ARCH, "proxies": ["snip", "no_such_proxy"]}, "proxies[1]", 422),
        ({"arch": ARCH, "proxies": []}, "proxies", 422),
        ({"arch": ARCH, "space": "darts"}, "space", 422),
        ({"arch": ARCH, "config": {"batch_size": 0}}, "config.batch_size", 422),
        ({"arch": ARCH, "config": {"sampling": "sorted"}}, "config.sampling", 422),
        ({"arch": ARCH, "config": {"data": "/etc/passwd"}}, "config.data", 422),
        ({"arch": ARCH, "colour": "blue"}, "colour", 422),
        ({"arch": ARCH, "dataset": "cifar100", "config": {"data": "real"}}, "dataset", 400),
    ],
)
def test_bad_score_requests_name_the_field(live_service: LiveServer, body: dict, field: str, status: int) -> None:
    response = live_service.client.post("/v1/scores", json={"dataset": "cifar10"} | body)
    assert response.status_code == status, response.text
    assert field in _errors(response), response.json()


def test_bad_arch_message_explains_the_problem(live_service: LiveServer) -> None:
    response = _score(live_service.client, "|nor_conv_9x9~0|+|none~0|none~1|+|none~0|none~1|none~2|")
    assert response.status_code == 422
    assert "nor_conv_9x9" in _errors(response)["arch"]


def test_malformed_json_and_oversized_body_are_refused(live_service: LiveServer) -> None:
    client = live_service.client
    malformed = client.post("/v1/scores", content=b"{not json", headers={"content-type": "application/json"})
    assert malformed.status_code == 422
    huge = client.post("/v1/scores", json={"arch": "x" * (live_service.settings.max_body_bytes + 1)})
    assert huge.status_code == 413
    assert "body" in _errors(huge)


def test_score_answers_200_then_serves_the_stored_result(live_service: LiveServer) -> None:
    first = _score(live_service.client, ARCH)
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["cached"] is False and body["status"] == "done"
    assert set(body["scores"]) == set(DEFAULT_PROXIES)
    for proxy, score in body["scores"].items():
        assert score["error"] is None, (proxy, score)
        assert math.isfinite(score["value"]) and score["seconds"] >= 0 and score["device"] == "cpu"
    assert body["scores"]["snip"]["value"] > 0 and body["scores"]["synflow"]["value"] > 0
    assert body["configuration"]["data_source"].startswith("synthetic")
    again = _score(live_service.client, ARCH)
    assert again.status_code == 200 and again.json()["cached"] is True
    assert again.json()["scores"] == body["scores"]
    detail = live_service.client.get(f"/v1/architectures/{body['architecture']['id']}").json()
    fingerprint = body["configuration"]["fingerprint"]
    [stored] = [c for c in detail["scores"] if c["configuration"]["fingerprint"] == fingerprint]
    assert stored["scores"] == body["scores"]


def test_different_configurations_are_never_mixed(live_service: LiveServer) -> None:
    arch = _archs(1, offset=600)[0]
    base = _score(live_service.client, arch, proxies=["synflow"]).json()
    other_seed = _score(live_service.client, arch, proxies=["synflow"], config=TINY_CONFIG | {"seed": 1}).json()
    assert base["configuration"]["fingerprint"] != other_seed["configuration"]["fingerprint"]
    assert other_seed["cached"] is False
    detail = live_service.client.get(f"/v1/architectures/{base['architecture']['id']}").json()
    fingerprints = [c["configuration"]["fingerprint"] for c in detail["scores"]]
    expected = {base["configuration"]["fingerprint"], other_seed["configuration"]["fingerprint"]}
    assert sorted(fingerprints) == sorted(expected)


def test_real_operator_data_is_used_when_the_dataset_has_it(live_service: LiveServer, cifar10_npz) -> None:
    response = _score(live_service.client, ARCH, proxies=["snip"], config=TINY_CONFIG | {"data": "real"})
    assert response.status_code == 200, response.text
    expected = read_image_set("cifar10", cifar10_npz).select(TINY_CONFIG["batch_size"], "random", 0)
    configuration = response.json()["configuration"]
    assert configuration["calibration_digest"] == expected.digest and not configuration["legacy"]
    assert configuration["data_source"].startswith(f"sha256:{expected.digest[:12]}|cifar10|random|seed=0|n=8")
    assert response.json()["scores"]["snip"]["value"] > 0
    assert response.json()["scores"]["snip"]["torch_version"] == torch.__version__


def test_a_cell_whose_output_ignores_its_input_is_scored_not_failed(live_service: LiveServer) -> None:
    """Every path from input to output passes a `none` edge: log-determinant proxies are -inf, a result that
    ranks the cell last, so the scoring is done and the non-finite values are stored as null with a note."""
    disconnected = "|none~0|+|none~0|none~1|+|none~0|nor_conv_3x3~1|nor_conv_3x3~2|"
    response = _score(live_service.client, disconnected)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["status"] == "done"
    nwot = body["scores"]["nwot"]
    assert nwot["value"] is None and "non-finite value (-inf)" in nwot["error"]
    assert body["scores"]["synflow"] == body["scores"]["synflow"] | {"value": 0.0, "error": None}


def test_score_answers_202_with_the_job_when_it_cannot_wait(live_service: LiveServer) -> None:
    arch = _archs(1, offset=500)[0]
    accepted = live_service.client.post(
        "/v1/scores", params={"wait": 0}, json={"arch": arch, "dataset": "cifar10", "config": TINY_CONFIG}
    )
    assert accepted.status_code == 202, accepted.text
    job = accepted.json()["job"]
    assert accepted.headers["location"] == job["url"] == f"/v1/batches/{job['id']}"
    finished = wait_for_batch(live_service.client, job["id"])
    assert finished["kind"] == "score" and finished["done"] == 1 and finished["status"] == "done"
    cached = _score(live_service.client, arch)
    assert cached.status_code == 200 and cached.json()["cached"] is True


def test_isomorphic_cells_are_computed_once_for_the_whole_class(live_service: LiveServer) -> None:
    first, twin = DEAD_EDGE_TWINS
    assert nb201.canonical_key(first) == nb201.canonical_key(twin)
    scored = _score(live_service.client, first).json()
    twin_response = _score(live_service.client, twin)
    assert twin_response.status_code == 200 and twin_response.json()["cached"] is True
    assert twin_response.json()["scores"] == scored["scores"]
    members = live_service.client.get(
        "/v1/architectures", params={"canonical": scored["architecture"]["canonical_key"], "limit": 1000}
    ).json()
    assert {first, twin} <= {m["arch"] for m in members["items"]}
    assert members["total"] == sum(
        1 for a in nb201.all_archs() if nb201.canonical_key(a) == scored["architecture"]["canonical_key"]
    )


def test_batch_lifecycle_and_listing(live_service: LiveServer) -> None:
    client = live_service.client
    archs = _archs(5, offset=1000)
    body = {"archs": archs, "dataset": "cifar10", "config": TINY_CONFIG}
    created = client.post("/v1/batches", json=body)
    assert created.status_code == 202, created.text
    assert created.headers["location"] == created.json()["url"]
    assert created.json()["total"] == 5 and created.json()["resumed"] is False
    finished = wait_for_batch(client, created.json()["id"])
    assert (finished["status"], finished["done"], finished["failed"], finished["pending"]) == ("done", 5, 0, 0), finished
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
        "/v1/batches", json={"archs": [ARCH], "dataset": "cifar10", "config": TINY_CONFIG}
    ).json()
    wait_for_batch(live_service.client, created["id"])
    conflict = live_service.client.delete(f"/v1/batches/{created['id']}")
    assert conflict.status_code == 409 and "id" in _errors(conflict)


@pytest.mark.parametrize(
    ("body", "field", "status"),
    [
        ({}, "body", 422),
        ({"archs": [ARCH], "all": True}, "body", 422),
        ({"archs": []}, "body", 422),
        ({"archs": [ARCH, ARCH, "|oops|"]}, "archs[2]", 422),
        ({"sample": {"n": 0}}, "sample.n", 422),
        ({"archs": [ARCH] * 201}, "archs", 413),
        ({"sample": {"n": 201}}, "sample.n", 413),
        ({"all": True}, "all", 413),
    ],
)
def test_bad_batch_requests(live_service: LiveServer, body: dict, field: str, status: int) -> None:
    response = live_service.client.post("/v1/batches", json={"dataset": "cifar10", "config": TINY_CONFIG} | body)
    assert response.status_code == status, response.text
    assert field in _errors(response), response.json()


def test_unknown_ids_are_404(live_service: LiveServer) -> None:
    for path in ("/v1/batches/987654", "/v1/architectures/987654"):
        response = live_service.client.get(path)
        assert response.status_code == 404 and "id" in _errors(response)
    assert live_service.client.get("/v1/no-such-thing").status_code == 404


def test_observations_single_and_list(live_service: LiveServer) -> None:
    client = live_service.client
    archs = _archs(3, offset=2000)
    single = {"arch": archs[0], "dataset": "cifar10", "accuracy": 91.5, "benchmark_index": 2000}
    one = client.post("/v1/observations", json=single)
    assert one.status_code == 200 and one.json() == {"received": 1, "stored": 1}
    many = [
        {"arch": arch, "dataset": "cifar10", "accuracy": 80 + i, "epochs": 200, "source": "test"}
        for i, arch in enumerate(archs)
    ]
    assert client.post("/v1/observations", json=many).json() == {"received": 3, "stored": 3}
    [architecture] = client.get("/v1/architectures", params={"arch": archs[0]}).json()["items"]
    detail = client.get(f"/v1/architectures/{architecture['id']}").json()
    assert detail["benchmark_index"] == 2000
    assert [(o["dataset"], o["accuracy"], o["epochs"], o["source"]) for o in detail["observations"]] == [
        ("cifar10", 80.0, 200, "test")
    ]
    on_cifar100 = {"dataset": "cifar100", "arch": archs[1]}
    assert client.get("/v1/architectures", params=on_cifar100).json()["total"] == 0
    client.post("/v1/observations", json={"arch": archs[1], "dataset": "cifar100", "accuracy": 60.0})
    assert [a["arch"] for a in client.get("/v1/architectures", params=on_cifar100).json()["items"]] == [archs[1]]


@pytest.mark.parametrize(
    ("payload", "field", "status"),
    [
        ({"arch": ARCH, "dataset": "cifar10", "accuracy": 100.5}, "accuracy", 422),
        ({"arch": ARCH, "dataset": "cifar10", "accuracy": -1}, "accuracy", 422),
        ({"arch": ARCH, "dataset": "cifar10", "accuracy": "high"}, "accuracy", 422),
        ({"arch": ARCH, "dataset": "mnist", "accuracy": 50}, "dataset", 422),
        ({"arch": "|bad|", "dataset": "cifar10", "accuracy": 50}, "arch", 422),
        (
            [{"arch": ARCH, "dataset": "cifar10", "accuracy": 50}, {"arch": ARCH, "dataset": "cifar10"}],
            "body[1].accuracy",
            422,
        ),
        ([{"arch": ARCH, "dataset": "cifar10", "accuracy": 50}] * 101, "body", 413),
        ("just a string", "body", 422),
    ],
)
def test_bad_observations(live_service: LiveServer, payload: object, field: str, status: int) -> None:
    response = live_service.client.post("/v1/observations", json=payload)
    assert response.status_code == status, response.text
    assert field in _errors(response), response.json()


def test_non_finite_accuracy_is_refused(live_service: LiveServer) -> None:
    raw = json.dumps({"arch": ARCH, "dataset": "cifar10", "accuracy": float("nan")})
    response = live_service.client.post("/v1/observations", content=raw, headers={"content-type": "application/json"})
    assert response.status_code == 422 and "accuracy" in _errors(response)


def test_architecture_pagination_and_filters(live_service: LiveServer) -> None:
    client = live_service.client
    first = client.get("/v1/architectures", params={"limit": 10}).json()
    second = client.get("/v1/architectures", params={"limit": 10, "offset": 10}).json()
    assert first["total"] == second["total"] == len(nb201.all_archs())
    assert len(first["items"]) == len(second["items"]) == 10
    assert not {a["id"] for a in first["items"]} & {a["id"] for a in second["items"]}
    last = client.get("/v1/architectures", params={"limit": 1000, "offset": first["total"] - 3}).json()
    assert len(last["items"]) == 3
    assert _errors(client.get("/v1/architectures", params={"limit": 0})).keys() == {"limit"}
    assert "space" in _errors(client.get("/v1/architectures", params={"space": "darts"}))
    assert "dataset" in _errors(client.get("/v1/architectures", params={"dataset": "mnist"}))


def test_a_known_space_with_nothing_stored_is_404_for_every_listing(
    live_service: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One condition, one status: a space the server knows but holds no architectures of is a missing
    resource, whether architectures, a leaderboard or correlations are asked of it (an unknown space is 422)."""
    monkeypatch.setitem(SPACES, "unseeded", nb201)  # known from now on, never seeded: the server already started
    for path in ("/v1/architectures", "/v1/leaderboard", "/v1/correlations"):
        response = live_service.client.get(path, params={"space": "unseeded"})
        assert response.status_code == 404, (path, response.text)
        assert _errors(response) == {"space": "no architectures of search space 'unseeded' are stored yet"}
    unknown = live_service.client.get("/v1/architectures", params={"space": "darts"})
    assert unknown.status_code == 422 and "space" in _errors(unknown)
