"""Every command explains itself, and generate writes what it says it writes."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from mlstack.cli import app

runner = CliRunner()


@pytest.mark.parametrize(
    ("command", "phrase"),
    [
        ([], "demo"),
        (["data"], "generate"),
        (["data", "generate"], "--scenario"),
        (["data", "validate"], "quarantine"),
        (["data", "flow"], "Prefect"),
        (["info"], "backing service"),
        (["demo"], "end to end"),
        (["ask"], "OPENAI_BASE_URL"),
        (["serve-llm"], "OpenAI-compatible"),
    ],
)
def test_help(command: list[str], phrase: str) -> None:
    result = runner.invoke(app, [*command, "--help"], terminal_width=120)
    assert result.exit_code == 0
    assert phrase in result.output


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
    assert trips["requested_at"].min() >= pd.Timestamp("2026-09-01", tz="UTC")

    result = runner.invoke(app, ["data", "validate", str(out), "--out", str(tmp_path / "ok")])
    assert result.exit_code == 0, result.output
    assert result.output.strip().splitlines()[-1].startswith("validation passed: 3 file(s)")


def test_unknown_scenario_is_refused() -> None:
    result = runner.invoke(app, ["data", "generate", "--scenario", "chaos"])
    assert result.exit_code == 2
    assert "chaos" in result.output


def test_ask_needs_a_question_or_a_file(tmp_path: Path) -> None:
    for args in ([], ["Why?", "--file", str(tmp_path / "q.txt")]):
        result = runner.invoke(app, ["ask", *args], terminal_width=200)
        assert result.exit_code == 1 and "give either a QUESTION or --file" in result.output


def test_serve_llm_refuses_a_folder_without_a_model(tmp_path: Path) -> None:
    result = runner.invoke(app, ["serve-llm", "--model", str(tmp_path)], terminal_width=200)
    assert result.exit_code == 1 and "has no config.json" in result.output
