"""`finetune-train`: LoRA on a local model, or an OpenAI fine-tuning job, tracked in MLflow."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import mlstack.bootstrap  # noqa: F401  (before prefect: sets its environment defaults)

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from pydantic import BaseModel, Field

from flows.fine_tuning.shared import (
    EXPERIMENT,
    SOURCE,
    Backend,
    backend_of,
    base_dir,
    dataset_files,
    layout_of,
)
from mlstack import tracking
from mlstack.fine_tuning import FinetuneError, chat
from mlstack.settings import get_settings


class TrainParams(BaseModel):
    source: str | None = SOURCE
    backend: Backend | None = Field(default=None, description="Default: MLSTACK_FINETUNE_BACKEND.")
    base: Path | None = Field(
        default=None,
        description="local: a Hugging Face causal-LM directory. Default: the pretraining champion."
        " openai: ignored (MLSTACK_FINETUNE_OPENAI_MODEL).",
    )
    run: str = Field(default="support", pattern=r"^[A-Za-z0-9_.-]+$", description="The run's name (folder).")
    steps: int = Field(default=60, ge=1, description="local: optimizer steps.")
    lr: float = Field(default=2e-3, gt=0, description="local: peak learning rate.")
    r: int = Field(default=8, ge=1, description="local: LoRA rank.")
    merge: bool = Field(default=False, description="local: also save the adapter merged into a full model.")
    suffix: str = Field(
        default="mlstack", pattern=r"^[a-z0-9-]{1,40}$", description="openai: the fine-tuned model's suffix."
    )


class TrainResult(BaseModel):
    backend: Backend
    base: str = Field(description="The base model: a directory (local) or a model name (openai).")
    model: str = Field(description="The fine-tuned model: its directory (local) or name (openai).")
    mlflow_run_id: str
    metrics: dict[str, float]
    job: dict[str, Any] | None = Field(default=None, description="openai: the job's id, files and events.")


@flow(name="finetune-train", log_prints=False)
def train_flow(params: TrainParams = TrainParams()) -> TrainResult:
    """LoRA on a local model, or an OpenAI fine-tuning job, tracked in MLflow."""
    import mlflow

    settings = get_settings()
    backend = backend_of(params.backend)
    train_file, validation_file = dataset_files(params.source)
    if not train_file.is_file():
        raise FinetuneError(f"no {train_file}: run `mlstack finetune dataset` (or `run`) first")
    tracking.setup(settings, EXPERIMENT)
    with mlflow.start_run(run_name=f"{params.run}-{backend}", tags=tracking.owner_tags()) as run:
        mlflow.log_params({"backend": backend, **params.model_dump(mode="json", exclude={"source", "base"})})
        mlflow.log_artifact(str(train_file), "data")
        mlflow.log_artifact(str(validation_file), "data")
        if backend == "local":
            result = _train_local(params, train_file, validation_file, run.info.run_id)
        else:
            result = _train_openai(params, train_file, validation_file, run.info.run_id)
        mlflow.log_metrics({k: v for k, v in result.metrics.items() if v == v})  # NaN: no validation
        # The events stay in the job artifact: a tag holds at most a few kB.
        trained = result.model_dump(mode="json", exclude={"metrics"})
        if trained["job"]:
            trained["job"].pop("events", None)
        mlflow.set_tags({TRAINED_TAG: json.dumps(trained)})
    return result


TRAINED_TAG = "finetune.trained"  # the run's TrainResult (less metrics): what evaluation reads


def trained_result(run_id: str | None) -> TrainResult:
    """A finetune-train run's result, from its MLflow tags and metrics; the latest run by default."""
    import mlflow

    tracking.setup(get_settings(), EXPERIMENT)
    if run_id is None:
        runs = mlflow.search_runs(
            experiment_names=[EXPERIMENT],
            filter_string=f"tags.`{TRAINED_TAG}` != ''",
            order_by=["attributes.start_time DESC"],
            max_results=1,
            output_format="list",
        )
        if not runs:
            raise FinetuneError("no finetune-train run to evaluate: run `mlstack finetune run` first")
        run = runs[0]
    else:
        run = mlflow.get_run(run_id)
    if TRAINED_TAG not in run.data.tags:
        raise FinetuneError(f"MLflow run {run.info.run_id} is not a finetune-train run")
    return TrainResult.model_validate({**json.loads(run.data.tags[TRAINED_TAG]), "metrics": run.data.metrics})


def _train_local(params: TrainParams, train_file: Path, validation_file: Path, run_id: str) -> TrainResult:
    import mlflow

    from models.lm import lora

    base = base_dir(params.base)
    layout = layout_of(params.source)
    config = lora.FinetuneConfig(
        base_dir=base,
        out_dir=layout.run(params.run),
        steps=params.steps,
        lr=params.lr,
        r=params.r,
        merge=params.merge,
    )
    mlflow.log_params({"base": str(base), "alpha": config.alpha, "batch_size": config.batch_size})
    done = lora.train(config, chat.read_jsonl(train_file), chat.read_jsonl(validation_file))
    model = done.adapter_dir or done.merged_dir
    assert model is not None
    mlflow.log_artifacts(str(model), "model")
    get_run_logger().info(
        "LoRA: %d of %d parameters trained (%.2f%%), validation loss %.3f -> %.3f in %.0f s",
        done.trainable_parameters,
        done.total_parameters,
        100 * done.trainable_fraction,
        done.val_loss_before,
        done.val_loss_after,
        done.seconds,
    )
    metrics = {
        k: float(getattr(done, k))
        for k in ("train_loss", "val_loss_before", "val_loss_after", "trainable_fraction", "step_seconds")
    }
    return TrainResult(
        backend="local", base=str(base), model=str(model), mlflow_run_id=run_id, metrics=metrics
    )


def _train_openai(params: TrainParams, train_file: Path, validation_file: Path, run_id: str) -> TrainResult:
    from mlstack.fine_tuning import openai_jobs
    from mlstack.llm.providers import openai_endpoint

    settings = get_settings()
    endpoint = openai_endpoint(settings, "openai")
    logger = get_run_logger()
    with endpoint.explained():
        outcome = openai_jobs.run(
            endpoint.client,
            train_file,
            validation_file,
            settings.finetune.openai_model,
            params.suffix,
            settings.finetune.epochs,
            settings.finetune.poll_max_s,
            settings.finetune.job_timeout_s,
            on_event=logger.info,
        )
    assert outcome.fine_tuned_model is not None
    job = {
        "id": outcome.job_id,
        "status": outcome.status,
        "training_file": outcome.training_file,
        "validation_file": outcome.validation_file,
        "trained_tokens": outcome.trained_tokens,
        "events": outcome.events,
    }
    create_markdown_artifact(
        f"**OpenAI job** `{outcome.job_id}`: {outcome.status}, model `{outcome.fine_tuned_model}`.\n\n"
        + "\n".join(f"- {e}" for e in outcome.events[-30:]),
        key="finetune-job",
    )
    return TrainResult(
        backend="openai",
        base=outcome.model,
        model=outcome.fine_tuned_model,
        mlflow_run_id=run_id,
        metrics=outcome.metrics,
        job=job,
    )
