"""A window of time, [start, end) in UTC: what batch scoring, monitoring and retraining are asked
about. A naive time is taken to be UTC already; an empty window is refused with both ends named."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
from pydantic import BaseModel, Field, field_validator, model_validator


def utc(when: datetime) -> pd.Timestamp:
    """`when` as a UTC timestamp; a naive time is taken to be UTC already."""
    stamp = pd.Timestamp(when)
    return stamp.tz_localize("UTC") if stamp.tzinfo is None else stamp.tz_convert("UTC")


class TimeWindow(BaseModel):
    """Trips requested from `start` up to, not including, `end`."""

    start: datetime = Field(description="Window start (UTC unless a time zone is given).")
    end: datetime = Field(description="Window end, exclusive.")

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
