"""End to end: the demo flow runs the classic loop and the monitoring loop under a real Prefect server."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from flows.demo import DemoParams, demo_flow
from mlstack import postgres
from mlstack.cli.root import render_demo
from mlstack.settings import Settings, get_settings
from tests.conftest import rendered


@pytest.fixture
def own_postgres(mlstack_home: Path) -> Iterator[Settings]:
    """This test's data dir; its embedded Postgres is stopped even when an assertion fails."""
    settings = get_settings()
    yield settings
    postgres.stop_embedded(settings.pg_dir)


@pytest.mark.slow
def test_demo_runs_the_classic_loop_end_to_end(prefect_harness, own_postgres: Settings) -> None:
    state = demo_flow(DemoParams(days=7, trials=1, pretrain_steps=10, finetune_steps=10), return_state=True)
    assert state.is_completed(), state.message
    result = state.result()

    assert set(result.data.validated) == {"trips", "driver_stats", "zone_stats"}
    assert result.features.views == ["driver_hourly", "zone_hourly"]
    assert result.training.promoted and result.training.version == "1"
    assert result.batch_inference.rows > 0 and result.batch_inference.model_versions == ["1"]
    online = result.online.response
    assert online.model_version == "1" and online.predicted_duration_s > 0 and online.fallback == []
    # The online step went through the serving app's own path, serving log included.
    assert own_postgres.serving_log.read_text().count("\n") == 1
    assert own_postgres.tracking_uri in result.where["MLflow UI"]
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
    with postgres.connect(own_postgres) as conn:
        assert conn.execute("SELECT count(*) FROM trip_predictions").fetchone()[0] == (
            result.batch_inference.rows + quiet.drift.current_rows + drifting.drift.current_rows
        )
    # LoRA adapts the pretrained champion to the sample's Q&A, and the gate decides on it.
    tuned = result.fine_tuning
    assert tuned.ingest.pairs >= 25 and tuned.dataset.train > tuned.dataset.validation > 0
    assert tuned.train.base.endswith("code_lm-v1") and tuned.train.metrics["trainable_fraction"] < 0.1
    assert tuned.evaluate.version == "1" and tuned.evaluate.reason
    # What `mlstack demo` prints, from this very result.
    story = rendered(render_demo(result), width=400)
    assert f"v1 test MAE {result.training.test_mae:.0f}s; champion" in story
    assert "drift on v1" in story and "retrained v2" in story
    assert f"{tuned.ingest.pairs} Q&A pairs in 4 monthly partitions" in story
