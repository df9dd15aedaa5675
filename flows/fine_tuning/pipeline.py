"""`fine-tuning`: ingest, (review,) build and validate the dataset, train, evaluate and gate."""

from __future__ import annotations

from pathlib import Path

import mlstack.bootstrap  # noqa: F401  (before prefect: sets its environment defaults)

from prefect import flow
from pydantic import BaseModel, Field

from flows.fine_tuning.dataset import DatasetParams, DatasetResult, dataset_flow
from flows.fine_tuning.evaluate import EvaluateParams, EvaluateResult, evaluate_flow
from flows.fine_tuning.ingest import IngestParams, IngestResult, ingest_flow
from flows.fine_tuning.shared import SOURCE, Backend, backend_of, base_dir
from flows.fine_tuning.train import TrainParams, TrainResult, train_flow


class FineTuningParams(BaseModel):
    source: str | None = SOURCE
    backend: Backend | None = Field(default=None, description="local (LoRA) or openai.")
    review: bool = Field(default=False, description="Pause for a human review of the pairs first.")
    base: Path | None = Field(default=None, description="As in finetune-train.")
    run: str = Field(default="support", pattern=r"^[A-Za-z0-9_.-]+$")
    steps: int = Field(default=60, ge=1)
    merge: bool = False


class FineTuningResult(BaseModel):
    ingest: IngestResult
    dataset: DatasetResult
    train: TrainResult
    evaluate: EvaluateResult


@flow(name="fine-tuning", log_prints=False)
def fine_tuning_flow(params: FineTuningParams = FineTuningParams()) -> FineTuningResult:
    """Ingest, (review,) build and validate the dataset, train, evaluate and gate."""
    backend = backend_of(params.backend)
    if backend == "local":
        base_dir(params.base)  # no base model fails before any work
    ingested = ingest_flow(IngestParams(source=params.source))
    dataset = dataset_flow(
        DatasetParams(source=params.source, review=params.review, backend=backend, base=params.base)
    )
    trained = train_flow(
        TrainParams(
            source=params.source,
            backend=backend,
            base=params.base,
            run=params.run,
            steps=params.steps,
            merge=params.merge,
        )
    )
    evaluated = evaluate_flow(EvaluateParams(source=params.source, mlflow_run_id=trained.mlflow_run_id))
    return FineTuningResult(ingest=ingested, dataset=dataset, train=trained, evaluate=evaluated)
