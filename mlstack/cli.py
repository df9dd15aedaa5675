"""The `mlstack` command. Heavy libraries are imported inside each command, so `--help` is instant."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from pathlib import Path

import mlstack.bootstrap  # noqa: F401  (before prefect: sets its environment defaults)

import typer
from rich.console import Console
from rich.table import Table

from mlstack.data.generator import SCENARIOS

console = Console()
err = Console(stderr=True)

app = typer.Typer(
    name="mlstack",
    help="mlstack: a Prefect-native reference stack for AI and ML, runnable offline.\n\n"
    "Start with `mlstack demo`, then `mlstack info` to see where everything lives.",
    no_args_is_help=True,
    add_completion=False,
    rich_markup_mode="markdown",
)
data_app = typer.Typer(
    help="Generate, validate and version the ride-hailing example data.", no_args_is_help=True
)
app.add_typer(data_app, name="data")

Scenario = StrEnum("Scenario", {name: name for name in SCENARIOS})  # type: ignore[misc]
DEFAULT_START = "2026-09-01"


def _fail(message: str, code: int = 1) -> typer.Exit:
    err.print(f"[bold red]error:[/] {message}", highlight=False, soft_wrap=True)
    return typer.Exit(code)


@data_app.command("generate")
def data_generate(
    scenario: Scenario = typer.Option(
        "baseline", help="What the window looks like: normal, or one kind of drift or breakage."
    ),
    start: datetime = typer.Option(DEFAULT_START, formats=["%Y-%m-%d"], help="First day (UTC)."),
    days: int = typer.Option(14, min=1, help="Number of days to generate."),
    seed: int = typer.Option(42, help="Random seed: the same seed gives byte-identical files."),
    out: Path | None = typer.Option(None, help="Output folder. Default: raw/ in the data dir."),
    drivers: int = typer.Option(200, min=1, help="Number of drivers."),
    trips_per_day: int = typer.Option(2000, min=1, help="Mean trips per weekday."),
    bad_row_rate: float = typer.Option(
        0.002, min=0.0, max=0.49, help="Share of trips spoiled like a live feed (null label, etc.)."
    ),
) -> None:
    """Write trips, hourly driver stats and zone stats as parquet.

    Scenarios: **baseline**; **covariate_drift** (longer trips from the outskirts, bigger groups);
    **concept_drift** (same inputs, slower trips); **missing_surge** (optional fields go missing);
    **schema_change** (renamed and retyped columns upstream).
    """
    from rich.progress import Progress

    from mlstack.data.generator import GeneratorConfig, generate, write_tables
    from mlstack.settings import get_settings

    cfg = GeneratorConfig(
        scenario=str(scenario),
        start=start.date(),
        days=days,
        seed=seed,
        n_drivers=drivers,
        trips_per_day=trips_per_day,
        bad_row_rate=bad_row_rate,
    )
    out = out or get_settings().data_dir / "raw"
    with Progress(console=err, transient=True) as progress:
        task = progress.add_task(f"generating {cfg.scenario}", total=cfg.days)
        tables = generate(cfg, on_day=lambda _day: progress.advance(task))
    paths = write_tables(tables, out)
    table = Table(
        "table", "rows", "file", title=f"{cfg.scenario}: {cfg.start} + {cfg.days} day(s), seed {seed}"
    )
    for name, path in paths.items():
        table.add_row(name, f"{len(tables[name]):,}", str(path))
    console.print(table)


@data_app.command("validate")
def data_validate(
    paths: list[Path] = typer.Argument(..., help="Parquet files, or folders of them."),
    out: Path | None = typer.Option(
        None, help="Write the valid rows here, only if every table passes. Default: write nothing."
    ),
    report_dir: Path | None = typer.Option(
        None,
        help="Folder for the JSON/HTML report and quarantine files. Default: reports/validation/.",
    ),
    metrics: Path | None = typer.Option(None, help="Also write counts to this JSON metrics file (DVC)."),
    max_bad_row_share: float | None = typer.Option(
        None,
        min=0.0,
        max=1.0,
        help="Share of bad rows allowed per table. Default: MLSTACK_MAX_BAD_ROW_SHARE.",
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
    share = settings.max_bad_row_share if max_bad_row_share is None else max_bad_row_share
    try:
        run = validate_paths(paths, share, table)
    except FileNotFoundError as exc:
        raise _fail(f"{exc}. Pass parquet files or folders that hold them.", code=2) from None
    write_report(run, report_dir or settings.reports_dir / "validation")
    if metrics:
        write_json(run.metrics(), metrics)

    summary = Table("table", "rows", "quarantined", "status", "problem")
    colour = {"passed": "green", "quarantined": "yellow", "failed": "red"}
    for result in run.results:
        summary.add_row(
            result.table,
            f"{result.rows:,}",
            f"{result.bad_rows:,} ({result.bad_share:.2%})",
            f"[{colour[result.status]}]{result.status}[/]",
            result.reason() or "",
        )
    console.print(summary)
    if not run.ok:
        raise _fail(run.summary())
    if out:
        write_validated(run, out)
        console.print(f"validated data written to {out}")
    console.print(run.summary(), highlight=False, soft_wrap=True)


@data_app.command("flow")
def data_flow_command(
    scenario: Scenario = typer.Option("baseline", help="Scenario to generate."),
    start: datetime = typer.Option(DEFAULT_START, formats=["%Y-%m-%d"], help="First day (UTC)."),
    days: int = typer.Option(14, min=1, help="Number of days."),
    seed: int = typer.Option(42, help="Random seed."),
) -> None:
    """Run the data flow under Prefect: generate, validate, write validated data."""
    from flows.data import data_flow
    from flows.runtime import run_flow

    run_flow(data_flow, scenario=str(scenario), start=start.date(), days=days, seed=seed)


@app.command()
def info() -> None:
    """Show the resolved settings and the state of each backing service."""
    from mlstack.services import collect_status

    settings_table, services_table = collect_status()
    console.print(settings_table)
    console.print(services_table)


@app.command()
def demo(
    days: int = typer.Option(14, min=1, help="Days of example data to generate."),
) -> None:
    """Run the main job end to end on embedded services, and say where to look afterwards."""
    from flows.demo import demo_flow
    from flows.runtime import run_flow

    where = run_flow(demo_flow, days=days)
    table = Table("what", "where", title="Where to look")
    for what, path in where.items():
        table.add_row(what, path)
    console.print(table)


if __name__ == "__main__":
    app()
