"""A byte-level BPE tokenizer trained from text the project can read offline.

Byte-level means any string round-trips, so a small vocabulary never meets an unknown character.
The chat markers are single special tokens, so the default chat template costs one token each.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

EOS = "<|endoftext|>"
IM_START = "<|im_start|>"
IM_END = "<|im_end|>"
SPECIAL_TOKENS = [EOS, IM_START, IM_END]
# ChatML, as many open models use; saved with every tokenizer we train, and used for a model
# directory that has no chat template of its own. The assistant turn ends with <|im_end|>.
DEFAULT_CHAT_TEMPLATE = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)


def project_corpus(root: Path | None = None) -> list[str]:
    """The project's own Markdown and Python sources: always on disk, never downloaded."""
    from mlstack.settings import project_root

    root = root or project_root()
    paths = sorted(root.glob("*.md")) + sorted(
        p for folder in ("mlstack", "flows", "models", "monitoring") for p in (root / folder).rglob("*.py")
    )
    texts = [p.read_text(encoding="utf-8", errors="replace") for p in paths]
    if not texts:
        raise FileNotFoundError(f"no .md or .py files under {root} to train a tokenizer on")
    return texts


def train_tokenizer(texts: Iterable[str], vocab_size: int = 4096):  # -> PreTrainedTokenizerFast
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tokenizer = Tokenizer(models.BPE())
    tokenizer.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tokenizer.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tokenizer.train_from_iterator(texts, trainer)
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tokenizer,
        bos_token=EOS,
        eos_token=EOS,
        pad_token=EOS,
        additional_special_tokens=[IM_START, IM_END],
    )
    fast.chat_template = DEFAULT_CHAT_TEMPLATE
    return fast
