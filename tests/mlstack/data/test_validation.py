"""Validation: each kind of bad input gets its own error, and nothing downstream is written."""

from __future__ import annotations

import json
import multiprocessing
from collections.abc import Callable
from datetime import date
from pathlib import Path
from typing import Annotated

import numpy as np
import pandas as pd
import pandera.pandas as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pandera.typing import Series
from typer.testing import CliRunner

from mlstack.cli import app
from mlstack.data.generator import generate, write_tables
from mlstack.data.schemas import TableContract, max_null_fraction
from mlstack.data.validation import (
    table_key,
    validate_file,
    validate_paths,
    write_report,
    write_validated,
)
from mlstack.io import write_parquet
from tests.conftest import small

runner = CliRunner()
FUTURE = pd.Timestamp("2099-01-01", tz="UTC")


def spoil_rows(column: str, value: object, share: float) -> Callable[[pd.DataFrame], pd.DataFrame]:
    def apply(df: pd.DataFrame) -> pd.DataFrame:
        df = df.copy()
        rows = np.arange(0, len(df), int(1 / share))
        df.loc[rows, column] = value
        return df

    return apply


# Each case: how to spoil trips, then what the error must say (check, column, and whether rows are named).
CASES = {
    "renamed column": (
        lambda df: df.rename(columns={"distance_km": "trip_km"}),
        ("missing column", "distance_km", False),
    ),
    "retyped column": (
        lambda df: df.assign(passenger_count=df["passenger_count"].astype(str)),
        ("wrong dtype for column", "passenger_count", False),
    ),
    "empty file": (lambda df: df.iloc[0:0], ("file has no rows", None, False)),
    "null labels": (spoil_rows("duration_s", np.nan, 0.05), ("not_nullable", "duration_s", True)),
    "out-of-range values": (spoil_rows("distance_km", -2.5, 0.05), ("greater_than(0)", "distance_km", True)),
    "future timestamps": (spoil_rows("requested_at", FUTURE, 0.05), ("not_in_future", "requested_at", True)),
}


def run_validate(*args: str):
    return runner.invoke(app, ["data", "validate", *args])


@pytest.mark.parametrize("case", list(CASES))
def test_each_bad_input_gets_its_error_and_writes_nothing(case: str, raw_dir: Path, tmp_path: Path) -> None:
    spoil, (check, column, names_rows) = CASES[case]
    trips_path = raw_dir / "trips.parquet"
    write_parquet(spoil(pd.read_parquet(trips_path)), trips_path)
    out, reports = tmp_path / "validated", tmp_path / "reports"

    result = run_validate(str(raw_dir), "--out", str(out), "--report-dir", str(reports))

    assert result.exit_code == 1, result.output
    assert not out.exists(), "nothing downstream may be written when validation fails"
    last_line = result.output.strip().splitlines()[-1]
    assert last_line.startswith("error: validation failed: trips.parquet")
    assert str(reports / "validation.html") in last_line
    report = json.loads((reports / "validation.json").read_text())
    trips = next(t for t in report["tables"] if t["table"] == "trips")
    assert trips["status"] == "failed"
    failures = [f for f in trips["failures"] if f["check"] == check]
    assert failures, f"expected a {check!r} failure, got {trips['failures'][:3]}"
    assert all(f["file"] == str(trips_path) and f["column"] == column for f in failures)
    if names_rows:
        original = pd.read_parquet(raw_dir.parent / "raw" / "trips.parquet")
        spoiled_rows = set(np.arange(0, len(original), 20))  # spoil_rows with share 0.05
        named = {f["row"] for f in failures}
        assert named == spoiled_rows
        assert all(f["value"] is not None for f in failures)
        # The one line names the column, the rule and how many rows broke it.
        assert f"{column}: {check} ({len(spoiled_rows)})" in " ".join(result.output.split())
    else:
        assert all(f["row"] is None for f in failures)
    # The other tables are fine, and the report says so.
    assert {t["table"]: t["status"] for t in report["tables"]}["driver_stats"] == "passed"
    assert check in (reports / "validation.html").read_text()


def test_a_few_bad_rows_are_quarantined_and_the_rest_goes_on(raw_dir: Path, tmp_path: Path) -> None:
    trips_path = raw_dir / "trips.parquet"
    trips = pd.read_parquet(trips_path)
    spoiled = spoil_rows("distance_km", -1.0, 0.004)(trips)
    write_parquet(spoiled, trips_path)
    out, reports = tmp_path / "validated", tmp_path / "reports"

    result = run_validate(str(raw_dir), "--out", str(out), "--report-dir", str(reports))

    assert result.exit_code == 0, result.output
    bad = set(np.flatnonzero(spoiled["distance_km"] <= 0))
    quarantine = pd.read_parquet(reports / "trips.quarantine.parquet")
    assert set(quarantine["_row"]) == bad
    assert quarantine["_failed_checks"].str.len().gt(0).all()
    validated = pd.read_parquet(out / "trips.parquet")
    assert len(validated) == len(trips) - len(bad)
    assert (validated["distance_km"] > 0).all()
    assert sorted(p.name for p in out.iterdir()) == [
        "driver_stats.parquet",
        "trips.parquet",
        "zone_stats.parquet",
    ]


def test_threshold_comes_from_settings(
    raw_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    trips_path = raw_dir / "trips.parquet"
    write_parquet(spoil_rows("duration_s", np.nan, 0.05)(pd.read_parquet(trips_path)), trips_path)
    monkeypatch.setenv("MLSTACK_DATA_MAX_BAD_ROW_SHARE", "0.2")
    assert run_validate(str(raw_dir), "--report-dir", str(tmp_path)).exit_code == 0
    monkeypatch.setenv("MLSTACK_DATA_MAX_BAD_ROW_SHARE", "0.01")
    assert run_validate(str(raw_dir), "--report-dir", str(tmp_path)).exit_code == 1


@pytest.mark.parametrize(
    ("scenario", "table", "column", "rule"),
    [
        ("missing_surge", "trips", "passenger_count", "null_fraction <= 0.05"),
        ("missing_surge", "driver_stats", "avg_speed_kmh", "null_fraction <= 0.05"),
        ("schema_change", "zone_stats", "congestion_index", "missing column"),
    ],
)
def test_scenarios_that_break_the_contract_fail(
    scenario: str, table: str, column: str, rule: str, tmp_path: Path
) -> None:
    from tests.conftest import small

    write_tables(generate(small(scenario=scenario)), tmp_path / "raw")
    run = validate_paths([tmp_path / "raw"], 0.01)
    assert not run.ok
    result = next(r for r in run.results if r.table == table)
    assert any(f.column == column and f.check == rule for f in result.failures), result.failures[:5]


def test_unknown_zone_is_a_statistical_failure(raw_dir: Path) -> None:
    zones_path = raw_dir / "zone_stats.parquet"
    zones = pd.read_parquet(zones_path)
    zones.loc[0, "zone_id"] = 99
    write_parquet(zones, zones_path)
    result = validate_file(zones_path, 0.01)
    stat = [f for f in result.failures if f.category == "statistical"]
    assert [(f.column, f.value) for f in stat] == [("zone_id", "[99]")]
    assert not result.ok


def test_unreadable_and_unknown_files_are_structural_failures(tmp_path: Path) -> None:
    garbage = tmp_path / "trips.parquet"
    garbage.write_text("not parquet")
    assert validate_file(garbage, 0.01).failures[0].check == "readable parquet"
    other = tmp_path / "weather.parquet"
    write_parquet(pd.DataFrame({"a": [1]}), other)
    assert "unknown table" in validate_file(other, 0.01).failures[0].check


def test_missing_path_is_a_usage_error(tmp_path: Path) -> None:
    result = run_validate(str(tmp_path / "nope"))
    assert result.exit_code == 2
    assert "no such file or folder" in result.output


def test_write_validated_refuses_a_failed_run(raw_dir: Path, tmp_path: Path) -> None:
    (raw_dir / "trips.parquet").write_bytes(b"")
    run = write_report(validate_paths([raw_dir], 0.01), tmp_path / "reports")
    with pytest.raises(ValueError, match="refusing to write"):
        write_validated(run, tmp_path / "out")
    assert not (tmp_path / "out").exists()


@settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    spoil=st.dictionaries(
        keys=st.integers(min_value=0, max_value=299),
        values=st.sampled_from(["null_label", "negative_distance", "future", "zero_passengers"]),
        max_size=25,
    )
)
def test_quarantine_holds_exactly_the_spoiled_rows(
    spoil: dict[int, str], clean_tables, tmp_path_factory
) -> None:
    df = clean_tables["trips"].head(300).copy()
    for row, kind in spoil.items():
        column, value = {
            "null_label": ("duration_s", np.nan),
            "negative_distance": ("distance_km", -1.0),
            "future": ("requested_at", FUTURE),
            "zero_passengers": ("passenger_count", 0),
        }[kind]
        df.loc[row, column] = value
    path = tmp_path_factory.mktemp("prop") / "trips.parquet"
    write_parquet(df, path)

    result = validate_file(path, max_bad_row_share=1.0)

    quarantined = set() if result.quarantine is None else set(result.quarantine["_row"])
    assert quarantined == set(spoil)
    assert len(result.valid) == 300 - len(spoil)


@pytest.mark.parametrize(
    ("table", "key"), [("trips", ["trip_id"]), ("zone_stats", ["zone_id", "event_timestamp"])]
)
def test_duplicate_keys_keep_the_first_copy(table: str, key: list[str], clean_tables, tmp_path: Path) -> None:
    df = clean_tables[table]
    df = df[~df.duplicated(key, keep=False)].head(200)  # zone readings may be restated on purpose
    doubled = pd.concat([df, df.iloc[[3, 7]]], ignore_index=True)
    path = tmp_path / f"{table}.parquet"
    write_parquet(doubled, path)

    result = validate_file(path, max_bad_row_share=1.0)

    assert sorted(result.quarantine["_row"]) == [len(df), len(df) + 1]
    assert "uniqueness" in result.quarantine["_failed_checks"].iloc[0]
    pd.testing.assert_frame_equal(result.valid, df.reset_index(drop=True))


def _append_when_released(raw: str, out: str, release) -> None:
    run = validate_paths([Path(raw)], 0.01)
    release.wait(120)
    write_validated(run, Path(out), append=True)


@pytest.mark.slow
@pytest.mark.parametrize("writers", [2, 4])
def test_concurrent_appends_keep_every_window(tmp_path: Path, writers: int) -> None:
    """Windows landing at one instant: every row of every window is kept, none twice. Without
    the folder's lock, two appends read the same old tables and the later write drops a window."""
    expected: dict[str, int] = {}
    raws = []
    for n in range(writers):
        raw = tmp_path / f"raw-{n}"
        write_tables(generate(small(start=date(2026, 9, 1 + 2 * n), days=2)), raw)
        for result in validate_paths([raw], 0.01).results:
            expected[result.table] = expected.get(result.table, 0) + len(result.valid)
        raws.append(raw)
    out = tmp_path / "validated"
    context = multiprocessing.get_context("spawn")
    release = context.Barrier(writers)
    processes = [
        context.Process(target=_append_when_released, args=(str(raw), str(out), release)) for raw in raws
    ]
    for process in processes:
        process.start()
    for process in processes:
        process.join(180)
    assert [p.exitcode for p in processes] == [0] * writers
    for table, rows in expected.items():
        written = pd.read_parquet(out / f"{table}.parquet")
        assert len(written) == rows, table
        assert not written.duplicated(table_key(table)).any(), table
    assert sorted(p.name for p in out.iterdir()) == sorted(f"{t}.parquet" for t in expected)


def test_when_every_row_is_quarantined_the_error_names_the_row_rule(raw_dir: Path) -> None:
    """A statistic over no rows is undefined: the rule that set the rows aside is the news, not
    `null_fraction <= 0.05 (value: nan)` measured on what was left."""
    trips_path = raw_dir / "trips.parquet"
    write_parquet(spoil_rows("requested_at", FUTURE, 1.0)(pd.read_parquet(trips_path)), trips_path)
    result = validate_file(trips_path, 0.05)
    assert result.bad_share == 1.0
    assert not [f for f in result.failures if f.category == "statistical"]
    reason = result.reason()
    assert "(100.00%) exceed max_bad_row_share" in reason and "requested_at: not_in_future" in reason
    assert "nan" not in reason


class Readings(pa.DataFrameModel):
    """A table of someone else's, to hold the contract machinery to a schema not the example's."""

    reading_id: Series[str] = pa.Field(unique=True)
    sensor_id: Series[pd.Int64Dtype] = pa.Field(ge=1)
    taken_at: Series[Annotated[pd.DatetimeTZDtype, "ns", "UTC"]]
    celsius: Series[float] = pa.Field(ge=-60, le=60)

    class Config:
        strict = True
        name = "readings"


READINGS = TableContract("readings", Readings, (max_null_fraction("celsius", 0.5),))


def test_a_csv_is_judged_against_a_contract_of_ones_own_and_bad_values_are_named_by_line(
    tmp_path: Path,
) -> None:
    path = tmp_path / "readings.csv"
    path.write_text(
        "reading_id,sensor_id,taken_at,celsius\n"
        "R1,1,2026-09-01T08:00:00Z,21.5\n"
        "R2,1.5,2026-09-01T09:00:00Z,22.0\n"  # line 3: not a whole number
        "R3,2,last tuesday,19.0\n"  # line 4: not a timestamp
        "R4,2,2026-09-01T10:00:00+00:00,warm\n"  # line 5: not a number
        "R5,3,2026-09-01T11:00:00Z,99\n"  # line 6: out of range
        "R6,3,2026-09-01T12:00:00Z,18.25\n"
    )

    result = validate_file(path, max_bad_row_share=0.9, contract=READINGS)

    described = [f.describe() for f in result.failures]
    for expected in (
        "readings.csv: line 3, column 'sensor_id': not a whole number (value: 1.5)",
        "readings.csv: line 4, column 'taken_at': not an ISO 8601 timestamp (value: last tuesday)",
        "readings.csv: line 5, column 'celsius': not a number (value: warm)",
        "readings.csv: line 6, column 'celsius': less_than_or_equal_to(60) (value: 99.0)",
    ):
        assert expected in described, described
    assert result.ok
    assert result.quarantine is not None and result.quarantine["reading_id"].tolist() == [
        "R2",
        "R3",
        "R4",
        "R5",
    ]
    assert result.valid is not None and result.valid["reading_id"].tolist() == ["R1", "R6"]
    assert str(result.valid["taken_at"].dtype) == "datetime64[ns, UTC]"
    assert result.valid["sensor_id"].tolist() == [1, 3] and result.valid["celsius"].tolist() == [21.5, 18.25]


def test_a_csv_missing_a_column_fails_as_structure(tmp_path: Path) -> None:
    path = tmp_path / "readings.csv"
    path.write_text("reading_id,sensor_id,taken_at,temp\nR1,1,2026-09-01T08:00:00Z,21.5\n")

    result = validate_file(path, max_bad_row_share=0.5, contract=READINGS)

    assert not result.ok
    assert result.failures[0].describe() == "readings.csv: missing column 'celsius' (found instead: temp)"
