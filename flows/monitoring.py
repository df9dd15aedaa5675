"""Monitoring flow: judge a window of live predictions against the champion's training snapshot.

It reads the window's inputs and predictions (batch from Postgres, online from the serving log),
runs Evidently's drift report and, once labels have arrived, its regression report; saves both
as HTML, logs them to the champion's MLflow run, links them from a Prefect artifact, and adds the
window's snapshots to the Evidently workspace (a dashboard across windows). When
something is wrong it alerts (apprise plus a local JSON-lines sink), emits the Prefect event
`mlstack.drift.detected` for deployment triggers, and with `retrain` (or the setting
`MLSTACK_MONITORING_RETRAIN_ON_DRIFT`) runs the retraining flow as a subflow, except under a deployment,
where prefect.yaml's trigger on that event runs the retraining deployment instead.
"""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Literal

import mlstack.bootstrap  # noqa: F401  (before prefect: sets its environment defaults)

import pandas as pd
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NONE
from prefect.events import emit_event
from prefect.runtime import deployment
from prefect.states import Failed, State
from pydantic import BaseModel, Field

from flows.retraining import RetrainingParams, RetrainingResult, retraining_flow
from mlstack import registry, tracking
from mlstack.settings import MODEL_NAME, Settings, get_settings
from mlstack.timewindow import TimeWindow
from models.tabular import registry as tabular_registry
from monitoring import alerts, events, workspace
from monitoring.alerts import Delivery
from monitoring.drift import (
    MONITORED,
    DriftCheck,
    DriftSummary,
    Thresholds,
    WindowError,
    WindowTooSmall,
    champion_window,
    check,
    summary_markdown,
)
from monitoring.window import read_window


class MonitoringParams(TimeWindow):
    retrain: bool | None = Field(
        default=None, description="Retrain when drift is found. Default: MLSTACK_MONITORING_RETRAIN_ON_DRIFT."
    )


class MonitoringResult(BaseModel):
    status: Literal["ok", "drift", "skipped"]
    version: str = Field(description="The champion whose predictions were judged.")
    start: datetime
    end: datetime
    skipped_because: str | None = Field(default=None, description="Why the window was not judged.")
    drift: DriftSummary | None = Field(default=None, description="What the checks found.")
    snapshots: list[str] = Field(
        default_factory=list, description="The window's snapshot ids in the Evidently workspace."
    )
    alerts: list[Delivery] = Field(default_factory=list)
    event: str | None = Field(default=None, description="The id of the drift event emitted.")
    retraining: RetrainingResult | None = None
    retraining_failed: str | None = None


@task(name="load-reference", cache_policy=NONE)
def load_reference(version: str) -> pd.DataFrame:
    return tabular_registry.reference(version)


@task(name="load-window", cache_policy=NONE)
def load_window(bounds: TimeWindow) -> pd.DataFrame:
    window = read_window(get_settings(), bounds)
    get_run_logger().info(
        "window %s to %s: %d predictions (%d batch, %d online), %d labelled",
        bounds.start,
        bounds.end,
        len(window),
        int((window["source"] == "batch").sum()),
        int((window["source"] == "online").sum()),
        int(window["duration_s"].notna().sum()),
    )
    return window


@task(name="check-drift", cache_policy=NONE)
def run_checks(
    reference: pd.DataFrame,
    window: pd.DataFrame,
    settings: Settings,
    folder: str,
    tags: list[str],
    end: datetime,
) -> DriftCheck:
    return check(
        reference,
        window,
        Thresholds.from_settings(settings),
        settings.monitoring_reports_dir / folder,
        timestamp=end,
        tags=tags,
    )


@task(name="record-window", cache_policy=NONE)
def record_window(result: DriftCheck, settings: Settings, tags: list[str]) -> list[str]:
    """The window's snapshots into the Evidently workspace: the dashboard across windows."""
    return workspace.add_window(settings.evidently_dir, MODEL_NAME, tags, result.snapshots, MONITORED)


@task(name="log-reports", cache_policy=NONE)
def log_reports(result: DriftCheck, version: str, folder: str) -> dict[str, str]:
    """The reports into the MLflow run that trained the version; returns where a browser opens
    each (a `file://` link from the Prefect UI opens nowhere)."""
    from mlflow import MlflowClient

    run_id = registry.run_of(version)
    links = {}
    for name, path in result.reports.items():
        MlflowClient().log_artifact(run_id, str(path), artifact_path=f"monitoring/{folder}")
        links[name] = tracking.artifact_url(run_id, f"monitoring/{folder}/{path.name}")
    return links


def window_folder(version: str, start: datetime, end: datetime) -> str:
    stamp = "%Y%m%dT%H%M"
    return f"v{version}/{start:{stamp}}_{end:{stamp}}"


def retrains_here(
    asked: bool | None, settings: Settings, log: logging.Logger | logging.LoggerAdapter
) -> bool:
    """Whether drift runs the retraining subflow: as asked (default: MLSTACK_MONITORING_RETRAIN_ON_DRIFT),
    except under a deployment, where prefect.yaml's trigger on the drift event starts the
    retraining deployment, with its concurrency limit and cooldown; a subflow would train twice."""
    retrain = settings.monitoring.retrain_on_drift if asked is None else asked
    if retrain and deployment.id:
        log.info("retraining is left to the deployment triggered by %s", events.DRIFT_DETECTED)
        return False
    return retrain


@flow(name="monitoring", log_prints=True)
def monitoring_flow(params: MonitoringParams) -> MonitoringResult | State:
    """Check [start, end) for drift; alert, emit the event and optionally retrain when found."""
    settings = get_settings()
    log = get_run_logger()
    start, end = params.start, params.end  # a TimeWindow: UTC and non-empty already
    retrain = retrains_here(params.retrain, settings, log)
    tracking.setup(settings)
    version = registry.alias_version(registry.CHAMPION)
    if version is None:
        return Failed(message=f"{MODEL_NAME} has no champion to monitor: run `mlstack train` first")
    outcome = MonitoringResult(status="skipped", version=version, start=start, end=end)
    try:
        window, by_others = champion_window(load_window(params), version, settings.monitoring.min_window_rows)
    except WindowTooSmall as exc:  # a quiet window is not a failed run
        log.warning("window skipped: %s", exc)
        return outcome.model_copy(update={"skipped_because": str(exc)})
    if by_others:
        log.info("%d predictions by other versions are left out", by_others)
    folder = window_folder(version, start, end)
    tags = workspace.window_tags(version, start, end)
    try:
        result = run_checks(load_reference(version), window, settings, folder, tags, end)
    except WindowError as exc:
        return Failed(message=str(exc))
    links = log_reports(result, version, folder)
    snapshots = record_window(result, settings, tags)
    summary = result.summary()
    create_markdown_artifact(
        key="drift-report",
        markdown=summary_markdown(result, MODEL_NAME, version, start, end, links),
        description=f"{MODEL_NAME} v{version}: {'drift' if result.alert else 'no drift'}",
    )
    outcome = outcome.model_copy(
        update={"status": "drift" if result.alert else "ok", "drift": summary, "snapshots": snapshots}
    )
    if not result.alert:
        log.info(
            "no drift: %d of %d columns drifted", len(summary.drifted_columns), summary.monitored_columns
        )
        return outcome
    for reason in summary.reasons:
        log.warning(reason)
    deliveries = alerts.send(alerts.drift_alert(summary, version, start, end), settings)
    for failed in (d for d in deliveries if not d.ok):
        log.warning("alert to %s failed: %s", failed.target, failed.error)
    event = emit_event(
        event=events.DRIFT_DETECTED,
        resource=events.model_resource(version),
        payload=events.drift_payload(summary, version, start, end),
    )
    outcome = outcome.model_copy(
        update={"alerts": deliveries, "event": None if event is None else str(event.id)}
    )
    if retrain:
        why = "; ".join(summary.reasons)
        state = retraining_flow(RetrainingParams(until=end, reason=why), return_state=True)
        if state.is_completed():
            outcome = outcome.model_copy(update={"retraining": state.result()})
        else:
            outcome = outcome.model_copy(update={"retraining_failed": state.message})
    return outcome


if __name__ == "__main__":
    monitoring_flow(MonitoringParams(start=datetime(2026, 9, 13), end=datetime(2026, 9, 15)))
