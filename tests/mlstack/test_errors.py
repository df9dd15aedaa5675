"""Which failures a retry can fix."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest

from mlstack.errors import Busy, InputError, NotReady, transient, unreadable
from mlstack.postgres import PostgresUnavailable


@pytest.mark.parametrize(
    ("error", "retry"),
    [
        (Busy("locked"), True),
        (PostgresUnavailable("restarting"), True),
        (psycopg.OperationalError("connection lost"), True),
        (psycopg.errors.SerializationFailure(), True),
        (ConnectionError("reset"), True),
        (psycopg.errors.UniqueViolation("duplicate key"), False),  # the same write fails the same way
        (InputError("bad window"), False),
        (NotReady("no champion"), False),
        (KeyError("bug"), False),
    ],
)
def test_only_what_can_succeed_again_is_transient(error: BaseException, retry: bool) -> None:
    assert transient(error) is retry


def test_an_unreadable_file_names_the_file_and_the_cause() -> None:
    error = unreadable(Path("/data/trips.parquet"), ValueError("Parquet magic bytes not found\nmore"))
    assert str(error).startswith("/data/trips.parquet: not a readable parquet file (Parquet magic bytes")
    assert "\n" not in str(error)
