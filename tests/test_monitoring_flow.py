"""The monitoring loop under a real Prefect server: drift found, alert written, event emitted,
a model retrained, registered and gated; and windows that cannot be judged raise no alert."""

from __future__ import annotations

import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pandas as pd
import pytest
from conftest import GOOD_PARAMS

from flows.batch_inference import batch_inference_flow
from flows.data import data_flow
from flows.features import features_flow
from flows.monitoring import EVENT, monitoring_flow
from flows.retraining import retraining_flow
from flows.training import training_flow
from mlstack import postgres
from mlstack.settings import get_settings
from models.tabular import registry
from monitoring import alerts

WINDOW_START = datetime(2026, 9, 7, tzinfo=UTC)
WINDOW_END = WINDOW_START + timedelta(days=3)


def _completed(state):
    assert state.is_completed(), state.message
    return state.result()


def _drift_events(since: datetime, timeout_s: float = 30.0) -> list:
    """Events reach the server through Prefect's background worker: poll until they land."""
    from prefect.client.orchestration import get_client
    from prefect.events.filters import EventFilter, EventNameFilter, EventOccurredFilter

    query = EventFilter(event=EventNameFilter(name=[EVENT]), occurred=EventOccurredFilter(since=since))
    deadline = time.monotonic() + timeout_s
    with get_client(sync_client=True) as client:
        while True:
            events = client.read_events(filter=query, limit=50).events  # the server caps it at 50
            if events or time.monotonic() > deadline:
                return events
            time.sleep(0.5)


@pytest.mark.slow
def test_drift_window_alerts_emits_the_event_and_retrains(
    prefect_harness, mlstack_home: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLSTACK_RETRAIN_ON_DRIFT", "true")
    monkeypatch.setenv("MLSTACK_ALERT_URLS", "json://127.0.0.1:9/down")  # nobody listens there
    _completed(data_flow(start=date(2026, 9, 1), days=6, return_state=True))
    _completed(features_flow(return_state=True))
    first = _completed(training_flow(fixed_params=GOOD_PARAMS, return_state=True))
    assert first["version"] == "1" and first["promoted"]

    # Three days of the airport-shuttle scenario arrive, are scored in batch, then monitored.
    _completed(data_flow("covariate_drift", WINDOW_START.date(), days=3, append=True, return_state=True))
    _completed(features_flow(return_state=True))
    scored = _completed(batch_inference_flow(WINDOW_START, WINDOW_END, return_state=True))
    since = datetime.now(UTC) - timedelta(seconds=5)
    result = _completed(monitoring_flow(WINDOW_START, WINDOW_END, return_state=True))

    assert (
        result["status"] == "drift" and result["dataset_drift"] and result["current_rows"] == scored["rows"]
    )
    assert "distance_km" in result["drifted_columns"]
    assert Path(result["reports"]["drift"]).is_file() and Path(result["reports"]["performance"]).is_file()

    # Alerts: the local sink got both the drift alert and the retraining decision; the dead
    # apprise target is reported as failed and did not stop anything.
    settings = get_settings()
    drift_alert, retrain_alert = alerts.read_log(settings)
    assert drift_alert["kind"] == "drift" and drift_alert["version"] == "1"
    assert drift_alert["details"]["drifted_columns"] == result["drifted_columns"]
    assert drift_alert["report"] == result["reports"]["drift"]
    sink, dead = result["alerts"]
    assert sink["ok"] and not dead["ok"] and dead["error"]

    # The event, as the Prefect server stored it.
    [event] = _drift_events(since)
    assert event.resource.id == "mlstack.model.trip_duration"
    assert event.resource["mlstack.model.version"] == "1"
    assert event.payload["version"] == "1" and event.payload["share"] == result["drifted_share"]
    assert event.payload["scores"] == result["scores"]
    assert str(event.id) == result["event"]

    # Retraining: a new version registered, gated on the newest labelled day, decision alerted.
    retrained = result["retraining"]
    assert retrained["version"] == "2" and retrained["champion_before"] == "1"
    assert retrained["promoted"], retrained["reason"]  # v1 never saw long airport trips
    assert retrained["challenger_mae"] < retrained["champion_mae"]
    status = registry.status()
    assert status["champion"] == "2"
    assert [v["gate"] for v in status["versions"]] == ["promoted", "promoted"]
    assert retrain_alert["kind"] == "retraining" and retrain_alert["details"]["promoted"] is True
    assert pd.Timestamp(retrained["holdout"].split(" to ")[1]) < pd.Timestamp(WINDOW_END)

    # The reports sit on v1's MLflow run too.
    from mlflow import MlflowClient

    logged = MlflowClient().list_artifacts(registry.run_of("1"), "monitoring/v1")
    assert logged, "monitoring reports were not logged to the champion's run"

    # A bad promotion is one command away from undone.
    assert registry.rollback() == ("1", "2")
    postgres.stop_embedded(settings.pg_dir)


@pytest.mark.slow
def test_an_empty_window_is_skipped_without_alerts(prefect_harness, in_trained_home) -> None:
    before = alerts.read_log(in_trained_home)
    start = datetime(2030, 1, 1, tzinfo=UTC)
    result = _completed(monitoring_flow(start, start + timedelta(days=1), return_state=True))
    assert result["status"] == "skipped" and "holds 0 prediction" in result["reason"]
    assert result["alerts"] == [] and alerts.read_log(in_trained_home) == before


def test_retraining_without_a_champion_fails_with_what_to_do(prefect_harness, mlstack_home: Path) -> None:
    state = retraining_flow(return_state=True)
    assert state.is_failed() and "mlstack train" in state.message


def test_the_window_joins_batch_rows_online_requests_and_labels(in_trained_home) -> None:
    from fastapi.testclient import TestClient

    from mlstack import features
    from models.serving.app import create_app
    from models.tabular.predict import load_champion, score, window_trips, write_predictions
    from monitoring.window import read_window

    settings = in_trained_home
    start, end = datetime(2026, 9, 6, 12, tzinfo=UTC), datetime(2026, 9, 7, tzinfo=UTC)
    trips = features.read_validated(settings.validated_dir)["trips"]
    batch = score(features.feature_store(settings), window_trips(trips, start, end), load_champion())
    write_predictions(batch, start, end, settings)
    before = read_window(settings, start, end)
    request = {"driver_id": 3, "pickup_zone": 4, "dropoff_zone": 9, "distance_km": 5.0}
    with TestClient(create_app()) as client:
        for minute in range(3):
            at = (start + timedelta(hours=2, minutes=minute)).isoformat()
            assert client.post("/predict", json={**request, "requested_at": at}).status_code == 200
        outside = (end + timedelta(hours=1)).isoformat()
        assert client.post("/predict", json={**request, "requested_at": outside}).status_code == 200

    window = read_window(settings, start, end)
    counts = window["source"].value_counts().to_dict()
    assert counts["batch"] == len(batch) and counts["online"] == (before["source"] == "online").sum() + 3
    labelled = window[window["source"] == "batch"].set_index("trip_id")
    expected = trips.set_index("trip_id").loc[labelled.index, "duration_s"]
    pd.testing.assert_series_equal(labelled["duration_s"], expected, check_names=False)
    assert window.loc[window["source"] == "online", "duration_s"].isna().all()
    assert window["requested_at"].between(start, end, inclusive="left").all()
    online = window[window["source"] == "online"].tail(3)
    assert (online["distance_km"] == 5.0).all() and online["prediction"].gt(0).all()
