"""Search spaces through the real service over real HTTP: an architecture of the NATS-Bench size space
scored and cached, a seeded batch sample of it with its own leaderboard and exports, what is stored at
start-up, `nasscore spaces` output accepted back as `arch` (NB201 and NATS), an unknown space, network
options of the wrong space, and a proxy the space refuses."""

from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar

import pytest
from conftest import TINY_CONFIG, LiveServer, error_fields, nasscore, service_settings, wait_for_batch
from sqlalchemy import func, select

from app.db.models import Architecture, SearchSpace
from app.runtime import Runtime
from app.services.batches import ArchitectureSelection, select_architectures
from app.services.configs import validate_proxies
from app.services.spaces import ensure_space
from scorers import DEFAULT_PROXIES
from search_spaces import SPACES, get_space
from search_spaces.nats_sss import NATSSizeSpace

NATS = get_space("nats_sss")
SMALL_NATS = {"data": "synthetic", "batch_size": 4}


def _score(server: LiveServer, body: dict[str, Any]) -> Any:
    response = server.client.post("/v1/scores", json=body)
    assert response.status_code == 200, response.text
    return response.json()


def test_a_nats_architecture_is_scored_then_served_from_the_store(live_service: LiveServer) -> None:
    body = {"space": "nats_sss", "arch": " 8:16:8:16:8 ", "proxies": ["params", "synflow"], "config": SMALL_NATS}
    first = _score(live_service, body)
    assert first["architecture"]["space"] == "nats_sss"
    assert first["architecture"]["arch"] == first["architecture"]["canonical_key"] == "8:16:8:16:8"
    assert first["configuration"]["model"] == {"space": "nats_sss", "num_classes": 10}
    built = NATS.build_model("8:16:8:16:8", 10)
    assert first["scores"]["params"]["value"] == sum(parameter.numel() for parameter in built.parameters())
    assert first["scores"]["synflow"]["value"] > 0 and not first["cached"]
    again = _score(live_service, body | {"arch": "8:16:8:16:8"})
    assert again["cached"] and again["scores"] == first["scores"]


def test_a_nats_batch_samples_the_space_and_has_its_own_leaderboard(live_service: LiveServer) -> None:
    client = live_service.client
    config = SMALL_NATS | {"seed": 5}  # a configuration of its own: the leaderboard lists only this batch
    body = {"space": "nats_sss", "sample": {"n": 4, "seed": 3}, "proxies": ["params", "synflow"], "config": config}
    created = client.post("/v1/batches", json=body)
    assert created.status_code == 202, created.text
    final = wait_for_batch(client, created.json()["id"])
    assert (final["status"], final["done"], final["total"], final["space"]) == ("done", 4, 4, "nats_sss")
    board = client.get(
        "/v1/leaderboard", params={"space": "nats_sss", "config": final["configuration"], "rank_by": "params"}
    )
    assert board.status_code == 200, board.text
    assert {item["arch"] for item in board.json()["items"]} == set(NATS.sample(4, 3))
    assert all(item["members"] == 1 for item in board.json()["items"])
    population = {"space": "nats_sss", "config": final["configuration"]}
    exported = client.get("/v1/export", params=population | {"format": "csv"})
    assert exported.status_code == 200 and len(exported.text.splitlines()) == 5
    naslib = client.get("/v1/export", params=population | {"format": "naslib"})
    assert naslib.status_code == 422
    assert error_fields(naslib)["format"].startswith("NASLib has no encoding of nats_sss architectures")


def test_start_up_stores_nb201_whole_and_nats_only_as_it_is_used(tmp_path: Path) -> None:
    """NB201's classes hold several cells, so the whole space is stored at start-up to receive its classes'
    scores; NATS-Bench size configurations are each their own class, so none is stored ahead, and a batch
    of `all` of them stores them then."""
    runtime = Runtime(service_settings(tmp_path, f"sqlite:///{tmp_path / 'nasscore.db'}"))
    runtime.prepare()
    try:
        with runtime.database.session() as session:
            stored = dict(
                session.execute(
                    select(SearchSpace.name, func.count(Architecture.id)).join(Architecture).group_by(SearchSpace.name)
                ).all()
            )
            assert stored == {"nb201": 15_625}
            nats = ensure_space(session, "nats_sss")
            everything = select_architectures(session, nats, ArchitectureSelection(all=True))
            assert len(everything) == 32_768 and {row.arch for row in everything} == set(NATS.enumerate() or ())
    finally:
        runtime.stop()


@pytest.mark.parametrize(("space", "config"), [("nb201", TINY_CONFIG), ("nats_sss", SMALL_NATS)])
def test_what_nasscore_spaces_prints_is_accepted_as_arch(live_service: LiveServer, space: str, config: dict) -> None:
    listed = nasscore("spaces", space, "--sample", "3", "--seed", "21")
    assert listed.returncode == 0, listed.stderr
    lines = listed.stdout.splitlines()
    assert lines == SPACES[space].sample(3, 21)
    for line in lines:
        scored = _score(live_service, {"space": space, "arch": line, "proxies": ["params"], "config": config})
        assert scored["architecture"]["arch"] == line


def test_an_unknown_space_is_422_listing_the_known_ones(live_service: LiveServer) -> None:
    response = live_service.client.post("/v1/scores", json={"space": "nb999", "arch": "8:8:8:8:8"})
    assert response.status_code == 422
    assert error_fields(response) == {
        "space": f"unknown search space 'nb999'; known spaces: {', '.join(sorted(SPACES))}"
    }
    batch = live_service.client.post("/v1/batches", json={"space": "nb999", "sample": {"n": 1}})
    assert batch.status_code == 422 and set(error_fields(batch)) == {"space"}


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        (
            {"space": "nats_sss", "arch": "8:8:8:8:8", "config": SMALL_NATS | {"channels": 4}},
            "config.channels",
            "unknown model option 'channels' for space nats_sss; known: none",
        ),
        ({"space": "nats_sss", "arch": "8:8:8:8:9"}, "arch", "width 5 of 5 ('9' at column 9) is not a candidate width"),
        (
            {"arch": "|nor_conv_3x3~0|+|none~0|none~1|+|none~0|none~1|none~2|", "config": {"layers": 8}},
            "config.layers",
            "unknown model option 'layers' for space nb201; known: channels, cells_per_stage",
        ),
    ],
)
def test_options_and_architectures_of_the_wrong_space_are_422(
    live_service: LiveServer, body: dict, field: str, message: str
) -> None:
    response = live_service.client.post("/v1/scores", json=body)
    assert response.status_code == 422, response.text
    assert message in error_fields(response)[field]


def test_a_sample_larger_than_nats_names_its_size(live_service: LiveServer) -> None:
    response = live_service.client.post("/v1/batches", json={"space": "nats_sss", "sample": {"n": 32_769}})
    assert error_fields(response) == {"sample.n": "must be between 1 and 32768 (the size of nats_sss), got 32769"}


class NATSWithoutSynflow(NATSSizeSpace):
    """The NATS-Bench size space as a space that refuses one proxy (no registered space refuses any)."""

    name = "nats_sss_without_synflow"
    unsupported_proxies: ClassVar[dict[str, str]] = {"synflow": "its networks have no synflow here"}


@pytest.fixture
def refusing_space() -> Iterator[str]:
    """Known to this process (the API and its dispatcher) while the test runs; no worker process knows it,
    so nothing of it may be queued."""
    SPACES[NATSWithoutSynflow.name] = NATSWithoutSynflow()
    yield NATSWithoutSynflow.name
    del SPACES[NATSWithoutSynflow.name]


def test_a_proxy_the_space_refuses_is_422_and_left_out_of_the_default_set(
    live_service: LiveServer, refusing_space: str
) -> None:
    body = {"space": refusing_space, "arch": "8:8:8:8:8", "proxies": ["snip", "synflow"], "config": SMALL_NATS}
    response = live_service.client.post("/v1/scores", json=body)
    assert response.status_code == 422
    assert error_fields(response) == {
        "proxies[1]": f"synflow cannot score {refusing_space} architectures: its networks have no synflow here"
    }
    batch = {"space": refusing_space, "sample": {"n": 2}, "proxies": ["synflow"], "config": SMALL_NATS}
    refused = live_service.client.post("/v1/batches", json=batch)
    assert refused.status_code == 422 and set(error_fields(refused)) == {"proxies[0]"}
    assert validate_proxies(None, space=refusing_space) == tuple(p for p in DEFAULT_PROXIES if p != "synflow")
