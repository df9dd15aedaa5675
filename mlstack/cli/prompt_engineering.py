"""`mlstack ask`: the prompt-engineering pattern, one question or a file of them."""

from __future__ import annotations

from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING

import typer
from rich.console import Group, RenderableType
from rich.table import Table
from rich.text import Text

from mlstack.cli.options import build, option
from mlstack.cli.render import JSON, err, fail, show
from mlstack.cli.running import run_flow
from mlstack.prompt_engineering.ask import AskOptions

if TYPE_CHECKING:
    from flows.prompt_engineering import BatchPromptResult, Checks, PromptResult

app = typer.Typer()


class Provider(StrEnum):
    openai = "openai"
    compatible = "openai-compatible"
    local = "local"


@app.command()
def ask(
    question: str | None = typer.Argument(None, help="The question. Leave out with --file."),
    context: str = option(AskOptions, "context"),
    strict: bool = option(AskOptions, "strict"),
    file: Path | None = typer.Option(
        None, "--file", "-f", help="Questions to answer in a batch: .txt (one a line) or .jsonl."
    ),
    output: Path | None = typer.Option(None, help="Batch results (JSON lines). Default: under reports/."),
    concurrency: int | None = typer.Option(
        None, help="Batch questions in flight. Default: MLSTACK_LLM_ASK_CONCURRENCY."
    ),
    provider: Provider | None = option(AskOptions, "provider"),
    model: str | None = option(AskOptions, "model"),
    prompt_version: str | None = option(AskOptions, "prompt_version"),
    temperature: float = option(AskOptions, "temperature"),
    max_tokens: int = option(AskOptions, "max_tokens"),
    seed: int | None = option(AskOptions, "seed"),
    as_json: bool = JSON,
) -> None:
    """Ask a question in the context of a domain (the prompt-engineering pattern).

    The answer is checked (one or two sentences, two well-formed links) and recorded in MLflow
    with the prompt version that produced it. With no OpenAI settings, a local model answers.
    Switch with one variable: `OPENAI_API_KEY=sk-...` for OpenAI, or
    `OPENAI_BASE_URL=http://localhost:11434/v1` for any OpenAI-compatible server.
    """
    from flows.prompt_engineering import (
        BatchPromptParams,
        PromptParams,
        prompt_engineering_batch_flow,
        prompt_engineering_flow,
    )

    if (question is None) == (file is None):
        raise fail("give either a QUESTION or --file with questions, not both or neither")
    options = {
        "context": context,
        "strict": strict,
        "prompt_version": prompt_version,
        "provider": provider.value if provider else None,
        "model": model,
        "temperature": temperature,
        "max_tokens": max_tokens,
        "seed": seed,
    }
    if file is not None:
        params = build(
            BatchPromptParams, questions_file=file, output=output, concurrency=concurrency, **options
        )
        result = run_flow(prompt_engineering_batch_flow, params)
        show(result, render_batch, as_json)
    else:
        result = run_flow(prompt_engineering_flow, build(PromptParams, question=question, **options))
        show(result, render_answer, as_json)
    if result.note:
        err.print(Text.assemble(("note:", "yellow"), f" {result.note}"))


def checks_line(checks: Checks) -> str:
    verdict = "passed" if checks.passed else "failed"
    return (
        f"checks {verdict} ({checks.sentences} sentences, {checks.links} links,"
        f" well-formed {str(checks.links_well_formed).lower()})"
    )


def render_answer(result: PromptResult) -> RenderableType:
    return Group(
        Text.assemble((f"{result.context}:", "bold"), f" {result.question}\n\n{result.answer}\n"),
        Text(f"{checks_line(result.checks)}; prompt {result.prompt}, {result.model} via {result.provider}"),
    )


def render_batch(result: BatchPromptResult) -> Table:
    table = Table("summary", "value", title=f"{result.output.name}: answers in {result.output}")
    for key, value in result.summary.model_dump().items():
        table.add_row(key, str(value))
    return table
