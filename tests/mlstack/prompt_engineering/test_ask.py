"""Many questions at once: order kept, concurrency bounded, failures recorded."""

from __future__ import annotations

from mlstack.llm import LLMError
from mlstack.prompt_engineering.ask import Answer, ask_many
from mlstack.prompt_engineering.checks import check_answer
from mlstack.prompt_engineering.questions import summarise


def test_a_batch_keeps_order_bounds_concurrency_and_records_failures() -> None:
    import threading

    # The first three questions wait here until all three are in flight at once: with fewer
    # than three running together the barrier times out and breaks, however slow the machine.
    together = threading.Barrier(3, timeout=30)
    in_flight, peak, lock, workers = 0, 0, threading.Lock(), set()

    def ask_one(question: str, context: str) -> Answer:
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
        return Answer(question, context, text, check_answer(text), "p", "local", "m", 0.02)

    done: list[str] = []
    items = [(f"q{i}", "Pandas") for i in range(8)]
    answers = ask_many(ask_one, items, concurrency=3, on_done=lambda a: done.append(a.question))
    assert [a.question for a in answers] == [q for q, _ in items] and sorted(done) == sorted(
        q for q, _ in items
    )
    assert peak == 3 and not together.broken
    assert len(workers) == 3  # never more than three threads, so never more than three in flight
    assert answers[3].error.endswith("HTTP 500 after 3 retries") and answers[3].checks is None
    summary = summarise(answers)
    assert (summary["questions"], summary["answered"], summary["errors"]) == (8, 7, 1)
    assert summary["failed_links"] == 7 and summary["passed"] == 0
