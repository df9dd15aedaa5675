"""OpenAI fine-tuning jobs through the real openai client over a fake transport that follows the
documented lifecycle: two files uploaded, the job created, queued, running, succeeded, with
events and a result file; and a job that fails with OpenAI's message."""

from __future__ import annotations

import json
from pathlib import Path

import httpx2
import pytest

from mlstack.fine_tuning import openai_jobs
from mlstack.llm.providers import OPENAI_URL, Endpoint

MODEL = "gpt-4o-mini-2024-07-18"
RESULT_CSV = (
    "step,train_loss,train_accuracy,valid_loss,valid_mean_token_accuracy\n"
    "1,2.1,0.4,2.3,0.38\n"
    "2,1.2,0.6,1.5,0.55\n"
)


def file_object(file_id: str, name: str, purpose: str = "fine-tune") -> dict:
    return {
        "id": file_id,
        "object": "file",
        "bytes": 120,
        "created_at": 1700000000,
        "filename": name,
        "purpose": purpose,
        "status": "processed",
    }


def job(status: str, error: dict | None = None) -> dict:
    done = status == "succeeded"
    return {
        "id": "ftjob-abc123",
        "object": "fine_tuning.job",
        "created_at": 1700000000,
        "finished_at": 1700003600 if status in openai_jobs.TERMINAL else None,
        "model": MODEL,
        "fine_tuned_model": f"ft:{MODEL}:acme:mlstack:7p4lURel" if done else None,
        "organization_id": "org-123",
        "result_files": ["file-result"] if done else [],
        "status": status,
        "validation_file": "file-validation",
        "training_file": "file-train",
        "hyperparameters": {"n_epochs": 3, "batch_size": 1, "learning_rate_multiplier": 1.8},
        "trained_tokens": 5768 if done else None,
        "error": error,
        "seed": 0,
    }


def event(n: int, message: str, level: str = "info") -> dict:
    return {
        "id": f"ftevent-{n}",
        "object": "fine_tuning.job.event",
        "created_at": 1700000000 + n,
        "level": level,
        "message": message,
        "type": "message",
    }


class FakeFineTuning:
    """api.openai.com's files and fine-tuning endpoints, scripted through a job's statuses."""

    def __init__(self, statuses: list[str], error: dict | None = None) -> None:
        self.statuses = statuses
        self.error = error
        self.polls = 0
        self.uploads: list[tuple[str, str]] = []
        self.created: dict = {}
        self.requests: list[str] = []

    def __call__(self, request: httpx2.Request) -> httpx2.Response:
        path = request.url.path.removeprefix("/v1")
        self.requests.append(f"{request.method} {path}")
        if request.method == "POST" and path == "/files":
            body = request.content.decode(errors="replace")
            name = "train.jsonl" if 'filename="train.jsonl"' in body else "validation.jsonl"
            assert 'name="purpose"' in body and "fine-tune" in body
            self.uploads.append((name, body))
            return httpx2.Response(200, json=file_object(f"file-{name.split('.')[0]}", name))
        if request.method == "POST" and path == "/fine_tuning/jobs":
            self.created = json.loads(request.content)
            return httpx2.Response(200, json=job("validating_files"))
        if path == "/fine_tuning/jobs/ftjob-abc123":
            status = self.statuses[min(self.polls, len(self.statuses) - 1)]
            self.polls += 1
            return httpx2.Response(200, json=job(status, self.error if status == "failed" else None))
        if path == "/fine_tuning/jobs/ftjob-abc123/events":
            shown = [
                event(1, "Validating training file: file-train"),
                event(2, "Fine-tuning job started"),
                event(3, "Step 1/2: training loss=2.10"),
                event(4, "New fine-tuned model created"),
                event(5, "The job has successfully completed"),
            ][: 1 + 2 * self.polls]
            return httpx2.Response(200, json={"object": "list", "data": shown[::-1], "has_more": False})
        if path == "/files/file-result/content":
            return httpx2.Response(200, content=RESULT_CSV.encode())
        return httpx2.Response(
            404, json={"error": {"message": f"no route {path}", "type": "invalid_request_error"}}
        )

    def endpoint(self) -> Endpoint:
        return Endpoint(
            "openai", OPENAI_URL, "sk-test", 5.0, 0, httpx2.Client(transport=httpx2.MockTransport(self))
        )


@pytest.fixture
def files(tmp_path: Path) -> tuple[Path, Path]:
    line = {"messages": [{"role": "user", "content": "q"}, {"role": "assistant", "content": "a"}]}
    train, validation = tmp_path / "train.jsonl", tmp_path / "validation.jsonl"
    train.write_text(json.dumps(line) + "\n")
    validation.write_text(json.dumps(line) + "\n")
    return train, validation


def test_a_job_runs_its_lifecycle_to_a_fine_tuned_model(files: tuple[Path, Path]) -> None:
    fake = FakeFineTuning(["validating_files", "queued", "running", "running", "succeeded"])
    seen: list[str] = []
    waits: list[float] = []
    outcome = openai_jobs.run(
        fake.endpoint().client,
        *files,
        MODEL,
        "mlstack",
        3,
        4.0,
        3600,
        on_event=seen.append,
        sleep=waits.append,
    )
    assert [name for name, _ in fake.uploads] == ["train.jsonl", "validation.jsonl"]
    assert fake.created == {
        "model": MODEL,
        "training_file": "file-train",
        "validation_file": "file-validation",
        "suffix": "mlstack",
        "method": {"type": "supervised", "supervised": {"hyperparameters": {"n_epochs": 3}}},
    }
    assert outcome.fine_tuned_model == f"ft:{MODEL}:acme:mlstack:7p4lURel"
    assert (outcome.job_id, outcome.trained_tokens) == ("ftjob-abc123", 5768)
    assert waits == [1.0, 2.0, 4.0, 4.0]  # backoff, doubling to poll_max_s
    # Every event once, oldest first, though the API lists newest first and repeats them.
    assert outcome.events == [
        f"info: {m}"
        for m in [
            "Validating training file: file-train",
            "Fine-tuning job started",
            "Step 1/2: training loss=2.10",
            "New fine-tuned model created",
            "The job has successfully completed",
        ]
    ]
    assert seen[0] == "created job ftjob-abc123 on gpt-4o-mini-2024-07-18" and seen[1:] == outcome.events
    assert outcome.metrics == {
        "step": 2.0,
        "train_loss": 1.2,
        "train_accuracy": 0.6,
        "valid_loss": 1.5,
        "valid_mean_token_accuracy": 0.55,
    }


def test_a_failed_job_raises_with_openais_message(files: tuple[Path, Path]) -> None:
    error = {
        "code": "invalid_training_file",
        "message": "The job failed due to an invalid training file.",
        "param": "training_file",
    }
    fake = FakeFineTuning(["queued", "failed"], error)
    with pytest.raises(
        openai_jobs.JobFailed, match="ftjob-abc123 failed: The job failed due to an invalid training file"
    ):
        openai_jobs.run(fake.endpoint().client, *files, MODEL, "mlstack", 3, 4.0, 3600, sleep=lambda _: None)


def test_a_job_past_its_timeout_is_reported_and_left_running(files: tuple[Path, Path]) -> None:
    fake = FakeFineTuning(["running"])
    with pytest.raises(
        openai_jobs.FinetuneError, match="still running after 3 s; it keeps running on OpenAI"
    ):
        openai_jobs.run(fake.endpoint().client, *files, MODEL, "mlstack", 3, 2.0, 3, sleep=lambda _: None)
    assert "POST /fine_tuning/jobs/ftjob-abc123/cancel" not in fake.requests
