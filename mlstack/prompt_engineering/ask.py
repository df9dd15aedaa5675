"""Asking: one question, or many at once, through the chat provider, traced with MLflow."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from functools import cache
from typing import Any, Literal

from pydantic import BaseModel, Field

from mlstack.llm import LLMError
from mlstack.llm.providers import ChatProvider
from mlstack.prompt_engineering.checks import AnswerChecks, check_answer
from mlstack.prompt_engineering.prompt import chat_template


class AskOptions(BaseModel):
    """How a question is asked: in which domain, with which prompt version, by which model, and
    how that model generates. The prompt-engineering flows take these as their parameters."""

    context: str = Field(default="Pandas", min_length=1, description="The domain the answer must stay in.")
    strict: bool = Field(default=False, description="Fail when an answer fails its output checks.")
    prompt_version: str | None = Field(
        default=None, description="A registered prompt version or alias. Default: the current template."
    )
    provider: Literal["openai", "openai-compatible", "local"] | None = Field(
        default=None, description="Chat provider. Default: MLSTACK_LLM_PROVIDER."
    )
    model: str | None = Field(
        default=None, description="Chat model. Default: MLSTACK_LLM_MODEL or the provider's."
    )
    temperature: float = Field(default=0.0, ge=0.0, le=2.0, description="0 answers greedily.")
    max_tokens: int = Field(default=256, ge=1, description="Longest answer, in tokens.")
    seed: int | None = Field(default=None, description="Sampling seed, for answers that repeat.")

    def generation(self) -> dict[str, Any]:
        """What the chat model is called with."""
        return {"temperature": self.temperature, "max_tokens": self.max_tokens, "seed": self.seed}


@dataclass
class Answer:
    question: str
    context: str
    text: str | None
    checks: AnswerChecks | None
    prompt: str  # the registry URI of the prompt version, e.g. prompts:/ask_in_context/2
    provider: str
    model: str
    latency_s: float
    usage: dict[str, int] = field(default_factory=dict)
    error: str | None = None

    def record(self) -> dict[str, Any]:
        """One JSON line of a batch's results."""
        row = asdict(self)
        row = {
            "question": row.pop("question"),
            "context": row.pop("context"),
            "answer": row.pop("text"),
            **row,
        }
        row["checks"] = self.checks.as_dict() if self.checks else None
        return row


@cache
def autolog() -> None:
    """MLflow's LangChain tracing, once per process: it needs no network of its own."""
    import mlflow

    mlflow.langchain.autolog(log_traces=True, silent=True)


def ask(
    provider: ChatProvider,
    prompt: Any,
    question: str,
    context: str,
    *,
    temperature: float = 0.0,
    max_tokens: int = 256,
    seed: int | None = None,
    run_id: str | None = None,
) -> Answer:
    """Ask through LangChain's ChatOpenAI with the registered prompt; trace it; check the answer.

    The trace is ours at the top (`ask_in_context`: question, context, prompt version, answer and
    checks) and MLflow's LangChain autologging beneath: the chat call's messages, reply and token
    usage, recorded as MLflow records them for any LangChain app."""
    import mlflow
    from mlflow.entities import SpanType

    if not question.strip():
        raise ValueError("the question is empty")
    autolog()
    messages = chat_template(prompt).format_messages(question=question, context=context)
    model = provider.chat_model(temperature=temperature, max_tokens=max_tokens, seed=seed)
    started = time.perf_counter()
    with mlflow.start_span("ask_in_context", span_type=SpanType.CHAIN, run_id=run_id) as span:
        span.set_inputs({"question": question, "context": context, "prompt": prompt.uri})
        span.set_attributes({"provider": provider.info.provider, "model": provider.model})
        with provider.endpoint.explained():
            reply = model.invoke(messages)
        text = reply.content if isinstance(reply.content, str) else str(reply.content)
        usage = dict(reply.usage_metadata or {})
        checks = check_answer(text)
        span.set_outputs({"answer": text, "checks": checks.as_dict()})
    return Answer(
        question=question,
        context=context,
        text=text,
        checks=checks,
        prompt=prompt.uri,
        provider=provider.info.provider,
        model=provider.model,
        latency_s=round(time.perf_counter() - started, 3),
        usage={k: int(v) for k, v in usage.items() if isinstance(v, int)},
    )


def ask_many(
    ask_one: Callable[[str, str], Answer],
    items: Sequence[tuple[str, str]],
    concurrency: int,
    on_done: Callable[[Answer], None] | None = None,
) -> list[Answer]:
    """Answers in the input's order, at most `concurrency` in flight; a failed one records its error."""

    def guarded(item: tuple[str, str]) -> Answer:
        started = time.perf_counter()
        try:
            answer = ask_one(*item)
        except LLMError as exc:
            answer = Answer(
                item[0],
                item[1],
                None,
                None,
                "",
                "",
                "",
                round(time.perf_counter() - started, 3),
                error=str(exc),
            )
        if on_done:
            on_done(answer)
        return answer

    with ThreadPoolExecutor(max_workers=concurrency, thread_name_prefix="ask") as pool:
        return list(pool.map(guarded, items))
