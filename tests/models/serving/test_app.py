"""The online API: predictions with features from Feast, fallbacks, validation, champion reload."""

from __future__ import annotations

import json
import socket
import threading
import time
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi.testclient import TestClient

from mlstack import registry, tracking
from mlstack.settings import MODEL_NAME, Settings
from models.serving.app import create_app

TRIP = {
    "driver_id": 5,
    "pickup_zone": 3,
    "dropoff_zone": 9,
    "distance_km": 7.5,
    "passenger_count": 2,
    "requested_at": "2026-09-06T12:00:00Z",
}
MALFORMED = [
    ({k: v for k, v in TRIP.items() if k != "distance_km"}, "distance_km", "missing"),
    ({**TRIP, "distance_km": "far"}, "distance_km", "float_parsing"),
    ({**TRIP, "distance_km": -3}, "distance_km", "greater_than"),
    ({**TRIP, "pickup_zone": 99}, "pickup_zone", "less_than_equal"),
    ({**TRIP, "requested_at": "2026-09-06T12:00:00"}, "requested_at", "timezone_aware"),
    ({**TRIP, "surge": 2.0}, "surge", "extra_forbidden"),
    # Past Feast's Int64 key: it failed the lookup of every request batched with it (503s).
    ({**TRIP, "driver_id": 10**30}, "driver_id", "less_than_equal"),
    ({**TRIP, "distance_km": float("nan")}, "distance_km", "finite_number"),  # was a 500
]


@pytest.fixture
def client(in_trained_home: Settings):
    with TestClient(create_app(in_trained_home)) as test_client:
        yield test_client


@pytest.fixture
def bare_client(mlstack_home: Path) -> TestClient:
    """The app without its lifespan (no champion loaded, no service): request validation runs
    before any handler, so a refused body needs nothing more."""
    return TestClient(create_app(Settings(home=mlstack_home)))


@pytest.mark.slow
def test_predict_returns_a_duration_and_the_champion_version(client: TestClient) -> None:
    assert client.get("/health").json() == {
        "status": "ok",
        "model": MODEL_NAME,
        "version": registry.alias_version(registry.CHAMPION),
    }
    body = client.post("/predict", json=TRIP).json()
    assert body["model_version"] == registry.alias_version(registry.CHAMPION)
    assert 60 < body["predicted_duration_s"] < 4 * 3600
    assert body["fallback"] == []
    longer = client.post("/predict", json={**TRIP, "distance_km": 20}).json()
    assert longer["predicted_duration_s"] > body["predicted_duration_s"]


@pytest.mark.slow
def test_unknown_driver_gets_the_documented_fallback(client: TestClient) -> None:
    response = client.post("/predict", json={**TRIP, "driver_id": 987_654})
    assert response.status_code == 200
    assert response.json()["fallback"] == ["driver"]
    assert (
        "fallback"
        in client.get("/openapi.json").json()["components"]["schemas"]["TripPrediction"]["properties"]
    )


@pytest.mark.parametrize(("payload", "field", "error"), MALFORMED)
def test_malformed_input_is_a_422_naming_the_field(
    bare_client: TestClient, payload, field: str, error: str
) -> None:
    body = json.dumps(payload)  # as a client may send it: NaN included
    response = bare_client.post("/predict", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422
    detail = response.json()["detail"]
    assert any(d["loc"][-1] == field and d["type"] == error for d in detail), detail


def test_a_failing_request_fails_alone_not_its_batch() -> None:
    """The work fails for any batch holding the bad request, as Feast's lookup did: the good
    requests that queued beside it still get their own answers, the bad one its own error."""
    import asyncio

    from models.serving.app import MicroBatcher, TripPrediction, TripRequest

    calls: list[int] = []

    def work(requests: list[TripRequest]) -> list[TripPrediction]:
        calls.append(len(requests))
        if any(r.driver_id == 666 for r in requests):
            raise RuntimeError("lookup failed for driver 666")
        return [
            TripPrediction(predicted_duration_s=r.driver_id, model_version="1", fallback=[]) for r in requests
        ]

    async def scenario() -> list[object]:
        batcher = MicroBatcher(work)
        runner = asyncio.create_task(batcher.run())
        ids = [1, 2, 666, 4]
        answers = await asyncio.gather(
            *(batcher.submit(TripRequest(**{**TRIP, "driver_id": i})) for i in ids), return_exceptions=True
        )
        runner.cancel()
        return answers

    answers = asyncio.run(scenario())
    assert [a.predicted_duration_s for a in answers if isinstance(a, TripPrediction)] == [1, 2, 4]
    assert [str(a) for a in answers if isinstance(a, Exception)] == ["lookup failed for driver 666"]
    assert calls[0] == 4, "the four were one batch first"


def test_not_json_is_a_422(bare_client: TestClient) -> None:
    response = bare_client.post("/predict", content=b"{nope", headers={"content-type": "application/json"})
    assert response.status_code == 422


@pytest.mark.slow
def test_requests_are_logged_with_their_features(client: TestClient, in_trained_home: Settings) -> None:
    import json

    log = in_trained_home.serving_log
    before = log.read_text().count("\n") if log.exists() else 0
    client.post("/predict", json=TRIP)
    lines = log.read_text().splitlines()
    assert len(lines) == before + 1
    record = json.loads(lines[-1])
    assert record["driver_id"] == 5 and record["distance_km"] == 7.5
    assert record["driver_hourly__avg_speed_kmh"] is not None and record["predicted_duration_s"] > 0


@pytest.mark.slow
def test_server_follows_the_champion_alias_without_restart(in_trained_home: Settings, monkeypatch) -> None:
    name = f"{MODEL_NAME}_reload_test"
    champion = registry.alias_version(registry.CHAMPION)
    source = registry.client().get_model_version(MODEL_NAME, champion)
    first = registry.register(source.source, source.run_id, name)
    second = registry.register(source.source, source.run_id, name)
    registry.promote(first, name=name)
    monkeypatch.setenv("MLSTACK_SERVING_RELOAD_S", "0.2")
    with TestClient(create_app(Settings(home=in_trained_home.home), model_name=name)) as client:
        assert client.post("/predict", json=TRIP).json()["model_version"] == first
        registry.promote(second, name=name)
        deadline = time.time() + 15
        while client.post("/predict", json=TRIP).json()["model_version"] != second:
            assert time.time() < deadline, "the server never picked up the new champion"
            time.sleep(0.1)
        registry.rollback(name)
        while client.post("/predict", json=TRIP).json()["model_version"] != first:
            assert time.time() < deadline, "the server never picked up the rollback"
            time.sleep(0.1)


@pytest.mark.slow
def test_real_uvicorn_on_loopback(in_trained_home: Settings) -> None:
    tracking.setup(in_trained_home)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    server = uvicorn.Server(uvicorn.Config(create_app(in_trained_home), port=port, log_level="warning"))
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    try:
        deadline = time.time() + 60
        while not server.started:
            assert time.time() < deadline and thread.is_alive(), "uvicorn did not start"
            time.sleep(0.1)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=10) as http:
            ok = http.post("/predict", json=TRIP)
            assert ok.status_code == 200 and ok.json()["predicted_duration_s"] > 0
            for payload, field, _ in MALFORMED:  # as a client may send them: NaN included
                bad = http.post(
                    "/predict", content=json.dumps(payload), headers={"content-type": "application/json"}
                )
                assert bad.status_code == 422 and field in bad.text
            assert http.get("/openapi.json").json()["paths"]["/predict"]["post"]
            many = [http.post("/predict", json={**TRIP, "driver_id": d}) for d in range(1, 30)]
            assert all(r.status_code == 200 for r in many)
    finally:
        server.should_exit = True
        thread.join(timeout=30)


@pytest.mark.slow
def test_metrics_count_requests_errors_and_latency(client: TestClient) -> None:
    """Counted as deltas: importing Feast sets PROMETHEUS_MULTIPROC_DIR, and prometheus_client then
    keeps each series in a per-process file that every app of this test process adds to."""

    def counts() -> dict[str, float]:
        text = client.get("/metrics").text
        assert "/metrics" not in text.split("http_requests_total", 1)[-1].split("\n# ", 1)[0]
        wanted = (
            'http_requests_total{handler="/predict",method="POST",status="2xx"}',
            'http_requests_total{handler="/predict",method="POST",status="4xx"}',
            'http_request_duration_seconds_count{handler="/predict",method="POST"}',
        )
        series = [line.rsplit(" ", 1) for line in text.splitlines() if line and not line.startswith("#")]
        found = {name: float(value) for name, value in series}
        return {name: found.get(name, 0.0) for name in wanted}

    # One of each first: a series shows once this app has counted into it (its value is then
    # the process's file's, with every earlier app's requests in it).
    client.post("/predict", json=TRIP)
    client.post("/predict", json={"driver_id": "x"})
    before = counts()
    assert client.post("/predict", json=TRIP).status_code == 200
    assert client.post("/predict", json={"driver_id": "x"}).status_code == 422
    after = counts()
    assert [after[name] - before[name] for name in before] == [1.0, 1.0, 2.0]
