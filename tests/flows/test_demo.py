"""End to end: `mlstack demo` as a user runs it, once per test session, and two stories read from
that one run.

The demo runs as the CLI subprocess (its own temporary Prefect API, its own data dir) with canary
secrets in every place settings read one from. The first test reads its result: the classic
loop, the monitoring loop and the four AI patterns. The second reads where the secrets went:
nowhere, neither to the output nor to any file of the data dir.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from subprocess import CompletedProcess

import pytest

from flows.demo import DemoResult
from mlstack import postgres
from mlstack.cli.demo import render_demo
from mlstack.settings import Settings
from tests.conftest import rendered
from tests.kill import command_env, mlstack, run

# Canary secrets in every place settings read one from; the demo alerts on drift to each URL.
# The suite's proxy fence (tests/conftest.py) refuses the Slack and Telegram requests on loopback.
CANARIES = {
    "MLSTACK_MONITORING_ALERT_URLS": "slack://TOKACANARY1/TOKBCANARY2/TOKCCANARY3,"
    "tgram://987654321:AAHCANARYTELEGRAM/12345,json://alerts:CANARYJSONPW@127.0.0.1:9/hook",
    "OPENAI_API_KEY": "sk-CANARYOPENAIKEY",
    "MLSTACK_LLM_PROVIDER": "local",  # the key is set, but nothing can reach OpenAI from here
}
SECRETS = ["TOKACANARY1", "TOKBCANARY2", "TOKCCANARY3", "AAHCANARYTELEGRAM", "CANARYJSONPW"]
SECRETS += ["sk-CANARYOPENAIKEY"]


@dataclass
class DemoRun:
    home: Path
    settings: Settings
    demo: CompletedProcess[str]
    info: CompletedProcess[str]
    asked: CompletedProcess[str]  # `mlstack rag ask` after the demo, as docs/rag.md shows it
    result: DemoResult
    predictions: int  # rows in the trip_predictions table after the demo


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> Iterator[DemoRun]:
    home = tmp_path_factory.mktemp("demo") / "home"
    settings = Settings(home=home)
    env = command_env(home, **CANARIES)
    steps = ("--days", "7", "--trials", "1", "--pretrain-steps", "10", "--finetune-steps", "10")
    try:
        demo = run(mlstack("demo", *steps, "--json"), env, timeout_s=1500)
        assert demo.returncode == 0, demo.stderr[-3000:]
        info = run(mlstack("info"), env)
        asked = run(mlstack("rag", "ask", "Why did a second drift alert not retrain?", "--json"), env)
        result = DemoResult.model_validate_json(demo.stdout.strip().splitlines()[-1])
        with postgres.connect(settings) as conn:
            predictions = conn.execute("SELECT count(*) FROM trip_predictions").fetchone()[0]
        yield DemoRun(home, settings, demo, info, asked, result, predictions)
    finally:  # the demo's commands leave the embedded Postgres up for the next: this run has none
        postgres.stop_embedded(settings.pg_dir)


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_demo_runs_the_classic_loop_end_to_end(demo_run: DemoRun) -> None:
    result = demo_run.result
    assert set(result.data.validated) == {"trips", "driver_stats", "zone_stats"}
    assert result.features.views == ["driver_hourly", "zone_hourly"]
    assert result.training.promoted and result.training.version == "1"
    assert result.batch_inference.rows > 0 and result.batch_inference.model_versions == ["1"]
    online = result.online.response
    assert online.model_version == "1" and online.predicted_duration_s > 0 and online.fallback == []
    # The online step went through the serving app's own path, serving log included.
    assert demo_run.settings.serving_log.read_text().count("\n") == 1
    assert demo_run.settings.tracking_uri in result.where["MLflow UI"]
    assert Path(result.where["validation report"]).is_file()
    # RAG: the shipped samples and docs refreshed, and one question answered with citations.
    assert result.rag_refresh.documents >= 12 and all(c.skipped == 0 for c in result.rag_refresh.sources)
    assert result.rag.mode == "extractive" and result.rag.citations
    assert result.rag.citations[0].url == "https://slack.com/archives/C0MLS0002/p1789466500000200"
    # Time moves on: a normal day passes quietly, three drifting days alert and retrain.
    quiet, drifting = result.baseline_window.monitoring, result.drift_window.monitoring
    assert quiet.status == "ok" and quiet.retraining is None, quiet.drift.reasons
    assert drifting.status == "drift" and drifting.drift.dataset_drift
    assert drifting.retraining.version == "2" and drifting.retraining.promoted
    assert drifting.drift.reports["drift"].is_file()
    # A tiny code model is pretrained and becomes the local model; one question goes to it
    # through its endpoint, and the answer says honestly what such a model is.
    assert result.pretraining.evaluate.promoted and result.pretraining.train.steps == 10
    asked = result.prompt_engineering
    assert asked.provider == "local" and asked.model == "code_lm-v1" and not asked.meaningful
    assert asked.note and "never taught to follow instructions" in asked.note
    assert asked.answer and asked.prompt == "prompts:/ask_in_context/1"
    assert {"sentences", "links", "links_well_formed", "passed"} <= set(asked.checks.model_dump())
    assert demo_run.predictions == (
        result.batch_inference.rows + quiet.drift.current_rows + drifting.drift.current_rows
    )
    # LoRA adapts the pretrained champion to the sample's Q&A, and the gate decides on it.
    tuned = result.fine_tuning
    assert tuned.ingest.pairs >= 25 and tuned.dataset.train > tuned.dataset.validation > 0
    assert tuned.train.base.endswith("code_lm-v1") and tuned.train.metrics["trainable_fraction"] < 0.1
    assert tuned.evaluate.version == "1" and tuned.evaluate.reason
    # What `mlstack demo` prints without --json, from this very result.
    story = rendered(render_demo(result), width=400)
    assert f"v1 test MAE {result.training.test_mae:.0f}s; champion" in story
    assert "drift on v1" in story and "retrained v2" in story
    assert f"{tuned.ingest.pairs} Q&A pairs in 4 monthly partitions" in story


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_a_question_asked_after_the_demo_gets_a_cited_answer(demo_run: DemoRun) -> None:
    """After the demo the local model is the fine-tuned one, which reads 256 tokens: fewer than
    the RAG prompt with all its passages. The answer fits the passages to it, or quotes them and
    says why; either way it cites its sources and the command succeeds."""
    import json

    asked = demo_run.asked
    assert asked.returncode == 0, asked.stderr[-3000:]
    answer = json.loads(asked.stdout.strip().splitlines()[-1])
    assert answer["citations"] and answer["mode"] in ("generated", "extractive"), answer
    if demo_run.result.fine_tuning.evaluate.promoted:  # the 256-token chat model answers
        assert answer["note"] and "support_lm-v1" in answer["note"], answer


@pytest.mark.slow
@pytest.mark.timeout(1800)
def test_no_secret_reaches_output_or_any_file_of_the_data_dir(demo_run: DemoRun) -> None:
    """The whole demo and `info`, with canaries set: stdout, stderr and every file under the
    data dir (the Prefect and MLflow databases and their WAL files among them) hold none."""
    demo, info = demo_run.demo, demo_run.info
    assert info.returncode == 0, info.stderr
    shown = demo.stdout + demo.stderr + info.stdout + info.stderr
    assert "alert to slack://T...1/T...2/T...3// failed" in shown, "the alerts were attempted"
    assert "slack://T...1/T...2/T...3//" in info.stdout and "(set, hidden)" in info.stdout

    leaks = [secret for secret in SECRETS if secret in shown]
    files = [path for path in demo_run.home.rglob("*") if path.is_file()]
    assert any(p.name == "prefect.db" for p in files) and any(p.name == "mlflow.db" for p in files)
    for path in files:
        content = path.read_bytes()
        leaks += [f"{secret} in {path}" for secret in SECRETS if secret.encode() in content]
    assert leaks == []
