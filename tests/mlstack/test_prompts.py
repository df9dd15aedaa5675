"""The prompt's output checks, the questions file, and the prompt in MLflow's registry."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlstack import prompts, tracking
from mlstack.llm import LLMError
from mlstack.settings import Settings

GOOD = (
    "Use DataFrame.drop_duplicates() to remove repeated rows, e.g. df.drop_duplicates(subset=['id']).\n\n"
    "Further reading:\n"
    "- https://pandas.pydata.org/docs/reference/api/pandas.DataFrame.drop_duplicates.html\n"
    "- [Duplicate labels](https://pandas.pydata.org/docs/user_guide/duplicates.html)"
)


def test_an_answer_that_follows_the_rules_passes() -> None:
    checks = prompts.check_answer(GOOD)
    assert checks.sentences == 1 and checks.passed, checks.failures()
    assert checks.links == [
        "https://pandas.pydata.org/docs/reference/api/pandas.DataFrame.drop_duplicates.html",
        "https://pandas.pydata.org/docs/user_guide/duplicates.html",
    ]
    inline = "See [the guide](https://pandas.pydata.org/docs/) and https://numpy.org/doc/. That is all."
    assert prompts.check_answer(inline).sentences == 2 and prompts.check_answer(inline).links_ok


@pytest.mark.parametrize(
    ("answer", "sentences", "links", "well_formed", "failure"),
    [
        ("One. Two. Three. https://a.org https://b.org", 3, 2, True, "3 sentences, wanted 1 to 2"),
        ("Use drop_duplicates. See https://pandas.pydata.org.", 2, 1, True, "1 links, wanted 2"),
        ("Use it. https://pandas.pydata.org https://a.org https://b.org", 1, 3, True, "3 links"),
        ("Use it! htp://pandas.pydata.org https://ok.org", 1, 2, False, "not well-formed: htp://"),
        ("Use it? https://no_tld https://ok.org", 1, 2, False, "not well-formed: https://no_tld"),
        ("Use it. www.pandas.pydata.org https://ok.org", 1, 2, False, "www.pandas.pydata.org"),
        ("Just words without any links", 1, 0, False, "no links at all"),
        ("https://a.org https://b.org", 0, 2, True, "0 sentences"),
    ],
)
def test_each_rule_is_checked(
    answer: str, sentences: int, links: int, well_formed: bool, failure: str
) -> None:
    checks = prompts.check_answer(answer)
    assert (checks.sentences, len(checks.links), checks.links_well_formed) == (sentences, links, well_formed)
    assert not checks.passed and any(failure in f for f in checks.failures()), checks.failures()


def test_questions_files(tmp_path: Path) -> None:
    text = tmp_path / "questions.txt"
    text.write_text("# pandas basics\nHow do I read a CSV?\n\nHow do I drop duplicates?\n")
    assert prompts.read_questions(text, "Pandas") == [
        ("How do I read a CSV?", "Pandas"),
        ("How do I drop duplicates?", "Pandas"),
    ]
    jsonl = tmp_path / "questions.jsonl"
    jsonl.write_text('{"question": "What is a join?", "context": "SQL"}\n{"question": "What is a Series?"}\n')
    assert prompts.read_questions(jsonl, "Pandas") == [
        ("What is a join?", "SQL"),
        ("What is a Series?", "Pandas"),
    ]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"question": "ok"}\n{"question": \n', "line 2: not valid JSON"),
        ('{"question": "ok"}\n\n{"context": "SQL"}\n', "line 3: 'question' must be a non-empty string"),
        ('{"question": "ok", "context": 3}\n', "line 1: 'context', when given, must be a non-empty string"),
        ("\n\n", "no questions"),
    ],
)
def test_a_bad_questions_file_names_the_line_and_rule(tmp_path: Path, content: str, message: str) -> None:
    path = tmp_path / "questions.jsonl"
    path.write_text(content)
    with pytest.raises(prompts.QuestionFileError, match=message) as caught:
        prompts.read_questions(path, "Pandas")
    assert str(path) in str(caught.value)


def test_the_prompt_is_versioned_only_when_it_changes(monkeypatch: pytest.MonkeyPatch) -> None:
    tracking.setup(Settings(), prompts.EXPERIMENT)
    first = prompts.register_prompt()
    assert first.version == 1 and first.variables == {"context", "question"}
    assert prompts.register_prompt().version == 1  # same template: same version
    changed = [{**prompts.TEMPLATE[0], "content": prompts.SYSTEM_RULES + " Be kind."}, prompts.TEMPLATE[1]]
    monkeypatch.setattr(prompts, "TEMPLATE", changed)
    assert prompts.register_prompt().version == 2
    assert prompts.load_prompt("1").template != changed
    messages = prompts.chat_template(prompts.load_prompt("2")).format_messages(
        context="SQL", question="A join?"
    )
    assert [m.type for m in messages] == ["system", "human"]
    assert "expert in SQL" in messages[0].content and messages[0].content.endswith("Be kind.")
    with pytest.raises(LLMError, match="no prompt prompts:/ask_in_context/9"):
        prompts.load_prompt("9")


def test_a_batch_keeps_order_bounds_concurrency_and_records_failures() -> None:
    import threading

    # The first three questions wait here until all three are in flight at once: with fewer
    # than three running together the barrier times out and breaks, however slow the machine.
    together = threading.Barrier(3, timeout=30)
    in_flight, peak, lock, workers = 0, 0, threading.Lock(), set()

    def ask_one(question: str, context: str) -> prompts.Answer:
        nonlocal in_flight, peak
        with lock:
            in_flight += 1
            peak = max(peak, in_flight)
            workers.add(threading.get_ident())
        if question in ("q0", "q1", "q2"):
            together.wait()
        with lock:
            in_flight -= 1
        if question == "q3":
            raise LLMError("POST http://x/v1/chat/completions answered HTTP 500 after 3 retries")
        text = f"{question} in {context}."
        return prompts.Answer(question, context, text, prompts.check_answer(text), "p", "local", "m", 0.02)

    done: list[str] = []
    items = [(f"q{i}", "Pandas") for i in range(8)]
    answers = prompts.ask_many(ask_one, items, concurrency=3, on_done=lambda a: done.append(a.question))
    assert [a.question for a in answers] == [q for q, _ in items] and sorted(done) == sorted(
        q for q, _ in items
    )
    assert peak == 3 and not together.broken
    assert len(workers) == 3  # never more than three threads, so never more than three in flight
    assert answers[3].error.endswith("HTTP 500 after 3 retries") and answers[3].checks is None
    summary = prompts.summarise(answers)
    assert (summary["questions"], summary["answered"], summary["errors"]) == (8, 7, 1)
    assert summary["failed_links"] == 7 and summary["passed"] == 0
