"""Evaluation: the question file's rules, the metrics' arithmetic, and the numbers on the shipped
samples through the real store."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlstack.errors import InputError
from mlstack.rag import evaluate
from mlstack.rag.retrieve import Hit


def hit(doc: str, url: str | None = None, path: str | None = None) -> Hit:
    return Hit(doc, "docs", doc, url, path, 0.0, 0.0, "c", "", "", None)


def test_bad_lines_are_refused_with_file_line_and_rule(tmp_path: Path) -> None:
    path = tmp_path / "q.jsonl"
    path.write_text('{"question": "ok?", "expected": ["a"]}\n{"question": "no expected"}\n')
    with pytest.raises(InputError, match=r'q.jsonl line 2: column "expected" must be a non-empty list'):
        evaluate.read_questions(path)
    path.write_text("not json\n")
    with pytest.raises(InputError, match="line 1: not JSON"):
        evaluate.read_questions(path)


def test_hits_match_by_id_path_or_url_and_the_metrics_add_up() -> None:
    questions = [
        evaluate.Question("q1", ("a",), 1),
        evaluate.Question("q2", ("https://x/b",), 2),
        evaluate.Question("q3", ("c.md",), 3),
        evaluate.Question("q4", ("zzz",), 4),
    ]
    ranked = [
        [hit("a")],  # rank 1
        [hit("x"), hit("y"), hit("b", url="https://x/b")],  # rank 3
        [hit(f"n{i}") for i in range(6)] + [hit("c", path="c.md")],  # rank 7
        [hit("a")],  # never
    ]
    assert evaluate.scores(ranked, questions) == {
        "hit_at_1": 0.25,
        "hit_at_5": 0.5,
        "mrr_at_10": round((1 + 1 / 3 + 1 / 7) / 4, 4),
    }
