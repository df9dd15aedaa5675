"""Q&A pairs from issues: who counts as a maintainer, which answer wins, what is dropped and why,
and month partitions that a rerun leaves byte-identical."""

from __future__ import annotations

from pathlib import Path

from mlstack.fine_tuning import SAMPLE_DUMP, pairs
from mlstack.sources import github
from tests.mlstack.fine_tuning.conftest import comment, issue, pair

LONG = "Set MLSTACK_PG_DSN to your server; the embedded one starts only when it is unset."


def test_the_best_maintainer_answer_is_kept_and_the_rest_dropped_by_reason() -> None:
    threads = [
        (issue(1), [comment(LONG, "NONE"), comment(LONG + " (maintainer)", "OWNER")]),
        (issue(2), [comment("A user's long reply that is not a maintainer's answer at all.", "CONTRIBUTOR")]),
        (issue(3, pr=True), [comment(LONG)]),
        (issue(4), [comment("Fixed, thanks!", "COLLABORATOR")]),
        (issue(5), []),
    ]
    extracted = pairs.extract(threads, min_answer_chars=40)
    assert [(p.key, p.answer) for p in extracted.pairs] == [("acme/app#1", LONG + " (maintainer)")]
    assert extracted.dropped == {
        "no maintainer answer": 2,
        "pull request": 1,
        "answer under 40 characters": 1,
    }
    assert extracted.pairs[0].question == "Question 1\n\nHow do I do thing 1?"


def test_an_accepted_answer_wins_then_the_most_thumbs_up() -> None:
    accepted = comment(
        "The accepted answer, from a contributor the asker chose.", "CONTRIBUTOR", is_answer=True
    )
    liked = comment("The maintainer answer most people found useful here.", "MEMBER", plus=5)
    longer = comment("A longer maintainer answer that fewer people found useful, with more words.", "OWNER")
    assert pairs.best_answer([liked, accepted, longer]) is accepted
    assert pairs.best_answer([longer, liked]) is liked
    assert pairs.best_answer([comment("x" * 10, "MEMBER"), longer]) is longer  # a tie on +1: the longest


def test_partitions_are_by_month_and_a_rerun_rewrites_nothing(tmp_path: Path) -> None:
    found = [pair(3, "2026-08"), pair(1, "2026-07"), pair(2, "2026-07")]
    months = pairs.by_month(found)
    assert {m: [p.key for p in ps] for m, ps in months.items()} == {
        "2026-07": ["acme/app#1", "acme/app#2"],
        "2026-08": ["acme/app#3"],
    }
    assert [pairs.write_partition(ps, tmp_path / f"{m}.jsonl") for m, ps in months.items()] == [True, True]
    before = {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in tmp_path.iterdir()}
    # The same pairs in another order: the same bytes, and no write at all.
    again = pairs.by_month(reversed(found))
    assert [pairs.write_partition(ps, tmp_path / f"{m}.jsonl") for m, ps in again.items()] == [False, False]
    assert {p.name: (p.read_bytes(), p.stat().st_mtime_ns) for p in tmp_path.iterdir()} == before
    # A new issue in July rewrites July only.
    months["2026-07"].append(pair(4, "2026-07"))
    assert pairs.write_partition(months["2026-07"], tmp_path / "2026-07.jsonl") is True
    assert [p.key for p in pairs.read_partition(tmp_path / "2026-07.jsonl")] == [
        f"acme/app#{n}" for n in (1, 2, 4)
    ]


def test_the_shipped_sample_gives_pairs_in_four_months() -> None:
    read = github.dump_threads(SAMPLE_DUMP)
    extracted = pairs.extract(read.threads, 40)
    months = pairs.by_month(extracted.pairs)
    assert sorted(months) == ["2026-07", "2026-08", "2026-09", "2026-10"]
    assert len(extracted.pairs) >= 25 and extracted.dropped["pull request"] >= 1
    assert all(p.answered_by in {"ana", "kofi", "lena"} for p in extracted.pairs)
