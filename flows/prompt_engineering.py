"""Prompt engineering: ask a question in the context of a domain, with a versioned prompt.

The question and the domain are run-time parameters of one reusable flow. The prompt, a LangChain
ChatPromptTemplate whose system rules say to answer in the domain's context, in one or two
sentences, with two links for further reading, is versioned in MLflow's prompt registry. The
answer comes from whichever chat provider the settings select (OpenAI, any OpenAI-compatible
server, or a local model behind our own endpoint) and is checked against those rules: sentence
count, number of links, well-formed URLs. `strict` fails the run when a check fails.

Each run is an MLflow run in the `prompt_engineering` experiment holding the prompt version, the
answer, its checks and a trace of the LLM call, and a Prefect markdown artifact shows the lot.
The batch flow answers a file of questions with bounded concurrency and writes JSON lines.

    python flows/prompt_engineering.py "How do I drop duplicate rows?" Pandas
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import mlstack.bootstrap  # noqa: F401  (before prefect: sets its environment defaults)

from prefect import flow, get_run_logger, task
from prefect.artifacts import create_markdown_artifact
from prefect.cache_policies import NONE
from prefect.states import Failed, State
from pydantic import BaseModel, Field

from mlstack import tracking
from mlstack.llm.providers import ChatProvider, resolve_chat
from mlstack.prompt_engineering import EXPERIMENT
from mlstack.prompt_engineering.ask import Answer, AskOptions, ask, ask_many
from mlstack.prompt_engineering.checks import evaluate_traces
from mlstack.prompt_engineering.prompt import load_prompt
from mlstack.prompt_engineering.questions import read_questions, summarise, write_results
from mlstack.prompt_engineering.report import answer_markdown, batch_markdown
from mlstack.settings import get_settings


class PromptParams(AskOptions):
    question: str = Field(min_length=1, description="The question to answer.")


class BatchPromptParams(AskOptions):
    questions_file: Path = Field(
        description=".txt (one question a line) or .jsonl (`question`, optional `context`)."
    )
    output: Path | None = Field(default=None, description="Results as JSON lines. Default: under reports/.")
    concurrency: int | None = Field(
        default=None, ge=1, le=32, description="Questions in flight. Default: MLSTACK_LLM_ASK_CONCURRENCY."
    )


class Checks(BaseModel):
    """The output checks of one answer."""

    sentences: int
    links: int
    links_well_formed: bool
    sentences_ok: bool
    links_ok: bool
    passed: bool
    link_urls: list[str]
    malformed_links: list[str]


class PromptResult(BaseModel):
    question: str
    context: str
    answer: str
    checks: Checks
    prompt: str = Field(description="The registry URI of the prompt version used.")
    provider: str
    model: str
    meaningful: bool = Field(
        description="False for a local model that does not follow a chat: the untrained stand-in"
        " (random words) or a pretrained base model (it continues code)."
    )
    note: str | None = Field(
        default=None, description="What a reader of the answer should know about the model."
    )


class BatchSummary(BaseModel):
    questions: int
    answered: int
    errors: int
    passed: int
    failed_sentences: int
    failed_links: int
    failed_links_well_formed: int
    mean_latency_s: float | None


class BatchPromptResult(BaseModel):
    output: Path = Field(description="The JSON lines file with every answer.")
    summary: BatchSummary
    meaningful: bool
    note: str | None = None


@task(name="connect-llm", cache_policy=NONE)
def connect(provider: str | None, model: str | None) -> ChatProvider:
    chat = resolve_chat(get_settings(), provider, model)
    logger = get_run_logger()
    logger.info("chat model %s via %s at %s", chat.model, chat.info.provider, chat.endpoint.base_url)
    if chat.note:
        logger.warning(chat.note)
    return chat


def _run_params(chat: ChatProvider, prompt: Any, options: AskOptions) -> dict[str, Any]:
    return {
        "prompt_name": prompt.name,
        "prompt_version": prompt.version,
        "prompt_uri": prompt.uri,
        "provider": chat.info.provider,
        "model": chat.model,
        "base_url": chat.endpoint.base_url,
        **options.generation(),
    }


@task(name="ask", cache_policy=NONE)
def ask_and_record(chat: ChatProvider, params: PromptParams) -> Answer:
    import mlflow

    tracking.setup(get_settings(), EXPERIMENT)
    question = params.question
    with mlflow.start_run(
        run_name=f"ask: {question[:60]}", tags={"pattern": EXPERIMENT, **tracking.owner_tags()}
    ) as run:
        prompt = load_prompt(params.prompt_version)  # inside the run, so MLflow links the two
        mlflow.log_params({**_run_params(chat, prompt, params), "context": params.context})
        mlflow.log_text(question, "question.txt")
        answer = ask(chat, prompt, question, params.context, run_id=run.info.run_id, **params.generation())
        checks = answer.checks
        assert checks is not None  # ask() raises rather than return an unchecked answer
        mlflow.log_metrics(
            {
                "sentences": checks.sentences,
                "links": len(checks.links),
                "links_well_formed": float(checks.links_well_formed),
                "passed": float(checks.passed),
                "latency_s": answer.latency_s,
                **{f"tokens_{k}": v for k, v in answer.usage.items()},
            }
        )
        mlflow.log_text(answer_markdown(answer, chat.note), "answer.md")
        mlflow.log_dict(answer.record(), "answer.json")
    get_run_logger().info("answered with prompt %s in MLflow run %s", prompt.uri, run.info.run_id)
    return answer


@flow(name="prompt-engineering", log_prints=False)
def prompt_engineering_flow(params: PromptParams) -> PromptResult | State:
    """Answer the question in the context of its domain; record it in MLflow; check the answer.

    `prompt_version` picks a registered version ("3") or alias; by default the current template is
    registered (once) and used. `strict` fails the run when an output check fails.
    """
    chat = connect(params.provider, params.model)
    answer = ask_and_record(chat, params)
    create_markdown_artifact(
        answer_markdown(answer, chat.note),
        key="prompt-engineering-answer",
        description=params.question[:100],
    )
    assert answer.checks is not None
    result = PromptResult(
        question=params.question,
        context=params.context,
        answer=answer.text or "",
        checks=Checks(**answer.checks.as_dict()),
        prompt=answer.prompt,
        provider=answer.provider,
        model=answer.model,
        meaningful=chat.meaningful,
        note=chat.note,
    )
    if not answer.checks.passed:
        failures = "; ".join(answer.checks.failures())
        get_run_logger().warning("the answer fails its checks: %s", failures)
        if params.strict:
            return Failed(message=f"the answer fails its checks (strict): {failures}", data=result)
    return result


@task(name="ask-batch", cache_policy=NONE)
def ask_batch(
    chat: ChatProvider, items: list[tuple[str, str]], output: Path, concurrency: int, options: AskOptions
) -> tuple[list[Answer], dict[str, Any]]:
    import mlflow
    from rich.progress import Progress

    logger = get_run_logger()
    tracking.setup(get_settings(), EXPERIMENT)
    with mlflow.start_run(
        run_name=f"ask batch: {output.stem}", tags={"pattern": EXPERIMENT, **tracking.owner_tags()}
    ) as run:
        prompt = load_prompt(options.prompt_version)
        mlflow.log_params(
            {**_run_params(chat, prompt, options), "questions": len(items), "concurrency": concurrency}
        )

        def ask_one(question: str, context: str) -> Answer:
            return ask(chat, prompt, question, context, run_id=run.info.run_id, **options.generation())

        with Progress(disable=not sys.stderr.isatty(), transient=True) as progress:
            bar = progress.add_task("asking", total=len(items))
            answers = ask_many(ask_one, items, concurrency, on_done=lambda _answer: progress.advance(bar))
        summary = summarise(answers)
        write_results(answers, output)
        mlflow.log_metrics({k: v for k, v in summary.items() if isinstance(v, int | float)})
        # The checks again, as MLflow's evaluation: per-trace verdicts, compared across prompts.
        evaluate_traces(run.info.run_id)
        mlflow.log_artifact(str(output))
        mlflow.log_dict(summary, "summary.json")
    logger.info(
        "%d questions: %d passed their checks, %d errors; results in %s",
        summary["questions"],
        summary["passed"],
        summary["errors"],
        output,
    )
    return answers, summary


@flow(name="prompt-engineering-batch", log_prints=False)
def prompt_engineering_batch_flow(params: BatchPromptParams) -> BatchPromptResult | State:
    """Answer every question in the file, at most `concurrency` at once, into JSON lines.

    The run fails when a question could not be answered (the results are written first), and
    with `strict` also when an answer fails its checks.
    """
    settings = get_settings()
    source = params.questions_file
    items = read_questions(source, params.context)  # a bad file fails before any LLM call
    target = params.output or settings.reports_dir / "prompt_engineering" / f"{source.stem}.jsonl"
    chat = connect(params.provider, params.model)
    concurrency = params.concurrency or settings.llm.ask_concurrency
    answers, summary = ask_batch(chat, items, target, concurrency, params)
    create_markdown_artifact(
        batch_markdown(answers, summary, target, chat.note),
        key="prompt-engineering-batch",
        description=f"{summary['questions']} questions from {source.name}",
    )
    result = BatchPromptResult(
        output=target, summary=BatchSummary(**summary), meaningful=chat.meaningful, note=chat.note
    )
    if summary["errors"]:
        first = next(a.error for a in answers if a.error)
        return Failed(message=f"{summary['errors']} questions got no answer; first: {first}", data=result)
    if params.strict and summary["passed"] < summary["answered"]:
        failed = summary["answered"] - summary["passed"]
        return Failed(message=f"{failed} answers fail their checks (strict); see {target}", data=result)
    return result


if __name__ == "__main__":
    prompt_engineering_flow(PromptParams(question=sys.argv[1], context=(sys.argv[2:3] or ["Pandas"])[0]))
