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

import pandas as pd
from prefect import flow
from prefect.artifacts import create_markdown_artifact
from pydantic import BaseModel, Field

from flows.tasks.registry import settle_killed_runs
from flows.tasks.tabular import register_and_gate, training_set, tune_and_train
from mlstack import registry
from mlstack.data import validation
from mlstack.params import data_version, load_params
from mlstack.settings import MODEL_NAME, get_settings
from models.tabular.train import TrainedModel


class TrainingParams(BaseModel):
    n_trials: int | None = Field(
        default=None, ge=1, description="Optuna trials. Default: train.n_trials in params.yaml."
    )
    fixed_params: dict[str, Any] | None = Field(
        default=None, description="Hyperparameters to train with as they are, skipping the search."
    )
    validated_dir: Path | None = Field(
        default=None, description="Validated data folder. Default: validated/ in the data dir."
    )
    promote: bool = Field(
        default=True,
        description="Promote the model when it wins the gate. False registers a challenger only"
        " (the DVC stage: an experiment never changes what is served); `mlstack model promote` then.",
    )


class TrainingResult(BaseModel):
    run_id: str = Field(description="The MLflow run holding the model, its plots and its data.")
    version: str = Field(description="The registry version, now the challenger.")
    promoted: bool
    passed: bool = Field(default=False, description="It won the gate but was left as challenger.")
    reason: str = Field(description="Why the gate promoted it or kept the champion.")
    val_mae: float
    test_mae: float
    params: dict[str, Any] = Field(description="The hyperparameters it was trained with.")


@flow(name="training", log_prints=True)
def training_flow(params: TrainingParams = TrainingParams()) -> TrainingResult:
    """Train, register as challenger, gate against the champion."""
    settings = get_settings()
    validated_dir = params.validated_dir or settings.validated_dir
    train = load_params()["train"]
    if params.n_trials is not None:
        train = {**train, "n_trials": params.n_trials}
    settle_killed_runs()
    frame = training_set(validation.read_validated(validated_dir)["trips"])
    result = tune_and_train(frame, train, data_version(validated_dir), params.fixed_params)
    decision = register_and_gate(result, settings.tracking.promotion_margin, params.promote)
    create_markdown_artifact(
        key="training-summary",
        markdown=summary_markdown(result, decision),
        description=f"{MODEL_NAME} v{decision.challenger}: {decision.summary()}",
    )
    return TrainingResult(
        run_id=result.run_id,
        version=decision.challenger,
        promoted=decision.promoted,
        passed=decision.passed,
        reason=decision.reason,
        val_mae=result.validation.mae,
        test_mae=result.test.mae,
        params=result.params,
    )


def summary_markdown(result: TrainedModel, decision: registry.GateDecision) -> str:
    scores = pd.DataFrame(
        [
            {"split": name, **m.as_dict()}
            for name, m in (("validation", result.validation), ("test", result.test))
        ]
    ).rename(columns={"mae": "MAE (s)", "rmse": "RMSE (s)", "r2": "R²"})
    params = ", ".join(f"`{k}={v}`" for k, v in result.params.items())
    return (
        f"## {MODEL_NAME} v{decision.challenger}\n\n"
        f"**Gate:** {decision.summary()}\n\n"
        f"{scores.to_markdown(index=False, floatfmt='.3f')}\n\n"
        f"**Best params:** {params}\n\nMLflow run: `{result.run_id}`\n"
    )


if __name__ == "__main__":
    training_flow()
