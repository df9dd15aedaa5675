"""Data contracts for the example tables: pandera models for structure and rows, plus statistics.

Three kinds of rule, with three outcomes (see `validation.py`):
- structure (columns, dtypes, non-empty): a breach fails the stage outright;
- rows (nulls in required fields, ranges, future timestamps, duplicate keys): bad rows are
  quarantined, and the stage fails only when their share passes `max_bad_row_share`;
- statistics over the whole table (null fractions, quantile ranges, category sets): a breach means
  the feed itself changed, so the stage fails.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

import pandas as pd
import pandera.pandas as pa
from pandera.typing import Series

from mlstack.data.generator import ZONE_IDS

UtcTimestamp = Annotated[pd.DatetimeTZDtype, "ns", "UTC"]
CLOCK_SKEW = pd.Timedelta(minutes=5)


def not_in_future(series: pd.Series) -> pd.Series:
    return series <= pd.Timestamp.now(tz="UTC") + CLOCK_SKEW


class Trips(pa.DataFrameModel):
    trip_id: Series[str] = pa.Field(unique=True, str_matches=r"^T\d{8}-\d{5}$")
    driver_id: Series[int] = pa.Field(ge=1)
    pickup_zone: Series[int] = pa.Field(ge=1)
    dropoff_zone: Series[int] = pa.Field(ge=1)
    requested_at: Series[UtcTimestamp]
    distance_km: Series[float] = pa.Field(gt=0, le=300)
    passenger_count: Series[pd.Int64Dtype] = pa.Field(ge=1, le=8, nullable=True)
    duration_s: Series[float] = pa.Field(gt=0, le=6 * 3600)

    @pa.check("requested_at", name="not_in_future")
    @classmethod
    def _requested_not_in_future(cls, series: pd.Series) -> pd.Series:
        return not_in_future(series)

    class Config:
        strict = True
        name = "trips"


class HourlyStats(pa.DataFrameModel):
    """What every hourly stats feed carries: when the hour ended and when the row was published."""

    event_timestamp: Series[UtcTimestamp]
    created: Series[UtcTimestamp]

    @pa.check("event_timestamp", name="not_in_future")
    @classmethod
    def _event_not_in_future(cls, series: pd.Series) -> pd.Series:
        return not_in_future(series)


class DriverStats(HourlyStats):
    driver_id: Series[int] = pa.Field(ge=1)
    avg_speed_kmh: Series[float] = pa.Field(gt=0, le=150, nullable=True)
    acceptance_rate: Series[float] = pa.Field(ge=0, le=1)
    rating: Series[float] = pa.Field(ge=1, le=5)
    trips_today: Series[int] = pa.Field(ge=0)

    class Config:
        strict = True
        name = "driver_stats"
        unique = ("driver_id", "event_timestamp", "created")


class ZoneStats(HourlyStats):
    zone_id: Series[int] = pa.Field(ge=1)
    congestion_index: Series[float] = pa.Field(ge=0, le=5, nullable=True)
    avg_speed_kmh: Series[float] = pa.Field(gt=0, le=150)
    demand_1h: Series[int] = pa.Field(ge=0)

    class Config:
        strict = True
        name = "zone_stats"
        unique = ("zone_id", "event_timestamp", "created")


@dataclass(frozen=True)
class StatCheck:
    """A rule over a whole column: `measure` gives the observed value, `passes` judges it."""

    column: str
    rule: str
    measure: Callable[[pd.Series], object]
    passes: Callable[[object], bool]


def max_null_fraction(column: str, limit: float) -> StatCheck:
    return StatCheck(
        column,
        f"null_fraction <= {limit:g}",
        lambda s: round(float(s.isna().mean()), 4),
        lambda v: v <= limit,  # type: ignore[operator]
    )


def quantile_between(column: str, q: float, low: float, high: float) -> StatCheck:
    return StatCheck(
        column,
        f"p{int(q * 100)} in [{low:g}, {high:g}]",
        lambda s: round(float(s.quantile(q)), 3),
        lambda v: low <= v <= high,  # type: ignore[operator]
    )


def categories_within(column: str, allowed: tuple[int, ...]) -> StatCheck:
    known = set(allowed)
    return StatCheck(
        column,
        f"categories within {min(known)}..{max(known)}",
        lambda s: sorted(int(v) for v in set(s.dropna().unique()) - known),
        lambda v: not v,
    )


@dataclass(frozen=True)
class TableContract:
    name: str
    model: type[pa.DataFrameModel]
    stats: tuple[StatCheck, ...]


CONTRACTS: dict[str, TableContract] = {
    c.name: c
    for c in (
        TableContract(
            "trips",
            Trips,
            (
                max_null_fraction("passenger_count", 0.05),
                max_null_fraction("duration_s", 0.01),
                quantile_between("distance_km", 0.5, 1.0, 40.0),
                quantile_between("duration_s", 0.5, 180.0, 5400.0),
                categories_within("pickup_zone", ZONE_IDS),
                categories_within("dropoff_zone", ZONE_IDS),
            ),
        ),
        TableContract(
            "driver_stats",
            DriverStats,
            (
                max_null_fraction("avg_speed_kmh", 0.05),
                quantile_between("avg_speed_kmh", 0.5, 5.0, 80.0),
            ),
        ),
        TableContract(
            "zone_stats",
            ZoneStats,
            (
                max_null_fraction("congestion_index", 0.05),
                categories_within("zone_id", ZONE_IDS),
            ),
        ),
    )
}
