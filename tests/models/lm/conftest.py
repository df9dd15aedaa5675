"""A small real corpus, tokenized once per session: click's sources, cleaned and sharded."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest

from mlstack.pretraining import clean, shards, sources
from mlstack.settings import get_settings
from models.lm.init import LMShape

SHAPE = LMShape(vocab_size=512, hidden_size=64, layers=2, heads=2, context=64)


@dataclass(frozen=True)
class TokenCorpus:
    corpus: Path
    tokenizer: Path
    tokens: Path


@pytest.fixture(scope="session")
def token_corpus(tmp_path_factory: pytest.TempPathFactory) -> TokenCorpus:
    from models.lm.tokenizer import train_tokenizer

    root = tmp_path_factory.mktemp("pretrain")
    docs = clean.clean(
        sources.read(sources.parse_spec("packages:click"), get_settings(), 1_000_000)
    ).documents
    written = shards.write(docs, root / "corpus", 2, 0.1)
    train_tokenizer((d.text for d in docs), SHAPE.vocab_size).save_pretrained(root / "tokenizer")
    for path in written.values():
        shards.tokenize_shard(path, root / "tokenizer" / "tokenizer.json", root / "tokens")
    return TokenCorpus(root / "corpus", root / "tokenizer", root / "tokens")


def config(token_corpus: TokenCorpus, run_dir: Path, **changes: object):
    from models.lm.train import TrainConfig

    values = {
        "run_dir": run_dir,
        "tokens_dir": token_corpus.tokens,
        "tokenizer_dir": token_corpus.tokenizer,
        "shape": SHAPE,
        "steps": 30,
        "micro_batch": 8,
        "seq_len": 64,
        "lr": 1e-2,
        "warmup": 5,
        "eval_every": 10,
        "eval_batches": 2,
        "checkpoint_every": 10,
        "device": "cpu",
    }
    return TrainConfig(**(values | changes))
