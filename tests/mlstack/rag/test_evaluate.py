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


def scored(doc: str, similarity: float) -> Hit:
    return Hit(doc, "docs", doc, None, None, similarity, similarity, "c", "", "", None)


def test_an_unanswerable_question_names_no_document_and_counts_only_for_refusals(tmp_path: Path) -> None:
    path = tmp_path / "q.jsonl"
    path.write_text(
        '{"question": "answerable?", "expected": ["a"]}\n'
        '{"question": "how tall is Everest?", "unanswerable": true}\n'
    )
    questions = evaluate.read_questions(path)
    assert [q.answerable for q in questions] == [True, False]
    # The unanswerable one neither lowers nor raises a retrieval metric.
    assert evaluate.scores([[hit("a")], [hit("a")]], questions)["hit_at_1"] == 1.0
    assert evaluate.scores([[hit("a")], []], questions)["hit_at_1"] == 1.0
    for bad, rule in (
        ('{"question": "q", "unanswerable": true, "expected": ["a"]}', "names no"),
        ('{"question": "q", "unanswerable": "yes"}', "must be true or false"),
        ('{"question": "q", "expected": []}', 'or set "unanswerable": true'),
    ):
        path.write_text('{"question": "ok?", "expected": ["a"]}\n' + bad + "\n")
        with pytest.raises(InputError, match=rf"q.jsonl line 2: .*{rule}"):
            evaluate.read_questions(path)
    path.write_text('{"question": "q", "unanswerable": true}\n')
    with pytest.raises(InputError, match="no answerable questions"):
        evaluate.read_questions(path)


def test_refusal_rates_follow_the_answer_gate() -> None:
    questions = [
        evaluate.Question("in the docs", ("a",), 1),
        evaluate.Question("in the docs too", ("b",), 2),
        evaluate.Question("not in the docs", (), 3),
        evaluate.Question("not either", (), 4),
    ]
    hits = [[scored("a", 0.8)], [scored("b", 0.2)], [scored("a", 0.1)], [scored("a", 0.6)]]
    assert evaluate.refusals(hits, questions, min_similarity=0.3) == {
        "unknown_rate_unanswerable": 0.5,  # the 0.1 one refused; the 0.6 one answered anyway
        "false_refusal_rate": 0.5,  # the 0.2 one refused though the docs answer it
    }
    assert evaluate.refusals(hits[:2], questions[:2], 0.3) == {"false_refusal_rate": 0.5}


def test_bootstrap_intervals_hold_the_mean_and_narrow_with_more_questions() -> None:
    def sets(n: int) -> tuple[list[list[Hit]], list[evaluate.Question]]:
        questions = [evaluate.Question(f"q{i}", ("a",), i) for i in range(n)]
        return [[hit("a")] if i % 4 else [hit("x")] for i in range(n)], questions  # hit@1 = 0.75

    small = evaluate.intervals(*sets(40))
    large = evaluate.intervals(*sets(400))
    for spans in (small, large):
        low, high = spans["hit_at_1"]
        assert low < 0.75 < high
    assert large["hit_at_1"][1] - large["hit_at_1"][0] < small["hit_at_1"][1] - small["hit_at_1"][0]
    assert evaluate.intervals(*sets(40)) == small, "seeded: the same set gives the same interval"
    perfect = evaluate.intervals([[hit("a")]] * 10, [evaluate.Question("q", ("a",), 1)] * 10)
    assert perfect["mrr_at_10"] == (1.0, 1.0)


def test_a_paired_lead_is_told_apart_where_the_two_own_intervals_overlap() -> None:
    # 40 questions of mixed difficulty: both modes find the answer first on the easy half and
    # not at all on the hard quarter; on the other quarter one finds it first, the other second.
    questions = [evaluate.Question(f"q{i}", ("a",), i) for i in range(40)]
    easy, hard = [hit("a")], [hit("x")]
    better = [easy if i % 4 < 2 else hard if i % 4 == 2 else [hit("a")] for i in range(40)]
    worse = [easy if i % 4 < 2 else hard if i % 4 == 2 else [hit("x"), hit("a")] for i in range(40)]

    own, theirs = evaluate.intervals(better, questions), evaluate.intervals(worse, questions)
    lead = evaluate.lead_intervals(better, worse, questions)

    assert own["mrr_at_10"][0] < theirs["mrr_at_10"][1], "their own intervals overlap"
    low, high = lead["mrr_at_10"]
    assert 0 < low < 0.125 < high, "the lead (a quarter of the questions, each by 1/2) is told apart"
    assert evaluate.lead_intervals(worse, worse, questions)["mrr_at_10"] == (0.0, 0.0)
    assert evaluate.lead_intervals(worse, better, questions)["mrr_at_10"] == (-high, -low)


def test_the_shipped_docs_questions_name_real_documents_and_apply_where_they_are_held() -> None:
    from mlstack.rag import defaults
    from mlstack.settings import project_root

    questions = evaluate.read_questions(defaults.DOCS_QUESTIONS)
    docs = {p.name for p in (project_root() / "docs").glob("*.md")} | {"README.md"}
    named = {name for q in questions for name in q.expected}
    assert named and named <= docs, sorted(named - docs)
    assert sum(not q.answerable for q in questions) >= 3
    # A collection of the project's docs gets both sets; one of the samples and one doc, the samples'.
    samples = {name for q in evaluate.read_questions(defaults.QUESTIONS) for name in q.expected}
    assert defaults.question_sets(samples | docs) == [defaults.QUESTIONS, defaults.DOCS_QUESTIONS]
    assert defaults.question_sets(samples | {"rag.md"}) == [defaults.QUESTIONS]
    assert defaults.question_sets(docs) == [defaults.DOCS_QUESTIONS]
    assert defaults.question_sets(set()) == [defaults.QUESTIONS]


@pytest.mark.slow
def test_each_question_is_scored_as_a_search_for_it_alone_would_rank(rag_settings, collection: str) -> None:
    # The evaluation embeds its questions in one call, `rag search` one alone: int8 ONNX once
    # scaled a batch's activations together, and the two then ranked differently.
    from mlstack.llm.embeddings import local_embedder
    from mlstack.rag import defaults, refresh, retrieve, sources, store

    assert rag_settings.llm.embedding_backend == "onnx-int8"
    embedder = local_embedder(rag_settings)
    questions = evaluate.read_questions(defaults.QUESTIONS)
    with store.connect(rag_settings) as conn:
        for spec in defaults.sources()[:2]:
            refresh.run(
                conn, collection, sources.read(sources.parse_spec(spec), rag_settings), embedder, rag_settings
            )
        ranked = evaluate.ranked_by_mode(
            conn, store.require_collection(conn, collection), embedder, questions
        )
    for question, hits in zip(questions, ranked["vector"], strict=True):
        alone = retrieve.find(
            rag_settings, embedder, collection, question.question, evaluate.MRR_AT, "vector"
        )
        assert [(h.document_id, h.score) for h in hits] == [(h.document_id, h.score) for h in alone]
