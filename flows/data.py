"""Data flow: generate the ride-hailing tables, validate them, then write the validated data.

The story: an upstream feed lands raw parquet (here, the seeded generator plays that feed);
every table is checked against its contract before anything moves on. Bad rows go to
quarantine, a broken contract stops the flow, and a table artifact in the Prefect UI shows
what happened. Run it with `python flows/data.py` or `mlstack data flow`.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path

import mlstack.bootstrap  # noqa: F401  (before prefect: sets its environment defaults)

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_table_artifact
from prefect.cache_policies import NONE
from prefect.states import Failed, State

from mlstack.data.generator import GeneratorConfig, generate, write_tables
from mlstack.data.validation import ValidationRun, validate_paths, write_report, write_validated
from mlstack.settings import get_settings


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


def summary_table(run: ValidationRun) -> list[dict[str, object]]:
    return [
        {
            "table": r.table,
            "status": r.status,
            "rows": r.rows,
            "valid_rows": r.metrics()["valid_rows"],
            "quarantined": r.bad_rows,
            "bad_share": f"{r.bad_share:.3%}",
            "problem": r.reason() or "",
        }
        for r in run.results
    ]


@flow(name="data", log_prints=True)
def data_flow(
    scenario: str = "baseline",
    start: date = date(2026, 9, 1),
    days: int = 14,
    seed: int = 42,
    out_dir: Path | None = None,
    append: bool = False,
) -> dict[str, str] | State:
    """Generate, validate and write one window of example data; returns the validated paths.

    `append` lands the window beside the data already validated (a new day arriving) instead
    of replacing it; landing the same window twice leaves one copy.
    """
    settings = get_settings()
    base = out_dir or settings.data_dir
    cfg = GeneratorConfig(scenario=scenario, start=start, days=days, seed=seed)
    raw = generate_raw(cfg, base / "raw")
    run = validate_raw(list(raw.values()), settings.validation_reports_dir, settings.max_bad_row_share)
    create_table_artifact(
        key="data-validation",
        table=summary_table(run),
        description=f"**{run.summary()}**",
    )
    if not run.ok:
        # A Failed state, not an exception: the run fails with a one-line reason and no traceback.
        return Failed(message=run.summary())
    written = write_clean(run, base / "validated", append)
    return {name: str(path) for name, path in written.items()}


if __name__ == "__main__":
    data_flow()
