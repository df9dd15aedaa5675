"""`mlstack info`: configured services are asked whether they answer, unset ones say so."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mlstack import processes
from mlstack.cli import app
from mlstack.settings import Settings

runner = CliRunner()


def info(*args: str) -> tuple[int, dict, str]:
    result = runner.invoke(app, ["info", "--json", *args])
    first = result.stdout.splitlines()[0] if result.stdout else "{}"
    return result.exit_code, json.loads(first), result.stderr


def by_service(parsed: dict) -> dict[str, dict]:
    return {row["service"]: row for row in parsed["services"]}


def test_unset_services_are_shown_as_unset_and_nothing_is_checked(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLSTACK_MONITORING_ALERT_URLS", "slack://TOKACANARY1/TOKBCANARY2/TOKCCANARY3")
    code, parsed, _ = info()
    assert "CANARY" not in json.dumps(parsed)  # alert URLs keep their tokens in the path
    assert {r["name"]: r["value"] for r in parsed["settings"]}["alert_urls"] == "slack://T...1/T...2/T...3//"
    assert code == 0 and parsed["ok"] is True
    rows = by_service(parsed)
    for service in ("Postgres", "MLflow", "Prefect", "LLM"):
        assert rows[service]["mode"].startswith("unset"), rows[service]
        assert rows[service]["ok"] is None
    assert "embedded SQLite" in rows["MLflow"]["mode"]
    assert any(row["name"] == "drift_share" for row in parsed["settings"])


@pytest.mark.slow
@pytest.mark.usefixtures("prefect_harness")
def test_configured_services_are_checked_and_one_that_does_not_answer_fails_the_command(
    rag_settings: Settings, tiny_server: tuple[str, str], monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    from prefect.settings import PREFECT_API_URL

    base_url, _ = tiny_server  # our own OpenAI-compatible server: GET /models answers
    monkeypatch.setenv("PREFECT_API_URL", str(PREFECT_API_URL.value()))
    monkeypatch.setenv("OPENAI_BASE_URL", base_url)
    monkeypatch.setenv("OPENAI_API_KEY", "sk-INFOCANARY")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'elsewhere.db'}")

    code, parsed, stderr = info()
    rows = by_service(parsed)
    assert code == 0, (stderr, rows)
    for service in ("Postgres", "MLflow", "Prefect", "LLM"):
        assert rows[service]["ok"] is True, rows[service]
    assert rows["Postgres"]["status"].startswith("up: Postgres 18")
    assert rows["LLM"]["mode"].startswith("openai-compatible")

    dead = f"http://127.0.0.1:{processes.free_port()}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", dead)
    code, parsed, stderr = info()
    rows = by_service(parsed)
    assert code == 1 and parsed["ok"] is False
    assert rows["MLflow"]["ok"] is False and f"no answer from {dead}/health" in rows["MLflow"]["status"]
    assert rows["Prefect"]["ok"] is True
    assert "configured but not answering: MLflow" in stderr
    assert "sk-INFOCANARY" not in json.dumps(parsed) + stderr


def test_a_password_inside_a_url_setting_is_masked_in_settings_and_services(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("OPENAI_BASE_URL", f"http://user:URLPWCANARY@127.0.0.1:{processes.free_port()}/v1")
    code, parsed, stderr = info()
    assert code == 1 and "configured but not answering: LLM" in stderr
    shown = {row["name"]: row["value"] for row in parsed["settings"]}
    assert shown["openai_base_url"].startswith("http://user:****@127.0.0.1:")
    assert "URLPWCANARY" not in json.dumps(parsed) + stderr
