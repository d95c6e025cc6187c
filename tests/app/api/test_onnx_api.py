"""ONNX networks through the real service over real HTTP (SQLite and PostgreSQL): a PyTorch network exported
to ONNX, uploaded as a multipart file and scored by its `onnx:<digest>`; the same structure with other
weights (or none) is the same architecture, scored once; a file sent as base64 in a score request is stored
on the way; a batch of two stored networks and their leaderboard; and what is refused, each naming its
field: garbage, an unsupported operator, an unknown digest, a dataset the network does not fit, sampling,
AZ-NAS, a file too large, the wrong content type, a cross-site upload; uploads need a write key."""

import base64
import io
import json
import os
import warnings
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch
from conftest import LiveServer, backend_url, error_fields, nasscore, service_settings, wait_for_batch
from onnx import helper
from sqlalchemy import func, select
from torch import nn

from app.db import Database
from app.db.models import OnnxModel
from app.services.keys import Scope, create_key
from search_spaces.onnx import MAX_FILE_BYTES
from search_spaces.onnx.example import example_model

SMALL = {"data": "synthetic", "batch_size": 4}
PROXIES = ["params", "synflow"]


class SmallNet(nn.Module):
    """A residual block and a classifier, flattened the way PyTorch code usually does (`view`)."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, width, 3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(width)
        self.conv = nn.Conv2d(width, width, 3, padding=1, bias=False)
        self.pool = nn.AvgPool2d(4)
        self.fc = nn.Linear(width * 8 * 8, 10)

    def forward(self, images: torch.Tensor) -> torch.Tensor:
        features = torch.relu(self.bn(self.stem(images)))
        features = self.pool(features + self.conv(features))
        return self.fc(features.view(features.size(0), -1))


def onnx_file(width: int = 4, seed: int = 0, **options: Any) -> bytes:
    torch.manual_seed(seed)
    buffer = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            SmallNet(width),
            (torch.zeros(2, 3, 32, 32),),
            buffer,
            dynamo=False,
            training=torch.onnx.TrainingMode.TRAINING,
            input_names=["images"],
            dynamic_axes={"images": {0: "N"}},
            **options,
        )
    return buffer.getvalue()


def encoded(data: bytes) -> dict[str, str]:
    return {"onnx_base64": base64.b64encode(data).decode()}


@pytest.fixture(scope="module", params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def service(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """A server with the default request size limit (8 MiB), so that a file over the ONNX limit reaches it."""
    home = tmp_path_factory.mktemp(f"onnx-{request.param}")
    with LiveServer(service_settings(home, backend_url(request, home))) as server:
        yield server


def upload(server: LiveServer, data: bytes, **headers: str) -> Any:
    return server.client.post("/v1/architectures/onnx", files={"file": ("net.onnx", data)}, headers=headers)


def score(server: LiveServer, arch: object, **fields: Any) -> Any:
    return server.client.post(
        "/v1/scores", json={"space": "onnx", "arch": arch, "proxies": PROXIES, "config": SMALL} | fields
    )


def test_an_upload_is_stored_once_per_structure_and_scored_by_its_text(service: LiveServer) -> None:
    created = upload(service, onnx_file(export_params=False))
    assert created.status_code == 201, created.text
    record = created.json()
    parameters = sum(parameter.numel() for parameter in SmallNet(4).parameters())
    assert record["arch"] == record["canonical_key"] == f"onnx:{record['digest']}" and record["space"] == "onnx"
    assert (record["parameters"], record["input_shape"], record["num_classes"]) == (parameters, [3, 32, 32], 10)
    with_weights = upload(service, onnx_file(seed=1))  # the same structure, other weights
    assert with_weights.status_code == 200 and with_weights.json()["id"] == record["id"]
    assert with_weights.json()["file_bytes"] == record["file_bytes"]  # the first file is kept

    scored = score(service, record["arch"])
    assert scored.status_code == 200, scored.text
    body = scored.json()
    assert body["architecture"]["id"] == record["id"] and not body["cached"]
    assert body["configuration"]["model"] == {"space": "onnx", "num_classes": 10}
    assert body["scores"]["params"]["value"] == parameters and body["scores"]["synflow"]["value"] > 0
    again = score(service, encoded(onnx_file(seed=2)))  # other weights again, sent inline
    assert again.status_code == 200 and again.json()["cached"] and again.json()["scores"] == body["scores"]
    board = service.client.get(
        "/v1/leaderboard", params={"space": "onnx", "config": body["configuration"]["fingerprint"], "rank_by": "params"}
    )
    assert board.status_code == 200, board.text
    assert [item["arch"] for item in board.json()["items"]] == [record["arch"]]


def test_a_file_in_a_score_request_is_stored_and_a_batch_scores_stored_networks(service: LiveServer) -> None:
    inline = score(service, encoded(example_model()), config=SMALL | {"seed": 3})
    assert inline.status_code == 200, inline.text
    example = inline.json()["architecture"]["arch"]
    wider = upload(service, onnx_file(width=6, export_params=False)).json()["arch"]
    body = {"space": "onnx", "archs": [example, wider], "proxies": PROXIES, "config": SMALL | {"seed": 4}}
    created = service.client.post("/v1/batches", json=body)
    assert created.status_code == 202, created.text
    final = wait_for_batch(service.client, created.json()["id"])
    assert (final["status"], final["done"], final["failed"], final["space"]) == ("done", 2, 0, "onnx")
    board = service.client.get(
        "/v1/leaderboard", params={"space": "onnx", "config": final["configuration"], "rank_by": "params"}
    )
    assert [item["arch"] for item in board.json()["items"]] == [wider, example]  # the wider one has more
    database = Database(service.settings.resolved_database_url)
    try:
        with database.read_session() as session:
            assert session.scalar(select(func.count()).select_from(OnnxModel)) >= 3
    finally:
        database.dispose()


UNKNOWN = "onnx:" + "0" * 64
LSTM = helper.make_model(
    helper.make_graph(
        [helper.make_node("LSTM", ["images", "w", "r"], ["y"], name="lstm_1", hidden_size=2)],
        "recurrent",
        [helper.make_tensor_value_info("images", 1, ["N", 3, 32, 32])],
        [helper.make_tensor_value_info("y", 1, ["N", 10])],
    )
).SerializeToString()


@pytest.mark.parametrize(
    ("path", "body", "status", "field", "message"),
    [
        ("/v1/scores", {"arch": {"onnx_base64": "bm90IG9ubng="}}, 422, "arch", "not an ONNX file"),
        ("/v1/scores", {"arch": {"onnx_base64": "%%%"}}, 422, "arch", "onnx_base64 is not valid base64"),
        ("/v1/scores", {"arch": encoded(LSTM)}, 422, "arch", "unsupported ONNX operator 'LSTM' (node 'lstm_1')"),
        ("/v1/scores", {"arch": UNKNOWN}, 404, "arch", f"no ONNX file is stored for {UNKNOWN}; upload it"),
        ("/v1/scores", {"arch": "resnet18"}, 422, "arch", "an ONNX architecture is onnx:<64 hex digits>"),
        (
            "/v1/scores",
            {"arch": encoded(example_model()), "dataset": "cifar100"},
            422,
            "arch",
            "the network puts out 10 logits, but cifar100 has 100 classes",
        ),
        (
            "/v1/scores",
            {"arch": encoded(example_model()), "dataset": "imagenet16-120"},
            422,
            "arch",
            "the network takes images of shape 3×32×32, but imagenet16-120 images are 3×16×16",
        ),
        (
            "/v1/scores",
            {"arch": encoded(example_model()), "proxies": ["az_trainability"]},
            422,
            "proxies[0]",
            "az_trainability cannot score onnx architectures: AZ-NAS reads the outputs of a network's stem",
        ),
        ("/v1/batches", {"archs": ["onnx:" + "1" * 64]}, 404, "archs[0]", "no ONNX file is stored for onnx:1111"),
        ("/v1/batches", {"sample": {"n": 2}}, 422, "sample.n", "onnx architectures are uploaded, not drawn"),
        ("/v1/batches", {"all": True}, 422, "all", "onnx architectures are uploaded, not drawn"),
    ],
)
def test_requests_the_space_cannot_serve_name_their_field(
    service: LiveServer, path: str, body: dict[str, Any], status: int, field: str, message: str
) -> None:
    response = service.client.post(path, json={"space": "onnx", "config": SMALL} | body)
    assert response.status_code == status, response.text
    assert message in error_fields(response)[field]


def test_the_memory_budget_holds_a_network_to_its_own_size(service: LiveServer) -> None:
    """A wide network fits the default batch but not 1,024 images: 422 naming the batch size, with the largest
    that fits for this very network (not for the largest network the space admits)."""
    wide = encoded(onnx_file(width=256, export_params=False))
    assert score(service, wide, proxies=["params"]).status_code == 200
    refused = score(service, wide, proxies=["params"], config=SMALL | {"batch_size": 1024})
    assert refused.status_code == 422, refused.text
    message = error_fields(refused)["config.batch_size"]
    assert message.startswith("scoring the given onnx network on 1024 images needs about ")
    assert 64 <= int(message.rsplit(" ", 1)[-1]) < 1024  # "…, batch_size may be at most N"


def test_uploads_too_large_of_the_wrong_type_or_from_another_site_are_refused(service: LiveServer) -> None:
    too_large = upload(service, bytes(MAX_FILE_BYTES + 1))
    assert too_large.status_code == 413
    assert error_fields(too_large) == {
        "file": f"the ONNX file has {MAX_FILE_BYTES + 1:,} bytes, over the limit of 5,242,880"
    }
    garbage = upload(service, b"garbage")
    assert garbage.status_code == 422 and "not an ONNX file" in error_fields(garbage)["file"]
    as_json = service.client.post("/v1/architectures/onnx", json=encoded(example_model()))
    assert as_json.status_code == 415
    assert error_fields(as_json) == {"content-type": "expected 'multipart/form-data', got 'application/json'"}
    cross_site = upload(service, example_model(), Origin="https://elsewhere.example")
    assert cross_site.status_code == 403 and set(error_fields(cross_site)) == {"origin"}
    same_site = upload(service, example_model(), Origin=str(service.client.base_url))
    assert same_site.status_code in (200, 201)
    no_file = service.client.post("/v1/architectures/onnx", files={"other": ("x", b"x")})
    assert no_file.status_code == 422 and "file" in error_fields(no_file)


def test_the_cli_scores_a_file_as_the_service_does_and_cannot_sample_the_space(
    service: LiveServer, tmp_path: Path
) -> None:
    """`nasscore score FILE.onnx --space onnx` on the built-in CIFAR-10 set, and the server on the same data
    (it has no other): the same architecture, configuration and values."""
    path = tmp_path / "net.onnx"
    path.write_bytes(onnx_file(width=5, export_params=False))
    env = os.environ | {"NASSCORE_HOME": str(tmp_path / "home")}
    local = nasscore("score", str(path), "--space", "onnx", "--proxies", "snip,synflow", "--json", env=env)
    assert local.returncode == 0, local.stderr
    report = json.loads(local.stdout)
    served = service.client.post(
        "/v1/scores", json={"space": "onnx", "arch": encoded(path.read_bytes()), "proxies": ["snip", "synflow"]}
    )
    assert served.status_code == 200, served.text
    body = served.json()
    assert report["arch"] == body["architecture"]["arch"]
    for proxy in ("snip", "synflow"):
        assert report["scores"][proxy]["value"] == pytest.approx(body["scores"][proxy]["value"], rel=1e-6), proxy
    listed = nasscore("spaces", "onnx", "--sample", "3", env=env)
    assert listed.returncode != 0 and "onnx architectures are uploaded networks, not drawn or listed" in listed.stderr


def test_an_upload_needs_a_write_key_when_keys_are_on(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'nasscore.db'}"
    with LiveServer(service_settings(tmp_path, url, auth="on")) as server:
        database = Database(url)
        tokens = {
            name: create_key(database, name, scope).token for name, scope in (("r", Scope.READ), ("w", Scope.WRITE))
        }
        database.dispose()
        assert upload(server, example_model()).status_code == 401
        assert upload(server, example_model(), Authorization=f"Bearer {tokens['r']}").status_code == 403
        assert upload(server, example_model(), Authorization=f"Bearer {tokens['w']}").status_code == 201
