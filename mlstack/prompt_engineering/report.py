"""What a person reads in the Prefect UI: one answer, or a batch's summary and table."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mlstack.prompt_engineering.ask import Answer


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
