"""`pretrain-tokenize`: a byte-level BPE tokenizer, then every shard tokenized concurrently."""

from __future__ import annotations

import json
from pathlib import Path

import mlstack.bootstrap  # noqa: F401  (before prefect: sets its environment defaults)

from prefect import flow, get_run_logger, task
from prefect.cache_policies import NONE
from pydantic import BaseModel, Field

from flows.pretraining.shared import PRESET, layout_of, preset_of
from flows.tasks.runners import task_runner
from mlstack.pretraining import CorpusError, shards
from models.lm.presets import PRESETS, PresetName


class TokenizeParams(BaseModel):
    preset: PresetName | None = PRESET
    tokenizer: Path | None = Field(
        default=None,
        description="Reuse this Hugging Face directory's tokenizer (a model to start from)."
        " Default: train one on the corpus.",
    )


class ShardTokens(BaseModel):
    name: str
    tokens: int
    documents: int
    skipped: bool


class TokenizeResult(BaseModel):
    tokenizer_dir: Path
    tokens_dir: Path
    vocab_size: int
    shards: list[ShardTokens]
    train_tokens: int
    validation_tokens: int


@task(name="tokenize-shard", cache_policy=NONE)
def tokenize_shard(shard: Path, tokenizer_file: Path, out_dir: Path) -> ShardTokens:
    done = shards.tokenize_shard(shard, tokenizer_file, out_dir)
    return ShardTokens(name=done.name, tokens=done.tokens, documents=done.documents, skipped=done.skipped)


def _train_tokenizer(layout: shards.Layout, vocab_size: int) -> Path:
    """The corpus's tokenizer, retrained only when the training shards or the size changed."""
    from models.lm.tokenizer import train_tokenizer

    train_shards = [p for p in layout.shards() if p.stem != shards.VALIDATION]
    inputs = {"vocab_size": vocab_size, "shards": {p.name: shards.file_hash(p) for p in train_shards}}
    stamp = layout.tokenizer / "inputs.json"
    if stamp.is_file() and json.loads(stamp.read_text()) == inputs:
        return layout.tokenizer
    texts = (doc.text for path in train_shards for doc in shards.read_shard(path))
    tokenizer = train_tokenizer(texts, vocab_size)
    tokenizer.save_pretrained(layout.tokenizer)
    stamp.write_text(json.dumps(inputs))  # last: a stamp only ever describes a whole tokenizer
    return layout.tokenizer


@flow(name="pretrain-tokenize", log_prints=False, task_runner=task_runner())
def tokenize_flow(params: TokenizeParams = TokenizeParams()) -> TokenizeResult:
    """Train (or reuse) the tokenizer, then tokenize the shards concurrently."""
    layout = layout_of()
    corpus = layout.shards()
    tokenizer_dir = params.tokenizer or _train_tokenizer(
        layout, PRESETS[preset_of(params.preset)].shape.vocab_size
    )
    tokenizer_file = tokenizer_dir / "tokenizer.json"
    if not tokenizer_file.is_file():
        raise CorpusError(f"{tokenizer_dir} has no tokenizer.json (a fast Hugging Face tokenizer)")
    out = layout.tokens(tokenizer_dir)
    done = [f.result() for f in tokenize_shard.map(corpus, tokenizer_file, out)]
    vocab = json.loads(tokenizer_file.read_text())
    get_run_logger().info(
        "%d shards, %d tokenized now, %d unchanged",
        len(done),
        sum(not d.skipped for d in done),
        sum(d.skipped for d in done),
    )
    return TokenizeResult(
        tokenizer_dir=tokenizer_dir,
        tokens_dir=out,
        vocab_size=len(vocab["model"]["vocab"]) + len(vocab.get("added_tokens", [])),
        shards=done,
        train_tokens=sum(d.tokens for d in done if d.name != shards.VALIDATION),
        validation_tokens=sum(d.tokens for d in done if d.name == shards.VALIDATION),
    )
