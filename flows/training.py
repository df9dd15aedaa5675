"""Training flow: point-in-time training set from Feast, Optuna-tuned gradient boosting tracked
in MLflow, registration as challenger, and the champion gate.

Every trial is a nested MLflow run under one parent run, which holds the model, its signature,
the plots and the training dataset (with its digest and DVC data version). The new version
becomes champion only if it beats the current one on the same held-out window by the margin
in settings.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlstack.bootstrap  # noqa: F401  (before prefect: sets its environment defaults)

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NONE

from mlstack import features, tracking
from mlstack.features import LABEL
from mlstack.params import data_version, load_params
from mlstack.settings import MODEL_NAME, get_settings
from models.tabular import registry
from models.tabular.train import TrainingResult, features_of, train


@task(name="training-set", cache_policy=NONE)
def training_set(trips):
    frame = features.historical_features(features.feature_store(), trips)
    get_run_logger().info("training set: %d trips with point-in-time features", len(frame))
    return frame


@task(name="tune-and-train", cache_policy=NONE)
def tune_and_train(
    frame,
    params: dict[str, Any],
    version: str,
    fixed: dict[str, Any] | None,
    start_from: dict[str, Any] | None = None,
    run_name: str = "train",
) -> TrainingResult:
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
def register_and_gate(result: TrainingResult, margin: float) -> registry.GateDecision:
    version = registry.register(result.model_uri, result.run_id)
    test = result.splits.test
    decision = registry.gate(version, features_of(test), test[LABEL], margin)
    get_run_logger().info(decision.summary())
    return decision


@flow(name="training", log_prints=True)
def training_flow(
    n_trials: int | None = None,
    fixed_params: dict[str, Any] | None = None,
    validated_dir: Path | None = None,
) -> dict[str, Any]:
    """Train, register as challenger, gate against the champion. `fixed_params` skips tuning."""
    settings = get_settings()
    validated_dir = validated_dir or settings.validated_dir
    params = load_params()["train"]
    if n_trials is not None:
        params = {**params, "n_trials": n_trials}
    frame = training_set(features.read_validated(validated_dir)["trips"])
    result = tune_and_train(frame, params, data_version(validated_dir), fixed_params)
    decision = register_and_gate(result, settings.promotion_margin)
    create_markdown_artifact(
        key="training-summary",
        markdown=_summary(result, decision),
        description=f"{MODEL_NAME} v{decision.challenger}: {decision.summary()}",
    )
    return {
        "run_id": result.run_id,
        "version": decision.challenger,
        "promoted": decision.promoted,
        "reason": decision.reason,
        "val_mae": result.validation.mae,
        "test_mae": result.test.mae,
        "params": result.params,
    }


def _summary(result: TrainingResult, decision: registry.GateDecision) -> str:
    rows = "\n".join(
        f"| {name} | {m.mae:.1f} | {m.rmse:.1f} | {m.r2:.3f} |"
        for name, m in (("validation", result.validation), ("test", result.test))
    )
    params = ", ".join(f"`{k}={v}`" for k, v in result.params.items())
    return (
        f"## {MODEL_NAME} v{decision.challenger}\n\n"
        f"**Gate:** {decision.summary()}\n\n"
        f"| split | MAE (s) | RMSE (s) | R² |\n|---|---|---|---|\n{rows}\n\n"
        f"**Best params:** {params}\n\nMLflow run: `{result.run_id}`\n"
    )


if __name__ == "__main__":
    training_flow()
