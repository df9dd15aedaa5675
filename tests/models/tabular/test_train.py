"""Training and tracking, against a real MLflow store."""

from __future__ import annotations

import mlflow
import numpy as np
import pandas as pd
import pytest
from mlflow import MlflowClient

from mlstack import registry, tracking
from mlstack.features import MODEL_FEATURES, TabularSpec
from mlstack.settings import Settings
from models.tabular.train import params_from_run, split_by_time, train
from tests.conftest import TRAIN_SPACE


def test_splits_are_ordered_in_time_and_disjoint(clean_tables) -> None:
    trips = clean_tables["trips"].sample(frac=1, random_state=0)  # shuffled on purpose
    splits = split_by_time(trips, train=0.6, validation=0.2)
    assert splits.train["requested_at"].max() < splits.validation["requested_at"].min()
    assert splits.validation["requested_at"].max() < splits.test["requested_at"].min()
    ids = [set(s["trip_id"]) for s in (splits.train, splits.validation, splits.test)]
    assert not (ids[0] & ids[1] or ids[1] & ids[2] or ids[0] & ids[2])
    assert sum(map(len, ids)) == len(trips)
    with pytest.raises(ValueError, match="split shares"):
        split_by_time(trips, train=0.9, validation=0.2)


@pytest.mark.slow
def test_tuning_logs_nested_trials_and_a_complete_parent_run(frame: pd.DataFrame) -> None:
    result = train(frame, TRAIN_SPACE, n_trials=3, seed=7, data_version="dvc:abc123")
    client = MlflowClient()
    parent = client.get_run(result.run_id)
    children = client.search_runs(
        [parent.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{result.run_id}'"
    )
    assert len(children) == 3
    assert all("val_mae" in c.data.metrics for c in children)
    best_child = min(children, key=lambda c: c.data.metrics["val_mae"])
    assert int(parent.data.params["max_iter"]) == int(best_child.data.params["max_iter"])
    for split in ("val", "test"):
        for metric in ("mae", "rmse", "r2"):
            assert f"{split}_{metric}" in parent.data.metrics
    assert parent.data.metrics["test_r2"] > 0.5, "the model learns the duration structure"
    # MLflow's system metrics: logging the model alone outlasts their one-second sampling.
    assert {"system/cpu_utilization_percentage", "system/system_memory_usage_megabytes"} <= set(
        parent.data.metrics
    )
    assert parent.data.tags["data.dvc_version"] == "dvc:abc123"
    assert parent.data.tags["data.digest"]
    inputs = parent.inputs.dataset_inputs
    assert inputs and inputs[0].dataset.digest == parent.data.tags["data.digest"]
    artifacts = {a.path for a in client.list_artifacts(result.run_id, "plots")}
    assert artifacts == {
        "plots/feature_importance.png",
        "plots/predicted_vs_actual.png",
        "plots/optuna_history.html",
        "plots/optuna_param_importances.html",
    }
    # Optuna's own figures, the three trials in them, as the MLflow UI renders them.
    history = mlflow.artifacts.load_text(f"runs:/{result.run_id}/plots/optuna_history.html")
    assert "Optimization History Plot" in history and "plotly" in history
    importances = mlflow.artifacts.load_text(f"runs:/{result.run_id}/plots/optuna_param_importances.html")
    assert all(name in importances for name in TRAIN_SPACE)
    model_info = mlflow.models.get_model_info(result.model_uri)
    assert [c.name for c in model_info.signature.inputs.inputs] == MODEL_FEATURES
    assert model_info.saved_input_example_info is not None


@pytest.mark.slow
def test_unknown_model_has_no_champion(in_trained_home: Settings) -> None:
    assert registry.alias_version(registry.CHAMPION, "no_such_model") is None


@pytest.mark.slow
def test_retraining_reuses_logged_params_and_a_retune_starts_from_them(frame: pd.DataFrame) -> None:
    recipe = {"learning_rate": 0.1, "max_iter": 60, "max_leaf_nodes": 20, "min_samples_leaf": 20}
    recipe["l2_regularization"] = 0.01
    first = train(frame, TRAIN_SPACE, n_trials=0, seed=3, fixed_params=recipe)
    logged = MlflowClient().get_run(first.run_id).data.params
    assert params_from_run(logged, TRAIN_SPACE) == recipe  # typed back: ints stay ints

    retuned = train(frame, TRAIN_SPACE, n_trials=2, seed=3, start_from=recipe)
    assert {k: retuned.trials[0][k] for k in recipe} == recipe
    assert retuned.validation.mae <= first.validation.mae + 1e-9  # the recipe was one of the trials

    snapshot = pd.read_parquet(
        mlflow.artifacts.download_artifacts(run_id=first.run_id, artifact_path="reference/reference.parquet")
    )
    assert snapshot["split"].value_counts().to_dict() == {
        "train": len(first.splits.train),
        "validation": len(first.splits.validation),
    }
    assert set(MODEL_FEATURES) <= set(snapshot.columns) and snapshot["prediction"].notna().all()
    with pytest.raises(ValueError, match="did not log"):
        params_from_run({"learning_rate": "0.1"}, TRAIN_SPACE)


@pytest.mark.slow
def test_a_table_of_ones_own_is_split_trained_and_logged_by_its_spec() -> None:
    tracking.setup()  # the test's own data dir
    rng = np.random.default_rng(0)
    n = 600
    frame = pd.DataFrame(
        {
            "reading_id": [f"R{i}" for i in range(n)],
            "taken_at": pd.date_range("2026-09-01", periods=n, freq="h", tz="UTC"),
            "load": rng.uniform(0, 1, n),
            "site": rng.integers(0, 4, n),
        }
    ).sample(frac=1, random_state=0)  # out of time order: the split orders it
    frame["kwh"] = 10 * frame["load"] + 3 * frame["site"] + rng.normal(0, 0.1, n)
    spec = TabularSpec(
        id="reading_id", time="taken_at", label="kwh", features=("load", "site"), categorical=("site",)
    )

    result = train(frame, TRAIN_SPACE, n_trials=1, seed=1, spec=spec)

    splits = result.splits
    assert splits.train["taken_at"].max() < splits.validation["taken_at"].min()
    assert splits.validation["taken_at"].max() < splits.test["taken_at"].min()
    assert splits.window("test")[1] == str(frame["taken_at"].max())
    assert result.model.is_categorical_.tolist() == [False, True]
    assert result.test.r2 > 0.9, "kwh is load and site"
    info = mlflow.models.get_model_info(result.model_uri)
    assert [c.name for c in info.signature.inputs.inputs] == ["load", "site"]
    (dataset,) = MlflowClient().get_run(result.run_id).inputs.dataset_inputs
    assert dataset.dataset.name == "train"
    snapshot = pd.read_parquet(
        mlflow.artifacts.download_artifacts(run_id=result.run_id, artifact_path="reference/reference.parquet")
    )
    assert list(snapshot.columns) == ["reading_id", "taken_at", "load", "site", "kwh", "prediction", "split"]
