"""The untrained stand-in: made once, marked as untrained, loadable as a Hugging Face model."""

from __future__ import annotations

from pathlib import Path

import pytest

from mlstack.llm.local_server import is_untrained
from models.lm.init import LMShape, ensure_untrained, init_model

SMALL_SHAPE = LMShape(vocab_size=400, hidden_size=32, layers=1, heads=2, context=64)


def test_the_stand_in_is_created_once_and_says_so(tmp_path: Path) -> None:
    path = tmp_path / "models" / "untrained-lm"
    assert ensure_untrained(path) == path and is_untrained(path)
    made = (path / "config.json").stat().st_mtime_ns
    assert ensure_untrained(path) == path  # reused, not rebuilt
    assert (path / "config.json").stat().st_mtime_ns == made
    with pytest.raises(FileExistsError):
        init_model(path, SMALL_SHAPE)
    assert not list(path.parent.glob(".*.tmp"))  # no half-saved copy left beside it


def test_the_stand_in_loads_with_transformers(tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    path = init_model(tmp_path / "lm", SMALL_SHAPE, seed=3)
    model = AutoModelForCausalLM.from_pretrained(path)
    tokenizer = AutoTokenizer.from_pretrained(path)
    assert model.config.max_position_embeddings == 64 and model.config.vocab_size == len(tokenizer)
    assert not is_untrained(tmp_path)  # no model card: not known to be untrained
