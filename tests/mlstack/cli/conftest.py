"""Results as the flows return them, built by hand: each command's rendering is tested from
these without running a flow."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

import pytest

from flows.batch_inference import BatchResult
from flows.data import DataResult, TableOutcome
from flows.demo import DemoResult, LiveWindowResult, OnlineResult
from flows.features import FeaturesResult
from flows.fine_tuning import DatasetResult, FineTuningResult, IngestResult
from flows.fine_tuning import EvaluateResult as TuneEvaluateResult
from flows.fine_tuning import TrainResult as TuneTrainResult
from flows.monitoring import MonitoringResult
from flows.pretraining import (
    EvaluateResult,
    PrepareResult,
    PretrainResult,
    ShardTokens,
    TokenizeResult,
    TrainFlowResult,
)
from flows.prompt_engineering import Checks, PromptResult
from flows.rag import CitationModel, RagAnswerResult, RagEvalResult, RagRefreshResult, SourceCounts
from flows.retraining import RetrainingResult
from flows.training import TrainingResult
from models.serving.app import TripPrediction, TripRequest
from monitoring.alerts import Delivery
from monitoring.drift import DriftSummary, Performance

START = datetime(2026, 9, 15, tzinfo=UTC)


@pytest.fixture
def training_result() -> TrainingResult:
    return TrainingResult(
        run_id="r1",
        version="1",
        promoted=True,
        reason="no champion yet",
        val_mae=298.4,
        test_mae=301.2,
        params={"learning_rate": 0.1},
    )


@pytest.fixture
def retraining_result() -> RetrainingResult:
    return RetrainingResult(
        version="2",
        champion_before="1",
        promoted=True,
        reason="MAE 280.0s vs champion v1 400.0s",
        challenger_mae=280.0,
        champion_mae=400.0,
        holdout="2026-09-19 00:00 to 2026-09-20 00:00",
        trigger="data drift",
        run_id="r2",
        alerts=[Delivery("/tmp/alerts.jsonl", True)],
    )


def drift_summary(alert: bool, drifted: list[str], reasons: list[str]) -> DriftSummary:
    return DriftSummary(
        alert=alert,
        dataset_drift=alert,
        drifted_share=len(drifted) / 16,
        drift_share_threshold=0.3,
        monitored_columns=16,
        drifted_columns=drifted,
        scores={c: 0.01 for c in drifted},
        missing=[],
        performance=Performance(labelled_rows=900, reference_mae=300.0, current_mae=420.0, tolerance=0.25)
        if alert
        else None,
        reference_rows=5000,
        current_rows=1200,
        reasons=reasons,
        reports={"drift": Path("/tmp/reports/drift.html")},
    )


@pytest.fixture
def quiet_window() -> MonitoringResult:
    return MonitoringResult(
        status="ok",
        version="1",
        start=START,
        end=datetime(2026, 9, 16, tzinfo=UTC),
        drift=drift_summary(False, ["distance_km", "prediction"], []),
    )


@pytest.fixture
def drifting_window(retraining_result: RetrainingResult) -> MonitoringResult:
    return MonitoringResult(
        status="drift",
        version="1",
        start=datetime(2026, 9, 17, tzinfo=UTC),
        end=datetime(2026, 9, 20, tzinfo=UTC),
        drift=drift_summary(
            True,
            ["distance_km", "pickup_zone", "passenger_count", "prediction", "x", "y"],
            ["data drift: 6 of 16 columns", "performance: MAE 420.0s vs reference 300.0s"],
        ),
        alerts=[Delivery("/tmp/alerts.jsonl", True), Delivery("json://127.0.0.1:9/...", False, "refused")],
        event="e1",
        retraining=retraining_result,
    )


@pytest.fixture
def answer() -> PromptResult:
    return PromptResult(
        question="How do I drop duplicate rows from a DataFrame?",
        context="Pandas",
        answer="tok tok. tok. [tok] tok.",
        prompt="prompts:/ask_in_context/1",
        provider="local",
        model="untrained-lm",
        meaningful=False,
        checks=Checks(
            sentences=3,
            links=0,
            links_well_formed=False,
            sentences_ok=False,
            links_ok=False,
            passed=False,
            link_urls=[],
            malformed_links=[],
        ),
    )


@pytest.fixture
def pretrain_result() -> PretrainResult:
    stages = [
        {"stage": "read", "in": 220, "out": 220, "removed": 0, "why": ""},
        {
            "stage": "quality",
            "in": 220,
            "out": 198,
            "removed": 22,
            "why": "auto-generated 21, mostly non-text 1",
        },
        {"stage": "secrets", "in": 198, "out": 198, "removed": 0, "why": "Basic Auth Credentials 3 redacted"},
    ]
    return PretrainResult(
        prepare=PrepareResult(
            documents_read=220,
            documents_kept=198,
            stages=stages,
            secrets_redacted={"Basic Auth Credentials": 3},
            shards={"train-00000": 100, "train-00001": 91, "validation": 7},
            corpus_dir=Path("/h/pretrain/corpus"),
        ),
        tokenize=TokenizeResult(
            tokenizer_dir=Path("/h/pretrain/tokenizer"),
            tokens_dir=Path("/h/pretrain/tokens/abc"),
            vocab_size=2051,
            shards=[ShardTokens(name="train-00000", tokens=400_000, documents=100, skipped=True)],
            train_tokens=834_000,
            validation_tokens=23_400,
        ),
        train=TrainFlowResult(
            run_dir=Path("/h/pretrain/runs/tiny"),
            mlflow_run_id="r1",
            steps=300,
            resumed_from=150,
            tokens=1_228_800,
            parameters=1_049_216,
            train_loss=3.1,
            val_loss=3.4,
            val_perplexity=30.0,
            tokens_per_s=11_000.0,
            mfu=0.05,
            model_dir=Path("/h/pretrain/runs/tiny/model"),
        ),
        evaluate=EvaluateResult(
            model_dir=Path("/h/pretrain/runs/tiny/model"),
            val_perplexity=29.5,
            bits_per_byte=1.42,
            parse_share=0.25,
            headers=16,
            version="2",
            promoted=False,
            reason="1.420 bits/byte vs champion v1 1.400 on the same validation text",
        ),
    )


@pytest.fixture
def finetune_result() -> FineTuningResult:
    folder = Path("/h/finetune")
    return FineTuningResult(
        ingest=IngestResult(
            source="acme/app",
            pairs=31,
            dropped={"pull request": 3},
            partitions={"2026-07": 8, "2026-08": 23},
            rewritten=["2026-08"],
            partitions_dir=folder / "partitions",
        ),
        dataset=DatasetResult(
            train_file=folder / "train.jsonl",
            validation_file=folder / "validation.jsonl",
            train=25,
            validation=6,
            review={"approved": 30, "dropped": 1},
            review_timed_out=True,
            train_tokens=4663,
            billed_tokens=13989,
            token_counter="code_lm tokenizer",
        ),
        train=TuneTrainResult(
            backend="local",
            base="/m/base",
            model="/m/adapter",
            mlflow_run_id="r1",
            metrics={"val_loss_before": 3.1, "val_loss_after": 2.5, "trainable_fraction": 0.069},
        ),
        evaluate=TuneEvaluateResult(
            scores={"fine-tuned": {"rouge_l": 0.31, "loss": 2.5}, "base": {"rouge_l": 0.05, "loss": 3.1}},
            version="3",
            promoted=True,
            reason="beats base",
        ),
    )


@pytest.fixture
def demo_result(
    pretrain_result: PretrainResult,
    finetune_result: FineTuningResult,
    training_result,
    quiet_window,
    drifting_window,
    answer,
    rag_refresh_result: RagRefreshResult,
    rag_answer_result: RagAnswerResult,
) -> DemoResult:
    tables = {
        name: Path(f"/tmp/validated/{name}.parquet") for name in ("trips", "driver_stats", "zone_stats")
    }
    return DemoResult(
        data=DataResult(
            validated=tables,
            tables=[
                TableOutcome(
                    table="trips",
                    status="quarantined",
                    rows=100,
                    valid_rows=99,
                    quarantined=1,
                    bad_share=0.01,
                    problem=None,
                )
            ],
            summary="validation passed",
        ),
        features=FeaturesResult(
            views=["driver_hourly", "zone_hourly"],
            online_until=datetime(2026, 9, 15, 0, 0, 1, tzinfo=UTC),
            tables={"driver_hourly": Path("/tmp/f/driver_hourly.parquet")},
        ),
        training=training_result,
        batch_inference=BatchResult(rows=1234, parquet=Path("/tmp/p.parquet"), model_versions=["1"]),
        online=OnlineResult(
            request=TripRequest(
                driver_id=17, pickup_zone=3, dropoff_zone=12, distance_km=6.4, requested_at=START
            ),
            response=TripPrediction(predicted_duration_s=777.0, model_version="1", fallback=[]),
        ),
        baseline_window=LiveWindowResult(scenario="baseline", monitoring=quiet_window),
        drift_window=LiveWindowResult(scenario="covariate_drift", monitoring=drifting_window),
        pretraining=pretrain_result,
        prompt_engineering=answer,
        rag_refresh=rag_refresh_result,
        rag=rag_answer_result,
        fine_tuning=finetune_result,
        where={"MLflow UI": "mlflow ui --backend-store-uri sqlite:///x.db --port 5000"},
    )


@pytest.fixture
def rag_eval_result() -> RagEvalResult:
    metrics = {
        "vector": {"hit_at_1": 0.6, "hit_at_5": 0.9, "mrr_at_10": 0.72},
        "fulltext": {"hit_at_1": 0.3, "hit_at_5": 0.7, "mrr_at_10": 0.45},
        "hybrid": {"hit_at_1": 0.5, "hit_at_5": 0.8, "mrr_at_10": 0.64},
    }
    return RagEvalResult(
        collection="default",
        questions="q.jsonl",
        count=10,
        metrics=metrics,
        previous_hit_at_5=0.9,
        regression="hybrid hit@5 fell from 0.90 to 0.80 (more than 0.05)",
        run_id="r9",
    )


@pytest.fixture
def rag_refresh_result(rag_eval_result: RagEvalResult) -> RagRefreshResult:
    counts = [
        SourceCounts(source="slack:/x/slack", added=6, chunks_embedded=6),
        SourceCounts(
            source="docs:/x/docs",
            changed=1,
            unchanged=2,
            deleted=1,
            skipped=1,
            chunks_embedded=3,
            skipped_records=["/x/docs/bad.md: not UTF-8 text (byte 3)"],
        ),
    ]
    return RagRefreshResult(
        collection="default", sources=counts, documents=9, chunks=40, evaluation=rag_eval_result
    )


@pytest.fixture
def rag_answer_result() -> RagAnswerResult:
    return RagAnswerResult(
        question="Why no second retraining?",
        answer="Extractive answer (quoted from the sources; no language model wrote it):"
        " \u201cThat is the cooldown.\u201d [1]",
        citations=[
            CitationModel(
                n=1,
                document_id="slack:C1:1.0",
                title="#ml-platform: Why?",
                url="https://slack.com/archives/C1/p10",
                path=None,
            )
        ],
        mode="extractive",
        best_similarity=0.61,
        removed_citations=0,
    )
