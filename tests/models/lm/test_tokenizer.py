"""The byte-level BPE tokenizer: any text round-trips, and the chat markers are one token each."""

from __future__ import annotations

from pathlib import Path

import pytest

from models.lm.tokenizer import EOS, IM_END, IM_START, project_corpus, train_tokenizer
from tests.conftest import PROJECT_ROOT, TINY_CORPUS


@pytest.fixture(scope="module")
def tokenizer():
    return train_tokenizer(TINY_CORPUS, vocab_size=300)


@pytest.mark.parametrize(
    "text",
    ["df.drop_duplicates()", "naïve café ☕ 数据框", "tabs\tand\nnewlines  ", "🙂" * 3, "<|im_start|>x"],
)
def test_any_text_round_trips(tokenizer, text: str) -> None:
    ids = tokenizer.encode(text, add_special_tokens=False)
    assert tokenizer.decode(ids) == text


def test_the_chat_markers_are_single_special_tokens(tokenizer) -> None:
    for marker in (EOS, IM_START, IM_END):
        ids = tokenizer.encode(marker, add_special_tokens=False)
        assert len(ids) == 1 and ids[0] in tokenizer.all_special_ids
    assert tokenizer.eos_token == EOS and tokenizer.pad_token == EOS
    assert len(tokenizer) <= 300


def test_training_learns_merges_from_the_corpus(tokenizer) -> None:
    # The corpus' own text takes fewer tokens than bytes; unseen bytes still encode, one per byte.
    sentence = TINY_CORPUS[1]
    assert len(tokenizer.encode(sentence, add_special_tokens=False)) < 0.8 * len(sentence.encode())
    assert len(tokenizer.encode("ÿ", add_special_tokens=False)) == 2  # two UTF-8 bytes


def test_the_project_corpus_is_the_checkouts_own_text(tmp_path: Path) -> None:
    texts = project_corpus(PROJECT_ROOT)
    readme = (PROJECT_ROOT / "README.md").read_text(encoding="utf-8")
    assert readme in texts and len(texts) > 20
    with pytest.raises(FileNotFoundError, match=r"no \.md or \.py files"):
        project_corpus(tmp_path)


def test_a_saved_tokenizer_keeps_its_special_tokens_and_chat_template(tokenizer, tmp_path: Path) -> None:
    from transformers import AutoTokenizer

    tokenizer.save_pretrained(tmp_path)
    loaded = AutoTokenizer.from_pretrained(tmp_path)
    chat = [{"role": "user", "content": "hi"}]
    text = loaded.apply_chat_template(chat, add_generation_prompt=True, tokenize=False)
    assert text == "<|im_start|>user\nhi<|im_end|>\n<|im_start|>assistant\n"
    assert loaded.convert_tokens_to_ids(IM_END) == tokenizer.convert_tokens_to_ids(IM_END)
    assert (
        loaded.decode(loaded.encode("def f(x):\n\treturn x", add_special_tokens=False))
        == "def f(x):\n\treturn x"
    )
