"""The labeling step: people approve, edit or drop pairs, and their decisions are kept.

Decisions are stored by pair key with the hash of the content that was judged, so an approved
pair is never asked about again, while a pair whose question or answer changed since is. The
store is one JSON file, rewritten whole under the review folder's lock: two reviews at once
lose nothing. With review on, only approved and edited pairs reach training; a pair nobody has
decided yet (a form that timed out) waits for the next review.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, Field

from mlstack.fine_tuning.pairs import Pair
from mlstack.io import write_json
from mlstack.locks import file_lock

Action = Literal["approve", "edit", "drop"]


class Decision(BaseModel):
    key: str
    hash: str = Field(description="Of the question and answer as they were judged.")
    decision: Literal["approved", "edited", "dropped"]
    answer: str | None = Field(default=None, description="The reviewer's answer, when edited.")
    by: str | None = None
    at: datetime = Field(default_factory=lambda: datetime.now(UTC))


def decide(pair: Pair, action: Action, answer: str | None = None, by: str | None = None) -> Decision:
    """A form's values as a decision: a changed answer is an edit whatever the action said."""
    edited = answer is not None and answer.strip() and answer.strip() != pair.answer.strip()
    if action == "drop":
        return Decision(key=pair.key, hash=pair.hash, decision="dropped", by=by)
    if action == "edit" or edited:
        return Decision(
            key=pair.key, hash=pair.hash, decision="edited", answer=(answer or pair.answer).strip(), by=by
        )
    return Decision(key=pair.key, hash=pair.hash, decision="approved", by=by)


class Store:
    def __init__(self, path: Path) -> None:
        self.path = path

    def load(self) -> dict[str, Decision]:
        if not self.path.is_file():
            return {}
        data = json.loads(self.path.read_text(encoding="utf-8"))
        return {key: Decision.model_validate(value) for key, value in data.items()}

    def record(self, decisions: Iterable[Decision]) -> dict[str, Decision]:
        with file_lock(self.path.parent):
            stored = self.load()
            stored.update({d.key: d for d in decisions})
            write_json({k: v.model_dump(mode="json") for k, v in sorted(stored.items())}, self.path)
        return stored


def pending(pairs: Iterable[Pair], decisions: dict[str, Decision]) -> list[Pair]:
    """Pairs nobody has judged in their current form."""
    return [p for p in pairs if (d := decisions.get(p.key)) is None or d.hash != p.hash]


def pages(pairs: list[Pair], size: int) -> Iterator[list[Pair]]:
    for start in range(0, len(pairs), size):
        yield pairs[start : start + size]


def apply(pairs: Iterable[Pair], decisions: dict[str, Decision]) -> tuple[list[Pair], Counter[str]]:
    """The pairs that reach training, with edits applied, and how many of each decision."""
    kept: list[Pair] = []
    counts: Counter[str] = Counter()
    for pair in pairs:
        decision = decisions.get(pair.key)
        if decision is None or decision.hash != pair.hash:
            counts["undecided"] += 1
            continue
        counts[decision.decision] += 1
        if decision.decision == "approved":
            kept.append(pair)
        elif decision.decision == "edited":
            kept.append(pair.model_copy(update={"answer": decision.answer or pair.answer}))
    return kept, counts
