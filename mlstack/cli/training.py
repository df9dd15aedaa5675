"""Training and the registry: `mlstack train`, `mlstack evaluate`, and `mlstack model`."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer
from rich.console import Group, RenderableType
from rich.table import Table

from mlstack.cli.options import build
from mlstack.cli.render import JSON, console, fail, show
from mlstack.cli.running import run_flow

if TYPE_CHECKING:
    from flows.training import TrainingResult
    from models.tabular.evaluate import Metrics

app = typer.Typer()
model_app = typer.Typer(help="The trip_duration model in the MLflow registry.", no_args_is_help=True)
app.add_typer(model_app, name="model")


@app.command()
def train(
    trials: int | None = typer.Option(None, help="Optuna trials. Default: train.n_trials in params.yaml."),
    out: Path | None = typer.Option(None, help="Also export the trained MLflow model folder here (DVC)."),
    metrics: Path | None = typer.Option(
        None,
        help="Also write the model's scores (validation and test MAE) here as JSON (DVC): nothing of"
        " the registry's, so the same data and params write the same file.",
    ),
    validated: Path | None = typer.Option(
        None, help="Validated data folder. Default: validated/ in the data dir."
    ),
    promote: bool | None = typer.Option(
        None,
        "--promote/--no-promote",
        help="Promote when it wins the gate (the default), or register a challenger only.",
    ),
    as_json: bool = JSON,
) -> None:
    """Tune and train under Prefect, register as challenger, promote only if it beats the champion
    (with --no-promote, not even then: the DVC stage's way, so an experiment never changes what
    `mlstack serve` serves)."""
    from flows.training import TrainingParams, training_flow

    chosen = {} if promote is None else {"promote": promote}
    params = build(TrainingParams, n_trials=trials, validated_dir=validated, **chosen)
    result = run_flow(training_flow, params)
    if out:
        import shutil

        import mlflow

        shutil.rmtree(out, ignore_errors=True)
        out.parent.mkdir(parents=True, exist_ok=True)
        mlflow.artifacts.download_artifacts(f"models:/trip_duration/{result.version}", dst_path=str(out))
    if metrics:
        from mlstack.io import write_json

        write_json({"val_mae": result.val_mae, "test_mae": result.test_mae}, metrics)
    show(result, render_training, as_json)


def render_training(result: TrainingResult) -> str:
    verdict = (
        "promoted to champion"
        if result.promoted
        else "passed the gate, left as challenger"
        if result.passed
        else "not promoted"
    )
    return (
        f"v{result.version}: validation MAE {result.val_mae:.1f}s, test MAE {result.test_mae:.1f}s;"
        f" {verdict} ({result.reason})"
    )


@app.command()
def evaluate(
    model: Path = typer.Option(..., help="An MLflow model folder, as `mlstack train --out` writes."),
    out: Path = typer.Option(..., help="Metrics JSON to write."),
    plots: Path = typer.Option(..., help="Folder for plot data (CSV) and PNGs."),
    validated: Path | None = typer.Option(
        None, help="Validated data folder. Default: validated/ in the data dir."
    ),
) -> None:
    """Score a model on the held-out test window (split by time, as in training)."""
    from mlstack.params import load_params
    from mlstack.settings import get_settings
    from models.tabular.evaluate import evaluate_folder

    split = load_params()["train"]["split"]
    scores, rows = evaluate_folder(model, validated or get_settings().validated_dir, out, plots, split)
    console.print(render_evaluation(scores, rows))


def render_evaluation(scores: Metrics, rows: int) -> str:
    return f"test MAE {scores.mae:.1f}s, RMSE {scores.rmse:.1f}s, R² {scores.r2:.3f} on {rows:,} trips"


@model_app.command("status")
def status_command(
    rescore: bool = typer.Option(
        True,
        help="Also score every version on the newest validated data's test window (a few seconds):"
        " each gate MAE was measured on the window of its own day, so only these compare.",
    ),
    as_json: bool = JSON,
) -> None:
    """Champion, challenger, every version's gate result, its MAE on the newest window, and which
    version served when."""
    from mlflow.exceptions import MlflowException

    from mlstack import registry, tracking

    tracking.setup()
    registry.settle()  # a version whose run was killed before the gate reads as abandoned
    try:
        status = registry.status()
    except MlflowException:
        status = {"versions": []}
    if not status["versions"]:
        raise fail("no registered model yet. Run `mlstack train` first.")
    status["newest_window"] = _newest_window([v["version"] for v in status["versions"]]) if rescore else None
    if as_json:
        print(json.dumps(status))
        return
    console.print(render_status(status))


def _newest_window(versions: list[str]) -> dict[str, Any] | None:
    from dataclasses import asdict

    from mlstack.params import load_params
    from mlstack.settings import get_settings
    from models.tabular.evaluate import score_on_newest_window

    validated = get_settings().validated_dir
    if not validated.is_dir():  # trained elsewhere, or the data dir was cleaned: nothing to score on
        return None
    split = load_params()["train"]["split"]
    return asdict(score_on_newest_window(versions, validated, split))


def render_status(status: dict[str, Any]) -> RenderableType:
    window = status.get("newest_window")
    newest = f"MAE {window['start'][:10]} to {window['end'][:10]} (s)" if window else None
    columns = ["version", "alias", "created", "gate", "MAE at its gate (s)", *([newest] if newest else [])]
    versions = Table(*columns, title="trip_duration")
    for v in status["versions"]:
        alias = ", ".join(a for a in ("champion", "challenger") if status[a] == v["version"])
        row = [v["version"], alias, v["created"], v["gate"], v["mae"]]
        if window:
            mae = window["mae"].get(v["version"])
            row.append("-" if mae is None else f"{mae:.1f}")
        versions.add_row(*row)
    if window:
        versions.caption = (
            f"each gate MAE is on the test window of its own day; the last column scores every"
            f" version on the newest one ({window['rows']:,} trips)"
        )
    served = Table("version", "from", "until", "how", title="Served as champion")
    for stint in status["served"]:
        until = stint["until"][:19] if stint["until"] else "now"
        served.add_row(stint["version"], stint["from"][:19], until, stint["how"])
    return Group(versions, served)


@model_app.command("promote")
def promote_command(version: str = typer.Argument(..., help="Registry version to make champion.")) -> None:
    """Make a version the champion by hand (recorded in the registry's history)."""
    from mlstack import registry, tracking

    tracking.setup()
    previous = registry.promote(version, reason="manual promote")
    console.print(f"v{version} is champion (was v{previous})")


@model_app.command("rollback")
def rollback_command() -> None:
    """Restore the champion that the current one replaced."""
    from mlstack import registry, tracking

    tracking.setup()
    restored, demoted = registry.rollback()
    console.print(f"rolled back: v{restored} is champion again (v{demoted} demoted)")
