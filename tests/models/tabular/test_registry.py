"""The trip-duration gate, against a real MLflow store: a clear win promotes, a worse model is
kept out, a DVC run's win stays a challenger; and the registry's history and rollback around it."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import mlflow
import pandas as pd
import pytest
from mlflow import MlflowClient

from mlstack import registry
from mlstack.features import LABEL
from mlstack.settings import MODEL_NAME, Settings
from models.tabular import registry as tabular_registry
from models.tabular.train import features_of, train
from tests.conftest import GOOD_PARAMS, TRAIN_SPACE

WORSE = {**GOOD_PARAMS, "max_iter": 3, "max_leaf_nodes": 4}


@pytest.mark.slow
def test_a_version_asked_for_by_many_threads_at_once_is_loaded_once(in_trained_home: Settings) -> None:
    # As a window's partitions ask for it: concurrent loads could fail on Python 3.11.7 (see load).
    version = registry.alias_version(registry.CHAMPION)
    assert version is not None
    with ThreadPoolExecutor(8) as pool:
        models = list(pool.map(lambda _: tabular_registry.load(version), range(16)))
    assert all(model is models[0] for model in models)


@pytest.mark.slow
def test_gate_keeps_the_champion_against_a_worse_model_and_rollback_restores(
    frame: pd.DataFrame, in_trained_home: Settings
) -> None:
    name = f"{MODEL_NAME}_gate_test"
    good = train(frame, TRAIN_SPACE, n_trials=0, seed=1, fixed_params=GOOD_PARAMS)
    worse = train(frame, TRAIN_SPACE, n_trials=0, seed=1, fixed_params=WORSE)
    holdout_x, holdout_y = features_of(good.splits.test), good.splits.test[LABEL]

    v_good = registry.register(good.model_uri, good.run_id, name)
    first = tabular_registry.gate(v_good, holdout_x, holdout_y, margin=0.01, name=name)
    assert first.promoted and first.reason == "no champion yet"

    v_worse = registry.register(worse.model_uri, worse.run_id, name)
    assert registry.alias_version(registry.CHALLENGER, name) == v_worse
    second = tabular_registry.gate(v_worse, holdout_x, holdout_y, margin=0.01, name=name)
    assert not second.promoted
    assert second.challenger_mae > second.champion_mae
    assert registry.alias_version(registry.CHAMPION, name) == v_good
    assert MlflowClient().get_model_version(name, v_worse).tags["gate.decision"] == "rejected"

    # A bad manual promotion, undone by rollback.
    before = datetime.now(UTC)
    assert registry.promote(v_worse, reason="oops", name=name) == v_good
    assert registry.serving_at(datetime.now(UTC), name) == v_worse
    assert registry.rollback(name) == (v_good, v_worse)
    assert registry.alias_version(registry.CHAMPION, name) == v_good
    stints = registry.served(name)
    assert [(s["version"], s["how"]) for s in stints] == [
        (v_good, "promote"),
        (v_worse, "promote"),
        (v_good, "rollback"),
    ]
    assert stints[-1]["until"] is None and all(s["until"] for s in stints[:-1])
    assert registry.serving_at(before, name) == v_good
    # The registered model points at a chart of that history, on the current champion's run.
    chart = MlflowClient().get_registered_model(name).tags[registry.CHART_TAG]
    assert chart == f"runs:/{good.run_id}/{registry.CHART_PATH}"
    image = Path(mlflow.artifacts.download_artifacts(chart, dst_path=str(in_trained_home.home / "chart")))
    assert image.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and image.stat().st_size > 5000

    # Without promotion on a win (the DVC stage), a better model stays challenger, and says so.
    v_again = registry.register(good.model_uri, good.run_id, name)
    registry.promote(v_worse, reason="to beat", name=name)
    kept = tabular_registry.gate(v_again, holdout_x, holdout_y, margin=0.01, name=name, promote_on_win=False)
    assert not kept.promoted and kept.passed and f"mlstack model promote {v_again}" in kept.reason
    assert registry.alias_version(registry.CHAMPION, name) == v_worse
    assert MlflowClient().get_model_version(name, v_again).tags["gate.decision"] == "passed"
    registry.rollback(name)
    with pytest.raises(registry.RegistryError, match="nothing to roll back to"):
        registry.rollback(name)
