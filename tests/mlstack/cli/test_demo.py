"""`mlstack demo`: its story renders from its result, for people and as JSON; bad options are
refused in one line."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from typer.testing import CliRunner

from mlstack.cli import app
from mlstack.cli.demo import render_demo
from tests.conftest import rendered

runner = CliRunner()


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
