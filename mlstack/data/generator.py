"""Seeded generator for the ride-hailing example: trips, hourly driver stats, hourly zone stats.

Trip duration follows a small physical story: a trip's distance comes from where it starts and
ends in a 24-zone city, its speed from the zones' congestion at that hour (rush hours, weekends)
and the driver's skill, plus a pickup overhead and multiplicative noise. The stats tables are
what upstream systems publish about drivers and zones once an hour ends, so a trip may only see
stats stamped before it was requested: the point-in-time join of issue 3 depends on that.

Each day draws from its own random stream, keyed by (seed, date). The same seed therefore gives
identical bytes, and a day has the same trips whichever window it is generated in; trip ids
carry the date, so windows never collide. Scenarios only turn the knobs of `Regime`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd

from mlstack.data.config import GeneratorConfig
from mlstack.io import staged_dir, write_parquet

TABLES = ("trips", "driver_stats", "zone_stats")
N_ZONES = 24  # the city map is fixed: zone ids are a contract that validation checks
ZONE_IDS = tuple(range(1, N_ZONES + 1))
FREE_FLOW_KMH = 42.0
PUBLISH_DELAY = pd.Timedelta(minutes=2)  # stats land in the warehouse shortly after the hour ends
FUTURE_SHIFT = pd.Timedelta(days=3650)  # how far a clock-skewed record jumps ahead


@dataclass(frozen=True)
class Regime:
    """The knobs a scenario turns. Baseline values describe the city as it normally is."""

    outskirts_tilt: float = 0.0  # >0 moves pickups towards the outer zones
    distance_scale: float = 1.0
    passenger_probs: tuple[float, ...] = (0.62, 0.2, 0.09, 0.05, 0.03, 0.01)
    speed_factor: float = 1.0  # actual speed relative to what the features imply
    extra_overhead_s: float = 0.0
    null_passenger: float = 0.01
    null_driver_speed: float = 0.005
    null_zone_congestion: float = 0.0
    renamed_columns: bool = False


REGIMES: dict[str, Regime] = {
    "baseline": Regime(),
    # An airport shuttle launch: pickups move out of town, trips get longer, groups get bigger.
    "covariate_drift": Regime(
        outskirts_tilt=2.5, distance_scale=1.6, passenger_probs=(0.35, 0.25, 0.18, 0.12, 0.07, 0.03)
    ),
    # Road works: the same features, but every trip is slower and pickups take longer.
    "concept_drift": Regime(speed_factor=0.7, extra_overhead_s=90.0),
    # A telemetry outage: optional fields go missing far more often than usual.
    "missing_surge": Regime(null_passenger=0.3, null_driver_speed=0.35, null_zone_congestion=0.25),
    # Upstream ships a new contract: distance in metres under a new name, zones as labels.
    "schema_change": Regime(renamed_columns=True),
}


@dataclass(frozen=True)
class City:
    """What does not change from day to day: zone layout and driver traits, drawn from the seed."""

    centroids: np.ndarray  # (zones, 2) km
    base_congestion: np.ndarray  # (zones,)
    popularity: np.ndarray  # (zones,)
    remoteness: np.ndarray  # (zones,) distance from the centre, normalised to [0, 1]
    driver_skill: np.ndarray  # (drivers,) speed multiplier
    driver_activity: np.ndarray  # (drivers,) share of trips
    driver_acceptance: np.ndarray
    driver_rating: np.ndarray

    @classmethod
    def build(cls, seed: int, n_drivers: int) -> City:
        rng = np.random.default_rng([seed, 0])
        centroids = rng.uniform(-9.0, 9.0, size=(N_ZONES, 2))
        radius = np.linalg.norm(centroids, axis=1)
        remoteness = radius / radius.max()
        base_congestion = np.clip(0.9 - 0.6 * remoteness + rng.normal(0, 0.08, N_ZONES), 0.15, 1.0)
        popularity = rng.dirichlet(np.full(N_ZONES, 2.0)) * (1.5 - remoteness)
        activity = rng.gamma(2.0, 1.0, n_drivers)
        return cls(
            centroids=centroids,
            base_congestion=base_congestion,
            popularity=popularity / popularity.sum(),
            remoteness=remoteness,
            driver_skill=np.clip(rng.normal(1.0, 0.1, n_drivers), 0.7, 1.3),
            driver_activity=activity / activity.sum(),
            driver_acceptance=np.clip(rng.beta(12, 2, n_drivers), 0.3, 1.0),
            driver_rating=np.round(np.clip(rng.normal(4.75, 0.15, n_drivers), 3.5, 5.0), 2),
        )


def traffic(hour: np.ndarray, weekend: bool) -> np.ndarray:
    """Congestion multiplier by hour of day: two rush hours on weekdays, a flat midday at weekends."""
    hour = np.asarray(hour, dtype=float)
    if weekend:
        return 0.55 + 0.45 * np.exp(-((hour - 14.0) ** 2) / 18.0)
    morning = 0.9 * np.exp(-((hour - 8.5) ** 2) / 2.5)
    evening = 1.0 * np.exp(-((hour - 18.0) ** 2) / 3.5)
    night = -0.3 * np.exp(-((hour - 3.0) ** 2) / 6.0)
    return 0.6 + morning + evening + night


def demand_curve(weekend: bool) -> np.ndarray:
    hours = np.arange(24)
    curve = traffic(hours, weekend) ** 1.5 + (0.6 if weekend else 0.2) * (hours >= 20)
    return curve / curve.sum()


def speed_kmh(congestion: np.ndarray) -> np.ndarray:
    return FREE_FLOW_KMH / (1.0 + 1.3 * congestion)


def _day_stream(seed: int, day: date, salt: int) -> np.random.Generator:
    return np.random.default_rng([seed, day.toordinal(), salt])


def _generate_day(cfg: GeneratorConfig, city: City, day: date) -> dict[str, pd.DataFrame]:
    rng = _day_stream(cfg.seed, day, 1)
    reg = REGIMES[cfg.scenario]
    weekend = day.weekday() >= 5
    midnight = pd.Timestamp(datetime(day.year, day.month, day.day, tzinfo=UTC))
    hours = np.arange(24)
    n_drivers = len(city.driver_skill)

    # Hourly congestion per zone: the zone's base level times the city's traffic at that hour.
    congestion = city.base_congestion[:, None] * traffic(hours, weekend)[None, :]
    congestion = congestion * np.exp(rng.normal(0, 0.08, congestion.shape))

    n_trips = int(rng.poisson(cfg.trips_per_day * (0.85 if weekend else 1.0)))
    hour = rng.choice(24, size=n_trips, p=demand_curve(weekend))
    requested_at = midnight + pd.to_timedelta(hour * 3600 + rng.uniform(0, 3600, n_trips), unit="s")
    requested_at = requested_at.floor("s")

    pickup_weights = city.popularity * np.exp(reg.outskirts_tilt * city.remoteness)
    pickup = rng.choice(N_ZONES, size=n_trips, p=pickup_weights / pickup_weights.sum())
    dropoff = rng.choice(N_ZONES, size=n_trips, p=city.popularity)
    straight = np.linalg.norm(city.centroids[pickup] - city.centroids[dropoff], axis=1)
    distance = (
        straight * rng.uniform(1.15, 1.4, n_trips) + rng.gamma(2.0, 0.7, n_trips)
    ) * reg.distance_scale
    distance = np.round(np.maximum(distance, 0.3), 3)

    driver = rng.choice(n_drivers, size=n_trips, p=city.driver_activity)
    passengers = rng.choice(np.arange(1, 7), size=n_trips, p=np.asarray(reg.passenger_probs))

    trip_congestion = (congestion[pickup, hour] + congestion[dropoff, hour]) / 2.0
    speed = speed_kmh(trip_congestion) * city.driver_skill[driver] * reg.speed_factor
    overhead = rng.gamma(3.0, 20.0, n_trips) + reg.extra_overhead_s
    duration = (distance / speed * 3600.0 + overhead) * rng.lognormal(0.0, 0.1, n_trips)

    order = np.argsort(requested_at.asi8, kind="stable")
    trips = pd.DataFrame(
        {
            "trip_id": [f"T{day:%Y%m%d}-{i:05d}" for i in range(n_trips)],
            "driver_id": (driver[order] + 1).astype("int64"),
            "pickup_zone": (pickup[order] + 1).astype("int64"),
            "dropoff_zone": (dropoff[order] + 1).astype("int64"),
            "requested_at": requested_at[order],
            "distance_km": distance[order],
            "passenger_count": pd.array(passengers[order], dtype="Int64"),
            "duration_s": np.round(duration[order]),
        }
    )

    hour_end = midnight + pd.to_timedelta(hours + 1, unit="h")
    trip_hour = hour[order]

    # Driver telemetry: the speed each driver kept over the hour, and trips done so far today.
    drv = np.repeat(np.arange(n_drivers), 24)
    hr = np.tile(hours, n_drivers)
    city_speed = speed_kmh(congestion.mean(axis=0))
    per_hour = np.zeros((n_drivers, 24), dtype=np.int64)
    np.add.at(per_hour, (driver[order], trip_hour), 1)
    driver_stats = pd.DataFrame(
        {
            "driver_id": (drv + 1).astype("int64"),
            "event_timestamp": hour_end[hr],
            "created": hour_end[hr] + PUBLISH_DELAY,
            "avg_speed_kmh": np.round(
                city_speed[hr] * city.driver_skill[drv] * np.exp(rng.normal(0, 0.05, drv.size)), 2
            ),
            "acceptance_rate": np.round(
                np.clip(city.driver_acceptance[drv] + rng.normal(0, 0.02, drv.size), 0, 1), 3
            ),
            "rating": city.driver_rating[drv],
            "trips_today": np.cumsum(per_hour, axis=1).ravel().astype("int64"),
        }
    )

    # Zone stats: congestion index, measured speed and demand over the hour that just ended.
    zone = np.repeat(np.arange(N_ZONES), 24)
    zhr = np.tile(hours, N_ZONES)
    demand = np.zeros((N_ZONES, 24), dtype=np.int64)
    np.add.at(demand, (pickup[order], trip_hour), 1)
    measured = congestion.ravel() * np.exp(rng.normal(0, 0.05, zone.size))
    zone_stats = pd.DataFrame(
        {
            "zone_id": (zone + 1).astype("int64"),
            "event_timestamp": hour_end[zhr],
            "created": hour_end[zhr] + PUBLISH_DELAY,
            "congestion_index": np.round(measured, 4),
            "avg_speed_kmh": np.round(speed_kmh(measured), 2),
            "demand_1h": demand.ravel(),
        }
    )
    # Upstream restates about 1% of zone readings later with a corrected value: the later
    # `created` must win in point-in-time joins, so the feature store has ties to break.
    restated = zone_stats.sample(frac=0.01, random_state=np.random.RandomState(rng.integers(2**31)))
    restated = restated.assign(
        created=restated["created"] + pd.Timedelta(minutes=30),
        congestion_index=np.round(restated["congestion_index"] * 1.05, 4),
    )
    zone_stats = pd.concat([zone_stats, restated], ignore_index=True)

    return {"trips": trips, "driver_stats": driver_stats, "zone_stats": zone_stats}


def _apply_nulls(tables: dict[str, pd.DataFrame], cfg: GeneratorConfig, day: date) -> None:
    rng = _day_stream(cfg.seed, day, 2)
    reg = REGIMES[cfg.scenario]
    for table, column, rate in (
        ("trips", "passenger_count", reg.null_passenger),
        ("driver_stats", "avg_speed_kmh", reg.null_driver_speed),
        ("zone_stats", "congestion_index", reg.null_zone_congestion),
    ):
        df = tables[table]
        df.loc[rng.random(len(df)) < rate, column] = pd.NA if column == "passenger_count" else np.nan


def _apply_bad_rows(trips: pd.DataFrame, cfg: GeneratorConfig, day: date) -> None:
    """Spoil a few trips the way live feeds do, so that quarantine has something to catch."""
    rng = _day_stream(cfg.seed, day, 3)
    bad = np.flatnonzero(rng.random(len(trips)) < cfg.bad_row_rate)
    kinds = rng.integers(0, 3, bad.size)
    trips.loc[bad[kinds == 0], "duration_s"] = np.nan
    trips.loc[bad[kinds == 1], "distance_km"] *= -1
    trips.loc[bad[kinds == 2], "requested_at"] += FUTURE_SHIFT


def _rename_for_new_contract(tables: dict[str, pd.DataFrame]) -> None:
    trips = tables["trips"]
    trips["distance_m"] = (trips.pop("distance_km") * 1000).round().astype("int64")
    trips["pickup_zone"] = "Z" + trips["pickup_zone"].astype(str).str.zfill(2)
    tables["zone_stats"] = tables["zone_stats"].rename(columns={"congestion_index": "congestion"})


def iter_days(cfg: GeneratorConfig) -> Iterator[date]:
    for offset in range(cfg.days):
        yield cfg.start + timedelta(days=offset)


def generate(cfg: GeneratorConfig, on_day: Callable[[date], None] | None = None) -> dict[str, pd.DataFrame]:
    """Build all tables for the configured window, in memory; `on_day` hears of each finished day."""
    city = City.build(cfg.seed, cfg.n_drivers)
    parts: dict[str, list[pd.DataFrame]] = {name: [] for name in TABLES}
    for day in iter_days(cfg):
        tables = _generate_day(cfg, city, day)
        _apply_nulls(tables, cfg, day)
        _apply_bad_rows(tables["trips"], cfg, day)
        for name in TABLES:
            parts[name].append(tables[name])
        if on_day:
            on_day(day)
    tables = {name: pd.concat(parts[name], ignore_index=True) for name in TABLES}
    if REGIMES[cfg.scenario].renamed_columns:
        _rename_for_new_contract(tables)
    return tables


def write_tables(tables: dict[str, pd.DataFrame], out_dir: Path) -> dict[str, Path]:
    """Write every table into `out_dir`, all encoded before any lands."""
    with staged_dir(out_dir) as staging:
        for name, df in tables.items():
            write_parquet(df, staging / f"{name}.parquet")
    return {name: out_dir / f"{name}.parquet" for name in tables}
