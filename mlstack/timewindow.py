"""A window of time, [start, end) in UTC: what batch scoring, monitoring and retraining are asked
about. A naive time is taken to be UTC already; an empty window is refused with both ends named.

Left out, the window is the day before the run: what a daily schedule judges. `end` defaults to
the last midnight (UTC) and `start` to a day before `end`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
from pydantic import BaseModel, Field, field_validator, model_validator


def utc(when: datetime) -> pd.Timestamp:
    """`when` as a UTC timestamp; a naive time is taken to be UTC already."""
    stamp = pd.Timestamp(when)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


def last_midnight() -> datetime:
    return datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0)


class TimeWindow(BaseModel):
    """Trips requested from `start` up to, not including, `end`."""

    start: datetime = Field(
        default_factory=lambda: last_midnight() - timedelta(days=1),
        description="Window start (UTC unless a time zone is given). Default: a day before end.",
    )
    end: datetime = Field(
        default_factory=last_midnight,
        description="Window end, exclusive. Default: the last midnight (UTC), so a daily schedule"
        " judges the day before.",
    )

    @model_validator(mode="before")
    @classmethod
    def _a_day_before_end(cls, data: Any) -> Any:
        if isinstance(data, dict) and data.get("start") is None and data.get("end") is not None:
            return {**data, "start": pd.Timestamp(data["end"]).to_pydatetime() - timedelta(days=1)}
        return data

    @field_validator("start", "end")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)

    @model_validator(mode="after")
    def _not_empty(self) -> TimeWindow:
        if self.end <= self.start:
            raise ValueError(
                f"the window is empty: end {self.end:%Y-%m-%d %H:%M} is not after start"
                f" {self.start:%Y-%m-%d %H:%M}; give an end after the start"
            )
        return self
