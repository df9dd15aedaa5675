"""Monitoring flow: judge a window of live predictions against the champion's training snapshot.

It reads the window's inputs and predictions (batch from Postgres, online from the serving log),
runs Evidently's drift report and, once labels have arrived, its regression report; saves both
as HTML, logs them to the champion's MLflow run and links them from a Prefect artifact. When
something is wrong it alerts (apprise plus a local JSON-lines sink), emits the Prefect event
`mlstack.drift.detected` for deployment triggers, and with `retrain` (or the setting
`MLSTACK_RETRAIN_ON_DRIFT`) runs the retraining flow as a subflow.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

import mlstack.bootstrap  # noqa: F401  (before prefect: sets its environment defaults)

import pandas as pd
from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NONE
from prefect.events import emit_event
from prefect.states import Failed, State

from flows.retraining import retraining_flow
from mlstack import tracking
from mlstack.settings import MODEL_NAME, Settings, get_settings
from models.tabular import registry
from monitoring import alerts
from monitoring.drift import DriftCheck, Thresholds, WindowError, WindowTooSmall, check
from monitoring.window import read_window

EVENT = "mlstack.drift.detected"


def resource(version: str) -> dict[str, str]:
    """The model as a Prefect event resource; triggers match `mlstack.model.*`."""
    return {
        "prefect.resource.id": f"mlstack.model.{MODEL_NAME}",
        "prefect.resource.name": MODEL_NAME,
        "mlstack.model.version": version,
    }


@task(name="load-reference", cache_policy=NONE)
def load_reference(version: str) -> pd.DataFrame:
    return registry.reference(version)


@task(name="load-window", cache_policy=NONE)
def load_window(start: datetime, end: datetime) -> pd.DataFrame:
    window = read_window(get_settings(), start, end)
    get_run_logger().info(
        "window %s to %s: %d predictions (%d batch, %d online), %d labelled",
        start,
        end,
        len(window),
        int((window["source"] == "batch").sum()),
        int((window["source"] == "online").sum()),
        int(window["duration_s"].notna().sum()),
    )
    return window


@task(name="check-drift", cache_policy=NONE)
def run_checks(reference: pd.DataFrame, window: pd.DataFrame, settings: Settings, folder: str) -> DriftCheck:
    return check(
        reference, window, Thresholds.from_settings(settings), settings.monitoring_reports_dir / folder
    )


@task(name="log-reports", cache_policy=NONE)
def log_reports(result: DriftCheck, version: str, folder: str) -> None:
    from mlflow import MlflowClient

    run_id = registry.run_of(version)
    for path in result.reports.values():
        MlflowClient().log_artifact(run_id, str(path), artifact_path=f"monitoring/{folder}")


def window_folder(version: str, start: datetime, end: datetime) -> str:
    stamp = "%Y%m%dT%H%M"
    return f"v{version}/{start:{stamp}}_{end:{stamp}}"


def drift_alert(result: DriftCheck, version: str, start: datetime, end: datetime) -> alerts.Alert:
    return alerts.Alert(
        kind="drift",
        model=MODEL_NAME,
        version=version,
        title=f"{MODEL_NAME} v{version}: drift in {start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M}",
        body="\n".join(result.reasons()),
        details=result.as_dict(),
        report=str(result.reports.get("drift", "")) or None,
    )


def summary_markdown(result: DriftCheck, version: str, start: datetime, end: datetime) -> str:
    verdict = "**drift detected**" if result.alert else "no drift"
    rows = "\n".join(
        f"| {c.column} | {c.method} | {c.score:.4f} | {c.threshold:g} | {'yes' if c.drifted else ''} |"
        for c in result.columns
    )
    perf = result.performance
    perf_line = (
        "Labels have not arrived for enough of this window yet."
        if perf is None
        else f"MAE {perf.current_mae:.1f}s on {perf.labelled_rows} labelled trips vs reference"
        f" {perf.reference_mae:.1f}s (x{perf.ratio:.2f}, alert above x{1 + perf.tolerance:.2f})."
    )
    reports = "\n".join(f"- {name}: [{path.name}](file://{path})" for name, path in result.reports.items())
    reasons = "\n".join(f"- {r}" for r in result.reasons()) or "- none"
    return (
        f"## {MODEL_NAME} v{version}, {start:%Y-%m-%d %H:%M} to {end:%Y-%m-%d %H:%M}: {verdict}\n\n"
        f"{result.current_rows} predictions against {result.reference_rows} training rows;"
        f" {len(result.drifted_columns)} of {len(result.columns)} columns drifted"
        f" ({result.drifted_share:.0%}, dataset drift at {result.drift_share:.0%}).\n\n"
        f"**Findings:**\n{reasons}\n\n**Performance:** {perf_line}\n\n"
        f"| column | method | score | threshold | drifted |\n|---|---|---|---|---|\n{rows}\n\n"
        f"**Reports:**\n{reports}\n"
    )


@flow(name="monitoring", log_prints=True)
def monitoring_flow(start: datetime, end: datetime, retrain: bool | None = None) -> dict[str, Any] | State:
    """Check [start, end) for drift; alert, emit the event and optionally retrain when found."""
    settings = get_settings()
    log = get_run_logger()
    retrain = settings.retrain_on_drift if retrain is None else retrain
    tracking.setup(settings)
    version = registry.alias_version(registry.CHAMPION)
    if version is None:
        return Failed(message=f"{MODEL_NAME} has no champion to monitor: run `mlstack train` first")
    window = load_window(start, end)
    # The reference, its error included, is the champion's: predictions by other versions
    # would be judged against the wrong model.
    others = window["model_version"].astype(str) != version
    if others.any():
        log.info("%d predictions by other versions are left out", int(others.sum()))
    window = window[~others]
    if len(window) < settings.min_window_rows:  # a quiet window is not a failed run
        reason = str(WindowTooSmall.of(len(window), settings.min_window_rows))
        if others.any():
            reason += (
                f" ({int(others.sum())} more were scored by other versions; rescore to judge v{version})"
            )
        log.warning("window skipped: %s", reason)
        return {"status": "skipped", "reason": reason, "version": version, "alerts": []}
    folder = window_folder(version, start, end)
    try:
        result = run_checks(load_reference(version), window, settings, folder)
    except WindowError as exc:
        return Failed(message=str(exc))
    log_reports(result, version, folder)
    create_markdown_artifact(
        key="drift-report",
        markdown=summary_markdown(result, version, start, end),
        description=f"{MODEL_NAME} v{version}: {'drift' if result.alert else 'no drift'}",
    )
    summary = result.as_dict()
    outcome: dict[str, Any] = {
        "status": "drift" if result.alert else "ok",
        "version": version,
        "window": [start.isoformat(), end.isoformat()],
        **summary,
        "alerts": [],
        "event": None,
        "retraining": None,
    }
    if not result.alert:
        log.info("no drift: %d of %d columns drifted", len(result.drifted_columns), len(result.columns))
        return outcome
    for reason in result.reasons():
        log.warning(reason)
    deliveries = alerts.send(drift_alert(result, version, start, end), settings)
    for failed in (d for d in deliveries if not d.ok):
        log.warning("alert to %s failed: %s", failed.target, failed.error)
    outcome["alerts"] = [d.__dict__ for d in deliveries]
    event = emit_event(
        event=EVENT,
        resource=resource(version),
        payload={
            "model": MODEL_NAME,
            "version": version,
            "window_start": start.isoformat(),
            "window_end": end.isoformat(),
            "share": summary["drifted_share"],
            "dataset_drift": result.dataset_drift,
            "drifted_columns": result.drifted_columns,
            "scores": summary["scores"],
            "performance": summary["performance"],
            "reasons": summary["reasons"],
            "report": summary["reports"].get("drift", ""),
        },
    )
    outcome["event"] = None if event is None else str(event.id)
    if retrain:
        state = retraining_flow(until=end, reason="; ".join(result.reasons()), return_state=True)
        outcome["retraining"] = state.result() if state.is_completed() else {"failed": state.message}
    return outcome


if __name__ == "__main__":
    from datetime import UTC

    monitoring_flow(datetime(2026, 9, 13, tzinfo=UTC), datetime(2026, 9, 15, tzinfo=UTC))
