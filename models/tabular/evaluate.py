"""Regression metrics, the evaluate stage (`mlstack evaluate`, DVC's `evaluate`), and the plots
people look at: feature importance and predicted vs actual."""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mlstack.errors import InputError


@dataclass(frozen=True)
class Metrics:
    mae: float
    rmse: float
    r2: float

    def as_dict(self) -> dict[str, float]:
        return asdict(self)


def metrics(actual: pd.Series | np.ndarray, predicted: np.ndarray) -> Metrics:
    from sklearn.metrics import mean_absolute_error, r2_score, root_mean_squared_error

    actual = np.asarray(actual, dtype=float)
    predicted = np.asarray(predicted, dtype=float)
    return Metrics(
        mae=round(float(mean_absolute_error(actual, predicted)), 3),
        rmse=round(float(root_mean_squared_error(actual, predicted)), 3),
        r2=round(float(r2_score(actual, predicted)), 5),
    )


def load_model_folder(path: Path) -> Any:
    """An MLflow model folder (as `mlstack train --out` exports it), or an InputError that says so."""
    from mlflow.exceptions import MlflowException

    from models.tabular.registry import load_uri

    if not (path / "MLmodel").is_file():
        raise InputError(
            f"{path} is not an MLflow model folder (no MLmodel file). Export one with"
            " `mlstack train --out DIR`, or give the folder that `dvc repro` wrote."
        )
    try:
        return load_uri(str(path))
    except (MlflowException, OSError, ValueError) as exc:
        raise InputError(f"{path}: the MLflow model cannot be loaded ({str(exc).splitlines()[0]})") from None


def _pyplot():
    import matplotlib

    matplotlib.use("Agg")  # no display on servers and CI
    import matplotlib.pyplot as plt

    return plt


def feature_importance_figure(model, x: pd.DataFrame, y: pd.Series, seed: int, sample: int = 3000):
    """Permutation importance on held-out rows: gradient boosting has no built-in importances."""
    from sklearn.inspection import permutation_importance

    rows = x.sample(min(sample, len(x)), random_state=seed)
    result = permutation_importance(
        model, rows, y.loc[rows.index], n_repeats=3, random_state=seed, scoring="neg_mean_absolute_error"
    )
    order = np.argsort(result.importances_mean)
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(8, 6))
    ax.barh(np.array(x.columns)[order], result.importances_mean[order], xerr=result.importances_std[order])
    ax.set_xlabel("increase in MAE when shuffled (s)")
    ax.set_title("Permutation feature importance (validation)")
    fig.tight_layout()
    plt.close(fig)
    return fig


def predicted_vs_actual_figure(actual: pd.Series, predicted: np.ndarray):
    plt = _pyplot()
    fig, ax = plt.subplots(figsize=(6, 6))
    ax.scatter(actual, predicted, s=3, alpha=0.3)
    top = float(max(np.max(actual), np.max(predicted)))
    ax.plot([0, top], [0, top], color="black", linewidth=1)
    ax.set_xlabel("actual duration (s)")
    ax.set_ylabel("predicted duration (s)")
    ax.set_title("Predicted vs actual (test window)")
    fig.tight_layout()
    plt.close(fig)
    return fig


def evaluation_tables(
    actual: pd.Series, predicted: np.ndarray, requested_at: pd.Series
) -> dict[str, pd.DataFrame]:
    """What DVC plots and people read: every prediction, and the error by hour of day."""
    predictions = pd.DataFrame({"actual_s": np.asarray(actual, float), "predicted_s": np.round(predicted, 1)})
    hours = pd.to_datetime(requested_at).dt.hour.to_numpy()
    by_hour = (
        predictions.assign(
            hour=hours, abs_error_s=(predictions["predicted_s"] - predictions["actual_s"]).abs()
        )
        .groupby("hour", as_index=False)["abs_error_s"]
        .mean()
        .round(2)
        .rename(columns={"abs_error_s": "mae_s"})
    )
    return {"predictions": predictions, "error_by_hour": by_hour}


def write_evaluation(
    actual: pd.Series, predicted: np.ndarray, requested_at: pd.Series, metrics_path, plots_dir
) -> Metrics:
    """The evaluate stage's outputs: metrics JSON, plot data as CSV, and a predicted-vs-actual PNG."""
    from mlstack.io import write_json

    scores = metrics(actual, predicted)
    write_json({"test": scores.as_dict(), "rows": len(actual)}, metrics_path)
    plots_dir.mkdir(parents=True, exist_ok=True)
    for name, table in evaluation_tables(actual, predicted, requested_at).items():
        table.to_csv(plots_dir / f"{name}.csv", index=False)
    predicted_vs_actual_figure(actual, predicted).savefig(plots_dir / "predicted_vs_actual.png", dpi=100)
    return scores


def evaluate_folder(
    model_dir: Path, validated_dir: Path, metrics_path: Path, plots_dir: Path, split: dict[str, float]
) -> tuple[Metrics, int]:
    """Score an exported model folder on the held-out test window of the validated data, split by
    time as training split it, and write the stage's outputs; returns the scores and the rows."""
    from mlstack import features
    from mlstack.data import validation
    from models.tabular.train import features_of, split_by_time

    loaded = load_model_folder(model_dir)  # before the slow part: a wrong path fails at once
    trips = validation.read_validated(validated_dir)["trips"]
    frame = features.historical_features(features.feature_store(), trips)
    test = split_by_time(frame, **split).test
    predicted = loaded.predict(features_of(test))
    scores = write_evaluation(test[features.LABEL], predicted, test["requested_at"], metrics_path, plots_dir)
    return scores, len(test)


@dataclass(frozen=True)
class NewestWindow:
    """Every version's MAE on one window: the test window of the newest validated data."""

    start: str
    end: str
    rows: int
    mae: dict[str, float | None]  # None: the version has no model to load (a killed run's)


def score_on_newest_window(versions: list[str], validated_dir: Path, split: dict[str, float]) -> NewestWindow:
    """Score each registered version on the held-out window of the newest validated data, split by
    time as training splits it. Each version's gate MAE was measured on the window of its own
    day: only this puts them side by side."""
    from mlflow.exceptions import MlflowException

    from mlstack import features
    from mlstack.data import validation
    from models.tabular.registry import load
    from models.tabular.train import features_of, split_by_time

    trips = validation.read_validated(validated_dir)["trips"]
    test = split_by_time(features.historical_features(features.feature_store(), trips), **split).test
    x, actual = features_of(test), test[features.LABEL]
    mae: dict[str, float | None] = {}
    for version in versions:
        try:
            model = load(version)
        except (MlflowException, OSError):
            mae[version] = None
            continue
        mae[version] = metrics(actual, model.predict(x)).mae
    return NewestWindow(
        start=test["requested_at"].min().isoformat(timespec="seconds"),
        end=test["requested_at"].max().isoformat(timespec="seconds"),
        rows=len(test),
        mae=mae,
    )
