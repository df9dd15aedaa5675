"""`mlstack finetune`: validate names each bad line and its rule and exits 1, prints tokens and a
cost, answers in JSON for machines; a run's result reads from partitions to the gate."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from mlstack.cli import app
from mlstack.cli.fine_tuning import render_run
from tests.conftest import rendered

runner = CliRunner()
GOOD = {
    "messages": [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "How do I run the demo?"},
        {"role": "assistant", "content": "Run `make demo`."},
    ]
}


def jsonl(tmp_path: Path, lines: list[object]) -> Path:
    path = tmp_path / "data.jsonl"
    path.write_text("".join((x if isinstance(x, str) else json.dumps(x)) + "\n" for x in lines))
    return path


def test_validate_names_each_bad_line_and_exits_1(tmp_path: Path) -> None:
    bad = {"messages": [{"role": "human", "content": "q"}, {"role": "assistant", "content": ""}]}
    path = jsonl(tmp_path, [GOOD, bad, "{oops"])
    result = runner.invoke(
        app, ["finetune", "validate", str(path), "--min-examples", "1"], terminal_width=300
    )
    text = " ".join(result.output.split())
    assert result.exit_code == 1
    assert (
        f"{path}:2: [role] role 'human'" in text
        and f"{path}:2: [content] assistant message's content is empty" in text
    )
    assert f"{path}:3: [json] not JSON" in text and "3 problem(s)" in text


def test_validate_prints_tokens_and_cost_and_json(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setenv("MLSTACK_FINETUNE_PRICE_PER_MILLION_TOKENS", "1000000")  # a dollar a token
    path = jsonl(tmp_path, [GOOD] * 10)
    text = " ".join(
        runner.invoke(
            app, ["finetune", "validate", str(path), "--backend", "openai"], terminal_width=300
        ).output.split()
    )
    assert "10 examples" in text and "billed over 3 epochs" in text and "about $" in text
    result = runner.invoke(app, ["finetune", "validate", str(path), "--backend", "openai", "--json"])
    data = json.loads(result.output)
    assert result.exit_code == 0 and data["ok"] and data["findings"] == []
    assert data["examples"] == 10 and data["billed_tokens"] == 3 * data["tokens"]
    assert data["estimated_cost_usd"] == data["billed_tokens"]  # at a dollar a token
    few = runner.invoke(app, ["finetune", "validate", str(jsonl(tmp_path, [GOOD])), "--json"])
    assert few.exit_code == 1 and json.loads(few.output)["findings"][0]["rule"] == "min_examples"


def test_every_step_is_a_command_and_bad_combinations_are_refused(tmp_path: Path) -> None:
    text = " ".join(runner.invoke(app, ["finetune", "--help"], terminal_width=200).output.split())
    for command in ("validate", "ingest", "dataset", "run"):
        assert command in text
    run = " ".join(runner.invoke(app, ["finetune", "run", "--help"], terminal_width=200).output.split())
    assert "--review" in run and "--backend" in run and "--merge" in run
    refused = runner.invoke(app, ["finetune", "run", "--backend", "openai", "--base", str(tmp_path)])
    assert refused.exit_code == 1 and "--base is for the local backend" in " ".join(refused.output.split())


def test_a_run_reads_from_partitions_to_the_gate(finetune_result) -> None:
    text = rendered(render_run(finetune_result), width=300)
    assert "2026-08 (rewritten)" in text and "31 pairs; dropped: 3 pull request" in text
    assert "review: {'approved': 30, 'dropped': 1} (the form timed out" in text
    assert "4,663 training tokens (code_lm tokenizer), 13,989 billed" in text
    assert (
        "fine-tuned 0.310 2.500" in " ".join(text.split()) and "support_lm v3: champion (beats base)" in text
    )
