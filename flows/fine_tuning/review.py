"""A person's review of the pairs: the run pauses with a form in the Prefect UI, a page of pairs
at a time, and stores each decision so that no pair is asked about twice."""

from __future__ import annotations

import threading
from typing import Any, Literal

from prefect import get_run_logger
from prefect.artifacts import create_table_artifact
from pydantic import Field

from mlstack.fine_tuning import Layout, pairs, review
from mlstack.settings import Settings

REVIEW_POLL_S = 2  # how often a paused run asks the API whether its form was submitted


def review_form(page: list[pairs.Pair], number: int, total: int) -> type:
    """A Prefect run input form for one page: per pair, approve / edit / drop and its answer."""
    import pydantic
    from prefect.input import RunInput

    fields: dict[str, Any] = {
        "reviewer": (str, Field(default="", title="Your name (kept with the decisions)")),
    }
    lines = [
        f"### Review page {number} of {total}",
        "",
        "Approve, edit (change the answer) or drop each pair.",
    ]
    for i, pair in enumerate(page, start=1):
        title = pair.question.splitlines()[0][:80]
        fields[f"pair_{i}"] = (
            Literal["approve", "edit", "drop"],
            Field(default="approve", title=f"{i}. {title}", description=pair.url),
        )
        fields[f"answer_{i}"] = (str, Field(default=pair.answer, title=f"{i}. answer"))
        lines += ["", f"**{i}. [{title}]({pair.url})**", "", f"> {pair.question[:600]}", "", pair.answer]
    form = pydantic.create_model(f"ReviewPage{number}", __base__=RunInput, **fields)
    # The text above the form in the UI; the fields keep their titles and defaults.
    return form.with_initial_data(description="\n".join(lines))


def ask(form: type, timeout_s: int, key: str) -> Any | None:
    """Pause for the form; None when nobody answered within timeout_s. The run resumes itself
    then: Prefect's own pause timeout would fail the run instead of going on."""
    from prefect.context import get_run_context
    from prefect.flow_runs import pause_flow_run, resume_flow_run

    run_id = get_run_context().flow_run.id  # type: ignore[union-attr]
    expired = threading.Event()

    def expire() -> None:
        expired.set()
        try:
            resume_flow_run(run_id, run_input={})
        except Exception:  # a person answered first: theirs counts
            expired.clear()

    timer = threading.Timer(timeout_s, expire)
    timer.daemon = True
    timer.start()
    try:
        values = pause_flow_run(
            wait_for_input=form, timeout=timeout_s + 300, poll_interval=REVIEW_POLL_S, key=key
        )
    finally:
        timer.cancel()
    return None if expired.is_set() else values


def review_pairs(
    found: list[pairs.Pair], layout: Layout, settings: Settings
) -> tuple[list[pairs.Pair], dict, bool]:
    logger = get_run_logger()
    store = review.Store(layout.reviews)
    todo = review.pending(found, store.load())
    pages = list(review.pages(todo, settings.finetune.review_page_size))
    timed_out = False
    logger.info(
        "review: %d pairs to decide in %d page(s); %d decided before",
        len(todo),
        len(pages),
        len(found) - len(todo),
    )
    for number, page in enumerate(pages, start=1):
        values = ask(
            review_form(page, number, len(pages)), settings.finetune.review_timeout_s, f"review-{number}"
        )
        if values is None:
            timed_out = True
            logger.warning(
                "review: nobody answered page %d within %d s; going on with the pairs approved so far"
                " (the rest wait for the next review)",
                number,
                settings.finetune.review_timeout_s,
            )
            break
        by = getattr(values, "reviewer", "") or None
        store.record(
            review.decide(pair, getattr(values, f"pair_{i}"), getattr(values, f"answer_{i}"), by)
            for i, pair in enumerate(page, start=1)
        )
    kept, counts = review.apply(found, store.load())
    table = [{"decision": k, "pairs": v} for k, v in sorted(counts.items())]
    create_table_artifact(table, key="finetune-review", description="Review decisions on this run's pairs")
    return kept, dict(counts), timed_out
