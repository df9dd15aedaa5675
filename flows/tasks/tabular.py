"""Tasks of the trip-duration model that training and retraining share: the point-in-time
training set, tuning and training with MLflow, and registration behind the champion gate."""

from __future__ import annotations

from typing import Any

import mlstack.bootstrap  # noqa: F401  (before prefect: sets its environment defaults)

import pandas as pd
from prefect import get_run_logger, task
from prefect.cache_policies import NONE

from mlstack import features, registry, tracking
from mlstack.features import LABEL
from models.tabular import registry as tabular_registry
from models.tabular.train import TrainedModel, features_of, train


@task(name="training-set", cache_policy=NONE)
def training_set(trips: pd.DataFrame) -> pd.DataFrame:
    frame = features.historical_features(features.feature_store(), trips)
    get_run_logger().info("training set: %d trips with point-in-time features", len(frame))
    return frame


@task(name="tune-and-train", cache_policy=NONE)
def tune_and_train(
    frame: pd.DataFrame,
    params: dict[str, Any],
    version: str,
    fixed: dict[str, Any] | None,
    start_from: dict[str, Any] | None = None,
    run_name: str = "train",
) -> TrainedModel:
    tracking.setup()
    log = get_run_logger()
    result = train(
        frame,
        space=params["search_space"],
        n_trials=params["n_trials"],
        seed=params["seed"],
        split=params["split"],
        fixed_params=fixed,
        data_version=version,
        run_name=run_name,
        on_trial=lambda n: log.info("trial %d/%d done", n + 1, params["n_trials"]),
        start_from=start_from,
    )
    log.info(
        "validation MAE %.1fs, test MAE %.1fs (run %s)", result.validation.mae, result.test.mae, result.run_id
    )
    return result


@task(name="register-and-gate", cache_policy=NONE)
def register_and_gate(result: TrainedModel, margin: float, promote: bool = True) -> registry.GateDecision:
    version = registry.register(result.model_uri, result.run_id)
    test = result.splits.test
    decision = tabular_registry.gate(version, features_of(test), test[LABEL], margin, promote_on_win=promote)
    get_run_logger().info(decision.summary())
    return decision
