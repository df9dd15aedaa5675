"""`mlstack data`: generate, validate and version the ride-hailing example data."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Group, RenderableType
from rich.table import Table

from mlstack.cli.options import build, option
from mlstack.cli.render import JSON, console, err, fail, show
from mlstack.cli.running import run_flow
from mlstack.data.config import SCENARIOS, GeneratorConfig

if TYPE_CHECKING:
    from flows.data import DataResult
    from mlstack.data.validation import ValidationRun

app = typer.Typer(help="Generate, validate and version the ride-hailing example data.", no_args_is_help=True)

ScenarioChoice = StrEnum("ScenarioChoice", {name: name for name in SCENARIOS})  # type: ignore[misc]
STATUS_COLOUR = {"passed": "green", "quarantined": "yellow", "failed": "red"}


# The window's options, shared by `generate` and `flow`: defaults and help are the config's.
SCENARIO = option(GeneratorConfig, "scenario")
START = option(GeneratorConfig, "start", formats=["%Y-%m-%d"])
DAYS = option(GeneratorConfig, "days")
SEED = option(GeneratorConfig, "seed")


def _window(scenario: str, start: datetime, **fields: object) -> GeneratorConfig:
    return build(GeneratorConfig, scenario=str(scenario), start=start.date(), **fields)


@app.command("generate")
def generate_command(
    scenario: ScenarioChoice = SCENARIO,
    start: datetime = START,
    days: int = DAYS,
    seed: int = SEED,
    out: Path | None = typer.Option(None, help="Output folder. Default: raw/ in the data dir."),
    drivers: int = option(GeneratorConfig, "n_drivers", "--drivers"),
    trips_per_day: int = option(GeneratorConfig, "trips_per_day"),
    bad_row_rate: float = option(GeneratorConfig, "bad_row_rate"),
) -> None:
    """Write trips, hourly driver stats and zone stats as parquet.

    Scenarios: **baseline**; **covariate_drift** (longer trips from the outskirts, bigger groups);
    **concept_drift** (same inputs, slower trips); **missing_surge** (optional fields go missing);
    **schema_change** (renamed and retyped columns upstream).
    """
    from rich.progress import Progress

    from mlstack.data.generator import generate, write_tables
    from mlstack.settings import get_settings

    cfg = _window(
        scenario,
        start,
        days=days,
        seed=seed,
        n_drivers=drivers,
        trips_per_day=trips_per_day,
        bad_row_rate=bad_row_rate,
    )
    with Progress(console=err, transient=True) as progress:
        task = progress.add_task(f"generating {cfg.scenario}", total=cfg.days)
        tables = generate(cfg, on_day=lambda _day: progress.advance(task))
    paths = write_tables(tables, out or get_settings().raw_dir)
    console.print(render_generated(cfg, {name: (len(tables[name]), path) for name, path in paths.items()}))


def render_generated(cfg: GeneratorConfig, written: dict[str, tuple[int, Path]]) -> Table:
    table = Table(
        "table", "rows", "file", title=f"{cfg.scenario}: {cfg.start} + {cfg.days} day(s), seed {cfg.seed}"
    )
    for name, (rows, path) in written.items():
        table.add_row(name, f"{rows:,}", str(path))
    return table


@app.command("validate")
def validate_command(
    paths: list[Path] = typer.Argument(..., help="Parquet files, or folders of them."),
    out: Path | None = typer.Option(
        None, help="Write the valid rows here, only if every table passes. Default: write nothing."
    ),
    report_dir: Path | None = typer.Option(
        None, help="Folder for the JSON/HTML report and quarantine files. Default: reports/validation/."
    ),
    metrics: Path | None = typer.Option(None, help="Also write counts to this JSON metrics file (DVC)."),
    max_bad_row_share: float | None = typer.Option(
        None,
        min=0.0,
        max=1.0,
        help="Share of bad rows allowed per table. Default: MLSTACK_DATA_MAX_BAD_ROW_SHARE.",
    ),
    table: str | None = typer.Option(
        None, help="Contract to apply to every file. Default: from each file name (trips, ...)."
    ),
) -> None:
    """Check tables against their contracts; quarantine bad rows; exit 1 if the stage must stop.

    Structural problems (missing, renamed or retyped columns, empty files) and statistical ones
    (null surges, shifted ranges, unknown categories) fail. Bad rows (null labels, negative
    distances, future timestamps) are quarantined while their share stays under the threshold.
    """
    from mlstack.data.validation import validate_paths, write_report, write_validated
    from mlstack.io import write_json
    from mlstack.settings import get_settings

    settings = get_settings()
    share = settings.data.max_bad_row_share if max_bad_row_share is None else max_bad_row_share
    try:
        run = validate_paths(paths, share, table)
    except FileNotFoundError as exc:
        raise fail(f"{exc}. Pass parquet files or folders that hold them.", code=2) from None
    write_report(run, report_dir or settings.validation_reports_dir)
    if metrics:
        write_json(run.metrics(), metrics)
    console.print(render_validation(run))
    if not run.ok:
        raise fail(run.summary())
    if out:
        write_validated(run, out)
        console.print(f"validated data written to {out}")
    console.print(run.summary(), highlight=False, soft_wrap=True)


def render_validation(run: ValidationRun) -> Table:
    summary = Table("table", "rows", "quarantined", "status", "problem")
    for result in run.results:
        summary.add_row(
            result.table,
            f"{result.rows:,}",
            f"{result.bad_rows:,} ({result.bad_share:.2%})",
            f"[{STATUS_COLOUR[result.status]}]{result.status}[/]",
            result.reason() or "",
        )
    return summary


@app.command("flow")
def flow_command(
    append: bool = typer.Option(
        False, "--append", help="Land the window beside the validated data instead of replacing it."
    ),
    scenario: ScenarioChoice = SCENARIO,
    start: datetime = START,
    days: int = DAYS,
    seed: int = SEED,
    as_json: bool = JSON,
) -> None:
    """Run the data flow under Prefect: generate, validate, write validated data."""
    from flows.data import DataParams, data_flow

    params = DataParams(window=_window(scenario, start, days=days, seed=seed), append=append)
    show(run_flow(data_flow, params), render_data, as_json)


def render_data(result: DataResult) -> RenderableType:
    table = Table("table", "rows", "valid", "quarantined", "status", "problem", "validated file")
    for t in result.tables:
        table.add_row(
            t.table,
            f"{t.rows:,}",
            f"{t.valid_rows:,}",
            f"{t.quarantined:,} ({t.bad_share:.2%})",
            f"[{STATUS_COLOUR[t.status]}]{t.status}[/]",
            t.problem or "",
            str(result.validated.get(t.table, "")),
        )
    return Group(table, result.summary)
