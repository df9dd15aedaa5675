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
from prefect.states import Completed, Failed, State

from mlstack import prompts, tracking
from mlstack.llm import ChatProvider, resolve_chat
from mlstack.prompts import Answer
from mlstack.settings import get_settings

EXPERIMENT = "prompt_engineering"
UNTRAINED_NOTE = (
    "The local model is an untrained stand-in with random weights: its text is not meaningful."
    " Train one with the pretraining flow, set MLSTACK_LLM_LOCAL_MODEL, or set OPENAI_API_KEY."
)


@task(name="connect-llm", cache_policy=NONE)
def connect(provider: str | None, model: str | None) -> ChatProvider:
    chat = resolve_chat(get_settings(), provider, model)
    logger = get_run_logger()
    logger.info("chat model %s via %s at %s", chat.model, chat.info.provider, chat.endpoint.base_url)
    if not chat.meaningful:
        logger.warning(UNTRAINED_NOTE)
    return chat


def _run_params(chat: ChatProvider, prompt: Any, generation: dict[str, Any]) -> dict[str, Any]:
    return {
        "prompt_name": prompt.name,
        "prompt_version": prompt.version,
        "prompt_uri": prompt.uri,
        "provider": chat.info.provider,
        "model": chat.model,
        "base_url": chat.endpoint.base_url,
        **generation,
    }


def _checks_table(answer: Answer) -> str:
    if answer.checks is None:
        return f"**error:** {answer.error}"
    checks = answer.checks
    rows = [
        ("sentences", checks.sentences, checks.sentences_ok),
        ("links", len(checks.links), checks.links_ok),
        ("links well-formed", checks.links_well_formed, checks.links_well_formed),
    ]
    lines = ["| check | value | ok |", "|---|---|---|"]
    lines += [f"| {name} | {value} | {'✅' if ok else '❌'} |" for name, value, ok in rows]
    return "\n".join(lines)


def answer_markdown(answer: Answer, meaningful: bool = True) -> str:
    note = f"> {UNTRAINED_NOTE}\n\n" if not meaningful else ""
    return (
        f"# {answer.context}: {answer.question}\n\n{note}## Answer\n\n{answer.text}\n\n"
        f"## Checks\n\n{_checks_table(answer)}\n\n"
        f"Prompt `{answer.prompt}`, model `{answer.model}` via {answer.provider}, {answer.latency_s:.2f} s.\n"
    )


@task(name="ask", cache_policy=NONE)
def ask_and_record(
    chat: ChatProvider, question: str, context: str, prompt_version: str | None, generation: dict[str, Any]
) -> Answer:
    import mlflow

    tracking.setup(get_settings(), EXPERIMENT)
    with mlflow.start_run(run_name=f"ask: {question[:60]}", tags={"pattern": "prompt_engineering"}) as run:
        prompt = prompts.load_prompt(prompt_version)  # inside the run, so MLflow links the two
        mlflow.log_params({**_run_params(chat, prompt, generation), "context": context})
        mlflow.log_text(question, "question.txt")
        answer = prompts.ask(chat, prompt, question, context, run_id=run.info.run_id, **generation)
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
        mlflow.log_text(answer_markdown(answer, chat.meaningful), "answer.md")
        mlflow.log_dict(answer.record(), "answer.json")
    get_run_logger().info("answered with prompt %s in MLflow run %s", prompt.uri, run.info.run_id)
    return answer


@flow(name="prompt-engineering", log_prints=False)
def prompt_engineering_flow(
    question: str,
    context: str = "Pandas",
    strict: bool = False,
    prompt_version: str | None = None,
    provider: str | None = None,
    model: str | None = None,
    temperature: float = 0.0,
    max_tokens: int = 256,
    seed: int | None = None,
) -> State:
    """Answer `question` in the context of `context`; record it in MLflow; check the answer.

    `prompt_version` picks a registered version ("3") or alias; by default the current template is
    registered (once) and used. `strict` fails the run when an output check fails.
    """
    chat = connect(provider, model)
    generation = {"temperature": temperature, "max_tokens": max_tokens, "seed": seed}
    answer = ask_and_record(chat, question, context, prompt_version, generation)
    create_markdown_artifact(
        answer_markdown(answer, chat.meaningful), key="prompt-engineering-answer", description=question[:100]
    )
    result = {
        "question": question,
        "context": context,
        "answer": answer.text,
        "checks": answer.checks.as_dict() if answer.checks else None,
        "prompt": answer.prompt,
        "provider": answer.provider,
        "model": answer.model,
        "meaningful": chat.meaningful,
    }
    assert answer.checks is not None
    if not answer.checks.passed:
        failures = "; ".join(answer.checks.failures())
        get_run_logger().warning("the answer fails its checks: %s", failures)
        if strict:
            return Failed(message=f"the answer fails its checks (strict): {failures}", data=result)
    return Completed(data=result)


@task(name="ask-batch", cache_policy=NONE)
def ask_batch(
    chat: ChatProvider,
    items: list[tuple[str, str]],
    output: Path,
    concurrency: int,
    prompt_version: str | None,
    generation: dict[str, Any],
) -> tuple[list[Answer], dict[str, Any]]:
    import mlflow
    from rich.progress import Progress

    logger = get_run_logger()
    tracking.setup(get_settings(), EXPERIMENT)
    with mlflow.start_run(
        run_name=f"ask batch: {output.stem}", tags={"pattern": "prompt_engineering"}
    ) as run:
        prompt = prompts.load_prompt(prompt_version)
        mlflow.log_params(
            {**_run_params(chat, prompt, generation), "questions": len(items), "concurrency": concurrency}
        )

        def ask_one(question: str, context: str) -> Answer:
            return prompts.ask(chat, prompt, question, context, run_id=run.info.run_id, **generation)

        with Progress(disable=not sys.stderr.isatty(), transient=True) as progress:
            bar = progress.add_task("asking", total=len(items))
            answers = prompts.ask_many(
                ask_one, items, concurrency, on_done=lambda _answer: progress.advance(bar)
            )
        summary = prompts.summarise(answers)
        prompts.write_results(answers, output)
        mlflow.log_metrics({k: v for k, v in summary.items() if isinstance(v, int | float)})
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


def batch_markdown(answers: list[Answer], summary: dict[str, Any], output: Path, meaningful: bool) -> str:
    note = f"> {UNTRAINED_NOTE}\n\n" if not meaningful else ""
    lines = [
        f"# Batch of {summary['questions']} questions\n",
        note,
        f"Results: `{output}`\n",
        "| summary | value |",
        "|---|---|",
    ]
    lines += [f"| {key} | {value} |" for key, value in summary.items()]
    lines += ["", "| question | sentences | links | well-formed | passed |", "|---|---|---|---|---|"]
    for answer in answers[:50]:
        if answer.checks is None:
            lines.append(f"| {answer.question} | error: {answer.error} | | | ❌ |")
            continue
        c = answer.checks
        lines.append(
            f"| {answer.question} | {c.sentences} | {len(c.links)} | {c.links_well_formed} |"
            f" {'✅' if c.passed else '❌'} |"
        )
    return "\n".join(lines)


@flow(name="prompt-engineering-batch", log_prints=False)
def prompt_engineering_batch_flow(
    questions_file: str,
    context: str = "Pandas",
    output: str | None = None,
    concurrency: int | None = None,
    strict: bool = False,
    prompt_version: str | None = None,
    provider: str | None = None,
    model: str | None = None,
    temperature: float = 0.0,
    max_tokens: int = 256,
    seed: int | None = None,
) -> State:
    """Answer every question in `questions_file` (.txt, one a line; or .jsonl with `question` and
    an optional `context`), at most `concurrency` at once, into JSON lines at `output`.

    The run fails when a question could not be answered (the results are written first), and
    with `strict` also when an answer fails its checks.
    """
    settings = get_settings()
    source = Path(questions_file)
    items = prompts.read_questions(source, context)  # a bad file fails before any LLM call
    target = Path(output) if output else settings.reports_dir / "prompt_engineering" / f"{source.stem}.jsonl"
    chat = connect(provider, model)
    generation = {"temperature": temperature, "max_tokens": max_tokens, "seed": seed}
    answers, summary = ask_batch(
        chat, items, target, concurrency or settings.ask_concurrency, prompt_version, generation
    )
    create_markdown_artifact(
        batch_markdown(answers, summary, target, chat.meaningful),
        key="prompt-engineering-batch",
        description=f"{summary['questions']} questions from {source.name}",
    )
    result = {"output": str(target), "summary": summary, "meaningful": chat.meaningful}
    if summary["errors"]:
        first = next(a.error for a in answers if a.error)
        return Failed(message=f"{summary['errors']} questions got no answer; first: {first}", data=result)
    if strict and summary["passed"] < summary["answered"]:
        failed = summary["answered"] - summary["passed"]
        return Failed(message=f"{failed} answers fail their checks (strict); see {target}", data=result)
    return Completed(data=result)


if __name__ == "__main__":
    prompt_engineering_flow(sys.argv[1], *(sys.argv[2:3] or ["Pandas"]))
