"""`mlstack features`: what apply and materialize print."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from typer.testing import CliRunner

from mlstack.cli import app
from mlstack.cli.features import render_applied, render_materialized


def test_apply_and_materialize_render() -> None:
    tables = {
        "driver_hourly": Path("/d/driver_hourly.parquet"),
        "zone_hourly": Path("/d/zone_hourly.parquet"),
    }
    assert render_applied(9, tables) == (
        "applied 9 Feast objects; offline tables: /d/driver_hourly.parquet, /d/zone_hourly.parquet"
    )
    at = datetime(2026, 9, 15, 0, 0, 1, tzinfo=UTC)
    assert render_materialized(at) == "online store loaded up to 2026-09-15 00:00:01+00:00"


def test_apply_without_validated_data_says_what_to_run(tmp_path: Path) -> None:
    result = CliRunner().invoke(app, ["features", "apply", "--validated", str(tmp_path)])
    assert result.exit_code == 1
    assert "holds no validated trips.parquet: run `mlstack data flow`" in " ".join(result.output.split())
