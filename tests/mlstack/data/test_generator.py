"""The example data: deterministic, realistic in structure, and each scenario visible."""

from __future__ import annotations

import hashlib
from datetime import date
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from mlstack.data.config import GeneratorConfig
from mlstack.data.generator import ZONE_IDS, City, generate, write_tables
from tests.conftest import SMALL, small


def digests(folder: Path) -> dict[str, str]:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.glob("*.parquet"))}


@pytest.fixture(scope="module")
def scenario_tables() -> dict[str, dict[str, pd.DataFrame]]:
    cfg = small(days=3, trips_per_day=1500)
    return {
        name: generate(cfg.model_copy(update={"scenario": name}))
        for name in ("baseline", "covariate_drift", "concept_drift", "missing_surge", "schema_change")
    }


def test_same_seed_gives_identical_bytes(tmp_path: Path) -> None:
    write_tables(generate(SMALL), tmp_path / "a")
    write_tables(generate(SMALL), tmp_path / "b")
    write_tables(generate(small(seed=7)), tmp_path / "c")
    assert digests(tmp_path / "a") == digests(tmp_path / "b")
    assert len(digests(tmp_path / "a")) == 3
    assert all(digests(tmp_path / "a")[k] != v for k, v in digests(tmp_path / "c").items())


def test_a_day_is_the_same_whichever_window_holds_it() -> None:
    two_days = generate(small(days=2))["trips"]
    second_alone = generate(small(start=date(2026, 9, 2), days=1))["trips"]
    from_window = two_days[two_days["trip_id"].str.startswith("T20260902")].reset_index(drop=True)
    # A weekday of SMALL holds hundreds of trips: two empty frames would be equal too.
    assert len(second_alone) > 0.5 * SMALL.trips_per_day
    pd.testing.assert_frame_equal(from_window, second_alone)


def test_trip_ids_are_unique_and_carry_the_date(small_tables: dict[str, pd.DataFrame]) -> None:
    trips = small_tables["trips"]
    assert trips["trip_id"].is_unique
    day_of_id = pd.to_datetime(trips["trip_id"].str[1:9], format="%Y%m%d").dt.date
    clean = trips["requested_at"] < pd.Timestamp("2030-01-01", tz="UTC")  # spoiled rows jump ahead
    assert (day_of_id[clean] == trips.loc[clean, "requested_at"].dt.date).all()


def test_stats_are_stamped_at_the_end_of_their_hour(small_tables: dict[str, pd.DataFrame]) -> None:
    for name in ("driver_stats", "zone_stats"):
        ts = small_tables[name]["event_timestamp"]
        assert (ts == ts.dt.floor("h")).all()
        assert (small_tables[name]["created"] > ts).all()
    zones = small_tables["zone_stats"]
    restated = zones.duplicated(["zone_id", "event_timestamp"], keep=False)
    assert restated.any(), "some zone readings are restated, so feature joins have ties to break"
    assert set(zones["zone_id"]) == set(ZONE_IDS)


def test_duration_follows_distance_traffic_and_skill() -> None:
    trips = generate(small(days=7, bad_row_rate=0.0))["trips"]
    pace = trips["duration_s"] / trips["distance_km"]
    hour = trips["requested_at"].dt.hour
    weekday = trips["requested_at"].dt.weekday < 5
    long = trips["distance_km"] > 3  # pickup overhead dominates the pace of short hops
    rush = pace[weekday & long & hour.isin([8, 9, 17, 18])].median()
    night = pace[weekday & long & hour.isin([1, 2, 3, 4])].median()
    assert rush > 1.2 * night

    corr = np.corrcoef(trips["distance_km"], trips["duration_s"])[0, 1]
    assert corr > 0.8

    per_driver = trips[long].assign(pace=pace[long]).groupby("driver_id")["pace"].median()
    skill = City.build(SMALL.seed, SMALL.n_drivers).driver_skill[per_driver.index - 1]
    assert np.corrcoef(skill, per_driver)[0, 1] < -0.5, "skilled drivers are faster"


def test_covariate_drift_moves_inputs_not_the_physics(scenario_tables) -> None:
    base, drift = scenario_tables["baseline"]["trips"], scenario_tables["covariate_drift"]["trips"]
    assert drift["distance_km"].median() > 1.3 * base["distance_km"].median()
    assert drift["passenger_count"].mean() > base["passenger_count"].mean() + 0.4
    assert (
        drift["pickup_zone"]
        .value_counts(normalize=True)
        .sub(base["pickup_zone"].value_counts(normalize=True), fill_value=0)
        .abs()
        .sum()
        > 0.3
    )
    pace = lambda t: (t["duration_s"] / t["distance_km"])[t["distance_km"] > 3].median()  # noqa: E731
    # Longer trips run more on open road, so their pace may differ a little, never a lot.
    assert abs(pace(drift) / pace(base) - 1) < 0.25


def test_concept_drift_keeps_inputs_and_changes_the_label(scenario_tables) -> None:
    base, drift = scenario_tables["baseline"], scenario_tables["concept_drift"]
    inputs = ["trip_id", "driver_id", "pickup_zone", "dropoff_zone", "requested_at", "distance_km"]
    pd.testing.assert_frame_equal(base["trips"][inputs], drift["trips"][inputs])
    pd.testing.assert_frame_equal(base["zone_stats"], drift["zone_stats"])
    ratio = drift["trips"]["duration_s"] / base["trips"]["duration_s"]
    assert ratio.median() > 1.3


def test_missing_surge_blanks_optional_fields(scenario_tables) -> None:
    for table, column in (
        ("trips", "passenger_count"),
        ("driver_stats", "avg_speed_kmh"),
        ("zone_stats", "congestion_index"),
    ):
        assert scenario_tables["missing_surge"][table][column].isna().mean() > 0.2
        assert scenario_tables["baseline"][table][column].isna().mean() < 0.02


def test_schema_change_renames_and_retypes_columns(scenario_tables) -> None:
    trips = scenario_tables["schema_change"]["trips"]
    assert "distance_km" not in trips and "distance_m" in trips
    assert trips["pickup_zone"].str.match(r"^Z\d{2}$").all()
    assert "congestion" in scenario_tables["schema_change"]["zone_stats"]


@pytest.mark.parametrize("bad", [{"scenario": "nope"}, {"days": 0}, {"n_drivers": 0}, {"bad_row_rate": 0.7}])
def test_bad_generator_config_is_refused(bad: dict) -> None:
    with pytest.raises(ValueError):
        GeneratorConfig(**bad)
