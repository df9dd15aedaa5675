"""Data flow: generate the ride-hailing tables, validate them, then write the validated data.

The story: an upstream feed lands raw parquet (here, the seeded generator plays that feed);
every table is checked against its contract before anything moves on. Bad rows go to
quarantine, a broken contract stops the flow, and a table artifact in the Prefect UI shows
what happened. Run it with `python flows/data.py` or `mlstack data flow`.
"""

from __future__ import annotations

from pathlib import Path

import mlstack.bootstrap  # noqa: F401  (before prefect: sets its environment defaults)

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NONE
from prefect.states import Failed, State
from pydantic import BaseModel, Field

from mlstack.data.config import GeneratorConfig
from mlstack.data.generator import generate, write_tables
from mlstack.data.validation import ValidationRun, validate_paths, write_report, write_validated
from mlstack.settings import get_settings


class DataParams(BaseModel):
    """Which window of example data lands, and whether it joins what is there."""

    window: GeneratorConfig = Field(default_factory=GeneratorConfig)
    append: bool = Field(
        default=False,
        description="Land the window beside the validated data (a new day arriving) instead of"
        " replacing it; landing the same window twice leaves one copy.",
    )
    out_dir: Path | None = Field(
        default=None,
        description="Folder for raw/<window>/ and validated/. Default: the data dir.",
    )


class TableOutcome(BaseModel):
    table: str
    status: str
    rows: int
    valid_rows: int
    quarantined: int
    bad_share: float
    problem: str | None = None


class DataResult(BaseModel):
    validated: dict[str, Path] = Field(description="Each table's validated parquet file.")
    tables: list[TableOutcome]
    summary: str


@task(name="generate", cache_policy=NONE)
def generate_raw(cfg: GeneratorConfig, raw_dir: Path) -> dict[str, Path]:
    paths = write_tables(generate(cfg), raw_dir)
    get_run_logger().info(
        "generated %s scenario, %d day(s) from %s into %s", cfg.scenario, cfg.days, cfg.start, raw_dir
    )
    return paths


@task(name="validate", cache_policy=NONE)
def validate_raw(paths: list[Path], report_dir: Path, max_bad_row_share: float) -> ValidationRun:
    run = write_report(validate_paths(paths, max_bad_row_share), report_dir)
    log = get_run_logger()
    for result in run.results:
        log.info(
            "%s: %s (%d rows, %d quarantined)", result.table, result.status, result.rows, result.bad_rows
        )
    return run


@task(name="write-validated", cache_policy=NONE)
def write_clean(run: ValidationRun, out_dir: Path, append: bool) -> dict[str, Path]:
    return write_validated(run, out_dir, append=append)


def outcomes(run: ValidationRun) -> list[TableOutcome]:
    return [
        TableOutcome(
            table=r.table,
            status=r.status,
            rows=r.rows,
            valid_rows=r.metrics()["valid_rows"],
            quarantined=r.bad_rows,
            bad_share=r.bad_share,
            problem=r.reason(),
        )
        for r in run.results
    ]


@flow(name="data", log_prints=True)
def data_flow(params: DataParams = DataParams()) -> DataResult | State:
    """Generate, validate and write one window of example data."""
    settings = get_settings()
    base = params.out_dir or settings.data_dir
    raw = generate_raw(params.window, base / "raw" / params.window.landing())
    run = validate_raw(list(raw.values()), settings.validation_reports_dir, settings.data.max_bad_row_share)
    tables = outcomes(run)
    create_table_artifact(
        key="data-validation",
        table=[
            {**t.model_dump(), "bad_share": f"{t.bad_share:.3%}", "problem": t.problem or ""} for t in tables
        ],
        description=f"**{run.summary()}**",
    )
    if not run.ok:
        # A Failed state, not an exception: the run fails with a one-line reason and no traceback.
        return Failed(message=run.summary())
    written = write_clean(run, base / "validated", params.append)
    return DataResult(validated=written, tables=tables, summary=run.summary())


if __name__ == "__main__":
    data_flow()
