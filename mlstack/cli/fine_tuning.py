"""`mlstack finetune`: a model that answers repository questions in its maintainers' tone."""

from __future__ import annotations

import json
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from mlstack.cli.options import build
from mlstack.cli.render import JSON, console, err, fail, show
from mlstack.cli.running import run_flow

if TYPE_CHECKING:
    from flows.fine_tuning import DatasetResult, EvaluateResult, FineTuningResult, IngestResult, TrainResult

app = typer.Typer(
    help="Fine-tune a chat model on GitHub Q&A: issues and their maintainers' answers become chat"
    " examples in OpenAI's format, reviewed by people if you like, trained with LoRA locally or as"
    " an OpenAI job, and promoted only when it beats its base and the champion.\n\n"
    "`mlstack finetune run` does every step; `validate` checks a JSONL file on its own.",
    no_args_is_help=True,
)


class Backend(StrEnum):
    local = "local"
    openai = "openai"


SOURCE = typer.Option(
    None,
    "--source",
    "-s",
    help="github:OWNER/REPO (MLSTACK_SOURCES_GITHUB_TOKEN) or github:DUMP.json, a dump in the REST"
    " API's shape. Default: MLSTACK_FINETUNE_SOURCE, else the shipped sample.",
)
BACKEND = typer.Option(
    None, help="local (LoRA on a local model) or openai. Default: MLSTACK_FINETUNE_BACKEND."
)
BASE = typer.Option(
    None,
    file_okay=False,
    exists=True,
    help="local backend: the Hugging Face causal-LM directory to adapt. Default: the pretraining champion.",
)
REVIEW = typer.Option(
    False,
    "--review",
    help="Pause for a person to approve, edit or drop pairs in the Prefect UI (a form per page)."
    " Decisions are kept: a decided pair is never asked about again.",
)


@app.command("validate")
def validate_command(
    file: Path = typer.Argument(..., exists=True, dir_okay=False, help="Chat JSONL in OpenAI's format."),
    backend: Backend | None = BACKEND,
    base: Path | None = typer.Option(
        None, file_okay=False, exists=True, help="Count tokens with this model's tokenizer (local backend)."
    ),
    min_examples: int | None = typer.Option(
        None, help="Fewest examples allowed. Default: MLSTACK_FINETUNE_MIN_EXAMPLES."
    ),
    as_json: bool = JSON,
) -> None:
    """Check a chat JSONL file by OpenAI's rules (JSON, messages, keys, roles, content, weight, an
    assistant turn, the token limit, the minimum count) and print its tokens and estimated cost.
    Exits 1 naming each bad line and its rule."""
    from mlstack.fine_tuning import chat
    from mlstack.settings import get_settings
    from models.lm.lora import token_counter

    settings = get_settings().finetune
    kind = backend.value if backend else settings.backend
    counter = token_counter(kind, base)
    minimum = min_examples if min_examples is not None else settings.min_examples
    report = chat.validate(file, counter, settings.max_example_tokens, minimum, backend=kind)
    price = settings.price_per_million_tokens if kind == "openai" else None
    summary = report.summary(settings.max_example_tokens, settings.epochs, price)
    if as_json:
        findings = [
            {"file": f.file, "line": f.line, "rule": f.rule, "detail": f.detail} for f in report.findings
        ]
        print(json.dumps({**summary, "ok": report.ok, "findings": findings}))
    else:
        console.print(render_summary(summary), highlight=False)
        for finding in report.findings:
            err.print(str(finding), markup=False, highlight=False, soft_wrap=True)
    if not report.ok:
        if not as_json:
            rules = "mlstack.fine_tuning.chat.RULES"
            err.print(f"[bold red]error:[/] {len(report.findings)} problem(s); rules: {rules}")
        raise typer.Exit(1)


def render_summary(summary: dict) -> Text:
    cost = f", about ${summary['estimated_cost_usd']:.2f}" if "estimated_cost_usd" in summary else ""
    exact = "" if summary["exact"] else " (estimated)"
    return Text(
        f"{summary['file']}: {summary['examples']} examples, {summary['tokens']:,} tokens{exact} by"
        f" {summary['counter']}, longest {summary['max_example_tokens']:,}; {summary['billed_tokens']:,}"
        f" billed over {summary['epochs']} epochs{cost}"
    )


@app.command("ingest")
def ingest_command(source: str | None = SOURCE, as_json: bool = JSON) -> None:
    """Issues -> Q&A pairs (question, best maintainer answer), one partition file per month."""
    from flows.fine_tuning import IngestParams, ingest_flow

    show(run_flow(ingest_flow, build(IngestParams, source=source)), render_ingest, as_json)


@app.command("dataset")
def dataset_command(
    source: str | None = SOURCE,
    review: bool = REVIEW,
    backend: Backend | None = BACKEND,
    base: Path | None = BASE,
    as_json: bool = JSON,
) -> None:
    """Review (optional), split by issue hash, write chat JSONL and validate it; prints tokens and cost."""
    from flows.fine_tuning import DatasetParams, dataset_flow

    params = build(DatasetParams, source=source, review=review, backend=backend, base=base)
    show(run_flow(dataset_flow, params), render_dataset, as_json)


@app.command("run")
def run_command(
    source: str | None = SOURCE,
    backend: Backend | None = BACKEND,
    review: bool = REVIEW,
    base: Path | None = BASE,
    run: str = typer.Option("support", "--run", help="The run's name (its folder under home/finetune/runs)."),
    steps: int = typer.Option(60, min=1, help="local: optimizer steps."),
    merge: bool = typer.Option(
        False, "--merge", help="local: also save the adapter merged into a full model."
    ),
    as_json: bool = JSON,
) -> None:
    """Ingest, (review,) build and validate the dataset, train, then score the model and its base
    on the validation set and promote it only if it beats both the base and the champion. A local
    champion becomes the local chat model; `mlstack serve-llm --model DIR` serves an adapter or a
    merged model."""
    from flows.fine_tuning import FineTuningParams, fine_tuning_flow

    if backend == Backend.openai and base is not None:
        raise fail("--base is for the local backend; the openai backend uses MLSTACK_FINETUNE_OPENAI_MODEL")
    params = build(
        FineTuningParams,
        source=source,
        backend=backend,
        review=review,
        base=base,
        run=run,
        steps=steps,
        merge=merge,
    )
    show(run_flow(fine_tuning_flow, params), render_run, as_json)


def render_ingest(result: IngestResult) -> RenderableType:
    table = Table("partition", "pairs", title=f"Q&A pairs from {result.source}")
    for month, count in result.partitions.items():
        table.add_row(month + (" (rewritten)" if month in result.rewritten else ""), str(count))
    dropped = ", ".join(f"{n} {why}" for why, n in result.dropped.items()) or "none"
    return Group(table, Text(f"{result.pairs} pairs; dropped: {dropped}. Files: {result.partitions_dir}"))


def render_dataset(result: DatasetResult) -> RenderableType:
    lines = [
        f"{result.train} training and {result.validation} validation examples: {result.train_file.parent}"
    ]
    if result.review is not None:
        late = " (the form timed out: the rest wait for the next review)" if result.review_timed_out else ""
        lines.append(f"review: {result.review}{late}")
    cost = f", about ${result.estimated_cost_usd:.2f}" if result.estimated_cost_usd is not None else ""
    lines.append(
        f"{result.train_tokens:,} training tokens ({result.token_counter}),"
        f" {result.billed_tokens:,} billed{cost}"
    )
    return Text("\n".join(lines))


def render_train(result: TrainResult) -> RenderableType:
    metrics = ", ".join(f"{k} {v:.4g}" for k, v in result.metrics.items())
    return Text(f"{result.backend}: {result.base} -> {result.model}\n{metrics}")


def render_evaluate(result: EvaluateResult) -> RenderableType:
    table = Table("model", "ROUGE-L", "assistant loss", title="validation")
    for name, score in result.scores.items():
        loss = score.get("loss")
        table.add_row(name, f"{score['rouge_l']:.3f}", "-" if loss is None else f"{loss:.3f}")
    verdict = "champion" if result.promoted else "not promoted"
    return Group(table, Text(f"support_lm v{result.version}: {verdict} ({result.reason})"))


def render_run(result: FineTuningResult) -> RenderableType:
    return Group(
        render_ingest(result.ingest),
        render_dataset(result.dataset),
        render_train(result.train),
        render_evaluate(result.evaluate),
    )
