"""The data flow under a real Prefect server: tasks, artifact, and a clean failure."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd
import pytest
from prefect.artifacts import Artifact

from flows.data import DataParams, data_flow
from mlstack.data.config import GeneratorConfig


def params(out_dir: Path, append: bool = False, **window: object) -> DataParams:
    return DataParams(window=GeneratorConfig(**window), out_dir=out_dir, append=append)


@pytest.mark.slow
def test_data_flow_writes_validated_data_and_a_table_artifact(prefect_harness, tmp_path: Path) -> None:
    chosen = params(tmp_path, days=2, start=date(2026, 9, 1))
    state = data_flow(chosen, return_state=True)
    assert state.is_completed(), state.message
    written = state.result().validated
    assert set(written) == {"trips", "driver_stats", "zone_stats"}
    trips = pd.read_parquet(written["trips"])
    raw = pd.read_parquet(tmp_path / "raw" / chosen.window.landing() / "trips.parquet")
    assert 0 < len(raw) - len(trips) < 0.01 * len(raw), "the generator's spoiled rows are quarantined"

    artifact = Artifact.get("data-validation")
    assert artifact is not None and artifact.type == "table"
    rows = {row["table"]: row for row in _table(artifact.data)}
    assert rows["trips"]["status"] == "quarantined"
    assert rows["trips"]["valid_rows"] == len(trips)
    assert rows["driver_stats"]["status"] == "passed"


@pytest.mark.slow
def test_broken_contract_fails_the_run_without_writing(prefect_harness, tmp_path: Path) -> None:
    state = data_flow(params(tmp_path, scenario="schema_change", days=1), return_state=True)
    assert state.is_failed()
    assert "missing column 'distance_km'" in state.message
    assert not (tmp_path / "validated").exists()


def _table(data: object) -> list[dict]:
    import json

    return json.loads(data) if isinstance(data, str) else data  # the API returns the table as JSON text


@pytest.mark.slow
def test_appending_a_window_twice_keeps_one_copy(prefect_harness, tmp_path: Path) -> None:
    def run(start: date, days: int, append: bool) -> dict[str, pd.DataFrame]:
        state = data_flow(params(tmp_path, append, days=days, start=start), return_state=True)
        assert state.is_completed(), state.message
        return {name: pd.read_parquet(path) for name, path in state.result().validated.items()}

    first = run(date(2026, 9, 1), 2, append=False)
    grown = run(date(2026, 9, 3), 1, append=True)
    again = run(date(2026, 9, 3), 1, append=True)
    for name in first:
        pd.testing.assert_frame_equal(grown[name], again[name])  # landing it twice changes nothing
    assert grown["trips"]["trip_id"].is_unique
    days = grown["trips"]["requested_at"].dt.strftime("%Y-%m-%d").unique()
    assert sorted(days) == ["2026-09-01", "2026-09-02", "2026-09-03"]
    assert set(first["trips"]["trip_id"]) < set(grown["trips"]["trip_id"])
    replaced = run(date(2026, 9, 1), 1, append=False)  # without append, the window replaces all
    assert replaced["trips"]["requested_at"].max() < pd.Timestamp("2026-09-02", tz="UTC")
