"""`mlstack monitor` and `mlstack drift-history`: drift checks on live windows and their history."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

import typer
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from mlstack.cli.batch_inference import WINDOW_FORMATS
from mlstack.cli.options import build
from mlstack.cli.render import JSON, show
from mlstack.cli.retraining import retraining_line
from mlstack.cli.running import run_flow

if TYPE_CHECKING:
    from flows.monitoring import MonitoringResult
    from monitoring.workspace import History

app = typer.Typer()

DRIFT_EXIT = 3  # 1 is taken by errors and 2 by usage errors: a script must tell drift from both


@app.command()
def monitor(
    window_start: datetime = typer.Option(..., formats=WINDOW_FORMATS, help="Window start (UTC)."),
    window_end: datetime = typer.Option(..., formats=WINDOW_FORMATS, help="Window end (UTC), exclusive."),
    retrain: bool | None = typer.Option(
        None, "--retrain/--no-retrain", help="Retrain on drift. Default: MLSTACK_MONITORING_RETRAIN_ON_DRIFT."
    ),
    exit_code: bool = typer.Option(
        False, "--exit-code", help=f"Exit {DRIFT_EXIT} when drift is found, as `git diff --exit-code` does."
    ),
    as_json: bool = JSON,
) -> None:
    """Check a window of batch and online predictions for drift against the champion's training
    data; on drift, alert (MLSTACK_MONITORING_ALERT_URLS and the data dir's alerts.jsonl), emit the Prefect
    event mlstack.drift.detected, and optionally retrain. Exits 0 with or without drift (with
    --exit-code, 3 on drift), and 1 when the window cannot be judged (its columns differ from the
    reference). A window too small to judge is skipped, with exit 0."""
    from flows.monitoring import MonitoringParams, monitoring_flow

    params = build(MonitoringParams, start=window_start, end=window_end, retrain=retrain)
    result = run_flow(monitoring_flow, params)
    show(result, render_monitoring, as_json)
    if exit_code and result.status == "drift":
        raise typer.Exit(DRIFT_EXIT)


@app.command("drift-history")
def drift_history(as_json: bool = JSON) -> None:
    """Every monitored window, oldest first: drifted share, rows, MAE and the judged version,
    read from the Evidently workspace (`mlstack up` serves its dashboard)."""
    from mlstack.settings import MODEL_NAME, get_settings
    from monitoring.workspace import History, history

    settings = get_settings()
    show(
        History(model=MODEL_NAME, windows=history(settings.evidently_dir, MODEL_NAME)),
        render_history,
        as_json,
    )


def render_history(result: History) -> RenderableType:
    if not result.windows:
        return Text("no monitored window yet: run `mlstack monitor` on a scored window first")
    table = Table(
        "window end",
        "version",
        "drifted share",
        "rows",
        "MAE (s)",
        "reference MAE (s)",
        title=f"{result.model}: drift over time",
    )
    for point in result.windows:
        share = "" if point.drifted_share is None else f"{point.drifted_share:.0%}"
        mae, ref = ("" if v is None else f"{v:.1f}" for v in (point.mae, point.reference_mae))
        table.add_row(
            f"{point.end:%Y-%m-%d %H:%M}", f"v{point.version}", share, str(point.rows or ""), mae, ref
        )
    return table


def render_monitoring(result: MonitoringResult) -> RenderableType:
    if result.status == "skipped":
        return Text.assemble(("window skipped:", "yellow"), f" {result.skipped_because}")
    assert result.drift is not None
    verdict = ("drift detected", "bold red") if result.drift.alert else ("no drift", "green")
    lines = [Text.assemble(f"v{result.version}: ", verdict)]
    lines += [Text(f"  - {reason}") for reason in result.drift.reasons]
    lines += [Text(f"  {name}: {path}") for name, path in result.drift.reports.items()]
    for delivery in result.alerts:
        state = ("sent", "") if delivery.ok else ("failed", "red")
        error = "" if delivery.ok else f" ({delivery.error})"
        lines.append(Text.assemble(f"  alert to {delivery.target}: ", state, error))
    if result.retraining or result.retraining_failed:
        lines.append(Text(f"  {retraining_line(result.retraining, result.retraining_failed)}"))
    return Group(*lines)
