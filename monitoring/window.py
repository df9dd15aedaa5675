"""The current window: what the model saw and said in [start, end), from batch and online inference.

A window arrives as a `TimeWindow`: in UTC and never empty, checked once where it was made
(options, a deployment's parameters), not again here.

Batch predictions come from Postgres (`trip_predictions`, inputs beside each prediction); online
ones from the serving log. Labels are joined from validated trips once they have arrived, so a
window can be judged on drift at once and on error later.
"""

from __future__ import annotations

import json

import pandas as pd

from mlstack import postgres
from mlstack.data import predictions as prediction_tables
from mlstack.features import LABEL, MODEL_FEATURES
from mlstack.settings import Settings
from mlstack.timewindow import TimeWindow

PREDICTION = "prediction"  # the name the reference snapshot gives the model's output
META_COLUMNS = ["trip_id", "requested_at", "model_version", "source"]


def batch_window(settings: Settings, window: TimeWindow) -> pd.DataFrame:
    """Batch predictions requested in [start, end), with their inputs."""
    columns = ["trip_id", "requested_at", "model_version", *MODEL_FEATURES, "predicted_duration_s"]
    with postgres.connect(settings) as conn:
        prediction_tables.migrate(conn)
        cursor = conn.execute(
            f"SELECT {', '.join(columns)} FROM trip_predictions"
            " WHERE requested_at >= %s AND requested_at < %s ORDER BY requested_at",
            (window.start, window.end),
        )
        rows = cursor.fetchall()
    frame = pd.DataFrame(rows, columns=columns)
    frame[MODEL_FEATURES] = frame[MODEL_FEATURES].astype("float64")
    frame["requested_at"] = pd.to_datetime(frame["requested_at"], utc=True)
    return frame.rename(columns={"predicted_duration_s": PREDICTION}).assign(source="batch")


def online_window(settings: Settings, window: TimeWindow) -> pd.DataFrame:
    """Online predictions requested in [start, end), read from the serving log."""
    path = settings.serving_log
    records = []
    if path.is_file():
        lo, hi = pd.Timestamp(window.start), pd.Timestamp(window.end)
        with path.open() as handle:
            for line in handle:
                record = json.loads(line)
                if lo <= pd.Timestamp(record["requested_at"]).tz_convert("UTC") < hi:
                    records.append(record)
    frame = pd.DataFrame.from_records(
        records, columns=["requested_at", "model_version", *MODEL_FEATURES, "predicted_duration_s"]
    )
    frame[MODEL_FEATURES] = frame[MODEL_FEATURES].astype("float64")
    frame["requested_at"] = pd.to_datetime(frame["requested_at"], utc=True)
    frame.insert(0, "trip_id", None)  # online requests carry no trip id, so no label joins them
    return frame.rename(columns={"predicted_duration_s": PREDICTION}).assign(source="online")


def with_labels(window: pd.DataFrame, trips: pd.DataFrame | None) -> pd.DataFrame:
    """Join the observed duration to each prediction whose trip has finished and been validated."""
    if trips is None or window.empty:
        return window.assign(**{LABEL: float("nan")})
    labels = trips.set_index("trip_id")[LABEL]
    return window.assign(**{LABEL: window["trip_id"].map(labels).astype("float64")})


def read_window(settings: Settings, window: TimeWindow) -> pd.DataFrame:
    """Every prediction requested in the window, batch and online, labelled where possible."""
    sources = (batch_window(settings, window), online_window(settings, window))
    # Empty frames are left out of the concat (pandas deprecates typing from them), but an
    # empty window still keeps its columns.
    predictions = pd.concat([s for s in sources if len(s)] or sources[:1], ignore_index=True)
    trips_path = settings.validated_dir / "trips.parquet"
    trips = pd.read_parquet(trips_path, columns=["trip_id", LABEL]) if trips_path.is_file() else None
    return with_labels(predictions, trips)
