"""Compiled trees must give sklearn's predictions exactly, missing values and unknown categories included."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from sklearn.ensemble import HistGradientBoostingRegressor

from models.tabular.compiled import CompiledTrees, compile_model

COLUMNS = ["zone", "distance", "speed", "hour"]


@pytest.fixture(scope="module")
def fitted() -> HistGradientBoostingRegressor:
    rng = np.random.default_rng(0)
    n = 3000
    x = pd.DataFrame(
        {
            "zone": rng.integers(1, 25, n).astype(float),
            "distance": rng.gamma(2, 4, n),
            "speed": np.where(rng.random(n) < 0.1, np.nan, rng.normal(30, 5, n)),
            "hour": rng.integers(0, 24, n).astype(float),
        }
    )
    y = x["distance"] * 120 + x["zone"] * 15 + np.nan_to_num(x["speed"]) * -3 + rng.normal(0, 20, n)
    model = HistGradientBoostingRegressor(
        max_iter=60, max_leaf_nodes=31, categorical_features=["zone"], random_state=0
    )
    return model.fit(x, y)


def test_same_predictions_on_awkward_rows(fitted) -> None:
    rows = pd.DataFrame(
        {
            "zone": [1, 24, 0, 25, 99, -3, np.nan, 7.5, 300, 12],
            "distance": [1.0, 50.0, 3.0, np.nan, 2.0, 5.0, 7.0, 1.0, 4.0, 0.0],
            "speed": [np.nan, 30.0, 31.0, 29.0, np.nan, 10.0, 50.0, 30.0, 30.0, -5.0],
            "hour": [0, 23, 8, 17, 12, 3, 4, 5, 6, 30],
        },
        dtype=float,
    )
    compiled = CompiledTrees(fitted)
    np.testing.assert_allclose(compiled.predict(rows), fitted.predict(rows), rtol=1e-10, atol=1e-8)
    for i in range(len(rows)):  # one row at a time, as online serving does
        np.testing.assert_allclose(
            compiled.predict(rows.iloc[[i]]), fitted.predict(rows.iloc[[i]]), atol=1e-8
        )


@settings(max_examples=60, deadline=None)
@given(
    data=arrays(
        np.float64,
        st.tuples(st.integers(1, 40), st.just(4)),
        elements=st.one_of(
            st.floats(-50, 400, allow_nan=False), st.just(np.nan), st.integers(0, 30).map(float)
        ),
    )
)
def test_same_predictions_on_any_input(fitted, data: np.ndarray) -> None:
    frame = pd.DataFrame(data, columns=COLUMNS)
    # sklearn casts categories with a C cast to uint8: values past 255 wrap there, so keep within it
    frame["zone"] = frame["zone"].where(frame["zone"] < 256, np.nan)
    np.testing.assert_allclose(
        CompiledTrees(fitted).predict(frame), fitted.predict(frame), rtol=1e-10, atol=1e-8
    )


def test_columns_are_taken_by_name(fitted) -> None:
    rows = pd.DataFrame({"zone": [3.0], "distance": [9.0], "speed": [28.0], "hour": [8.0]})
    shuffled = rows[["hour", "speed", "zone", "distance"]]
    assert CompiledTrees(fitted).predict(shuffled) == pytest.approx(fitted.predict(rows))


def test_big_batches_and_other_models_fall_back_to_sklearn(fitted) -> None:
    rows = pd.DataFrame(np.tile([[3.0, 9.0, 28.0, 8.0]], (500, 1)), columns=COLUMNS)
    np.testing.assert_allclose(CompiledTrees(fitted).predict(rows), fitted.predict(rows))
    other = object()
    assert compile_model(other) is other
