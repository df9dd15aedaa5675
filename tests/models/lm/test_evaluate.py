"""Evaluation: bits per byte that compare across tokenizers, and completions judged by parsing."""

from __future__ import annotations

from pathlib import Path

from models.lm import evaluate
from models.lm.train import train
from tests.models.lm.conftest import TokenCorpus, config

MODULE = '''import os


def join(a, b):
    """Join two paths."""
    return os.path.join(a, b)


@decorated
def skipped(x):
    return x


def short(x):
    return x


def two_lines(x):
    y = x + 1
    return y
'''


def test_headers_are_def_lines_with_their_docstrings_from_top_level_functions() -> None:
    assert evaluate.function_headers([MODULE, "def broken(:"]) == [
        'def join(a, b):\n    """Join two paths."""\n',
        "def two_lines(x):\n",
    ]


def test_a_body_ends_at_the_first_line_that_is_not_indented() -> None:
    assert evaluate.body_of("    return 1\n\ndef next():\n    pass") == "    return 1\n"
    assert evaluate.body_of("print(1)") == "\n"  # no body at all


def test_a_trained_model_scores_better_than_its_untrained_start(
    token_corpus: TokenCorpus, tmp_path: Path
) -> None:
    from mlstack.pretraining import shards

    texts = [d.text for d in shards.read_shard(token_corpus.corpus / "validation.jsonl")]
    untrained = train(config(token_corpus, tmp_path / "zero", steps=1, lr=1e-9, eval_every=1))
    trained = train(config(token_corpus, tmp_path / "thirty"))
    before = evaluate.text_score(*evaluate.load(untrained.model_dir), texts, max_tokens=4000)
    after = evaluate.text_score(*evaluate.load(trained.model_dir), texts, max_tokens=4000)
    assert after.bits_per_byte < before.bits_per_byte and after.perplexity < before.perplexity
    assert 0 < after.bits_per_byte < 8 and after.tokens > 1000
    model, tokenizer = evaluate.load(trained.model_dir)
    score = evaluate.header_score(
        model, tokenizer, evaluate.function_headers(texts, limit=3), max_new_tokens=8
    )
    assert score.total == 3 and 0.0 <= score.parse_share <= 1.0
    assert all(set(e) == {"header", "completion", "parses"} for e in score.examples)
