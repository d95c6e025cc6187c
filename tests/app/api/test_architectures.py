"""/v1/architectures through the real service over real HTTP: pagination, filters, unseeded spaces."""

import pytest
from conftest import LiveServer, error_fields

from search_spaces import SPACES, nb201


def test_architecture_pagination_and_filters(live_service: LiveServer) -> None:
    client = live_service.client
    first = client.get("/v1/architectures", params={"limit": 10}).json()
    second = client.get("/v1/architectures", params={"limit": 10, "offset": 10}).json()
    assert first["total"] == second["total"] == len(nb201.all_archs())
    assert len(first["items"]) == len(second["items"]) == 10
    assert not {a["id"] for a in first["items"]} & {a["id"] for a in second["items"]}
    last = client.get("/v1/architectures", params={"limit": 1000, "offset": first["total"] - 3}).json()
    assert len(last["items"]) == 3
    assert error_fields(client.get("/v1/architectures", params={"limit": 0})).keys() == {"limit"}
    assert "space" in error_fields(client.get("/v1/architectures", params={"space": "nb999"}))
    assert "dataset" in error_fields(client.get("/v1/architectures", params={"dataset": "mnist"}))


def test_a_known_space_with_nothing_stored_is_404_for_every_listing(
    live_service: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One condition, one status: a space the server knows but holds no architectures of is a missing
    resource, whether architectures, a leaderboard or correlations are asked of it (an unknown space is 422)."""
    monkeypatch.setitem(SPACES, "unseeded", nb201)  # known from now on, never seeded: the server already started
    for path in ("/v1/architectures", "/v1/leaderboard", "/v1/correlations"):
        response = live_service.client.get(path, params={"space": "unseeded"})
        assert response.status_code == 404, (path, response.text)
        assert error_fields(response) == {"space": "no architectures of search space 'unseeded' are stored yet"}
    unknown = live_service.client.get("/v1/architectures", params={"space": "nb999"})
    assert unknown.status_code == 422 and "space" in error_fields(unknown)
