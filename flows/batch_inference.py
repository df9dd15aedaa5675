"""Batch inference: score one window of trips with models:/trip_duration@champion.

Features come from Feast's offline store, point in time; predictions go to parquet and to the
`trip_predictions` table in Postgres with the model version on every row. Rerunning a window
replaces its rows, so retries are safe.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

import mlstack.bootstrap  # noqa: F401  (before prefect: sets its environment defaults)

import pandas as pd
from prefect import flow, get_run_logger, task, unmapped
from prefect.cache_policies import NONE
from pydantic import BaseModel, Field

from flows.tasks.retry import transient_only
from flows.tasks.runners import task_runner
from mlstack import features, registry, tracking
from mlstack.data import validation
from mlstack.settings import MODEL_NAME, get_settings
from mlstack.timewindow import TimeWindow
from models.tabular.predict import load_version, partitions, score, window_trips, write_predictions


class BatchParams(TimeWindow):
    validated_dir: Path | None = Field(
        default=None, description="Validated data folder. Default: validated/ in the data dir."
    )


class BatchResult(BaseModel):
    rows: int = Field(description="Predictions written.")
    parquet: Path = Field(description="The window's predictions file.")
    model_versions: list[str] = Field(description="The registry versions that scored them.")


@task(name="select-trips", cache_policy=NONE)
def select_trips(start: datetime, end: datetime, validated_dir: Path) -> tuple[pd.DataFrame, str]:
    """The window's trips, and the champion version that will score all of them."""
    tracking.setup()
    trips = window_trips(validation.read_validated(validated_dir)["trips"], start, end)
    version = registry.alias_version(registry.CHAMPION)
    if version is None:
        raise registry.RegistryError(f"{MODEL_NAME} has no champion yet: run `mlstack train` first")
    return trips, version


@task(name="score-partition", cache_policy=NONE, retries=1, retry_condition_fn=transient_only)
def score_partition(trips: pd.DataFrame, version: str) -> pd.DataFrame:
    tracking.setup()
    predictions = score(features.feature_store(), trips, load_version(version))
    get_run_logger().info(
        "scored %d trips of %s with v%s", len(predictions), f"{trips['requested_at'].min():%Y-%m-%d}", version
    )
    return predictions


@task(
    name="write-predictions",
    cache_policy=NONE,
    retries=2,
    retry_delay_seconds=2,
    retry_condition_fn=transient_only,
)
def write(predictions: pd.DataFrame, start: datetime, end: datetime) -> Path:
    return write_predictions(predictions, start, end, get_settings())


@flow(name="batch-inference", log_prints=True, task_runner=task_runner())
def batch_inference_flow(params: BatchParams) -> BatchResult:
    """Score trips requested in [start, end), a day per mapped task, and store the predictions
    idempotently."""
    validated_dir = params.validated_dir or get_settings().validated_dir
    trips, version = select_trips(params.start, params.end, validated_dir)
    scored = score_partition.map(partitions(trips), unmapped(version))
    predictions = pd.concat([future.result() for future in scored], ignore_index=True)
    get_run_logger().info("scored %d trips in %d partitions with v%s", len(predictions), len(scored), version)
    path = write(predictions, params.start, params.end)
    versions = sorted(set(predictions["model_version"]))
    return BatchResult(rows=len(predictions), parquet=path, model_versions=versions)


if __name__ == "__main__":
    batch_inference_flow(BatchParams(start=datetime(2026, 9, 22), end=datetime(2026, 9, 29)))
