"""The `mlstack` root: every command explains itself; `info` renders its result."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mlstack.cli import app
from mlstack.cli.root import render_info
from mlstack.services import InfoResult, ServiceRow, SettingRow, setting_rows
from mlstack.settings import Settings
from tests.conftest import rendered

runner = CliRunner()


@pytest.mark.parametrize(
    ("command", "phrase"),
    [
        ([], "demo"),
        (["data"], "generate"),
        (["data", "generate"], "--scenario"),
        (["data", "validate"], "quarantine"),
        (["data", "flow"], "Prefect"),
        (["features"], "materialize"),
        (["model"], "rollback"),
        (["train"], "champion"),
        (["predict-batch"], "--json"),
        (["monitor"], "mlstack.drift.detected"),
        (["info"], "backing service"),
        (["demo"], "end to end"),
        (["ask"], "OPENAI_BASE_URL"),
        (["serve"], "/predict"),
        (["serve-llm"], "OpenAI-compatible"),
    ],
)
def test_help(command: list[str], phrase: str) -> None:
    result = runner.invoke(app, [*command, "--help"], terminal_width=120)
    assert result.exit_code == 0
    assert phrase in " ".join(result.output.replace("│", " ").split())


def test_help_takes_no_heavy_imports() -> None:
    """`mlstack --help` must not pay for Prefect, pandas, torch or MLflow."""
    probe = (
        "import sys; from typer.testing import CliRunner; from mlstack.cli import app;"
        " CliRunner().invoke(app, ['--help']);"
        " print(sorted(m for m in ('prefect', 'pandas', 'torch', 'mlflow', 'feast') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout


def test_python_dash_m_runs_the_same_command() -> None:
    out = subprocess.run(
        [sys.executable, "-m", "mlstack.cli", "--help"], capture_output=True, text=True, check=True
    )
    assert "Start with mlstack demo, then mlstack info" in " ".join(out.stdout.replace("│", " ").split())


def test_info_shows_each_section_and_where_each_value_came_from(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("MLSTACK_MONITORING_DRIFT_SHARE", "0.4")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret-value")
    rows = setting_rows(Settings(home=tmp_path))
    assert {row.section for row in rows} >= {"data", "postgres", "tracking", "serving", "monitoring", "llm"}
    drift = next(r for r in rows if r.name == "drift_share")
    assert (drift.section, drift.value, drift.source) == (
        "monitoring",
        "0.4",
        "MLSTACK_MONITORING_DRIFT_SHARE",
    )
    key = next(r for r in rows if r.name == "openai_api_key")
    assert key.source == "OPENAI_API_KEY" and "sk-secret" not in key.value
    services = [
        ServiceRow(service="Postgres", mode="unset: embedded", status="stopped (starts on first use)"),
        ServiceRow(service="MLflow", mode="MLFLOW_TRACKING_URI: http://h:5000", status="no answer", ok=False),
    ]
    text = rendered(render_info(InfoResult(settings=rows, services=services)))
    assert "monitoring drift_share 0.4 MLSTACK_MONITORING_DRIFT_SHARE" in text
    assert "Postgres unset: embedded stopped (starts on first use)" in text
    assert "MLflow MLFLOW_TRACKING_URI: http://h:5000 down no answer" in text
    assert "sk-secret" not in text


def test_info_renders_a_row_for_every_setting() -> None:
    rows = [
        SettingRow(section="llm", name="provider", value="auto", source="default"),
        SettingRow(section="", name="home", value="/h", source="MLSTACK_HOME"),
    ]
    text = rendered(render_info(InfoResult(settings=rows, services=[])))
    assert "llm provider auto default" in text and "home /h MLSTACK_HOME" in text


def test_version_prints_the_installed_version() -> None:
    from importlib.metadata import version

    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"mlstack {version('mlstack')}"
