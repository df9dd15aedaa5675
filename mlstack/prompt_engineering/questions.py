"""Question files in (JSON lines), results out (JSON lines, written whole or not at all)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from mlstack.errors import InputError
from mlstack.io import write_text
from mlstack.prompt_engineering.ask import Answer


class QuestionFileError(InputError):
    """A questions file that cannot be read: names the file, the line and the rule."""


def read_questions(path: Path, default_context: str) -> list[tuple[str, str]]:
    """(question, context) pairs from a .txt file (one question a line, # comments) or JSONL
    ({"question": ..., "context": ...}, context optional)."""
    if not path.is_file():
        raise QuestionFileError(f"{path}: no such file")
    items: list[tuple[str, str]] = []
    jsonl = path.suffix in (".jsonl", ".ndjson")
    for number, raw in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        line = raw.strip()
        if not line or (not jsonl and line.startswith("#")):
            continue
        if not jsonl:
            items.append((line, default_context))
            continue
        try:
            row = json.loads(line)
        except json.JSONDecodeError as exc:
            raise QuestionFileError(f"{path} line {number}: not valid JSON ({exc.msg})") from exc
        question = row.get("question") if isinstance(row, dict) else None
        if not isinstance(question, str) or not question.strip():
            raise QuestionFileError(f"{path} line {number}: 'question' must be a non-empty string")
        context = row.get("context", default_context)
        if not isinstance(context, str) or not context.strip():
            raise QuestionFileError(
                f"{path} line {number}: 'context', when given, must be a non-empty string"
            )
        items.append((question.strip(), context.strip()))
    if not items:
        raise QuestionFileError(f"{path}: no questions (one a line, or JSONL with a 'question' field)")
    return items


def summarise(answers: Sequence[Answer]) -> dict[str, Any]:
    answered = [a for a in answers if a.checks is not None]
    checks = [a.checks for a in answered if a.checks]
    return {
        "questions": len(answers),
        "answered": len(answered),
        "errors": len(answers) - len(answered),
        "passed": sum(c.passed for c in checks),
        "failed_sentences": sum(not c.sentences_ok for c in checks),
        "failed_links": sum(not c.links_ok for c in checks),
        "failed_links_well_formed": sum(not c.links_well_formed for c in checks),
        "mean_latency_s": round(sum(a.latency_s for a in answered) / len(answered), 3) if answered else None,
    }


def write_results(answers: Sequence[Answer], path: Path) -> Path:
    """All results as JSON lines, written whole or not at all."""
    write_text("".join(json.dumps(a.record()) + "\n" for a in answers), path)
    return path
