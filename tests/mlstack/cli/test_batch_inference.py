"""`mlstack predict-batch`: the result renders; an empty window is refused before any work."""

from __future__ import annotations

from pathlib import Path

from typer.testing import CliRunner

from flows.batch_inference import BatchResult
from mlstack.cli import app
from mlstack.cli.batch_inference import render_batch


def test_batch_result_renders() -> None:
    result = BatchResult(rows=12345, parquet=Path("/p/w.parquet"), model_versions=["1", "2"])
    assert render_batch(result) == (
        "12,345 predictions by v1, v2 -> /p/w.parquet and Postgres table trip_predictions"
    )


def test_an_end_before_the_start_is_one_line() -> None:
    result = CliRunner().invoke(app, ["predict-batch", "--start", "2026-09-12", "--end", "2026-09-01"])
    assert result.exit_code == 2
    text = " ".join(result.output.split())
    assert "the window is empty: end 2026-09-01 00:00 is not after start 2026-09-12 00:00" in text
    assert "Traceback" not in result.output
