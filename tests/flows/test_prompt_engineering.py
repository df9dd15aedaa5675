"""The prompt-engineering flows end to end under a real Prefect server, on the local provider:
`mlstack serve-llm` with the tiny test model, a real MLflow store with its prompt registry and traces."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from flows.prompt_engineering import (
    BatchPromptParams,
    PromptParams,
    prompt_engineering_batch_flow,
    prompt_engineering_flow,
)
from mlstack import tracking
from mlstack.prompt_engineering import EXPERIMENT
from mlstack.settings import get_settings

QUESTION = "How do I drop duplicate rows?"


@pytest.fixture
def local_tiny(tiny_server: tuple[str, str], tiny_lm: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The local provider serving the tiny model (its server is already up: the flow reuses it)."""
    monkeypatch.setenv("MLSTACK_LLM_PROVIDER", "local")
    monkeypatch.setenv("MLSTACK_LLM_LOCAL_MODEL", str(tiny_lm))
    return tiny_server[1]


def _runs() -> list:
    import mlflow

    tracking.setup(get_settings(), EXPERIMENT)
    return mlflow.search_runs(experiment_names=[EXPERIMENT], output_format="list")


def _artifact(key: str, state) -> str:
    """The artifact `key` that this flow run made (other tests' runs share the server)."""
    from prefect.client.orchestration import get_client
    from prefect.client.schemas.filters import ArtifactFilter, ArtifactFilterFlowRunId, ArtifactFilterKey

    query = ArtifactFilter(
        key=ArtifactFilterKey(any_=[key]),
        flow_run_id=ArtifactFilterFlowRunId(any_=[state.state_details.flow_run_id]),
    )
    with get_client(sync_client=True) as client:
        (found,) = client.read_artifacts(artifact_filter=query)
    return found.data


@pytest.mark.slow
def test_a_question_is_answered_checked_and_recorded(prefect_harness, local_tiny: str) -> None:
    import mlflow

    state = prompt_engineering_flow(PromptParams(question=QUESTION, max_tokens=24), return_state=True)
    assert state.is_completed(), state.message
    result = state.result()
    assert result.answer and result.model == local_tiny and result.provider == "local"
    assert result.prompt == "prompts:/ask_in_context/1" and result.context == "Pandas"

    (run,) = _runs()
    params, metrics = run.data.params, run.data.metrics
    assert params["prompt_uri"] == result.prompt and params["context"] == "Pandas"
    assert (params["model"], params["provider"], params["temperature"]) == (local_tiny, "local", "0.0")
    checks = result.checks
    assert metrics["sentences"] == checks.sentences and metrics["links"] == checks.links
    assert metrics["passed"] == float(checks.passed) and metrics["tokens_output_tokens"] <= 24
    answer_md = Path(mlflow.artifacts.download_artifacts(run_id=run.info.run_id, artifact_path="answer.md"))
    assert result.answer in answer_md.read_text()

    (trace,) = mlflow.search_traces(run_id=run.info.run_id, return_type="list", flush=True)
    spans = {span.name: span for span in trace.data.spans}
    # Ours on top; beneath, the chat call as MLflow's LangChain autologging records it.
    assert set(spans) == {"ask_in_context", "ChatOpenAI"}
    assert spans["ask_in_context"].outputs["answer"] == result.answer
    chat = spans["ChatOpenAI"]
    assert chat.parent_id == spans["ask_in_context"].span_id and chat.span_type == "CHAT_MODEL"
    assert chat.outputs["choices"][0]["message"]["content"] == result.answer
    assert chat.inputs["messages"][1]["role"] == "user" and chat.inputs["messages"][1]["content"] == QUESTION
    assert "expert in Pandas" in chat.inputs["messages"][0]["content"]
    assert chat.attributes["mlflow.chat.tokenUsage"]["output_tokens"] == metrics["tokens_output_tokens"]

    shown = _artifact("prompt-engineering-answer", state)
    assert QUESTION in shown and re.search(r"\| sentences +\|", shown) and result.prompt in shown


@pytest.mark.slow
def test_strict_fails_the_run_when_a_check_fails(prefect_harness, local_tiny: str) -> None:
    # A tiny random model cannot give two links: the checks fail, and strict turns that into a failure.
    params = PromptParams(question=QUESTION, strict=True, max_tokens=8)
    state = prompt_engineering_flow(params, return_state=True)
    assert state.is_failed() and "fails its checks (strict)" in state.message
    assert "links, wanted 2" in state.message


@pytest.mark.slow
def test_a_batch_is_answered_with_bounded_concurrency(
    prefect_harness, local_tiny: str, tmp_path: Path
) -> None:
    questions = tmp_path / "questions.jsonl"
    rows = [{"question": "What is a DataFrame?"}, {"question": "What is a join?", "context": "SQL"}]
    rows.append({"question": "How do I sort rows?"})
    questions.write_text("".join(json.dumps(row) + "\n" for row in rows))
    output = tmp_path / "answers.jsonl"
    params = BatchPromptParams(questions_file=questions, output=output, concurrency=2, max_tokens=8)
    state = prompt_engineering_batch_flow(params, return_state=True)
    assert state.is_completed(), state.message
    summary = state.result().summary
    lines = [json.loads(line) for line in output.read_text().splitlines()]
    assert [(r["question"], r["context"]) for r in lines] == [
        ("What is a DataFrame?", "Pandas"),
        ("What is a join?", "SQL"),
        ("How do I sort rows?", "Pandas"),
    ]
    assert all(r["answer"] is not None and r["checks"] is not None and r["error"] is None for r in lines)
    assert summary.questions == summary.answered == 3 and summary.errors == 0
    assert summary.passed == sum(r["checks"]["passed"] for r in lines)
    (run,) = _runs()
    assert run.data.params["concurrency"] == "2" and run.data.metrics["questions"] == 3
    # mlflow.genai.evaluate ran the checks as scorers over the run's traces, as the store keeps them.
    import mlflow

    assert run.data.metrics["passed/mean"] == pytest.approx(summary.passed / 3)
    traces = mlflow.search_traces(run_id=run.info.run_id, return_type="list", flush=True)
    assert len(traces) == 3
    for trace in traces:
        verdicts = {a.name: a.value for a in trace.info.assessments}
        assert set(verdicts) >= {"sentences_ok", "links_ok", "links_well_formed", "passed"}
        answer = trace.data.spans[0].outputs["answer"] if trace.data.spans else None
        assert verdicts["passed"] == next(r["checks"]["passed"] for r in lines if r["answer"] == answer)
    assert "What is a join?" in _artifact("prompt-engineering-batch", state)


@pytest.mark.slow
def test_a_bad_questions_file_fails_before_any_llm_call(prefect_harness, tmp_path: Path) -> None:
    questions = tmp_path / "questions.jsonl"
    questions.write_text('{"question": "ok"}\n{"question": ""}\n')
    state = prompt_engineering_batch_flow(BatchPromptParams(questions_file=questions), return_state=True)
    assert state.is_failed() and f"{questions} line 2: 'question' must be a non-empty string" in state.message
    assert not (get_settings().models_dir).exists()  # no provider was started: nothing was built
