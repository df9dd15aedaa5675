"""Seeded worlds for the monitoring tests: two weeks of history with real Feast features, a
model trained on them, and later live days (baseline, covariate drift, concept drift) shaped as
monitoring reads a window. Built once per package (conftest.py shares the fixture)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pandas as pd
import pytest

from mlstack import features
from mlstack.data.config import GeneratorConfig
from mlstack.data.generator import generate
from mlstack.features import LABEL
from mlstack.settings import Settings
from models.tabular.train import features_of, fit, reference_snapshot, split_by_time
from monitoring.window import PREDICTION
from tests.conftest import GOOD_PARAMS

HISTORY = GeneratorConfig(start=date(2026, 9, 1), days=14, bad_row_rate=0.0)
LIVE_START = date(2026, 9, 15)
BASELINE_WINDOWS = 20
DAY = pd.Timedelta(days=1)


@dataclass
class World:
    reference: pd.DataFrame
    baseline: pd.DataFrame  # the 20 live baseline days, predicted
    covariate: pd.DataFrame
    concept: pd.DataFrame
    model: object


def _featurize(tables: dict[str, pd.DataFrame], home: Path) -> pd.DataFrame:
    """Real point-in-time features through Feast in a data dir of the world's own."""
    previous = os.environ["MLSTACK_HOME"]
    os.environ["MLSTACK_HOME"] = str(home)
    try:
        settings = Settings(home=home)
        features.write_feature_tables(features.build_feature_tables(tables), settings)
        store = features.feature_store(settings)
        features.apply(store)
        return features.historical_features(store, tables["trips"])
    finally:
        os.environ["MLSTACK_HOME"] = previous


def _joined(*configs: GeneratorConfig) -> dict[str, pd.DataFrame]:
    parts = [generate(c) for c in configs]
    return {name: pd.concat([p[name] for p in parts], ignore_index=True) for name in parts[0]}


def live_config(cfg_scenario: str, days: int) -> GeneratorConfig:
    return GeneratorConfig(scenario=cfg_scenario, start=LIVE_START, days=days, bad_row_rate=0.0)


@pytest.fixture(scope="package")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    root = tmp_path_factory.mktemp("drift-world")
    baseline = _featurize(_joined(HISTORY, live_config("baseline", BASELINE_WINDOWS)), root / "baseline")
    history = baseline[baseline["requested_at"] < pd.Timestamp(LIVE_START, tz="UTC")]
    splits = split_by_time(history)
    model = fit(splits.train, GOOD_PARAMS, seed=1)

    def live(frame: pd.DataFrame) -> pd.DataFrame:
        """Live days shaped as monitoring reads a window: ids, inputs, prediction, label."""
        rows = frame[frame["requested_at"] >= pd.Timestamp(LIVE_START, tz="UTC")].reset_index(drop=True)
        inputs = features_of(rows)
        return pd.concat([rows[["trip_id", "requested_at"]], inputs, rows[[LABEL]]], axis=1).assign(
            **{PREDICTION: model.predict(inputs)}
        )

    return World(
        reference=reference_snapshot(splits, model),
        baseline=live(baseline),
        covariate=live(_featurize(_joined(HISTORY, live_config("covariate_drift", 2)), root / "covariate")),
        concept=live(_featurize(_joined(HISTORY, live_config("concept_drift", 2)), root / "concept")),
        model=model,
    )


def day(frame: pd.DataFrame, offset: int) -> pd.DataFrame:
    start = pd.Timestamp(LIVE_START, tz="UTC") + offset * DAY
    return frame[(frame["requested_at"] >= start) & (frame["requested_at"] < start + DAY)]
