"""Prompt engineering: a versioned prompt, an answer through the chat provider, and its checks.

The prompt lives in MLflow's prompt registry as `ask_in_context`. Registering is idempotent: a new
version appears only when the template in this file changes, so every answer can name the prompt
version that produced it. The prompt's rules (answer in the domain's context, in one or two
sentences, with two links for further reading) are checked on every answer, since a model can
ignore them: sentence count, number of links, and whether every link is a well-formed URL.

Each answer is traced with MLflow tracing (a chain span holding a chat-model span with the
messages, the reply and token usage), tied to the MLflow run that asked.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, field
from functools import cache
from pathlib import Path
from typing import Any, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, Field

from mlstack.errors import InputError
from mlstack.llm import LLMError
from mlstack.llm.providers import ChatProvider

PROMPT_NAME = "ask_in_context"
EXPERIMENT = "prompt_engineering"  # the MLflow experiment every answer is recorded in
SYSTEM_RULES = (
    "You are an expert in {{context}}. Answer the user's question in the context of {{context}},"
    " in one or two sentences. After the answer, give exactly two links for further reading,"
    " each a full https:// URL on a line of its own."
)
TEMPLATE = [{"role": "system", "content": SYSTEM_RULES}, {"role": "user", "content": "{{question}}"}]
MAX_SENTENCES = 2
LINKS_WANTED = 2

_MARKDOWN_LINK = re.compile(r"\[([^\]]*)\]\(([^)\s]*)\)")
_URL_LIKE = re.compile(r"(?:\b[a-z][a-z0-9+.-]*://|\bwww\.)[^\s<>\"'`]+", re.IGNORECASE)
_HOST = re.compile(r"^(localhost|([a-z0-9](?:[a-z0-9-]*[a-z0-9])?\.)+[a-z]{2,})$", re.IGNORECASE)
_TRAILING = ".,;:!?)]}"
_LIST_MARKER = re.compile(r"^(?:[-*•]|\d+[.)])\s+")
_ABBREVIATIONS = re.compile(r"\b(e\.g|i\.e|etc|vs|cf|approx|Dr|Mr|Mrs|Ms)\.", re.IGNORECASE)


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


# --- The prompt in MLflow's registry -------------------------------------------------------------


def register_prompt() -> Any:
    """The registry's version of TEMPLATE: the latest if it matches, else a new version."""
    import mlflow.genai
    from mlflow.exceptions import MlflowException

    try:
        latest = mlflow.genai.load_prompt(f"prompts:/{PROMPT_NAME}@latest")
    except MlflowException:
        latest = None
    if latest is not None and latest.template == TEMPLATE:
        return latest
    return mlflow.genai.register_prompt(
        PROMPT_NAME,
        template=TEMPLATE,
        commit_message="mlstack: answer in the domain's context, 1-2 sentences, two links",
        tags={"pattern": "prompt_engineering"},
    )


def load_prompt(version: str | None) -> Any:
    """A registered version ("3") or alias ("production"); None registers and uses the current one."""
    import mlflow.genai
    from mlflow.exceptions import MlflowException

    if version is None:
        return register_prompt()
    uri = f"prompts:/{PROMPT_NAME}/{version}" if version.isdigit() else f"prompts:/{PROMPT_NAME}@{version}"
    try:
        return mlflow.genai.load_prompt(uri)
    except MlflowException as exc:
        raise LLMError(
            f"no prompt {uri} in the MLflow registry ({exc.message}); leave the version out to use the"
            " current template"
        ) from exc


def chat_template(prompt: Any) -> Any:
    """The registered prompt as a LangChain ChatPromptTemplate (MLflow's {{x}} becomes {x})."""
    from langchain_core.prompts import ChatPromptTemplate

    return ChatPromptTemplate.from_messages(
        [(message["role"], message["content"]) for message in prompt.to_single_brace_format()]
    )


# --- Output checks -------------------------------------------------------------------------------


def well_formed(url: str) -> bool:
    """An absolute http(s) URL with a plausible host name and no spaces."""
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(_HOST.match(host)) and not re.search(r"\s", url)


@dataclass(frozen=True)
class AnswerChecks:
    sentences: int
    links: list[str]
    malformed_links: list[str]

    @property
    def sentences_ok(self) -> bool:
        return 1 <= self.sentences <= MAX_SENTENCES

    @property
    def links_ok(self) -> bool:
        return len(self.links) == LINKS_WANTED

    @property
    def links_well_formed(self) -> bool:
        return bool(self.links) and not self.malformed_links

    @property
    def passed(self) -> bool:
        return self.sentences_ok and self.links_ok and self.links_well_formed

    def failures(self) -> list[str]:
        failed = []
        if not self.sentences_ok:
            failed.append(f"{self.sentences} sentences, wanted 1 to {MAX_SENTENCES}")
        if not self.links_ok:
            failed.append(f"{len(self.links)} links, wanted {LINKS_WANTED}")
        if not self.links_well_formed:
            bad = ", ".join(self.malformed_links) if self.malformed_links else "no links at all"
            failed.append(f"links not well-formed: {bad}")
        return failed

    def as_dict(self) -> dict[str, Any]:
        return {
            "sentences": self.sentences,
            "links": len(self.links),
            "links_well_formed": self.links_well_formed,
            "sentences_ok": self.sentences_ok,
            "links_ok": self.links_ok,
            "passed": self.passed,
            "link_urls": self.links,
            "malformed_links": self.malformed_links,
        }


def _keep_trailing(match: re.Match[str]) -> str:
    """A URL drops out of the prose, but the full stop after it still ends a sentence."""
    url = match.group(0)
    return " " + url[len(url.rstrip(_TRAILING)) :]


def check_answer(text: str) -> AnswerChecks:
    """Count the answer's sentences (link lists and 'Further reading:' lines aside) and judge its links."""
    links: list[str] = []
    kept: list[str] = []
    for raw in text.splitlines():
        line = _LIST_MARKER.sub("", raw.strip())
        links += [target for _, target in _MARKDOWN_LINK.findall(line)]
        bare = _MARKDOWN_LINK.sub(" ", line)
        links += [url.rstrip(_TRAILING) for url in _URL_LIKE.findall(bare)]
        words = _URL_LIKE.sub(_keep_trailing, bare).strip()
        # A line of links only, or a heading such as "Further reading:", is not a sentence.
        if re.search(r"[A-Za-z]", words) and not words.endswith(":"):
            kept.append(_URL_LIKE.sub(_keep_trailing, _MARKDOWN_LINK.sub(lambda m: m.group(1), line)))
    prose = _ABBREVIATIONS.sub(lambda m: m.group(1), " ".join(kept))
    sentences = [s for s in re.split(r"(?<=[.!?])\s+", prose) if re.search(r"[A-Za-z]", s)]
    return AnswerChecks(len(sentences), links, [url for url in links if not well_formed(url)])


def _answer_text(outputs: Any) -> str:
    """The answer in a trace's outputs (the `ask_in_context` span's) or a plain string."""
    if isinstance(outputs, dict):
        outputs = outputs.get("answer")
    return "" if outputs is None else str(outputs)


def answer_scorers() -> list[Any]:
    """The answer checks as MLflow GenAI scorers: `mlflow.genai.evaluate` attaches their verdicts,
    with a rationale, to each answer's trace, and their means to the run, so the evaluation view
    compares prompt versions side by side. The rules stay in `check_answer`."""
    from mlflow.entities import Feedback
    from mlflow.genai.scorers import scorer

    @scorer(name="sentences_ok")
    def sentences_ok(outputs: Any) -> Feedback:
        checks = check_answer(_answer_text(outputs))
        return Feedback(
            value=checks.sentences_ok, rationale=f"{checks.sentences} sentences, wanted 1 to {MAX_SENTENCES}"
        )

    @scorer(name="links_ok")
    def links_ok(outputs: Any) -> Feedback:
        checks = check_answer(_answer_text(outputs))
        return Feedback(value=checks.links_ok, rationale=f"{len(checks.links)} links, wanted {LINKS_WANTED}")

    @scorer(name="links_well_formed")
    def links_well_formed(outputs: Any) -> Feedback:
        checks = check_answer(_answer_text(outputs))
        bad = ", ".join(checks.malformed_links) or ("none" if checks.links else "no links at all")
        return Feedback(value=checks.links_well_formed, rationale=f"malformed: {bad}")

    @scorer(name="passed")
    def passed(outputs: Any) -> Feedback:
        checks = check_answer(_answer_text(outputs))
        return Feedback(value=checks.passed, rationale="; ".join(checks.failures()) or "every check passed")

    return [sentences_ok, links_ok, links_well_formed, passed]


def evaluate_traces(run_id: str) -> dict[str, float]:
    """Run the answer scorers over the traces of `run_id` with `mlflow.genai.evaluate`, logging into
    that run; returns its metrics (`passed/mean`, ...). Quiet: the command's stdout may be JSON."""
    import contextlib
    import io

    import mlflow

    traces = mlflow.search_traces(run_id=run_id, flush=True)  # traces are exported asynchronously
    if traces.empty:
        return {}
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        result = mlflow.genai.evaluate(data=traces, scorers=answer_scorers())
    return {name: float(value) for name, value in result.metrics.items()}


# --- Asking --------------------------------------------------------------------------------------


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


# --- Questions in, results out -------------------------------------------------------------------


class QuestionFileError(InputError):
    """A questions file that cannot be read: names the file, the line and the rule."""


def read_questions(path: Path, default_context: str) -> list[tuple[str, str]]:
    """(question, context) pairs from a .txt file (one question a line, # comments) or JSONL
    ({"question": ..., "context": ...}, context optional)."""
    if not path.is_file():
        raise QuestionFileError(f"{path}: no such file")
    items: list[tuple[str, str]] = []
    jsonl = path.suffix in (".jsonl", ".ndjson")
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line or (not jsonl and line.startswith("#")):
            continue
        if not jsonl:
            items.append((line, default_context))
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise QuestionFileError(f"{path} line {number}: not valid JSON ({exc.msg})") from exc
        question = row.get("question") if isinstance(row, dict) else None
        if not isinstance(question, str) or not question.strip():
            raise QuestionFileError(f"{path} line {number}: 'question' must be a non-empty string")
        context = row.get("context", default_context)
        if not isinstance(context, str) or not context.strip():
            raise QuestionFileError(
                f"{path} line {number}: 'context', when given, must be a non-empty string"
            )
        items.append((question.strip(), context.strip()))
    if not items:
        raise QuestionFileError(f"{path}: no questions (one a line, or JSONL with a 'question' field)")
    return items


def summarise(answers: Sequence[Answer]) -> dict[str, Any]:
    answered = [a for a in answers if a.checks is not None]
    checks = [a.checks for a in answered if a.checks]
    return {
        "questions": len(answers),
        "answered": len(answered),
        "errors": len(answers) - len(answered),
        "passed": sum(c.passed for c in checks),
        "failed_sentences": sum(not c.sentences_ok for c in checks),
        "failed_links": sum(not c.links_ok for c in checks),
        "failed_links_well_formed": sum(not c.links_well_formed for c in checks),
        "mean_latency_s": round(sum(a.latency_s for a in answered) / len(answered), 3) if answered else None,
    }


def write_results(answers: Sequence[Answer], path: Path) -> Path:
    """All results as JSON lines, written whole or not at all."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text("".join(json.dumps(a.record()) + "\n" for a in answers), encoding="utf-8")
    tmp.replace(path)
    return path


# --- What a person reads in the Prefect UI -------------------------------------------------------


def _table(rows: list[dict[str, Any]]) -> str:
    import pandas as pd

    return pd.DataFrame(rows).to_markdown(index=False)


def answer_markdown(answer: Answer, note: str | None = None) -> str:
    """One answer with its checks; `note` (a warning) goes first."""
    warning = f"> {note}\n\n" if note else ""
    if answer.checks is None:
        checks = f"**error:** {answer.error}"
    else:
        c = answer.checks
        checks = _table(
            [
                {"check": "sentences", "value": c.sentences, "ok": "✅" if c.sentences_ok else "❌"},
                {"check": "links", "value": len(c.links), "ok": "✅" if c.links_ok else "❌"},
                {
                    "check": "links well-formed",
                    "value": c.links_well_formed,
                    "ok": "✅" if c.links_well_formed else "❌",
                },
            ]
        )
    return (
        f"# {answer.context}: {answer.question}\n\n{warning}## Answer\n\n{answer.text}\n\n"
        f"## Checks\n\n{checks}\n\n"
        f"Prompt `{answer.prompt}`, model `{answer.model}` via {answer.provider}, {answer.latency_s:.2f} s.\n"
    )


def batch_markdown(
    answers: Sequence[Answer], summary: dict[str, Any], output: Path, note: str | None = None, shown: int = 50
) -> str:
    """A batch's summary and the first `shown` answers' checks."""
    warning = f"> {note}\n\n" if note else ""
    rows = [
        {"question": a.question, "sentences": f"error: {a.error}", "passed": "❌"}
        if a.checks is None
        else {
            "question": a.question,
            "sentences": a.checks.sentences,
            "links": len(a.checks.links),
            "well-formed": a.checks.links_well_formed,
            "passed": "✅" if a.checks.passed else "❌",
        }
        for a in answers[:shown]
    ]
    totals = _table([{"summary": key, "value": value} for key, value in summary.items()])
    return (
        f"# Batch of {summary['questions']} questions\n\n{warning}Results: `{output}`\n\n"
        f"{totals}\n\n{_table(rows)}\n"
    )
