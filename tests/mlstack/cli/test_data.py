"""`mlstack data`: generate writes what it says, validate stops bad data, the flow's result renders."""

from __future__ import annotations

from datetime import date
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from flows.data import DataResult, TableOutcome
from mlstack.cli import app
from mlstack.cli.data import render_data, render_generated
from mlstack.data.config import GeneratorConfig
from mlstack.data.generator import generate, write_tables
from mlstack.data.validation import validate_paths
from tests.conftest import option_defaults, rendered
from tests.kill import command_env, mlstack, start_together

runner = CliRunner()


def test_generate_then_validate(tmp_path: Path) -> None:
    out = tmp_path / "raw"
    result = runner.invoke(
        app,
        ["data", "generate", "--days", "1", "--trips-per-day", "300", "--out", str(out)],
        terminal_width=120,
    )
    assert result.exit_code == 0, result.output
    trips = pd.read_parquet(out / "trips.parquet")
    assert f"{len(trips):,}" in result.output
    assert trips["requested_at"].min() >= pd.Timestamp(GeneratorConfig().start, tz="UTC")

    result = runner.invoke(app, ["data", "validate", str(out), "--out", str(tmp_path / "ok")])
    assert result.exit_code == 0, result.output
    assert result.output.strip().splitlines()[-1].startswith("validation passed: 3 file(s)")


def test_unknown_scenario_is_refused() -> None:
    result = runner.invoke(app, ["data", "generate", "--scenario", "chaos"])
    assert result.exit_code == 2
    assert "chaos" in result.output


def test_a_value_the_config_refuses_is_one_line_naming_the_option(tmp_path: Path) -> None:
    result = runner.invoke(app, ["data", "generate", "--bad-row-rate", "0.7", "--out", str(tmp_path)])
    assert result.exit_code == 2
    assert "--bad-row-rate: Input should be less than 0.5" in " ".join(result.output.split())
    assert not any(tmp_path.iterdir()), "nothing is written before the options are valid"


def test_the_options_default_to_the_example_config() -> None:
    defaults = GeneratorConfig()
    for command in ("generate", "flow"):
        options = option_defaults(app, "data", command)
        assert options["start"][0] == defaults.start.isoformat() and options["days"][0] == defaults.days
        assert options["seed"] == (defaults.seed, GeneratorConfig.model_fields["seed"].description)
    assert option_defaults(app, "data", "generate")["drivers"][0] == defaults.n_drivers
    shown = " ".join(runner.invoke(app, ["data", "generate", "--help"]).output.replace("│", " ").split())
    assert f"First day (UTC). [default: {defaults.start.isoformat()}]" in shown


def test_generated_tables_render() -> None:
    cfg = GeneratorConfig(days=2, seed=7)
    text = rendered(render_generated(cfg, {"trips": (4321, Path("/tmp/raw/trips.parquet"))}))
    assert "baseline: 2026-09-01 + 2 day(s), seed 7" in text
    assert "trips 4,321 /tmp/raw/trips.parquet" in text


def test_the_data_flow_result_renders() -> None:
    result = DataResult(
        validated={"trips": Path("/tmp/v/trips.parquet")},
        tables=[
            TableOutcome(
                table="trips",
                status="quarantined",
                rows=28000,
                valid_rows=27944,
                quarantined=56,
                bad_share=0.002,
                problem=None,
            ),
            TableOutcome(
                table="zone_stats",
                status="failed",
                rows=10,
                valid_rows=0,
                quarantined=0,
                bad_share=0.0,
                problem="zone_stats.parquet: missing column 'zone_id'",
            ),
        ],
        summary="validation failed: zone_stats.parquet: missing column 'zone_id'",
    )
    text = rendered(render_data(result))
    assert "trips 28,000 27,944 56 (0.20%) quarantined /tmp/v/trips.parquet" in text
    assert "zone_stats 10 0 0 (0.00%) failed zone_stats.parquet: missing column 'zone_id'" in text
    assert text.endswith("validation failed: zone_stats.parquet: missing column 'zone_id'")


@pytest.mark.slow
def test_two_appends_at_once_keep_both_windows(tmp_path: Path) -> None:
    """The reported race: two `data flow --append` runs started together, exit 0 both, and every
    table holds both windows' rows exactly once."""
    home = tmp_path / "home"
    windows = [GeneratorConfig(start=date(2026, 9, day), days=2) for day in (12, 14)]
    argv = [mlstack("data", "flow", "--append", "--start", str(w.start), "--days", "2") for w in windows]
    runs = start_together(argv, command_env(home))
    assert [r.returncode for r in runs] == [0, 0], [r.stderr[-2000:] for r in runs]
    expected: dict[str, int] = {}
    for window in windows:
        write_tables(generate(window), tmp_path / window.landing())
        for result in validate_paths([tmp_path / window.landing()], 0.01).results:
            expected[result.table] = expected.get(result.table, 0) + len(result.valid)
    for table, rows in expected.items():
        assert len(pd.read_parquet(home / "data" / "validated" / f"{table}.parquet")) == rows, table
    landed = sorted(p.name for p in (home / "data" / "raw").iterdir())
    assert landed == sorted(w.landing() for w in windows), "each window lands in its own folder"
