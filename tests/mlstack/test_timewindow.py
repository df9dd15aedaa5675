"""The time window: UTC from the edge inward, a day before the end by default, never empty."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from pydantic import ValidationError

from mlstack.timewindow import TimeWindow, last_midnight, utc


def test_naive_times_are_utc_and_aware_ones_are_converted() -> None:
    paris = timezone(timedelta(hours=2))
    window = TimeWindow(start=datetime(2026, 9, 15, 2, 0, tzinfo=paris), end=datetime(2026, 9, 16))
    assert window.start == datetime(2026, 9, 15, 0, 0, tzinfo=UTC)
    assert window.end == datetime(2026, 9, 16, tzinfo=UTC)
    assert utc(datetime(2026, 9, 15, 2, 0, tzinfo=paris)) == utc(datetime(2026, 9, 15))
    assert str(utc(datetime(2026, 9, 15)).tz) == "UTC"


def test_left_out_the_window_is_the_day_before_the_end() -> None:
    assert TimeWindow(end=datetime(2026, 9, 16)).start == datetime(2026, 9, 15, tzinfo=UTC)
    default = TimeWindow()
    assert default.end == last_midnight() and default.end - default.start == timedelta(days=1)
    assert (default.end.hour, default.end.minute, default.end.tzinfo) == (0, 0, UTC)


@pytest.mark.parametrize("end", [datetime(2026, 9, 15), datetime(2026, 9, 14)])
def test_an_empty_window_is_refused_naming_both_ends(end: datetime) -> None:
    with pytest.raises(ValidationError, match=r"the window is empty: end 2026-09-1\d 00:00 is not after"):
        TimeWindow(start=datetime(2026, 9, 15), end=end)
