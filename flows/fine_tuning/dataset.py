"""`finetune-dataset`: partitions -> (review) -> split -> chat JSONL -> validation, counts and cost."""

from __future__ import annotations

from pathlib import Path

import mlstack.bootstrap  # noqa: F401  (before prefect: sets its environment defaults)

from prefect import flow, get_run_logger
from prefect.artifacts import create_markdown_artifact
from pydantic import BaseModel, Field

from flows.fine_tuning.review import review_pairs
from flows.fine_tuning.shared import SOURCE, Backend, backend_of, counter_for, layout_of
from mlstack.fine_tuning import FinetuneError, chat, pairs, split
from mlstack.settings import get_settings


class DatasetParams(BaseModel):
    source: str | None = SOURCE
    review: bool = Field(default=False, description="Pause for a person to approve, edit or drop pairs.")
    backend: Backend | None = Field(
        default=None,
        description="Whose tokens and limits to check against. Default: MLSTACK_FINETUNE_BACKEND.",
    )
    base: Path | None = Field(
        default=None, description="local backend: the model to adapt. Default: the pretraining champion."
    )


class DatasetResult(BaseModel):
    train_file: Path
    validation_file: Path
    train: int
    validation: int
    review: dict[str, int] | None = Field(
        default=None, description="Decisions: approved, edited, dropped, undecided (review runs only)."
    )
    review_timed_out: bool = False
    train_tokens: int
    billed_tokens: int
    estimated_cost_usd: float | None = Field(default=None, description="openai backend only.")
    token_counter: str


@flow(name="finetune-dataset", log_prints=False)
def dataset_flow(params: DatasetParams = DatasetParams()) -> DatasetResult:
    """Partitions -> (review) -> split -> chat JSONL -> validation, counts and cost."""
    settings = get_settings()
    layout = layout_of(params.source)
    backend = backend_of(params.backend)
    found = [p for path in sorted(layout.partitions.glob("*.jsonl")) for p in pairs.read_partition(path)]
    if not found:
        raise FinetuneError(f"no pairs under {layout.partitions}: run `mlstack finetune ingest` first")
    decisions, timed_out = None, False
    if params.review:
        found, decisions, timed_out = review_pairs(found, layout, settings)
    sides = split.split(found, settings.finetune.validation_share)
    system = settings.finetune.system_prompt
    files = {name: layout.datasets / f"{name}.jsonl" for name in sides}
    for name, side_pairs in sides.items():
        chat.write_jsonl((chat.example(p, system) for p in side_pairs), files[name])
    counter = counter_for(backend, params.base)
    limits = settings.finetune
    reports = {
        "train": chat.validate(
            files["train"], counter, limits.max_example_tokens, limits.min_examples, backend=backend
        ),
        "validation": chat.validate(
            files["validation"], counter, limits.max_example_tokens, 1, backend=backend
        ),
    }
    price = limits.price_per_million_tokens if backend == "openai" else None
    summary = reports["train"].summary(limits.max_example_tokens, limits.epochs, price)
    _dataset_report(sides, reports, summary, decisions)
    logger = get_run_logger()
    logger.info(
        "%d training / %d validation examples; %d tokens (%s), %d billed over %d epochs%s",
        len(sides["train"]),
        len(sides["validation"]),
        summary["tokens"],
        counter.name,
        summary["billed_tokens"],
        limits.epochs,
        f", about ${summary['estimated_cost_usd']:.2f}" if price is not None else "",
    )
    for report in reports.values():
        report.raise_for_findings()
    return DatasetResult(
        train_file=files["train"],
        validation_file=files["validation"],
        train=len(sides["train"]),
        validation=len(sides["validation"]),
        review=decisions,
        review_timed_out=timed_out,
        train_tokens=summary["tokens"],
        billed_tokens=summary["billed_tokens"],
        estimated_cost_usd=summary.get("estimated_cost_usd"),
        token_counter=counter.name,
    )


def _dataset_report(sides: dict, reports: dict, summary: dict, decisions: dict | None) -> None:
    lines = [
        f"**Split** (by issue hash): {len(sides['train'])} training, {len(sides['validation'])} validation.",
        f"**Tokens** ({summary['counter']}): {summary['tokens']:,} in training, the longest example"
        f" {summary['max_example_tokens']:,}; {summary['billed_tokens']:,} billed over"
        f" {summary['epochs']} epochs.",
    ]
    if "estimated_cost_usd" in summary:
        lines.append(
            f"**Estimated cost**: ${summary['estimated_cost_usd']:.2f} before anything is submitted."
        )
    if decisions is not None:
        lines.append(f"**Review**: {decisions}.")
    findings = [f for report in reports.values() for f in report.findings]
    lines.append(f"**Validation findings**: {len(findings) or 'none'}.")
    bullets = "".join(f"\n- `{f}`" for f in findings[:50])  # one list under its heading
    create_markdown_artifact("\n\n".join(lines) + bullets, key="finetune-dataset")
