"""Features: offline tables are point-in-time safe, and Feast's joins match an independent one."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from mlstack import features
from mlstack.data import validation
from mlstack.settings import Settings

TTL = pd.Timedelta(hours=3)


def manual_as_of(
    trips: pd.DataFrame, table: pd.DataFrame, key: str, entity_key: str, column: str
) -> pd.Series:
    """An independent point-in-time join: the newest row at or before the trip, within the TTL;
    among rows with the same event time, the one published (`created`) last."""
    right = table.sort_values(["event_timestamp", "created"]).drop_duplicates(
        [entity_key, "event_timestamp"], keep="last"
    )
    left = trips[["trip_id", key, "requested_at"]].sort_values("requested_at")
    merged = pd.merge_asof(
        left,
        right[[entity_key, "event_timestamp", column]].sort_values("event_timestamp"),
        left_on="requested_at",
        right_on="event_timestamp",
        left_by=key,
        right_by=entity_key,
        direction="backward",
        tolerance=TTL,
    )
    return merged.set_index("trip_id")[column]


def test_request_features_match_pandas_datetime_accessors() -> None:
    times = pd.Series(pd.date_range("2026-09-01", periods=500, freq="37min", tz="UTC"))
    frame = pd.DataFrame({"requested_at": times, "distance_km": np.linspace(0.1, 40, 500)})
    out = features.request_features(frame)
    assert (out["hour_of_day"] == times.dt.hour).all()
    assert (out["weekday"] == times.dt.weekday).all()
    assert (out["is_weekend"] == (times.dt.weekday >= 5).astype(int)).all()
    assert (
        out["distance_bucket"].tolist() == np.digitize(frame["distance_km"], features.DISTANCE_EDGES).tolist()
    )


def test_driver_pace_uses_only_trips_finished_before(clean_tables) -> None:
    trips = clean_tables["trips"]
    stats = clean_tables["driver_stats"]
    pace = features.driver_pace(trips, stats)
    done = trips.assign(end=trips["requested_at"] + pd.to_timedelta(trips["duration_s"], unit="s"))
    for i in stats.sample(40, random_state=3).index:
        driver, at = stats.loc[i, "driver_id"], stats.loc[i, "event_timestamp"]
        window = done[
            (done["driver_id"] == driver) & (done["end"] <= at) & (done["end"] > at - pd.Timedelta(days=7))
        ]
        expected = (window["duration_s"] / window["distance_km"]).mean() if len(window) else np.nan
        assert pace.loc[i] == pytest.approx(expected, abs=0.01, nan_ok=True)


@pytest.mark.slow
def test_historical_features_are_point_in_time_correct(in_trained_home: Settings) -> None:
    validated = validation.read_validated(in_trained_home.validated_dir)
    trips = validated["trips"]
    store = features.feature_store(in_trained_home)
    frame = features.historical_features(store, trips)

    assert len(frame) == len(trips) and frame["trip_id"].tolist() == trips["trip_id"].tolist()
    offline = {name: pd.read_parquet(path) for name, path in features.offline_paths(in_trained_home).items()}
    checks = [
        ("driver_id", "driver_id", "driver_hourly", "pace_7d_s_per_km"),
        ("driver_id", "driver_id", "driver_hourly", "avg_speed_kmh"),
        ("pickup_zone", "zone_id", "zone_hourly", "congestion_index"),
        ("dropoff_zone", "zone_id", "zone_hourly", "congestion_index"),
    ]
    for key, entity_key, table, column in checks:
        expected = (
            manual_as_of(trips, offline[table], key, entity_key, column).loc[frame["trip_id"]].to_numpy()
        )
        prefix = {"driver_id": "driver_hourly", "pickup_zone": "pickup_zone", "dropoff_zone": "dropoff_zone"}[
            key
        ]
        got = frame[f"{prefix}__{column}"].to_numpy(dtype=float)
        np.testing.assert_allclose(got, expected.astype(float), equal_nan=True, err_msg=f"{prefix}__{column}")
    restated = offline["zone_hourly"].duplicated(["zone_id", "event_timestamp"], keep=False).sum()
    assert restated > 0, "the data has created-time ties, so the check above covered them"


@pytest.mark.slow
def test_no_feature_value_from_after_the_request_reaches_the_row(in_trained_home: Settings) -> None:
    """A canary: stats stamped one second after a trip was requested must not appear in its row."""
    validated = validation.read_validated(in_trained_home.validated_dir)
    trips = validated["trips"].sample(60, random_state=5).sort_values("requested_at")
    driver_path = features.offline_paths(in_trained_home)["driver_hourly"]
    original = pd.read_parquet(driver_path)
    canaries = trips[["driver_id", "requested_at"]].rename(columns={"requested_at": "event_timestamp"})
    canaries = original.iloc[: len(canaries)].assign(
        driver_id=canaries["driver_id"].to_numpy(),
        event_timestamp=(canaries["event_timestamp"] + pd.Timedelta(seconds=1)).to_numpy(),
        created=(canaries["event_timestamp"] + pd.Timedelta(seconds=1)).to_numpy(),
        avg_speed_kmh=1000.0 + np.arange(len(canaries)),  # one value per trip: whose canary is whose
    )
    own = pd.Series(canaries["avg_speed_kmh"].to_numpy(), index=trips["trip_id"].to_numpy())
    try:
        pd.concat([original, canaries]).to_parquet(driver_path, index=False)
        frame = features.historical_features(features.feature_store(in_trained_home), trips)
        seen = frame.set_index("trip_id")["driver_hourly__avg_speed_kmh"]
        # (An earlier trip's canary may legitimately reach a later trip of the same driver.)
        assert not (seen == own.loc[seen.index]).any()
        # Shifted one second the other way, the same rows must be picked up: the check can fail.
        canaries["event_timestamp"] -= pd.Timedelta(seconds=2)
        canaries["created"] = canaries["event_timestamp"]
        pd.concat([original, canaries]).to_parquet(driver_path, index=False)
        frame = features.historical_features(features.feature_store(in_trained_home), trips)
        seen = frame.set_index("trip_id")["driver_hourly__avg_speed_kmh"]
        assert (seen == own.loc[seen.index]).all()
    finally:
        original.to_parquet(driver_path, index=False)


@pytest.mark.slow
def test_online_features_serve_the_latest_values_and_miss_unknown_drivers(in_trained_home: Settings) -> None:
    store = features.feature_store(in_trained_home)
    offline = pd.read_parquet(features.offline_paths(in_trained_home)["driver_hourly"])
    latest = (
        offline.sort_values(["event_timestamp", "created"])
        .groupby("driver_id")
        .tail(1)
        .set_index("driver_id")
    )
    at = pd.Timestamp("2026-09-06 12:00", tz="UTC")
    rows = [
        {"driver_id": 5, "pickup_zone": 3, "dropoff_zone": 9, "requested_at": at, "distance_km": 7.0},
        {"driver_id": 99_999, "pickup_zone": 3, "dropoff_zone": 9, "requested_at": at, "distance_km": 7.0},
    ]
    online = features.online_features(store, rows)
    assert online.loc[0, "driver_hourly__avg_speed_kmh"] == pytest.approx(latest.loc[5, "avg_speed_kmh"])
    assert pd.isna(online.loc[1, "driver_hourly__avg_speed_kmh"])
    assert online.loc[0, "trip_request_features__hour_of_day"] == 12
    assert online.loc[0, "trip_request_features__distance_bucket"] == 2


@pytest.mark.slow
def test_online_path_matches_feasts_full_service_with_its_on_demand_view(in_trained_home: Settings) -> None:
    """Serving asks Feast for the stored views only and computes the request-time features
    itself; every value must equal what Feast's full service (with the on-demand view) returns."""
    store = features.feature_store(in_trained_home)
    berlin = "Europe/Berlin"
    times = [
        pd.Timestamp("2026-09-06 12:00", tz="UTC"),
        pd.Timestamp("2026-09-05 23:59:59.999999", tz="UTC"),  # Saturday's last instant
        pd.Timestamp("2026-09-07 00:30", tz=berlin),  # Sunday 22:30 UTC: the UTC day counts
        pd.Timestamp("2026-09-07 08:15", tz="UTC").to_pydatetime(),  # a plain aware datetime
    ]
    rows = [
        {
            "driver_id": driver,
            "pickup_zone": pickup,
            "dropoff_zone": dropoff,
            "requested_at": at,
            "distance_km": km,
        }
        for driver, pickup, dropoff, at, km in [
            (5, 3, 9, times[0], 2.0),  # on a bucket edge
            (17, 24, 1, times[1], 19.99),
            (99_999, 3, 30, times[2], 0.4),  # unknown driver and dropoff zone
            (5, 12, 12, times[3], 250.0),
        ]
    ]
    full = store.get_online_features(
        features=features.feature_service(store), entity_rows=rows, full_feature_names=True
    ).to_df()
    online = features.online_features(store, rows)
    assert list(online.columns) == features.FEAST_FEATURES
    expected = full[features.FEAST_FEATURES].astype("float64")
    pd.testing.assert_frame_equal(online, expected, check_dtype=False)
    assert online["trip_request_features__weekday"].tolist() == [6.0, 5.0, 6.0, 0.0]
    assert online["driver_hourly__avg_speed_kmh"].isna().tolist() == [False, False, True, False]
