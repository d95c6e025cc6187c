"""Health, readiness and docs of the real service over real HTTP."""

from conftest import LiveServer


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
