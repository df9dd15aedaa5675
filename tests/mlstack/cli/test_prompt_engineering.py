"""`mlstack ask`: its arguments, and both results rendered."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from flows.prompt_engineering import BatchPromptResult, BatchSummary
from mlstack.cli import app
from mlstack.cli.prompt_engineering import render_answer, render_batch
from mlstack.prompt_engineering.ask import AskOptions
from mlstack.prompt_engineering.checks import check_answer
from tests.conftest import option_defaults, rendered

runner = CliRunner()


def test_ask_needs_a_question_or_a_file(tmp_path: Path) -> None:
    for args in ([], ["Why?", "--file", str(tmp_path / "q.txt")]):
        result = runner.invoke(app, ["ask", *args], terminal_width=200)
        assert result.exit_code == 1 and "give either a QUESTION or --file" in result.output


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (
            ["Why?", "--temperature", "5", "--model", "m"],
            "error: --temperature: Input should be less than or equal to 2",
        ),
        (
            ["--file", "q.txt", "--concurrency", "99"],
            "error: --concurrency: Input should be less than or equal to 32",
        ),
    ],
)
def test_a_refused_value_is_one_line_before_any_model_is_asked(args: list[str], message: str) -> None:
    result = runner.invoke(app, ["ask", *args], terminal_width=200)
    assert result.exit_code == 2, result.output
    assert result.output.strip() == message


def test_options_default_to_the_flows_parameters() -> None:
    options = option_defaults(app, "ask")
    for name, field in AskOptions.model_fields.items():
        assert options[name] == (field.default, field.description), name
    shown = " ".join(runner.invoke(app, ["ask", "--help"]).output.replace("│", " ").split())
    assert "Longest answer, in tokens. [default: 256]" in shown


def test_an_answer_renders(answer) -> None:
    text = rendered(render_answer(answer))
    assert text.startswith("Pandas: How do I drop duplicate rows from a DataFrame? tok tok. tok. [tok] tok.")
    assert text.endswith(
        "checks failed (3 sentences, 0 links, well-formed false); prompt prompts:/ask_in_context/1,"
        " untrained-lm via local"
    )


def test_a_batch_renders() -> None:
    summary = BatchSummary(
        questions=3,
        answered=2,
        errors=1,
        passed=1,
        failed_sentences=1,
        failed_links=1,
        failed_links_well_formed=0,
        mean_latency_s=0.5,
    )
    result = BatchPromptResult(output=Path("/r/q.jsonl"), summary=summary, meaningful=True)
    text = rendered(render_batch(result))
    assert "q.jsonl: answers in /r/q.jsonl" in text
    assert "questions 3" in text and "errors 1" in text and "mean_latency_s 0.5" in text


@pytest.mark.slow
def test_ask_runs_the_flow_and_prints_its_result(
    prefect_harness, tiny_server: tuple[str, str], tiny_lm: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("MLSTACK_LLM_PROVIDER", "local")
    monkeypatch.setenv("MLSTACK_LLM_LOCAL_MODEL", str(tiny_lm))
    result = runner.invoke(
        app, ["ask", "How do I sort rows?", "--context", "SQL", "--max-tokens", "6", "--json"]
    )
    assert result.exit_code == 0, result.output
    printed = json.loads(result.stdout.strip().splitlines()[-1])
    assert (printed["question"], printed["context"], printed["model"]) == (
        "How do I sort rows?",
        "SQL",
        "tiny-lm",
    )
    assert printed["prompt"].startswith("prompts:/ask_in_context/")
    # The printed verdicts are the checks of the printed answer, whatever the random model said.
    assert printed["checks"] == check_answer(printed["answer"]).as_dict()
