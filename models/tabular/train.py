"""Train the trip-duration model: time-ordered splits, Optuna search, one MLflow run per trial.

The training frame comes from Feast's point-in-time join (`mlstack.features.historical_features`),
so no feature value from after a trip was requested can reach its row.
"""

from __future__ import annotations

import hashlib
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd
from sklearn.ensemble import HistGradientBoostingRegressor

from mlstack.features import TRIPS, TabularSpec
from mlstack.tracking import owner_tags
from models.tabular.evaluate import Metrics, feature_importance_figure, metrics, predicted_vs_actual_figure

PIP_REQUIREMENTS = ["scikit-learn", "pandas", "numpy"]  # inference needs no more than this
# skops (MLflow's safe sklearn format) refuses these unless named. We write the files ourselves,
# so they are trusted; these are exactly the types a HistGradientBoostingRegressor holds.
SKOPS_TRUSTED_TYPES = [
    "functools.partial",
    "sklearn.ensemble._hist_gradient_boosting.predictor.TreePredictor",
    "sklearn.utils.validation.check_array",
]

SYSTEM_METRICS_INTERVAL_S = 1.0


@dataclass(frozen=True)
class Splits:
    train: pd.DataFrame
    validation: pd.DataFrame
    test: pd.DataFrame
    time: str = TRIPS.time

    def window(self, name: str) -> tuple[str, str]:
        frame = getattr(self, name)
        return str(frame[self.time].min()), str(frame[self.time].max())


def split_by_time(
    frame: pd.DataFrame, train: float = 0.7, validation: float = 0.15, time: str = TRIPS.time
) -> Splits:
    """Cut at two instants so every validation trip comes after every training trip, and so on.

    Random splits would let the model see the future of the very hours it is tested on.
    """
    if not 0 < train < train + validation < 1:
        raise ValueError(
            f"split shares must satisfy 0 < train < train+validation < 1, got {train}, {validation}"
        )
    times = frame[time]
    return split_at(frame, times.quantile(train), times.quantile(train + validation), time)


def split_at(
    frame: pd.DataFrame, validation_start: pd.Timestamp, test_start: pd.Timestamp, time: str = TRIPS.time
) -> Splits:
    """Train before `validation_start`, validate up to `test_start`, test from it on."""
    frame = frame.sort_values(time, kind="stable").reset_index(drop=True)
    times = frame[time]
    parts = Splits(
        frame[times < validation_start],
        frame[(times >= validation_start) & (times < test_start)],
        frame[times >= test_start],
        time,
    )
    if min(len(parts.train), len(parts.validation), len(parts.test)) == 0:
        raise ValueError(
            f"too little data to split by time ({len(parts.train)} train, {len(parts.validation)}"
            f" validation, {len(parts.test)} test rows); generate more days"
        )
    return parts


def features_of(frame: pd.DataFrame, spec: TabularSpec = TRIPS) -> pd.DataFrame:
    """The model's input: the spec's features as float64 (missing values stay NaN; the model takes them)."""
    return frame[list(spec.features)].astype("float64")


def make_model(params: dict[str, Any], seed: int, spec: TabularSpec = TRIPS) -> HistGradientBoostingRegressor:
    return HistGradientBoostingRegressor(
        loss="absolute_error" if params.get("loss") == "absolute_error" else "squared_error",
        learning_rate=params["learning_rate"],
        max_iter=int(params["max_iter"]),
        max_leaf_nodes=int(params["max_leaf_nodes"]),
        min_samples_leaf=int(params["min_samples_leaf"]),
        l2_regularization=params["l2_regularization"],
        categorical_features=list(spec.categorical) or None,
        early_stopping=False,
        random_state=seed,
    )


def fit(
    frame: pd.DataFrame, params: dict[str, Any], seed: int, spec: TabularSpec = TRIPS
) -> HistGradientBoostingRegressor:
    return make_model(params, seed, spec).fit(features_of(frame, spec), frame[spec.label])


def params_from_run(logged: dict[str, str], space: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """A run's logged hyperparameters (MLflow keeps strings) typed back as the search space says."""
    missing = sorted(set(space) - set(logged))
    if missing:
        raise ValueError(f"the run did not log {', '.join(missing)}; retrain it with `mlstack train`")
    typed: dict[str, Any] = {}
    for name, spec in space.items():
        value = logged[name]
        if "choices" in spec:
            typed[name] = next(c for c in spec["choices"] if str(c) == value)
        elif isinstance(spec["low"], int) and isinstance(spec["high"], int):
            typed[name] = int(value)
        else:
            typed[name] = float(value)
    return typed


def suggest(trial: Any, space: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """Draw one point of the search space declared in params.yaml (ints stay ints)."""
    params: dict[str, Any] = {}
    for name, spec in space.items():
        if "choices" in spec:
            params[name] = trial.suggest_categorical(name, spec["choices"])
        elif isinstance(spec["low"], int) and isinstance(spec["high"], int):
            params[name] = trial.suggest_int(name, spec["low"], spec["high"], log=spec.get("log", False))
        else:
            params[name] = trial.suggest_float(name, spec["low"], spec["high"], log=spec.get("log", False))
    return params


@dataclass
class TrainedModel:
    run_id: str
    model_uri: str
    model: HistGradientBoostingRegressor
    params: dict[str, Any]
    validation: Metrics
    test: Metrics
    splits: Splits
    trials: list[dict[str, Any]] = field(default_factory=list)


def frame_digest(frame: pd.DataFrame) -> str:
    return hashlib.sha256(pd.util.hash_pandas_object(frame, index=False).to_numpy().tobytes()).hexdigest()[
        :16
    ]


def train(
    frame: pd.DataFrame,
    space: dict[str, dict[str, Any]],
    n_trials: int,
    seed: int = 42,
    split: dict[str, float] | Splits | None = None,
    fixed_params: dict[str, Any] | None = None,
    data_version: str = "unversioned",
    run_name: str = "train",
    on_trial: Any = None,
    start_from: dict[str, Any] | None = None,
    spec: TabularSpec = TRIPS,
) -> TrainedModel:
    """Tune (unless `fixed_params`), fit on train, score validation and test, log it all to MLflow.

    `split` is either the shares for `split_by_time` or splits cut already (retraining cuts
    at instants, so the gate scores the most recent labelled window). `start_from` makes a
    known-good point the search's first trial, so a short re-tune cannot do worse than it.
    `spec` names the frame's columns: the trip-duration model's unless another table's.
    """
    import mlflow
    import optuna

    splits = split if isinstance(split, Splits) else split_by_time(frame, **(split or {}), time=spec.time)
    x_train, y_train = features_of(splits.train, spec), splits.train[spec.label]
    x_val, y_val = features_of(splits.validation, spec), splits.validation[spec.label]
    trials: list[dict[str, Any]] = []

    # CPU, memory, disk and network (and the GPU, with nvidia-ml-py installed) as `system/*`
    # metrics beside the model's, sampled each second: a CPU run trains in seconds.
    mlflow.set_system_metrics_sampling_interval(SYSTEM_METRICS_INTERVAL_S)
    mlflow.set_system_metrics_samples_before_logging(1)
    with mlflow.start_run(run_name=run_name, tags=owner_tags(), log_system_metrics=True) as parent:

        def objective(trial: optuna.Trial) -> float:
            params = suggest(trial, space)
            with mlflow.start_run(run_name=f"trial-{trial.number}", nested=True, tags=owner_tags()):
                model = make_model(params, seed, spec).fit(x_train, y_train)
                scores = metrics(y_val, model.predict(x_val))
                mlflow.log_params(params)
                mlflow.log_metrics({f"val_{k}": v for k, v in scores.as_dict().items()})
            trials.append({"number": trial.number, **params, "val_mae": scores.mae})
            if on_trial:
                on_trial(trial.number)
            return scores.mae

        if fixed_params is None:
            optuna.logging.set_verbosity(optuna.logging.WARNING)
            study = optuna.create_study(direction="minimize", sampler=optuna.samplers.TPESampler(seed=seed))
            if start_from:
                study.enqueue_trial(start_from)
            study.optimize(objective, n_trials=n_trials)
            best = dict(study.best_params)
            log_study_plots(study)
        else:
            best = dict(fixed_params)

        model = make_model(best, seed, spec).fit(x_train, y_train)
        val = metrics(y_val, model.predict(x_val))
        x_test, y_test = features_of(splits.test, spec), splits.test[spec.label]
        test_pred = model.predict(x_test)
        test = metrics(y_test, test_pred)

        digest = frame_digest(splits.train)
        mlflow.log_params({**best, "seed": seed, "n_trials": 0 if fixed_params else n_trials})
        mlflow.log_metrics({f"val_{k}": v for k, v in val.as_dict().items()})
        mlflow.log_metrics({f"test_{k}": v for k, v in test.as_dict().items()})
        mlflow.set_tags(
            {
                "data.digest": digest,
                "data.dvc_version": data_version,
                "data.train_window": " to ".join(splits.window("train")),
                "data.test_window": " to ".join(splits.window("test")),
                "data.rows": str(len(frame)),
            }
        )
        dataset = mlflow.data.from_pandas(
            x_train.assign(**{spec.label: y_train.astype("float64")}),
            name=spec.dataset,
            targets=spec.label,
            digest=digest,
        )
        mlflow.log_input(dataset, context="training", tags={"dvc_version": data_version})
        mlflow.log_figure(
            feature_importance_figure(model, x_val, y_val, seed), "plots/feature_importance.png"
        )
        mlflow.log_figure(predicted_vs_actual_figure(y_test, test_pred), "plots/predicted_vs_actual.png")
        _log_reference(splits, model, spec)
        signature = mlflow.models.infer_signature(x_train.head(100), model.predict(x_train.head(100)))
        info = mlflow.sklearn.log_model(
            model,
            name="model",
            signature=signature,
            input_example=x_train.head(5),
            pip_requirements=PIP_REQUIREMENTS,
            skops_trusted_types=SKOPS_TRUSTED_TYPES,
        )
        return TrainedModel(parent.info.run_id, info.model_uri, model, best, val, test, splits, trials)


def log_study_plots(study: Any) -> None:
    """Optuna's optimisation history and, from two trials on, its hyperparameter importances,
    as interactive HTML on the active run (`plots/`), where MLflow's UI shows them."""
    import mlflow
    import optuna.visualization as vis

    mlflow.log_figure(vis.plot_optimization_history(study), "plots/optuna_history.html")
    if len(study.trials) >= 2:  # importance is a variance split: one trial has none
        mlflow.log_figure(vis.plot_param_importances(study), "plots/optuna_param_importances.html")


def reference_snapshot(
    splits: Splits, model: HistGradientBoostingRegressor, spec: TabularSpec = TRIPS
) -> pd.DataFrame:
    """What drift monitoring compares live data against: the training rows (what the model
    learnt from) and the validation rows (its honest, out-of-sample error), with predictions."""
    parts = [
        frame.assign(prediction=model.predict(features_of(frame, spec)), split=name)
        for name, frame in (("train", splits.train), ("validation", splits.validation))
    ]
    columns = [spec.id, spec.time, *spec.features, spec.label, "prediction", "split"]
    return pd.concat(parts, ignore_index=True)[columns]


def _log_reference(splits: Splits, model: HistGradientBoostingRegressor, spec: TabularSpec) -> None:
    import mlflow

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "reference.parquet"
        reference_snapshot(splits, model, spec).to_parquet(path, index=False)
        mlflow.log_artifact(str(path), artifact_path="reference")
