"""`mlstack rag`: help that explains, one-line refusals, machine-readable output, and each
result rendered."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from mlstack.cli import app
from mlstack.cli.rag import render_answer, render_eval, render_hits, render_refresh
from mlstack.rag.retrieve import Hit
from mlstack.settings import Settings
from tests.conftest import rendered

runner = CliRunner()


def test_help_explains_each_command() -> None:
    text = " ".join(runner.invoke(app, ["rag", "--help"], terminal_width=200).output.split())
    for command in ("refresh", "search", "ask", "eval", "drop"):
        assert command in text
    refresh = " ".join(runner.invoke(app, ["rag", "refresh", "--help"], terminal_width=200).output.split())
    assert "github:OWNER/REPO" in refresh and "MLSTACK_SOURCES_GITHUB_TOKEN" in refresh


@pytest.mark.slow
def test_a_bad_source_is_refused_in_one_line_before_any_work(prefect_harness) -> None:
    result = runner.invoke(
        app, ["rag", "refresh", "--source", "wiki:/x", "--no-evaluate"], terminal_width=200
    )
    assert result.exit_code == 1
    assert "expected KIND:LOCATION with KIND one of docs, slack, github" in " ".join(result.output.split())


@pytest.mark.parametrize("question", ["", "   "])
def test_an_empty_question_is_refused_in_one_line(question: str) -> None:
    """No words, no search: it returned five arbitrary documents. Refused before Postgres."""
    searched = runner.invoke(app, ["rag", "search", question], terminal_width=200)
    assert searched.exit_code == 1 and "error: the question is empty" in searched.output
    asked = runner.invoke(app, ["rag", "ask", question], terminal_width=200)
    assert asked.exit_code == 2 and "question" in asked.output


def test_a_bad_collection_name_exits_2() -> None:
    result = runner.invoke(app, ["rag", "ask", "why?", "--collection", "Bad Name"], terminal_width=200)
    assert result.exit_code == 2 and "--collection" in result.output


@pytest.mark.slow
def test_search_ask_and_eval_speak_json(
    prefect_harness, rag_settings: Settings, collection: str, tmp_path: Path
) -> None:
    from tests.mlstack.rag.conftest import refresh_docs, write_docs

    folder = write_docs(
        tmp_path / "d", {"retry.md": "# Retries\n\nFailed tasks retry three times with backoff."}
    )
    refresh_docs(rag_settings, collection, folder)
    found = runner.invoke(app, ["rag", "search", "how often are tasks retried", "-c", collection, "--json"])
    assert found.exit_code == 0, found.output
    hit = json.loads(found.output)["hits"][0]
    document_id = f"docs:{folder.resolve()}/retry.md"
    assert (hit["document_id"], hit["kind"], hit["path"], hit["title"]) == (
        document_id,
        "docs",
        "retry.md",
        "Retries",
    )
    assert "three times" in hit["text"] and isinstance(hit["score"], float)

    asked = runner.invoke(app, ["rag", "ask", "how often are tasks retried", "-c", collection, "--json"])
    assert asked.exit_code == 0, asked.output
    body = json.loads(asked.output.strip().splitlines()[-1])
    assert "[1]" in body["answer"]
    assert body["citations"] == [
        {"n": 1, "document_id": document_id, "title": "Retries", "url": None, "path": "retry.md"}
    ]

    questions = tmp_path / "q.jsonl"
    questions.write_text(
        json.dumps({"question": "backoff for failed tasks", "expected": ["retry.md"]}) + "\n"
    )
    scored = runner.invoke(app, ["rag", "eval", "--questions", str(questions), "-c", collection])
    assert scored.exit_code == 0, scored.output
    last = json.loads(scored.output.strip().splitlines()[-1])
    assert last["metrics"]["hybrid"] == {"hit_at_1": 1.0, "hit_at_5": 1.0, "mrr_at_10": 1.0}
    assert last["answers"]["cites_expected_source/mean"] == 1.0  # the answer cites retry.md


@pytest.mark.slow
@pytest.mark.parametrize("content", ['{"question": "q"}', "nonsense"])
def test_a_bad_questions_file_names_the_line(prefect_harness, tmp_path: Path, content: str) -> None:
    questions = tmp_path / "q.jsonl"
    questions.write_text(content + "\n")
    result = runner.invoke(app, ["rag", "eval", "--questions", str(questions)], terminal_width=300)
    assert result.exit_code == 1 and f"{questions} line 1" in " ".join(result.output.split())


def test_results_render_for_people(rag_refresh_result, rag_answer_result) -> None:
    text = rendered(render_refresh(rag_refresh_result), width=300)
    assert "slack:/x/slack 6 0 0 0 0 6" in text and "docs:/x/docs 0 1 2 1 1 3" in text
    assert "skipped /x/docs/bad.md: not UTF-8 text (byte 3)" in text
    assert "9 documents, 40 chunks" in text and "regression: hybrid hit@5 fell from 0.90 to 0.80" in text
    assert "hybrid 0.50 0.80 0.64" in rendered(render_eval(rag_refresh_result.evaluation))
    spans = {"hybrid": {"hit_at_1": (0.3, 0.7), "hit_at_5": (0.6, 1.0), "mrr_at_10": (0.5, 0.8)}}
    refusals = {"unknown_rate_unanswerable": 0.8, "false_refusal_rate": 0.1}
    bounded = rag_refresh_result.evaluation.model_copy(update={"intervals": spans, "refusals": refusals})
    shown = rendered(render_eval(bounded), width=300)
    assert "hybrid 0.50 (0.30-0.70) 0.80 (0.60-1.00) 0.64 (0.50-0.80)" in shown
    assert '"I don\'t know" on unanswerable ones 80%, answerable ones 10%' in shown
    scored = rag_refresh_result.evaluation.model_copy(update={"answers": {"cites_sources/mean": 0.9}})
    assert "answers (mlflow.genai.evaluate, run r9): cites_sources 90%" in rendered(
        render_eval(scored), width=300
    )
    answer = rendered(render_answer(rag_answer_result))
    assert "[1] #ml-platform: Why? - https://slack.com/archives/C1/p10" in answer
    hit = Hit("docs:a.md", "docs", "A", None, "a.md", 0.5, 0.4, "c", "", "some text", None)
    shown = rendered(render_hits([hit]))
    assert "1 0.500 A a.md some text" in shown and "docs:a.md (docs)" in shown
    assert rendered(render_hits([])) == "no document matches"


@pytest.mark.slow
def test_a_refresh_of_hostile_sources_lands_every_good_document_and_names_every_bad_one(
    prefect_harness, rag_settings: Settings, collection: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """One malformed record stopped every source of the run, after two retries and with no name."""
    from prefect import get_client

    from mlstack.rag import store
    from tests.mlstack.rag.conftest import hostile_sources

    specs, good, named = hostile_sources(tmp_path)
    monkeypatch.setenv("MLSTACK_RAG_MAX_DOCUMENT_BYTES", "20000")
    argv = ["rag", "refresh", "-c", collection, "--no-evaluate", "--json"]
    result = runner.invoke(app, [*argv, *(a for spec in specs for a in ("--source", spec))])
    assert result.exit_code == 0, result.output
    body = json.loads(result.output.strip().splitlines()[-1])
    assert body["documents"] == good and sum(s["added"] for s in body["sources"]) == good
    skipped = [record for s in body["sources"] for record in s["skipped_records"]]
    assert sum(s["skipped"] for s in body["sources"]) == len(skipped) == len(named)
    for end in named:  # each bad record named once, with its file and record
        assert sum(record.split(": ", 1)[0].endswith(end) for record in skipped) == 1, (end, skipped)
    with store.connect(rag_settings) as conn:
        readmes = conn.execute(
            "SELECT count(*) FROM rag_documents WHERE collection = %s AND path = 'README.md'", (collection,)
        ).fetchone()
    assert readmes == (2,)  # the two folders' README.md files, neither overwritten

    async def artifact() -> list[dict]:
        async with get_client() as client:
            found = await client.read_latest_artifacts()
            return [a for a in found if a.key == f"rag-refresh-{collection}-skipped"]

    import asyncio

    [table] = asyncio.run(artifact())
    rows = json.loads(table.data) if isinstance(table.data, str) else table.data
    assert len(rows) == len(named) and all(row["skipped"] in skipped for row in rows)


@pytest.mark.slow
def test_drop_source_deletes_one_sources_documents_named_as_the_refresh_named_it(
    rag_settings: Settings, collection: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from mlstack.rag import store
    from tests.mlstack.rag.conftest import refresh_docs, write_docs

    old = write_docs(tmp_path / "old", {"a.md": "# A\n\nalpha"})
    new = write_docs(tmp_path / "new", {"a.md": "# A\n\nalpha"})
    refresh_docs(rag_settings, collection, old)
    refresh_docs(rag_settings, collection, new)
    old.rename(tmp_path / "elsewhere")  # gone from where the refresh read it
    monkeypatch.chdir(tmp_path)
    dropped = runner.invoke(app, ["rag", "drop", collection, "--source", "docs:./old", "--yes"])
    said = "".join(dropped.output.split())  # the console folds a long path, at a space or inside it
    assert dropped.exit_code == 0 and f"dropped1documentsofdocs:{tmp_path.resolve()}/old" in said, said
    with store.connect(rag_settings) as conn:
        assert store.sources(conn, collection) == {f"docs:{new.resolve()}": 1}
