"""The drift event as deployment triggers see it."""

from __future__ import annotations

from datetime import UTC, datetime

from monitoring import events
from tests.monitoring.test_alerts import SUMMARY


def test_the_event_names_the_model_and_carries_the_findings() -> None:
    resource = events.model_resource("3")
    assert resource["prefect.resource.id"] == "mlstack.model.trip_duration"
    assert resource["mlstack.model.version"] == "3"
    start, end = datetime(2026, 9, 15, tzinfo=UTC), datetime(2026, 9, 18, tzinfo=UTC)
    payload = events.drift_payload(SUMMARY, "3", start, end)
    assert payload["share"] == 0.375 and payload["dataset_drift"] is True
    assert payload["window_start"] == "2026-09-15T00:00:00+00:00" and payload["report"] == "/r/drift.html"
    assert payload["scores"] == {"distance_km": 0.0, "pickup_zone": 0.001}
