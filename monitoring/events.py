"""The Prefect event monitoring emits on drift, as plain values: deployment triggers match it.

A trigger in prefect.yaml matches `mlstack.model.*` resources and the `mlstack.drift.detected`
event, and can pass payload fields (`{{ event.payload.share }}`) as flow parameters.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from mlstack.settings import MODEL_NAME
from monitoring.drift import DriftSummary

DRIFT_DETECTED = "mlstack.drift.detected"


def model_resource(version: str, model: str = MODEL_NAME) -> dict[str, str]:
    """The model as a Prefect event resource."""
    return {
        "prefect.resource.id": f"mlstack.model.{model}",
        "prefect.resource.name": model,
        "mlstack.model.version": version,
    }


def drift_payload(
    summary: DriftSummary, version: str, start: datetime, end: datetime, model: str = MODEL_NAME
) -> dict[str, Any]:
    plain = summary.model_dump(mode="json")
    return {
        "model": model,
        "version": version,
        "window_start": start.isoformat(),
        "window_end": end.isoformat(),
        "share": plain["drifted_share"],
        "dataset_drift": plain["dataset_drift"],
        "drifted_columns": plain["drifted_columns"],
        "scores": plain["scores"],
        "performance": plain["performance"],
        "reasons": plain["reasons"],
        "report": plain["reports"].get("drift", ""),
    }
