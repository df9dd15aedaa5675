"""A point-in-time training frame from the session's trained home."""

from __future__ import annotations

import pandas as pd
import pytest

from mlstack import features
from mlstack.data import validation
from mlstack.settings import Settings


@pytest.fixture
def frame(in_trained_home: Settings) -> pd.DataFrame:
    trips = validation.read_validated(in_trained_home.validated_dir)["trips"]
    return features.historical_features(features.feature_store(in_trained_home), trips)
