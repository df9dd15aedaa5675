"""Fine-tuning jobs on OpenAI, as its API documents them: upload the files with
`purpose="fine-tune"`, create the job, poll it and its events with backoff until it succeeds,
fails or is cancelled, then read its metrics from the result file.

The client is the real openai client from `mlstack.llm.providers`, so retries, timeouts and
error messages are the LLM layer's; tests give it a fake transport.
"""

from __future__ import annotations

import csv
import io
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from mlstack.fine_tuning import FinetuneError

TERMINAL = frozenset({"succeeded", "failed", "cancelled"})


class JobFailed(FinetuneError):
    """The job ended failed or cancelled; the message carries OpenAI's own."""


@dataclass
class Outcome:
    job_id: str
    status: str
    model: str
    fine_tuned_model: str | None
    training_file: str
    validation_file: str | None
    trained_tokens: int | None = None
    events: list[str] = field(default_factory=list)
    metrics: dict[str, float] = field(default_factory=dict)


def upload(client: Any, path: Path) -> str:
    with path.open("rb") as handle:
        return client.files.create(file=(path.name, handle), purpose="fine-tune").id


def create(
    client: Any,
    model: str,
    training_file: str,
    validation_file: str | None,
    suffix: str,
    epochs: int,
    seed: int | None = None,
) -> Any:
    options: dict[str, Any] = {
        "model": model,
        "training_file": training_file,
        "suffix": suffix,
        "method": {"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": epochs}}},
    }
    if validation_file:
        options["validation_file"] = validation_file
    if seed is not None:
        options["seed"] = seed
    return client.fine_tuning.jobs.create(**options)


def wait(
    client: Any,
    job_id: str,
    poll_max_s: float,
    timeout_s: float,
    on_event: Callable[[str], None] = lambda _: None,
    sleep: Callable[[float], None] = time.sleep,
) -> tuple[Any, list[str]]:
    """Poll until the job is final: 1 s, doubling up to poll_max_s. Each new event goes to
    on_event once, oldest first."""
    seen: set[str] = set()
    events: list[str] = []
    delay, waited = 1.0, 0.0
    while True:
        job = client.fine_tuning.jobs.retrieve(job_id)
        page = client.fine_tuning.jobs.list_events(job_id, limit=100)
        for event in reversed(list(page.data)):  # the API lists newest first
            if event.id not in seen:
                seen.add(event.id)
                line = f"{event.level}: {event.message}"
                events.append(line)
                on_event(line)
        if job.status in TERMINAL:
            return job, events
        if waited >= timeout_s:
            raise FinetuneError(
                f"job {job_id} is still {job.status} after {waited:.0f} s; it keeps running on OpenAI."
                f" Raise MLSTACK_FINETUNE_JOB_TIMEOUT_S, or look it up with the job id later."
            )
        sleep(delay)
        waited += delay
        delay = min(delay * 2, poll_max_s)


def result_metrics(client: Any, job: Any) -> dict[str, float]:
    """The last row of the job's result file (step, train_loss, valid_loss, ...), as numbers."""
    if not job.result_files:
        return {}
    text = client.files.content(job.result_files[0]).text
    rows = list(csv.DictReader(io.StringIO(text)))
    metrics: dict[str, float] = {}
    for row in rows:
        for key, value in row.items():
            try:
                metrics[key] = float(value)
            except (TypeError, ValueError):
                continue
    return metrics


def run(
    client: Any,
    train_path: Path,
    validation_path: Path | None,
    model: str,
    suffix: str,
    epochs: int,
    poll_max_s: float,
    timeout_s: float,
    on_event: Callable[[str], None] = lambda _: None,
    sleep: Callable[[float], None] = time.sleep,
) -> Outcome:
    training_file = upload(client, train_path)
    validation_file = upload(client, validation_path) if validation_path else None
    job = create(client, model, training_file, validation_file, suffix, epochs)
    on_event(f"created job {job.id} on {model}")
    job, events = wait(client, job.id, poll_max_s, timeout_s, on_event, sleep)
    if job.status != "succeeded":
        message = job.error.message if job.error and job.error.message else "no message"
        raise JobFailed(f"OpenAI fine-tuning job {job.id} {job.status}: {message}")
    return Outcome(
        job_id=job.id,
        status=job.status,
        model=model,
        fine_tuned_model=job.fine_tuned_model,
        training_file=training_file,
        validation_file=validation_file,
        trained_tokens=job.trained_tokens,
        events=events,
        metrics=result_metrics(client, job),
    )


def replies(client: Any, model: str, examples: list[dict[str, Any]], max_tokens: int = 256) -> list[str]:
    """The model's answer to each example's conversation up to its assistant turn, at temperature 0."""
    out = []
    for example in examples:
        prompt = [
            {"role": m["role"], "content": m["content"]}
            for m in example["messages"]
            if m["role"] != "assistant"
        ]
        response = client.chat.completions.create(
            model=model, messages=prompt, temperature=0, max_completion_tokens=max_tokens
        )
        out.append(response.choices[0].message.content or "")
    return out
