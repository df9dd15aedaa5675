"""The review's decisions: what counts as an edit, a store that keeps them across runs and
writers, pairs asked about again only when their content changed, and what reaches training."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from mlstack.fine_tuning import review
from tests.mlstack.fine_tuning.conftest import pair


def test_a_changed_answer_is_an_edit_whatever_the_action() -> None:
    p = pair(1)
    assert review.decide(p, "approve", p.answer).decision == "approved"
    assert review.decide(p, "approve", p.answer + "  ").decision == "approved"  # whitespace is no edit
    edited = review.decide(p, "approve", "A better answer.", by="ana")
    assert (edited.decision, edited.answer, edited.by) == ("edited", "A better answer.", "ana")
    assert review.decide(p, "drop", "A better answer.").decision == "dropped"


def test_decided_pairs_are_not_asked_again_unless_they_changed(tmp_path: Path) -> None:
    store = review.Store(tmp_path / "reviews" / "acme.json")
    found = [pair(n) for n in range(5)]
    assert review.pending(found, store.load()) == found
    store.record([review.decide(found[0], "approve"), review.decide(found[1], "drop")])
    assert [p.key for p in review.pending(found, store.load())] == [p.key for p in found[2:]]
    changed = found[0].model_copy(update={"answer": "The maintainers changed their answer since."})
    assert review.pending([changed], review.Store(store.path).load()) == [changed]


def test_only_approved_and_edited_pairs_reach_training() -> None:
    found = [pair(n) for n in range(4)]
    decisions = {
        d.key: d
        for d in [
            review.decide(found[0], "approve"),
            review.decide(found[1], "edit", "Edited answer, kinder."),
            review.decide(found[2], "drop"),
        ]
    }
    kept, counts = review.apply(found, decisions)
    assert [(p.key, p.answer) for p in kept] == [
        (found[0].key, found[0].answer),
        (found[1].key, "Edited answer, kinder."),
    ]
    assert counts == {"approved": 1, "edited": 1, "dropped": 1, "undecided": 1}


def test_concurrent_reviews_lose_no_decision(tmp_path: Path) -> None:
    store = review.Store(tmp_path / "reviews.json")
    found = [pair(n) for n in range(40)]
    with ThreadPoolExecutor(8) as pool:
        list(pool.map(lambda p: review.Store(store.path).record([review.decide(p, "approve")]), found))
    assert sorted(store.load()) == sorted(p.key for p in found)
