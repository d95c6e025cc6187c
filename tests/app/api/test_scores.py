"""POST /v1/scores through the real service over real HTTP: validation, 200 then cached, 202, configurations,
operator data, isomorphic cells."""

import math

import httpx
import pytest
import torch
from conftest import README_CELL, TINY_CONFIG, LiveServer, error_fields, nb201_slice, wait_for_batch

from scorers import DEFAULT_PROXIES
from scorers.calibration import read_image_set
from search_spaces import nb201

# Node 1 feeds nothing that reaches the output, so its input op does not matter: an isomorphic pair.
DEAD_EDGE_TWINS = (
    "|nor_conv_3x3~0|+|nor_conv_1x1~0|none~1|+|skip_connect~0|none~1|nor_conv_3x3~2|",
    "|avg_pool_3x3~0|+|nor_conv_1x1~0|none~1|+|skip_connect~0|none~1|nor_conv_3x3~2|",
)


def _score(client: httpx.Client, arch: object, **extra: object) -> httpx.Response:
    body = {"arch": arch, "dataset": "cifar10", "config": TINY_CONFIG} | extra
    return client.post("/v1/scores", json=body)


@pytest.mark.parametrize(
    ("body", "field", "status"),
    [
        ({"arch": "|nor_conv_9x9~0|+|none~0|none~1|+|none~0|none~1|none~2|"}, "arch", 422),
        ({"arch": ["none", "skip_connect"]}, "arch", 422),
        ({"arch": 42}, "arch", 422),
        ({}, "arch", 422),
        ({"arch": README_CELL, "dataset": "mnist"}, "dataset", 422),
        ({"arch": README_CELL, "proxies": ["snip", "no_such_proxy"]}, "proxies[1]", 422),
        ({"arch": README_CELL, "proxies": []}, "proxies", 422),
        ({"arch": README_CELL, "space": "nb999"}, "space", 422),
        ({"arch": README_CELL, "config": {"batch_size": 0}}, "config.batch_size", 422),
        ({"arch": README_CELL, "config": {"sampling": "sorted"}}, "config.sampling", 422),
        ({"arch": README_CELL, "config": {"data": "/etc/passwd"}}, "config.data", 422),
        ({"arch": README_CELL, "colour": "blue"}, "colour", 422),
        ({"arch": README_CELL, "dataset": "cifar100", "config": {"data": "real"}}, "dataset", 400),
    ],
)
def test_bad_score_requests_name_the_field(live_service: LiveServer, body: dict, field: str, status: int) -> None:
    response = live_service.client.post("/v1/scores", json={"dataset": "cifar10"} | body)
    assert response.status_code == status, response.text
    assert field in error_fields(response), response.json()


def test_bad_arch_message_explains_the_problem(live_service: LiveServer) -> None:
    response = _score(live_service.client, "|nor_conv_9x9~0|+|none~0|none~1|+|none~0|none~1|none~2|")
    assert response.status_code == 422
    assert "nor_conv_9x9" in error_fields(response)["arch"]


def test_malformed_json_and_oversized_body_are_refused(live_service: LiveServer) -> None:
    client = live_service.client
    malformed = client.post("/v1/scores", content=b"{not json", headers={"content-type": "application/json"})
    assert malformed.status_code == 422
    huge = client.post("/v1/scores", json={"arch": "x" * (live_service.settings.max_body_bytes + 1)})
    assert huge.status_code == 413
    assert "body" in error_fields(huge)


def test_score_answers_200_then_serves_the_stored_result(live_service: LiveServer) -> None:
    first = _score(live_service.client, README_CELL)
    assert first.status_code == 200, first.text
    body = first.json()
    assert body["cached"] is False and body["status"] == "done"
    assert set(body["scores"]) == set(DEFAULT_PROXIES)
    for proxy, score in body["scores"].items():
        assert score["error"] is None, (proxy, score)
        assert math.isfinite(score["value"]) and score["seconds"] >= 0 and score["device"] == "cpu"
    assert body["scores"]["snip"]["value"] > 0 and body["scores"]["synflow"]["value"] > 0
    assert body["configuration"]["data_source"].startswith("synthetic")
    again = _score(live_service.client, README_CELL)
    assert again.status_code == 200 and again.json()["cached"] is True
    assert again.json()["scores"] == body["scores"]
    detail = live_service.client.get(f"/v1/architectures/{body['architecture']['id']}").json()
    fingerprint = body["configuration"]["fingerprint"]
    [stored] = [c for c in detail["scores"] if c["configuration"]["fingerprint"] == fingerprint]
    assert stored["scores"] == body["scores"]


def test_different_configurations_are_never_mixed(live_service: LiveServer) -> None:
    arch = nb201_slice(1, offset=600)[0]
    base = _score(live_service.client, arch, proxies=["synflow"]).json()
    other_seed = _score(live_service.client, arch, proxies=["synflow"], config=TINY_CONFIG | {"seed": 1}).json()
    assert base["configuration"]["fingerprint"] != other_seed["configuration"]["fingerprint"]
    assert other_seed["cached"] is False
    detail = live_service.client.get(f"/v1/architectures/{base['architecture']['id']}").json()
    fingerprints = [c["configuration"]["fingerprint"] for c in detail["scores"]]
    expected = {base["configuration"]["fingerprint"], other_seed["configuration"]["fingerprint"]}
    assert sorted(fingerprints) == sorted(expected)


def test_real_operator_data_is_used_when_the_dataset_has_it(live_service: LiveServer, cifar10_npz) -> None:
    response = _score(live_service.client, README_CELL, proxies=["snip"], config=TINY_CONFIG | {"data": "real"})
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
    arch = nb201_slice(1, offset=500)[0]
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
