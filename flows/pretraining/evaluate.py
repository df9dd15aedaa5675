"""`pretrain-evaluate`: perplexity, bits per byte and parsing completions; register and gate."""

from __future__ import annotations

from pathlib import Path

import mlstack.bootstrap  # noqa: F401  (before prefect: sets its environment defaults)

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from pydantic import BaseModel, Field

from flows.pretraining.shared import EXPERIMENT, PRESET, RUN, layout_of, preset_of
from flows.tasks.registry import settle_killed_runs
from mlstack import tracking
from mlstack.pretraining import CorpusError, shards
from mlstack.settings import PRETRAINED_MODEL, get_settings
from models.lm.presets import PresetName


class EvaluateParams(BaseModel):
    preset: PresetName | None = PRESET
    run: str | None = RUN
    register: bool = Field(default=True, description="Register in MLflow and gate against the champion.")


class EvaluateResult(BaseModel):
    model_dir: Path
    val_perplexity: float
    bits_per_byte: float
    parse_share: float = Field(
        description="Share of held-out function headers completed into parsing Python."
    )
    headers: int
    version: str | None = None
    promoted: bool = False
    reason: str | None = None


@flow(name="pretrain-evaluate", log_prints=False)
def evaluate_flow(params: EvaluateParams = EvaluateParams()) -> EvaluateResult:
    """Score the run's model on the validation shard; register it and gate it."""
    import mlflow

    from models.lm import evaluate, registry

    settings = get_settings()
    layout = layout_of()
    run_dir = layout.run(params.run or preset_of(params.preset))
    model_dir = run_dir / "model"
    if not (model_dir / "config.json").is_file():
        raise CorpusError(f"no trained model in {model_dir}: run `mlstack pretrain train` first")
    validation_path = layout.corpus / f"{shards.VALIDATION}.jsonl"
    texts = [doc.text for doc in shards.read_shard(validation_path)]
    model, tokenizer = evaluate.load(model_dir)
    score = evaluate.text_score(model, tokenizer, texts)
    headers = evaluate.header_score(model, tokenizer, evaluate.function_headers(texts))
    result = EvaluateResult(
        model_dir=model_dir,
        val_perplexity=score.perplexity,
        bits_per_byte=score.bits_per_byte,
        parse_share=headers.parse_share,
        headers=headers.total,
    )
    _report(result, headers.examples)
    if not params.register:
        return result
    settle_killed_runs(PRETRAINED_MODEL, EXPERIMENT)
    tracking.setup(settings, EXPERIMENT)
    run_id_file = run_dir / "mlflow_run_id"
    run_id = run_id_file.read_text().strip() if run_id_file.is_file() else None
    metrics = {
        "perplexity": score.perplexity,
        "bits_per_byte": score.bits_per_byte,
        "parse_share": headers.parse_share,
    }
    with mlflow.start_run(run_id=run_id, run_name=run_dir.name, tags=tracking.owner_tags()) as run:
        mlflow.log_metrics({f"eval_{k}": v for k, v in metrics.items()})
        mlflow.log_artifacts(str(model_dir), "model")
        version = registry.register(
            run.info.run_id, f"{run.info.artifact_uri}/model", metrics, shards.file_hash(validation_path)
        )
    decision = registry.gate(settings, version, model_dir, score.bits_per_byte, texts)
    get_run_logger().info("code_lm v%s: %s", version, decision.reason)
    return result.model_copy(
        update={"version": version, "promoted": decision.promoted, "reason": decision.reason}
    )


def _report(result: EvaluateResult, examples: list[dict[str, object]]) -> None:
    lines = [
        f"**Validation**: perplexity {result.val_perplexity:.1f}, {result.bits_per_byte:.3f} bits/byte.",
        f"**Completions that parse**: {result.parse_share:.0%} of {result.headers} held-out"
        " function headers.",
        "",
    ]
    for example in examples:
        verdict = "parses" if example["parses"] else "does not parse"
        lines += [
            f"Completion ({verdict}):",
            "```python",
            f"{example['header']}{example['completion']}",
            "```",
        ]
    create_markdown_artifact("\n".join(lines), key="pretrain-evaluation", description=str(result.model_dir))
