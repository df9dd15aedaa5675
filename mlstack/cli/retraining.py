"""`mlstack retrain`: retrain with the champion's recipe, gate, promote or keep, and alert."""

from __future__ import annotations

from datetime import datetime
from typing import TYPE_CHECKING

import typer

from mlstack.cli.batch_inference import WINDOW_FORMATS
from mlstack.cli.options import build
from mlstack.cli.render import JSON, show
from mlstack.cli.running import run_flow

if TYPE_CHECKING:
    from flows.retraining import RetrainingResult

app = typer.Typer()


def retraining_line(result: RetrainingResult | None, failed: str | None = None) -> str:
    if result is None:
        return f"retraining failed: {failed}"
    champion = "n/a" if result.champion_mae is None else f"{result.champion_mae:.1f}s"
    return (
        f"retrained v{result.version}: MAE {result.challenger_mae:.1f}s vs champion"
        f" v{result.champion_before} {champion} on {result.holdout}:"
        f" {'promoted' if result.promoted else 'champion kept'} ({result.reason})"
    )


@app.command()
def retrain(
    until: datetime | None = typer.Option(
        None, formats=WINDOW_FORMATS, help="Train on labelled trips before this instant. Default: all."
    ),
    trials: int | None = typer.Option(
        None,
        help="Optuna trials from the champion's params; 0 reuses them."
        " Default: MLSTACK_MONITORING_RETRAIN_TRIALS.",
    ),
    as_json: bool = JSON,
) -> None:
    """Retrain with the champion's recipe, gate the result on the newest labelled hours
    (MLSTACK_MONITORING_RETRAIN_HOLDOUT_HOURS), promote or keep the champion, and alert with the decision."""
    from datetime import UTC

    from flows.retraining import RetrainingParams, retraining_flow

    params = build(RetrainingParams, until=until.replace(tzinfo=UTC) if until else None, n_trials=trials)
    show(run_flow(retraining_flow, params), retraining_line, as_json)
