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

from flows.training import register_and_gate, training_set, tune_and_train
from mlstack import features, tracking
from mlstack.features import LABEL
from mlstack.params import data_version, load_params
from mlstack.settings import MODEL_NAME, get_settings
from models.tabular import registry
from models.tabular.train import Splits, params_from_run, split_at
from monitoring import alerts
from monitoring.window import utc


def holdout_splits(frame: pd.DataFrame, until: pd.Timestamp, hours: float) -> Splits:
    """Test on the last `hours` before `until`, validate on the `hours` before those, train on
    everything earlier: the gate then scores both models on the newest labelled data."""
    span = pd.Timedelta(hours=hours)
    return split_at(frame, until - 2 * span, until - span)


@task(name="labelled-trips", cache_policy=NONE)
def labelled_trips(validated_dir: Path, until: datetime | None) -> tuple[pd.DataFrame, pd.Timestamp]:
    trips = features.read_validated(validated_dir)["trips"]
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
def retraining_flow(
    until: datetime | None = None,
    n_trials: int | None = None,
    reason: str = "manual",
    validated_dir: Path | None = None,
) -> dict[str, Any] | State:
    """Retrain on labelled data before `until` (default: all), gate, alert with the decision."""
    settings = get_settings()
    validated_dir = validated_dir or settings.validated_dir
    n_trials = settings.retrain_trials if n_trials is None else n_trials
    params = load_params()["train"]
    try:
        champion, best = champion_params(params["search_space"])
        trips, cutoff = labelled_trips(validated_dir, until)
        holdout_splits(trips, cutoff, settings.retrain_holdout_hours)  # too little data: fail before Feast
    except (registry.RegistryError, ValueError) as exc:
        return Failed(message=str(exc))
    frame = training_set(trips)
    splits = holdout_splits(frame, cutoff, settings.retrain_holdout_hours)
    result = tune_and_train(
        frame,
        {**params, "n_trials": n_trials, "split": splits},
        data_version(validated_dir),
        fixed=None if n_trials else best,
        start_from=best,
        run_name="retrain",
    )
    decision = register_and_gate(result, settings.promotion_margin)
    deliveries = alerts.send(decision_alert(decision, reason, splits), settings)
    for failed in (d for d in deliveries if not d.ok):
        get_run_logger().warning("alert to %s failed: %s", failed.target, failed.error)
    return {
        "version": decision.challenger,
        "champion_before": champion,
        "promoted": decision.promoted,
        "reason": decision.reason,
        "challenger_mae": decision.challenger_mae,
        "champion_mae": decision.champion_mae,
        "holdout": " to ".join(splits.window("test")),
        "trigger": reason,
        "run_id": result.run_id,
        "alerts": [d.__dict__ for d in deliveries],
    }


def decision_alert(decision: registry.GateDecision, reason: str, splits: Splits) -> alerts.Alert:
    verdict = "promoted to champion" if decision.promoted else "not promoted; the champion stays"
    champion = f"v{decision.champion}" if decision.champion else "none"
    champion_mae = "n/a" if decision.champion_mae is None else f"{decision.champion_mae:.1f}s"
    return alerts.Alert(
        kind="retraining",
        model=MODEL_NAME,
        version=decision.challenger,
        title=f"{MODEL_NAME}: retrained v{decision.challenger} {verdict}",
        body=(
            f"Retrained because: {reason}. Holdout {' to '.join(splits.window('test'))}: challenger"
            f" MAE {decision.challenger_mae:.1f}s, champion {champion} MAE {champion_mae}."
            f" {decision.reason}. Undo with `mlstack model rollback`."
        ),
        details={
            "promoted": decision.promoted,
            "challenger_mae": decision.challenger_mae,
            "champion": decision.champion,
            "champion_mae": decision.champion_mae,
            "trigger": reason,
        },
    )


if __name__ == "__main__":
    retraining_flow()
