"""`finetune-evaluate`: score fine-tuned, base and champion on the validation set; register; gate."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import mlstack.bootstrap  # noqa: F401  (before prefect: sets its environment defaults)

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from pydantic import BaseModel, Field

from flows.fine_tuning.shared import EXPERIMENT, SOURCE, Backend, dataset_files
from flows.fine_tuning.train import trained_result
from flows.tasks.registry import settle_killed_runs
from mlstack import tracking
from mlstack.fine_tuning import chat
from mlstack.io import file_hash
from mlstack.settings import FINETUNED_MODEL, get_settings


class EvaluateParams(BaseModel):
    source: str | None = SOURCE
    mlflow_run_id: str | None = Field(
        default=None, description="The finetune-train run to evaluate. Default: the latest one."
    )


class EvaluateResult(BaseModel):
    scores: dict[str, dict[str, float | None]] = Field(description="fine-tuned, base, champion -> metrics.")
    version: str
    promoted: bool
    reason: str


def _scorer(backend: Backend, examples: list[dict[str, Any]]) -> Any:
    """model reference -> ChatScore on the validation examples, by the backend's means."""
    from models.lm import lora
    from models.lm.registry import ChatScore

    references = [e["messages"][-1]["content"] for e in examples]
    if backend == "local":

        def local(ref: str) -> ChatScore:
            model, tokenizer = lora.load(Path(ref))
            loss = lora.assistant_loss(model, tokenizer, examples)
            return ChatScore(lora.rouge_l(lora.answers(model, tokenizer, examples), references), loss)

        return local
    from mlstack.fine_tuning import openai_jobs
    from mlstack.llm.providers import openai_endpoint

    endpoint = openai_endpoint(get_settings(), "openai")

    def remote(ref: str) -> ChatScore:
        with endpoint.explained():
            replies = openai_jobs.replies(endpoint.client, ref, examples)
        return ChatScore(lora.rouge_l(replies, references))

    return remote


@flow(name="finetune-evaluate", log_prints=False)
def evaluate_flow(params: EvaluateParams) -> EvaluateResult:
    """Score fine-tuned, base and champion on the validation set; register; gate."""
    import mlflow

    from models.lm import registry

    settings = get_settings()
    trained = trained_result(params.mlflow_run_id)
    _, validation_file = dataset_files(params.source)
    examples = chat.read_jsonl(validation_file)
    score = _scorer(trained.backend, examples)
    ours, base = score(trained.model), score(trained.base)
    champion = registry.finetuned_champion()
    theirs = None
    if champion is not None:
        tags = champion[1]
        if tags.get("backend") == trained.backend:  # scored by the same means, on the same set
            local = trained.backend == "local"
            theirs = score(
                str(registry.champion_dir(settings, champion[0], FINETUNED_MODEL)) if local else tags["model"]
            )
    settle_killed_runs(FINETUNED_MODEL, EXPERIMENT)
    tracking.setup(settings, EXPERIMENT)
    with mlflow.start_run(run_id=trained.mlflow_run_id, tags=tracking.owner_tags()):
        mlflow.log_metrics({"rouge_l": ours.rouge_l, "base_rouge_l": base.rouge_l})
        if ours.loss is not None and base.loss is not None:
            mlflow.log_metrics({"assistant_loss": ours.loss, "base_assistant_loss": base.loss})
        source = f"{mlflow.get_artifact_uri()}/model"
        if trained.backend == "openai":
            mlflow.log_dict(
                {"provider": "openai", "model": trained.model, **(trained.job or {})}, "model/model.json"
            )
        tags = {
            "backend": trained.backend,
            "model": trained.model,
            "base": trained.base,
            "validation.sha256": file_hash(validation_file),
            "val.rouge_l": f"{ours.rouge_l:.4f}",
        }
        if trained.job:
            tags |= {f"job.{k}": str(trained.job[k]) for k in ("id", "training_file", "validation_file")}
        version = registry.register_finetuned(trained.mlflow_run_id, source, tags)
    decision = registry.gate_finetuned(version, ours, base, theirs)
    if decision.promoted and trained.backend == "local":
        registry.install_finetuned(settings, version, Path(trained.model))
    scores = {
        "fine-tuned": {"rouge_l": ours.rouge_l, "loss": ours.loss},
        "base": {"rouge_l": base.rouge_l, "loss": base.loss},
    }
    if theirs is not None:
        scores["champion"] = {"rouge_l": theirs.rouge_l, "loss": theirs.loss}
    verdict = "promoted to champion" if decision.promoted else "not promoted"
    create_markdown_artifact(
        f"**{FINETUNED_MODEL} v{version}**: {verdict}. {decision.reason}.\n\n"
        + "\n".join(f"- {name}: {s}" for name, s in scores.items()),
        key="finetune-gate",
    )
    get_run_logger().info("%s v%s %s: %s", FINETUNED_MODEL, version, verdict, decision.reason)
    return EvaluateResult(scores=scores, version=version, promoted=decision.promoted, reason=decision.reason)
