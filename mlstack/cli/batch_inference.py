"""`mlstack predict-batch`: score a window of trips with the champion."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

import typer

from mlstack.cli.options import build
from mlstack.cli.render import JSON, show
from mlstack.cli.running import run_flow

if TYPE_CHECKING:
    from flows.batch_inference import BatchResult

app = typer.Typer()

WINDOW_FORMATS = ["%Y-%m-%d", "%Y-%m-%dT%H:%M:%S"]


@app.command("predict-batch")
def predict_batch(
    start: datetime = typer.Option(..., formats=WINDOW_FORMATS, help="Window start (UTC)."),
    end: datetime = typer.Option(..., formats=WINDOW_FORMATS, help="Window end, exclusive."),
    as_json: bool = JSON,
) -> None:
    """Score trips requested in [start, end) with the champion; rerunning a window replaces it."""
    from flows.batch_inference import BatchParams, batch_inference_flow

    show(run_flow(batch_inference_flow, build(BatchParams, start=start, end=end)), render_batch, as_json)


def render_batch(result: BatchResult) -> str:
    return (
        f"{result.rows:,} predictions by v{', v'.join(result.model_versions)} -> {result.parquet}"
        " and Postgres table trip_predictions"
    )
