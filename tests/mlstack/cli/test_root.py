"""The `mlstack` root: every command explains itself; `info` and `demo` render their results."""

from __future__ import annotations

import subprocess
import sys
from datetime import UTC, datetime
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mlstack.cli import app
from mlstack.cli.root import render_demo, render_info
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
    monkeypatch.setenv("MLSTACK_DRIFT_SHARE", "0.4")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-secret-value")
    rows = setting_rows(Settings(home=tmp_path))
    assert {row.section for row in rows} >= {"data", "postgres", "tracking", "serving", "monitoring", "llm"}
    drift = next(r for r in rows if r.name == "drift_share")
    assert (drift.section, drift.value, drift.source) == ("monitoring", "0.4", "MLSTACK_DRIFT_SHARE")
    key = next(r for r in rows if r.name == "openai_api_key")
    assert key.source == "OPENAI_API_KEY" and "sk-secret" not in key.value
    services = [
        ServiceRow(service="Postgres", mode="unset: embedded", status="stopped (starts on first use)"),
        ServiceRow(service="MLflow", mode="MLFLOW_TRACKING_URI: http://h:5000", status="no answer", ok=False),
    ]
    text = rendered(render_info(InfoResult(settings=rows, services=services)))
    assert "monitoring drift_share 0.4 MLSTACK_DRIFT_SHARE" in text
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


def test_the_demo_story_renders_from_its_result(demo_result) -> None:
    text = rendered(render_demo(demo_result), width=400)
    assert "data 3 validated tables" in text
    assert "training v1 test MAE 301s; champion (no champion yet)" in text
    assert "batch inference 1,234 predictions by v1" in text
    assert "online 777s predicted by v1" in text
    assert "baseline window baseline 2026-09-15 to 2026-09-16: no drift on v1 (2 column(s) moved" in text
    assert "covariate_drift 2026-09-17 to 2026-09-20: drift on v1" in text
    assert "retrained v2: MAE 280.0s vs champion v1 400.0s" in text
    assert "alert -> /tmp/alerts.jsonl" in text
    assert "checks failed (3 sentences, 0 links, well-formed false)" in text
    assert "(a base model that does not follow instructions: not an answer)" in text
    assert "198 files, 834,000 tokens; 1,049,216 parameters, 300 steps: validation perplexity 29.5" in text
    assert "25% of completions parse; code_lm v2 not promoted" in text
    assert "MLflow UI mlflow ui --backend-store-uri sqlite:///x.db" in text
    assert "RAG 9 documents, 40 chunks in default; Why no second retraining? -> Extractive answer" in text
    assert "[1] #ml-platform: Why?" in text
    assert (
        "fine-tuning 31 Q&A pairs in 2 monthly partitions; 25 training / 6 validation examples; LoRA on 6.9%"
        in text
    )
    assert "validation loss 3.10 -> 2.50; support_lm v3 champion (beats base)" in text


def test_version_prints_the_installed_version() -> None:
    from importlib.metadata import version

    result = runner.invoke(app, ["--version"])
    assert result.exit_code == 0 and result.output.strip() == f"mlstack {version('mlstack')}"


def test_demo_refuses_too_few_days_with_one_line() -> None:
    result = runner.invoke(app, ["demo", "--days", "2"])
    assert result.exit_code == 2
    assert "--days: Input should be greater than or equal to 3" in " ".join(result.output.split())


def test_a_result_prints_as_json_for_machines(demo_result, capsys: pytest.CaptureFixture) -> None:
    import json

    from mlstack.cli.render import show

    show(demo_result, render_demo, as_json=True)
    parsed = json.loads(capsys.readouterr().out)
    assert parsed["training"]["version"] == "1" and parsed["online"]["response"]["model_version"] == "1"
    assert parsed["drift_window"]["monitoring"]["retraining"]["promoted"] is True
    assert datetime.fromisoformat(parsed["features"]["online_until"]).tzinfo == UTC
