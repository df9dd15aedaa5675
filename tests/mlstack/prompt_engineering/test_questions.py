"""Question files in: what is read, and a bad file named by line and rule."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlstack.prompt_engineering.questions import QuestionFileError, read_questions


def test_questions_files(tmp_path: Path) -> None:
    text = tmp_path / "questions.txt"
    text.write_text("# pandas basics\nHow do I read a CSV?\n\nHow do I drop duplicates?\n")
    assert read_questions(text, "Pandas") == [
        ("How do I read a CSV?", "Pandas"),
        ("How do I drop duplicates?", "Pandas"),
    ]
    jsonl = tmp_path / "questions.jsonl"
    jsonl.write_text('{"question": "What is a join?", "context": "SQL"}\n{"question": "What is a Series?"}\n')
    assert read_questions(jsonl, "Pandas") == [
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
    with pytest.raises(QuestionFileError, match=message) as caught:
        read_questions(path, "Pandas")
    assert str(path) in str(caught.value)
