"""The monitoring loop under a real Prefect server: drift found, alert written, event emitted,
a model retrained, registered and gated; and windows that cannot be judged raise no alert."""

from __future__ import annotations

import re
import time
from datetime import UTC, date, datetime, timedelta

import pandas as pd
import pytest

from flows.batch_inference import BatchParams, batch_inference_flow
from flows.data import DataParams, data_flow
from flows.features import features_flow
from flows.monitoring import MonitoringParams, monitoring_flow
from mlstack import registry
from mlstack.settings import Settings, get_settings
from monitoring import alerts, workspace
from monitoring.events import DRIFT_DETECTED
from tests.conftest import small

WINDOW_START = datetime(2026, 9, 7, tzinfo=UTC)
WINDOW_END = WINDOW_START + timedelta(days=3)


def _completed(state):
    assert state.is_completed(), state.message
    return state.result()


def _drift_events(since: datetime, event_id: str, timeout_s: float = 30.0) -> list:
    """The drift events since `since` with this id. Events reach the server through Prefect's
    background worker: poll until it lands. By id, as another test's event may have landed in
    the same few seconds on the session's server."""
    from prefect.client.orchestration import get_client
    from prefect.events.filters import EventFilter, EventNameFilter, EventOccurredFilter

    query = EventFilter(
        event=EventNameFilter(name=[DRIFT_DETECTED]), occurred=EventOccurredFilter(since=since)
    )
    deadline = time.monotonic() + timeout_s
    with get_client(sync_client=True) as client:
        while True:
            events = client.read_events(filter=query, limit=50).events  # the server caps it at 50
            events = [event for event in events if str(event.id) == event_id]
            if events or time.monotonic() > deadline:
                return events
            time.sleep(0.5)


def arriving(scenario: str, start: date, days: int, append: bool) -> DataParams:
    """A window of the trained home's own size (tests.conftest.SMALL: its drivers, its volume)."""
    return DataParams(window=small(scenario=scenario, start=start, days=days), append=append)


@pytest.mark.slow
def test_drift_window_alerts_emits_the_event_and_retrains(
    prefect_harness, own_trained_home: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    """From a copy of the session's trained home: six normal days from 2026-09-01 and champion
    v1 (the training flow itself runs in `mlstack train` in the demo's and the README walk's
    tests)."""
    monkeypatch.setenv("MLSTACK_MONITORING_RETRAIN_ON_DRIFT", "true")
    monkeypatch.setenv("MLSTACK_MONITORING_ALERT_URLS", "json://127.0.0.1:9/down")  # nobody listens there
    assert registry.status()["champion"] == "1"

    # Three days of the airport-shuttle scenario arrive, are scored in batch, then monitored.
    window = {"start": WINDOW_START, "end": WINDOW_END}
    _completed(data_flow(arriving("covariate_drift", WINDOW_START.date(), 3, append=True), return_state=True))
    _completed(features_flow(return_state=True))
    scored = _completed(batch_inference_flow(BatchParams(**window), return_state=True))
    since = datetime.now(UTC) - timedelta(seconds=5)
    monitored = monitoring_flow(MonitoringParams(**window), return_state=True)
    result = _completed(monitored)
    drift = result.drift

    assert result.status == "drift" and drift.dataset_drift and drift.current_rows == scored.rows
    assert "distance_km" in drift.drifted_columns
    assert drift.reports["drift"].is_file() and drift.reports["performance"].is_file()
    # The window is a point in the Evidently workspace, at its end, with the check's numbers.
    (point,) = workspace.history(own_trained_home.evidently_dir, "trip_duration")
    assert len(result.snapshots) == 3 and point.end == WINDOW_END and point.version == "1"
    assert point.reference_mae == pytest.approx(drift.performance.reference_mae)
    assert point.drifted_share == pytest.approx(drift.drifted_share, abs=1e-4)  # the summary rounds
    assert point.rows == drift.current_rows

    # Alerts: the local sink got both the drift alert and the retraining decision; the dead
    # apprise target is reported as failed and did not stop anything.
    drift_alert, retrain_alert = alerts.read_log(own_trained_home)
    assert drift_alert["kind"] == "drift" and drift_alert["version"] == "1"
    assert drift_alert["details"]["drifted_columns"] == drift.drifted_columns
    assert drift_alert["report"] == str(drift.reports["drift"])
    sink, dead = result.alerts
    assert sink.ok and not dead.ok and dead.error

    # The event, as the Prefect server stored it.
    [event] = _drift_events(since, result.event)
    assert event.resource.id == "mlstack.model.trip_duration"
    assert event.resource["mlstack.model.version"] == "1"
    assert event.payload["version"] == "1" and event.payload["share"] == drift.drifted_share
    assert event.payload["scores"] == drift.scores
    assert str(event.id) == result.event

    # Retraining: a new version registered, gated on the newest labelled day, decision alerted.
    retrained = result.retraining
    assert retrained.version == "2" and retrained.champion_before == "1"
    assert retrained.promoted, retrained.reason  # v1 never saw long airport trips
    assert retrained.challenger_mae < retrained.champion_mae
    status = registry.status()
    assert status["champion"] == "2"
    assert [v["gate"] for v in status["versions"]] == ["promoted", "promoted"]
    assert retrain_alert["kind"] == "retraining" and retrain_alert["details"]["promoted"] is True
    assert pd.Timestamp(retrained.holdout.split(" to ")[1]) < pd.Timestamp(WINDOW_END)

    # The reports sit on v1's MLflow run too.
    from mlflow import MlflowClient

    logged = MlflowClient().list_artifacts(registry.run_of("1"), "monitoring/v1")
    assert logged, "monitoring reports were not logged to the champion's run"
    # ...and the Prefect UI's report links to each one's page in the MLflow UI, not to a file://
    # a browser will not open from a web page.
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterKey

    with get_client(sync_client=True) as client:
        # This run's: the session's server holds the reports of other tests' windows too.
        [report] = client.read_artifacts(
            artifact_filter=ArtifactFilter(
                key=ArtifactFilterKey(any_=["drift-report"]),
                flow_run_id=ArtifactFilterFlowRunId(any_=[monitored.state_details.flow_run_id]),
            )
        )
    links = re.findall(
        r"\]\((http://127\.0\.0\.1:\d+/#/experiments/\d+/runs/(\w+)/artifactPath/([^)]+))\)", report.data
    )
    assert {path.rsplit("/", 1)[-1] for _, _, path in links} == {
        "drift.html",
        "performance.html",
        "summary.json",
    }
    stored = {
        f.path
        for folder in MlflowClient().list_artifacts(registry.run_of("1"), "monitoring/v1")
        for f in MlflowClient().list_artifacts(registry.run_of("1"), folder.path)
    }
    assert all(run == registry.run_of("1") and path in stored for _, run, path in links), (links, stored)
    assert "file://" not in report.data

    # A bad promotion is one command away from undone.
    assert registry.rollback() == ("1", "2")


@pytest.mark.slow
def test_an_empty_window_is_skipped_without_alerts(prefect_harness, in_trained_home) -> None:
    before = alerts.read_log(in_trained_home)
    start = datetime(2030, 1, 1, tzinfo=UTC)
    params = MonitoringParams(start=start, end=start + timedelta(days=1))
    result = _completed(monitoring_flow(params, return_state=True))
    assert result.status == "skipped" and "holds 0 prediction" in result.skipped_because
    assert result.alerts == [] and alerts.read_log(in_trained_home) == before


def test_under_a_deployment_drift_leaves_retraining_to_the_trigger(monkeypatch: pytest.MonkeyPatch) -> None:
    import logging

    from flows.monitoring import retrains_here

    log = logging.getLogger("test")
    monkeypatch.setenv("MLSTACK_MONITORING_RETRAIN_ON_DRIFT", "true")
    assert retrains_here(None, get_settings(), log) is True
    assert retrains_here(False, get_settings(), log) is False
    # Prefect's runtime reads these variables in place of a real deployment run's context.
    monkeypatch.setenv("PREFECT__RUNTIME__DEPLOYMENT__ID", "0f6a1d6e-8f5c-4a1e-9d2b-1c7f3e5a9b10")
    assert retrains_here(None, get_settings(), log) is False
    assert retrains_here(True, get_settings(), log) is False
