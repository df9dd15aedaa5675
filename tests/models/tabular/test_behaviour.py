"""Behavioural tests of the trained trip-duration model, as Made-With-ML's tests/model/ reads:
what the champion must do, scored through the batch path (Feast point-in-time features, the
registry's champion) on trips the example data holds.

- invariance: an id the model must not read, or an input the data's durations ignore, does not
  move a prediction;
- direction: a longer trip, all else equal, is predicted to take longer;
- minimum functionality: finite, positive predictions, far better than predicting the mean.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlstack import features
from mlstack.data import validation
from mlstack.features import LABEL
from mlstack.settings import Settings
from models.tabular.predict import Champion, load_champion, score
from models.tabular.train import features_of, split_by_time

pytestmark = pytest.mark.slow


@pytest.fixture
def champion(in_trained_home: Settings) -> Champion:
    return load_champion()


@pytest.fixture
def trips(in_trained_home: Settings) -> pd.DataFrame:
    """A hundred trips of the last day, with complete inputs."""
    held = validation.read_validated(in_trained_home.validated_dir)["trips"]
    held = held.dropna(subset=["passenger_count", "distance_km"])
    return held.sort_values("requested_at").tail(100).reset_index(drop=True)


def predicted(trips: pd.DataFrame, champion: Champion) -> pd.Series:
    scored = score(features.feature_store(), trips, champion)
    return scored.set_index("trip_id").loc[trips["trip_id"], "predicted_duration_s"].reset_index(drop=True)


def test_the_trip_id_does_not_move_a_prediction(trips: pd.DataFrame, champion: Champion) -> None:
    renamed = trips.assign(trip_id=[f"other-{n}" for n in range(len(trips))])
    assert np.array_equal(predicted(trips, champion), predicted(renamed, champion))


def test_the_passenger_count_barely_moves_a_prediction(trips: pd.DataFrame, champion: Champion) -> None:
    """The generator's durations ignore how many ride: whatever the model made of it is noise."""
    one, five = (
        predicted(trips.assign(passenger_count=1), champion),
        predicted(trips.assign(passenger_count=5), champion),
    )
    assert float(np.median(np.abs(five - one) / one)) < 0.05


def test_a_longer_trip_is_predicted_to_take_longer(trips: pd.DataFrame, champion: Champion) -> None:
    by_distance = [predicted(trips.assign(distance_km=km), champion) for km in (1.5, 4.0, 8.0, 16.0)]
    medians = [float(np.median(p)) for p in by_distance]
    assert medians == sorted(medians) and medians[-1] > 2 * medians[0], medians
    assert float(np.mean(by_distance[-1] > by_distance[0])) >= 0.95  # nearly every trip, not only the median


def test_predictions_are_positive_and_far_better_than_the_mean(
    champion: Champion, frame: pd.DataFrame
) -> None:
    splits = split_by_time(frame)
    got = champion.model.predict(features_of(splits.test))
    assert np.isfinite(got).all() and (got > 0).all()
    actual = splits.test[LABEL].to_numpy()
    model_mae = float(np.mean(np.abs(got - actual)))
    mean_mae = float(np.mean(np.abs(splits.train[LABEL].mean() - actual)))
    assert model_mae < 0.5 * mean_mae, (model_mae, mean_mae)
