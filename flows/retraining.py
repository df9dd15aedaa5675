"""Retraining flow: the champion's recipe on data up to now, gated on the newest labelled window.

Drift monitoring runs it (or a deployment triggered by `mlstack.drift.detected` does). It
trains on every labelled trip requested before `until` with the champion's best params (or a
short re-tune that starts from them), holds out the most recent labelled hours, registers the
result as challenger and gates it against the champion on those hours. Either way an alert
carries the decision and both scores; `mlstack model rollback` undoes a bad promotion.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Any

import mlstack.bootstrap  # noqa: F401  (before prefect: sets its environment defaults)

import pandas as pd
from prefect import flow, get_run_logger, task
from prefect.cache_policies import NONE
from prefect.states import Failed, State
from pydantic import BaseModel, Field

from flows.tasks.registry import settle_killed_runs
from flows.tasks.tabular import register_and_gate, training_set, tune_and_train
from mlstack import registry, tracking
from mlstack.data import validation
from mlstack.features import LABEL
from mlstack.params import data_version, load_params
from mlstack.settings import MODEL_NAME, get_settings
from mlstack.timewindow import utc
from models.tabular.train import Splits, params_from_run, split_at
from monitoring import alerts
from monitoring.alerts import Delivery

# A drift trigger fills the parameters from an event's payload. The server checks them against
# the schema before it creates a run, and it checks patterns but not formats: these patterns are
# what keeps a malformed payload from starting a run.
ISO_INSTANT = r"^\d{4}-\d{2}-\d{2}([T ]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?(Z|[+-]\d{2}:?\d{2})?$"


class RetrainingParams(BaseModel):
    model: str = Field(
        default=MODEL_NAME,
        pattern=r"^[A-Za-z][A-Za-z0-9_.-]*$",
        description="The registered model to retrain; a drift event names it.",
    )
    version: str | None = Field(
        default=None,
        pattern=r"^[0-9]+$",
        description="The version whose drift asked for this run, when a drift event did.",
    )
    until: datetime | None = Field(
        default=None,
        description="Train on labelled trips requested before this instant. Default: all.",
        json_schema_extra={"pattern": ISO_INSTANT},
    )
    n_trials: int | None = Field(
        default=None,
        ge=0,
        description="Optuna trials from the champion's params; 0 reuses them."
        " Default: MLSTACK_MONITORING_RETRAIN_TRIALS.",
    )
    reason: str = Field(default="manual", description="Why retraining runs; the alert repeats it.")
    validated_dir: Path | None = Field(
        default=None, description="Validated data folder. Default: validated/ in the data dir."
    )


class RetrainingResult(BaseModel):
    version: str = Field(description="The retrained registry version.")
    champion_before: str
    promoted: bool
    reason: str = Field(description="Why the gate promoted it or kept the champion.")
    challenger_mae: float
    champion_mae: float | None
    holdout: str = Field(description="The labelled window both models were scored on.")
    trigger: str
    run_id: str
    alerts: list[Delivery] = Field(default_factory=list)


def holdout_splits(frame: pd.DataFrame, until: pd.Timestamp, hours: float) -> Splits:
    """Test on the last `hours` before `until`, validate on the `hours` before those, train on
    everything earlier: the gate then scores both models on the newest labelled data."""
    span = pd.Timedelta(hours=hours)
    return split_at(frame, until - 2 * span, until - span)


@task(name="labelled-trips", cache_policy=NONE)
def labelled_trips(validated_dir: Path, until: datetime | None) -> tuple[pd.DataFrame, pd.Timestamp]:
    trips = validation.read_validated(validated_dir)["trips"]
    trips = trips[trips[LABEL].notna()]
    newest = trips["requested_at"].max() + pd.Timedelta(seconds=1)
    cutoff = newest if until is None else min(utc(until), newest)
    trips = trips[trips["requested_at"] < cutoff]
    get_run_logger().info("%d labelled trips requested before %s", len(trips), cutoff)
    return trips, cutoff


@task(name="champion-params", cache_policy=NONE)
def champion_params(space: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    from mlflow import MlflowClient

    tracking.setup()
    version = registry.alias_version(registry.CHAMPION)
    if version is None:
        raise registry.RegistryError(f"{MODEL_NAME} has no champion to retrain from: run `mlstack train`")
    logged = MlflowClient().get_run(registry.run_of(version)).data.params
    return version, params_from_run(logged, space)


@flow(name="retraining", log_prints=True)
def retraining_flow(params: RetrainingParams = RetrainingParams()) -> RetrainingResult | State:
    """Retrain on labelled data before `until` (default: all), gate, alert with the decision."""
    settings = get_settings()
    validated_dir = params.validated_dir or settings.validated_dir
    n_trials = settings.monitoring.retrain_trials if params.n_trials is None else params.n_trials
    hours = settings.monitoring.retrain_holdout_hours
    train = load_params()["train"]
    settle_killed_runs()
    if params.model != MODEL_NAME:
        return Failed(message=f"unknown model {params.model!r}: this project registers {MODEL_NAME!r}")
    try:
        champion, best = champion_params(train["search_space"])
        if params.version and params.version != champion:
            get_run_logger().info(
                "v%s drifted; the champion is now v%s: retraining from it", params.version, champion
            )
        trips, cutoff = labelled_trips(validated_dir, params.until)
        holdout_splits(trips, cutoff, hours)  # too little data: fail before Feast
    except (registry.RegistryError, ValueError) as exc:
        return Failed(message=str(exc))
    frame = training_set(trips)
    splits = holdout_splits(frame, cutoff, hours)
    result = tune_and_train(
        frame,
        {**train, "n_trials": n_trials, "split": splits},
        data_version(validated_dir),
        fixed=None if n_trials else best,
        start_from=best,
        run_name="retrain",
    )
    decision = register_and_gate(result, settings.tracking.promotion_margin)
    holdout = " to ".join(splits.window("test"))
    deliveries = alerts.send(alerts.retraining_alert(decision, params.reason, holdout), settings)
    for failed in (d for d in deliveries if not d.ok):
        get_run_logger().warning("alert to %s failed: %s", failed.target, failed.error)
    return RetrainingResult(
        version=decision.challenger,
        champion_before=champion,
        promoted=decision.promoted,
        reason=decision.reason,
        challenger_mae=decision.challenger_mae,
        champion_mae=decision.champion_mae,
        holdout=holdout,
        trigger=params.reason,
        run_id=result.run_id,
        alerts=deliveries,
    )


if __name__ == "__main__":
    retraining_flow()
