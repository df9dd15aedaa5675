"""The current window: batch rows from Postgres, online requests from the serving log, labels."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import pytest


@pytest.mark.slow
def test_the_window_joins_batch_rows_online_requests_and_labels(in_trained_home) -> None:
    from fastapi.testclient import TestClient

    from mlstack import features
    from mlstack.data import validation
    from mlstack.timewindow import TimeWindow
    from models.serving.app import create_app
    from models.tabular.predict import load_champion, score, window_trips, write_predictions
    from monitoring.window import read_window

    settings = in_trained_home
    start, end = datetime(2026, 9, 6, 12, tzinfo=UTC), datetime(2026, 9, 7, tzinfo=UTC)
    trips = validation.read_validated(settings.validated_dir)["trips"]
    batch = score(features.feature_store(settings), window_trips(trips, start, end), load_champion())
    write_predictions(batch, start, end, settings)
    before = read_window(settings, TimeWindow(start=start, end=end))
    request = {"driver_id": 3, "pickup_zone": 4, "dropoff_zone": 9, "distance_km": 5.0}
    with TestClient(create_app()) as client:
        for minute in range(3):
            at = (start + timedelta(hours=2, minutes=minute)).isoformat()
            assert client.post("/predict", json={**request, "requested_at": at}).status_code == 200
        outside = (end + timedelta(hours=1)).isoformat()
        assert client.post("/predict", json={**request, "requested_at": outside}).status_code == 200

    window = read_window(settings, TimeWindow(start=start, end=end))
    counts = window["source"].value_counts().to_dict()
    assert counts["batch"] == len(batch) and counts["online"] == (before["source"] == "online").sum() + 3
    labelled = window[window["source"] == "batch"].set_index("trip_id")
    expected = trips.set_index("trip_id").loc[labelled.index, "duration_s"]
    pd.testing.assert_series_equal(labelled["duration_s"], expected, check_names=False)
    assert window.loc[window["source"] == "online", "duration_s"].isna().all()
    assert window["requested_at"].between(start, end, inclusive="left").all()
    online = window[window["source"] == "online"].tail(3)
    assert (online["distance_km"] == 5.0).all() and online["prediction"].gt(0).all()
