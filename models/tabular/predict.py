"""Batch inference: score a window of trips with the champion, write parquet and Postgres.

Idempotent per window: the window's rows are replaced in one transaction, so a rerun (or a
rerun after a crash) never duplicates or loses a prediction.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

import pandas as pd

from mlstack import locks, postgres, registry
from mlstack.data import predictions as prediction_tables
from mlstack.errors import InputError
from mlstack.features import MODEL_FEATURES, historical_features
from mlstack.io import write_parquet
from mlstack.settings import MODEL_NAME, Settings
from mlstack.timewindow import TimeWindow, utc
from models.tabular.registry import load
from models.tabular.train import features_of

# The model's inputs travel with each prediction: drift monitoring reads them back.
COLUMNS = ["trip_id", "requested_at", "driver_id", *MODEL_FEATURES, "predicted_duration_s", "model_version"]


@dataclass(frozen=True)
class Champion:
    model: object
    version: str


def load_champion(name: str = MODEL_NAME) -> Champion:
    version = registry.alias_version(registry.CHAMPION, name)
    if version is None:
        raise registry.RegistryError(f"{name} has no champion yet: run `mlstack train` first")
    return load_version(version, name)


def load_version(version: str, name: str = MODEL_NAME) -> Champion:
    """One registry version, as the champion it was when a run resolved the alias: every
    partition of a window is scored by the same version, even if the alias moves meanwhile."""
    return Champion(load(version, name), version)


def partitions(trips: pd.DataFrame, freq: str = "D") -> list[pd.DataFrame]:
    """The trips cut by request time into `freq` periods (UTC days by default), oldest first:
    the units that batch scoring maps over."""
    periods = trips["requested_at"].dt.tz_convert("UTC").dt.floor(freq)
    return [part for _, part in trips.groupby(periods, sort=True) if len(part)]


def window_trips(trips: pd.DataFrame, start: datetime, end: datetime) -> pd.DataFrame:
    """Trips requested in [start, end); a window with none is an InputError naming what there is."""
    window = TimeWindow(start=start, end=end)
    start_ts, end_ts = utc(window.start), utc(window.end)
    chosen = trips[(trips["requested_at"] >= start_ts) & (trips["requested_at"] < end_ts)]
    if chosen.empty:
        held = (
            f"the validated data holds trips from {trips['requested_at'].min():%Y-%m-%d %H:%M} to"
            f" {trips['requested_at'].max():%Y-%m-%d %H:%M}"
            if len(trips)
            else "the validated data holds no trips"
        )
        raise InputError(
            f"no trips were requested from {start_ts:%Y-%m-%d %H:%M} to {end_ts:%Y-%m-%d %H:%M} UTC;"
            f" {held}. Pick a window inside it, or land that window with `mlstack data flow --append`."
        )
    return chosen


def score(store, trips: pd.DataFrame, champion: Champion) -> pd.DataFrame:
    return predictions(historical_features(store, trips), champion)


def predictions(frame: pd.DataFrame, champion: Champion) -> pd.DataFrame:
    """COLUMNS for trips whose features are in `frame` (as Feast names them)."""
    inputs = features_of(frame)
    return pd.concat(
        [
            frame[["trip_id", "requested_at"]],
            frame["driver_id"].astype("int64"),
            inputs,
            pd.DataFrame(
                {
                    "predicted_duration_s": champion.model.predict(inputs).round(1),
                    "model_version": champion.version,
                },
                index=frame.index,
            ),
        ],
        axis=1,
    )


def window_path(settings: Settings, start: datetime, end: datetime) -> Path:
    stamp = "%Y%m%dT%H%M%S"
    return settings.data_dir / "predictions" / f"{start:{stamp}}_{end:{stamp}}.parquet"


def write_predictions(predictions: pd.DataFrame, start: datetime, end: datetime, settings: Settings) -> Path:
    """Replace the window's rows in Postgres and its parquet file.

    The file is written inside the transaction, under the table's lock: if writing it fails, the
    rows roll back; if the commit fails after it, a rerun rewrites both. Either way no row is lost
    or doubled, and concurrent writers of one window take turns.
    """
    path = window_path(settings, start, end)
    with postgres.connect(settings) as conn:
        prediction_tables.migrate(conn)
        with conn.transaction():
            # Without it, a second writer of the window COPYs between our DELETE and COMMIT and
            # fails on the primary key; with it, writers take turns and the last one's rows stand.
            locks.table_lock(conn, prediction_tables.DOMAIN)
            conn.execute(
                "DELETE FROM trip_predictions WHERE requested_at >= %s AND requested_at < %s", (start, end)
            )
            with conn.cursor().copy(f"COPY trip_predictions ({', '.join(COLUMNS)}) FROM STDIN") as copy:
                rows = predictions[COLUMNS].astype(object)
                for row in rows.where(rows.notna(), None).itertuples(index=False):  # NaN -> NULL
                    copy.write_row(row)
            write_parquet(predictions[COLUMNS], path)
    return path
