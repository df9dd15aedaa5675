"""Retrieval quality: hit@1, hit@5 and MRR@10 per search mode on a file of questions, with
bootstrap intervals; how often the answer says "I don't know" when it should and when it should
not; and the answers' quality, as MLflow GenAI scorers run by `mlflow.genai.evaluate` over
traced answers.

The file is JSON lines, `{"question": ..., "expected": [...]}`, where `expected` names the
documents that answer it by id, path or URL; or `{"question": ..., "unanswerable": true}` for a
question no document answers, which only the refusal rates count. A bad line is refused with its
file, line and rule.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from mlstack.errors import InputError
from mlstack.rag import retrieve
from mlstack.rag.retrieve import Hit

CUTOFFS = {"hit_at_1": 1, "hit_at_5": 5}
MRR_AT = 10


BOOTSTRAP_RESAMPLES = 2000
INTERVAL = 0.95


@dataclass(frozen=True)
class Question:
    question: str
    expected: tuple[str, ...]  # empty for an unanswerable question
    line: int

    @property
    def answerable(self) -> bool:
        return bool(self.expected)


def read_questions(path: Path) -> list[Question]:
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: cannot read the questions file ({exc})") from None
    questions = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        where = f"{path} line {number}"
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise InputError(f"{where}: not JSON ({exc.msg})") from None
        if (
            not isinstance(record, dict)
            or not isinstance(record.get("question"), str)
            or not record["question"].strip()
        ):
            raise InputError(f'{where}: column "question" must be a non-empty string')
        unanswerable = record.get("unanswerable", False)
        if not isinstance(unanswerable, bool):
            raise InputError(f'{where}: column "unanswerable" must be true or false')
        expected = record.get("expected", [] if unanswerable else None)
        if unanswerable and expected != []:
            raise InputError(f'{where}: an unanswerable question names no "expected" documents')
        if not unanswerable and (
            not isinstance(expected, list)
            or not expected
            or not all(isinstance(e, str) and e for e in expected)
        ):
            raise InputError(
                f'{where}: column "expected" must be a non-empty list of document ids, paths or URLs'
                ' (or set "unanswerable": true)'
            )
        questions.append(Question(record["question"], tuple(expected), number))
    if not any(q.answerable for q in questions):
        raise InputError(f"{path}: no answerable questions (JSON lines with question and expected)")
    return questions


def relevant(hit: Hit, expected: tuple[str, ...]) -> bool:
    return any(name in (hit.document_id, hit.path, hit.url) for name in expected)


def per_question(ranked: list[list[Hit]], questions: list[Question]) -> dict[str, list[float]]:
    """Each metric's value for each answerable question: 0 or 1 for a hit, 1/rank for MRR."""
    values: dict[str, list[float]] = {name: [] for name in [*CUTOFFS, f"mrr_at_{MRR_AT}"]}
    for hits, question in zip(ranked, questions, strict=True):
        if not question.answerable:
            continue
        rank = next((i for i, hit in enumerate(hits, 1) if relevant(hit, question.expected)), None)
        for name, cutoff in CUTOFFS.items():
            values[name].append(float(rank is not None and rank <= cutoff))
        values[f"mrr_at_{MRR_AT}"].append(1.0 / rank if rank is not None and rank <= MRR_AT else 0.0)
    return values


def scores(ranked: list[list[Hit]], questions: list[Question]) -> dict[str, float]:
    return {name: round(sum(v) / len(v), 4) for name, v in per_question(ranked, questions).items()}


def intervals(
    ranked: list[list[Hit]], questions: list[Question], seed: int = 0
) -> dict[str, tuple[float, float]]:
    """Each metric's 95% percentile-bootstrap interval over the questions: with 40 questions a
    hit@5 of 0.9 is 0.8-1.0, so two modes closer than that are not told apart by the set."""
    return {name: _bootstrap(values, seed) for name, values in per_question(ranked, questions).items()}


def lead_intervals(
    ranked: list[list[Hit]], other: list[list[Hit]], questions: list[Question], seed: int = 0
) -> dict[str, tuple[float, float]]:
    """The 95% interval of each metric's lead of `ranked` over `other` on the same questions
    (a paired bootstrap of the per-question differences). Two modes' own intervals overlap even
    when one wins on nearly every question they differ on; this interval excludes 0 when the
    set tells them apart."""
    mine, theirs = per_question(ranked, questions), per_question(other, questions)
    return {
        name: _bootstrap([a - b for a, b in zip(values, theirs[name], strict=True)], seed)
        for name, values in mine.items()
    }


def _bootstrap(values: list[float], seed: int) -> tuple[float, float]:
    """The mean's 95% percentile-bootstrap interval."""
    import numpy as np

    array = np.asarray(values)
    picks = np.random.default_rng(seed).integers(0, len(array), size=(BOOTSTRAP_RESAMPLES, len(array)))
    means = array[picks].mean(axis=1)
    tail = (1 - INTERVAL) / 2 * 100
    return round(float(np.percentile(means, tail)), 4), round(float(np.percentile(means, 100 - tail)), 4)


def ranked_by_mode(
    conn: Any, coll: Any, embedder: Any, questions: list[Question]
) -> dict[str, list[list[Hit]]]:
    """Each search mode's top MRR_AT hits for every question."""
    vectors = embedder.embed([q.question for q in questions])
    found = [
        retrieve.search_modes(conn, coll, q.question, v, k=MRR_AT)
        for q, v in zip(questions, vectors, strict=True)
    ]
    return {mode: [hits[mode] for hits in found] for mode in retrieve.MODES}


def refusals(hits: list[list[Hit]], questions: list[Question], min_similarity: float) -> dict[str, float]:
    """How often the answer would be "I don't know" (no passage reaches `min_similarity`, the
    gate of `answer.answer`): on unanswerable questions, where it should be (the higher the
    better), and on answerable ones, where it should not (the lower the better)."""
    refused = [max((h.similarity for h in found), default=-1.0) < min_similarity for found in hits]
    out = {}
    for name, wanted in (("unknown_rate_unanswerable", False), ("false_refusal_rate", True)):
        chosen = [r for r, q in zip(refused, questions, strict=True) if q.answerable == wanted]
        if chosen:
            out[name] = round(sum(chosen) / len(chosen), 4)
    return out


def _cited(outputs: Any) -> list[dict[str, Any]]:
    return list((outputs or {}).get("citations") or [])


def answer_scorers(grounded: Any = None) -> list[Any]:
    """What an answer to a question of the file must do, as MLflow scorers: cite a source the
    file names as answering it, cite at least one source (or say it does not know), cite only
    numbers that point at a source, and (given `grounded(answer, passages) -> [Claim]`, see
    `mlstack.rag.answer.grounded`) have each cited passage support the sentence citing it."""
    from mlflow.entities import Feedback
    from mlflow.genai.scorers import scorer

    @scorer(name="cites_expected_source")
    def cites_expected_source(outputs: Any, expectations: dict[str, Any]) -> Feedback:
        expected = tuple(expectations.get("expected_sources") or ())
        cited = _cited(outputs)
        hit = [
            c["n"] for c in cited if any(name in (c["document_id"], c["path"], c["url"]) for name in expected)
        ]
        why = (
            f"[{', '.join(map(str, hit))}] among the expected"
            if hit
            else f"none of {len(cited)} citations expected"
        )
        return Feedback(value=bool(hit), rationale=why)

    @scorer(name="cites_sources")
    def cites_sources(outputs: Any) -> Feedback:
        mode, cited = (outputs or {}).get("mode"), _cited(outputs)
        ok = bool(cited) or mode == "unknown"
        return Feedback(value=ok, rationale=f"{len(cited)} citations ({mode})")

    @scorer(name="citations_resolve")
    def citations_resolve(outputs: Any) -> Feedback:
        removed = int((outputs or {}).get("removed_citations") or 0)
        return Feedback(value=removed == 0, rationale=f"{removed} citation numbers pointed at no source")

    @scorer(name="grounded")
    def is_grounded(outputs: Any) -> Feedback:
        passages = {int(n): text for n, text in ((outputs or {}).get("passages") or {}).items()}
        claims = grounded((outputs or {}).get("answer") or "", passages)
        if not claims:
            return Feedback(value=True, rationale="no sentence cites a passage")
        unsupported = [c for c in claims if not c.supported]
        why = f"{len(claims) - len(unsupported)} of {len(claims)} cited sentences supported" + "".join(
            f"; not: {c.sentence[:80]!r} {list(c.cited)} ({c.why})" for c in unsupported[:3]
        )
        return Feedback(value=not unsupported, rationale=why)

    found = [cites_expected_source, cites_sources, citations_resolve]
    return found + ([is_grounded] if grounded is not None else [])


def evaluate_answers(questions: list[Question], answer_one: Any, grounded: Any = None) -> dict[str, float]:
    """Answer each question with `answer_one(question) -> dict` under `mlflow.genai.evaluate`,
    which traces each call and scores it, logging into the active run; returns its metrics."""
    import contextlib
    import io

    import mlflow

    data = [
        {"inputs": {"question": q.question}, "expectations": {"expected_sources": list(q.expected)}}
        for q in questions
    ]
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        result = mlflow.genai.evaluate(data=data, predict_fn=answer_one, scorers=answer_scorers(grounded))
    return {name: float(value) for name, value in result.metrics.items()}
